#pragma once
// Internal: restores torch's default CPU generator on scope exit, so that a probe (pre-flight
// checks, the batch-size and lr finders) leaves a seeded run exactly as it found it.
#include <ATen/CPUGeneratorImpl.h>

namespace trainscope::detail {

class RngGuard {
 public:
  RngGuard() : state_(at::detail::getDefaultCPUGenerator().get_state()) {}
  ~RngGuard() {
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
    generator.set_state(state_);
  }
  RngGuard(const RngGuard&) = delete;
  RngGuard& operator=(const RngGuard&) = delete;

 private:
  at::Tensor state_;
};

}  // namespace trainscope::detail
