#pragma once
// The processes of a data-parallel job and their collectives, over torch's c10d: Gloo on CPU,
// NCCL on CUDA. A job is described the way torchrun, SLURM wrappers and mpirun launchers
// describe it, by environment variables, so the same binary runs under any of them.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace trainscope::dist {

// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
struct JobEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world_size > 1; }
  // From the environment; a job of one process when WORLD_SIZE is unset. Throws ConfigError
  // naming the variable, its value and what was expected.
  static JobEnv from_environment();
};

struct ProcessGroupOptions {
  std::string backend = "auto";  // auto (gloo for a CPU device, nccl for a CUDA one) | gloo | nccl
  // This rank's training device (cuda:LOCAL_RANK on a GPU machine). NCCL reduces only tensors on
  // it, so the blocking collectives move their tensors there and back.
  torch::Device device = torch::kCPU;
  // A collective that does not complete in this time fails (a rank died or hangs).
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

// One process's membership in a job: a TCPStore rendezvous on MASTER_ADDR:MASTER_PORT (hosted by
// rank 0) and a c10d process group. Every rank writes a heartbeat into the store each second; when
// a collective fails or times out, the Error names the ranks whose heartbeat stopped ("rank 1
// stopped responding 4.2 s ago"), and nothing waits longer than `timeout`. Not copyable; the
// collectives are called from one thread.
class ProcessGroup {
 public:
  // Joins the job; returns once every rank has joined. Throws Error when the rendezvous does not
  // complete within the timeout (naming the address and the ranks still missing) or the backend
  // is not available in this LibTorch.
  ProcessGroup(const JobEnv& env, ProcessGroupOptions options = {});
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;

  // An all-reduce in flight; wait() returns when it is done, or throws the job's Error.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  // Sums `tensor` over the ranks in place, asynchronously.
  std::unique_ptr<Pending> all_reduce_async(torch::Tensor& tensor);
  // Blocking collectives.
  void all_reduce(std::vector<torch::Tensor>& tensors);
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();

  struct Impl;  // internal (src/dist/process_group.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

// Available backends of this LibTorch build ("gloo", "nccl").
std::vector<std::string> available_backends();

}  // namespace trainscope::dist
