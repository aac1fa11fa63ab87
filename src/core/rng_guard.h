#pragma once
// Internal: restores torch's default CPU generator (and that of `device`, when it is not the CPU)
// on scope exit, so that a probe (pre-flight checks, the batch-size and lr finders, the sharpness
// probe of the diagnostics) leaves a seeded run exactly as it found it.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <mutex>
#include <vector>

namespace trainscope::detail {

class RngGuard {
 public:
  explicit RngGuard(const c10::Device& device = c10::Device(c10::kCPU)) {
    generators_.push_back(at::detail::getDefaultCPUGenerator());  // handles to the global ones
    if (!device.is_cpu()) generators_.push_back(at::globalContext().defaultGenerator(device));
    for (auto& g : generators_) {
      std::lock_guard<std::mutex> lock(g.mutex());
      states_.push_back(g.get_state());
    }
  }
  ~RngGuard() {
    for (size_t i = 0; i < generators_.size(); ++i) {
      std::lock_guard<std::mutex> lock(generators_[i].mutex());
      generators_[i].set_state(states_[i]);
    }
  }
  RngGuard(const RngGuard&) = delete;
  RngGuard& operator=(const RngGuard&) = delete;

  // Seeds the guarded generators (until the guard puts their states back): a probe that draws
  // after each reseed with the same seed draws the same numbers.
  void reseed(uint64_t seed) {
    for (auto& g : generators_) {
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
  }

 private:
  std::vector<at::Generator> generators_;
  std::vector<at::Tensor> states_;
};

}  // namespace trainscope::detail
