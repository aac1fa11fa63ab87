#pragma once
// Test helper: what a callback wrote in on_checkpoint_save, read back as on_checkpoint_load gets
// it (serialized to bytes and loaded, as a checkpoint file would be).
#include <torch/torch.h>

#include <string>

namespace trainscope::testing {

inline torch::serialize::InputArchive round_trip(torch::serialize::OutputArchive& out) {
  std::string bytes;
  out.save_to([&](const void* d, size_t n) {
    bytes.append(static_cast<const char*>(d), n);
    return n;
  });
  torch::serialize::InputArchive in;
  in.load_from(bytes.data(), bytes.size());
  return in;
}

}  // namespace trainscope::testing
