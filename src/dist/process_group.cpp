#include <trainscope/dist/process_group.h>
#include <trainscope/error.h>
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

// Gloo comes with Debian's LibTorch (its headers in libgloo-dev); NCCL with CUDA builds of
// LibTorch (CMake defines TRAINSCOPE_WITH_NCCL there).
#if __has_include(<gloo/algorithm.h>)
#define TRAINSCOPE_WITH_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TRAINSCOPE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <atomic>
#include <exception>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace trainscope::dist {
namespace {

using Clock = std::chrono::system_clock;

double now_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

std::string first_line(const std::exception& e) {
  std::string what = e.what();
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) what = c10->what_without_backtrace();
  return what.substr(0, what.find('\n'));
}

int env_int(const char* name, int fallback, int min) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < min)
    throw ConfigError(std::string("environment variable ") + name + "=" + text +
                      " is not valid; expected an integer >= " + std::to_string(min));
  return static_cast<int>(v);
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

constexpr const char* kHeartbeat = "trainscope/heartbeat/";

// LibTorch 1.13's TCPStore client runs a listener thread that throws, and so terminates the
// process, when the store's host (rank 0) disappears: the survivors would abort with
// "terminate called after throwing std::system_error" instead of saying what happened.
std::string g_terminate_message;
[[noreturn]] void on_terminate() {
  std::string what = "no exception";
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
      what = "an unknown exception";
    }
  }
  std::fprintf(stderr, "trainscope: error: %s (a background thread ended with: %s)\n",
               g_terminate_message.c_str(), what.substr(0, what.find('\n')).c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

JobEnv JobEnv::from_environment() {
  JobEnv env;
  env.world_size = env_int("WORLD_SIZE", 1, 1);
  env.rank = env_int("RANK", 0, 0);
  env.local_rank = env_int("LOCAL_RANK", env.rank, 0);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
  env.master_port = env_int("MASTER_PORT", 29500, 1);
  if (env.master_port > 65535)
    throw ConfigError("environment variable MASTER_PORT=" + std::to_string(env.master_port) +
                      " is not a port (1 to 65535)");
  if (env.rank >= env.world_size)
    throw ConfigError("environment variable RANK=" + std::to_string(env.rank) +
                      " is outside the job: WORLD_SIZE=" + std::to_string(env.world_size) +
                      " ranks are 0 to " + std::to_string(env.world_size - 1));
  return env;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
#ifdef TRAINSCOPE_WITH_GLOO
  out.push_back("gloo");
#endif
#ifdef TRAINSCOPE_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

// LibTorch 2 split c10d's ProcessGroup into a front and per-device Backends; Gloo and NCCL are
// Backends there, with the same collectives.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct ProcessGroup::Impl {
  JobEnv env;
  ProcessGroupOptions options;
  std::string backend;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<Collectives> group;
  std::thread heartbeat;
  std::atomic<bool> stop{false};

  // What went wrong, named by rank: whose heartbeat stops moving. Each live rank writes its
  // heartbeat every second, so two readings 2.2 s apart tell the dead from the living.
  std::string describe(const std::string& what) {
    std::string who;
    try {
      // The job's own store client: c10d serializes its calls (TCPStore's activeOpLock_), and a
      // second client would add a second listener thread (see on_terminate).
      auto read = [&](int r) {
        const std::string key = kHeartbeat + std::to_string(r);
        if (!store->check({key})) return -1.0;
        const auto v = store->get(key);
        return std::stod(std::string(v.begin(), v.end()));
      };
      std::vector<double> first(env.world_size);
      for (int r = 0; r < env.world_size; ++r) first[r] = r == env.rank ? 0 : read(r);
      std::this_thread::sleep_for(std::chrono::milliseconds(2200));
      const double now = now_seconds();
      for (int r = 0; r < env.world_size; ++r) {
        if (r == env.rank) continue;
        const double last = read(r);
        if (last >= 0 && last != first[r]) continue;  // alive
        char buf[96];
        std::snprintf(buf, sizeof buf, "rank %d is gone (its last heartbeat was %.1f s ago)", r,
                      last < 0 ? 0.0 : now - last);
        who += (who.empty() ? "" : "; ") + std::string(buf);
      }
    } catch (const std::exception&) {
      who = store_host_gone();
    }
    if (who.empty()) who = "every rank is alive but one did not answer in time (a rank hangs?)";
    return "data-parallel job: rank " + std::to_string(env.rank) + " of " +
           std::to_string(env.world_size) + " stops: " + who + " (" + what + ")";
  }

  std::string store_host_gone() const {
    return "rank 0, which hosts the job's store at " + env.master_addr + ":" +
           std::to_string(env.master_port) + ", is gone";
  }

  void beat() {
    const std::string key = kHeartbeat + std::to_string(env.rank);
    try {
      while (!stop.load()) {
        store->set(key, bytes(std::to_string(now_seconds())));
        for (int i = 0; i < 10 && !stop.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    } catch (const std::exception&) {
      // The store is gone with rank 0; the next collective reports it.
    }
  }
};

namespace {

class PendingWork : public ProcessGroup::Pending {
 public:
  PendingWork(c10::intrusive_ptr<c10d::Work> work, ProcessGroup::Impl* impl)
      : work_(std::move(work)), impl_(impl) {}
  void wait() override {
    try {
      work_->wait(impl_->options.timeout);
    } catch (const std::exception& e) {
      throw JobError(impl_->describe(first_line(e)));
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  ProcessGroup::Impl* impl_;
};

}  // namespace

ProcessGroup::ProcessGroup(const JobEnv& env, ProcessGroupOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.env = env;
  m.options = options;
  m.backend =
      options.backend == "auto" ? (options.device.is_cuda() ? "nccl" : "gloo") : options.backend;
  if (m.backend == "nccl" && !options.device.is_cuda())
    throw ConfigError("dist.backend \"nccl\" reduces CUDA tensors, but this rank trains on " +
                      options.device.str() + "; use gloo, or a CUDA device");
  const auto have = available_backends();
  if (std::find(have.begin(), have.end(), m.backend) == have.end()) {
    std::string list;
    for (const auto& b : have) list += (list.empty() ? "" : ", ") + b;
    throw ConfigError("dist.backend \"" + m.backend + "\" is not in this LibTorch build (it has: " +
                      (list.empty() ? "none" : list) + ")");
  }
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env.master_port);
    o.isServer = env.rank == 0;
    o.numWorkers = static_cast<size_t>(env.world_size);
    o.waitWorkers = true;
    o.timeout = options.timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    throw JobError("data-parallel job: rank " + std::to_string(env.rank) + " could not meet the " +
                   std::to_string(env.world_size) + " ranks at " + where + " within " +
                   std::to_string(options.timeout.count() / 1000) + " s: " + first_line(e) +
                   " (are all ranks started, with the same MASTER_ADDR and MASTER_PORT?)");
  }
  m.store->set(kHeartbeat + std::to_string(env.rank), bytes(std::to_string(now_seconds())));
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("trainscope/pg", m.store);
  try {
#ifdef TRAINSCOPE_WITH_GLOO
    if (m.backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(options.timeout);
      const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
      if (iface && *iface)
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
      else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      m.group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.world_size, o);
    }
#endif
#ifdef TRAINSCOPE_WITH_NCCL
    if (m.backend == "nccl") {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = options.timeout;
      m.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env.rank, env.world_size, o);
    }
#endif
  } catch (const std::exception& e) {
    throw JobError("data-parallel job: rank " + std::to_string(env.rank) + " could not set up " +
                   m.backend + " at " + where + ": " + first_line(e));
  }
  g_terminate_message = "data-parallel job: rank " + std::to_string(env.rank) + " of " +
                        std::to_string(env.world_size) + " stops: " +
                        (env.rank == 0 ? std::string("a thread of the job failed")
                                       : m.store_host_gone() + ", or a thread of the job failed");
  std::set_terminate(on_terminate);
  m.heartbeat = std::thread([&m] { m.beat(); });
}

ProcessGroup::~ProcessGroup() {
  impl_->stop.store(true);
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }
const std::string& ProcessGroup::backend() const { return impl_->backend; }

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_async(torch::Tensor& tensor) {
  std::vector<torch::Tensor> one = {tensor};
  try {
    return std::make_unique<PendingWork>(impl_->group->allreduce(one), impl_.get());
  } catch (const std::exception& e) {
    throw JobError(impl_->describe(first_line(e)));
  }
}

namespace {

// The tensors of each dtype in one flat buffer, so that a collective moves them in one go.
std::map<c10::ScalarType, std::vector<size_t>> by_dtype(const std::vector<torch::Tensor>& ts) {
  std::map<c10::ScalarType, std::vector<size_t>> out;
  for (size_t i = 0; i < ts.size(); ++i) out[ts[i].scalar_type()].push_back(i);
  return out;
}

}  // namespace

void ProcessGroup::all_reduce(std::vector<torch::Tensor>& tensors) {
  for (const auto& [dtype, idx] : by_dtype(tensors)) {
    std::vector<torch::Tensor> parts;
    for (size_t i : idx) parts.push_back(tensors[i].reshape({-1}).to(impl_->options.device));
    auto flat = torch::cat(parts);
    all_reduce_async(flat)->wait();
    int64_t at = 0;
    torch::NoGradGuard no_grad;
    for (size_t i : idx) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(flat.slice(0, at, at + n).view_as(tensors[i]));
      at += n;
    }
  }
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  for (const auto& [dtype, idx] : by_dtype(tensors)) {
    std::vector<torch::Tensor> parts;
    for (size_t i : idx)
      parts.push_back(tensors[i].detach().reshape({-1}).to(impl_->options.device));
    std::vector<torch::Tensor> flat = {torch::cat(parts)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    try {
      impl_->group->broadcast(flat, o)->wait(impl_->options.timeout);
    } catch (const std::exception& e) {
      throw JobError(impl_->describe(first_line(e)));
    }
    int64_t at = 0;
    torch::NoGradGuard no_grad;
    for (size_t i : idx) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(flat[0].slice(0, at, at + n).view_as(tensors[i]));
      at += n;
    }
  }
}

void ProcessGroup::barrier() {
  auto token = torch::zeros({1}, impl_->options.device);
  all_reduce_async(token)->wait();
}

}  // namespace trainscope::dist
