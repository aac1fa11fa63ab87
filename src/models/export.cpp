#include <trainscope/error.h>
#include <trainscope/models/export.h>
#include <trainscope/track/run.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace trainscope::models {

int64_t export_state_dict(const Model& model, const std::filesystem::path& file) {
  c10::Dict<std::string, at::Tensor> dict;
  auto add = [&](const auto& items) {
    for (const auto& item : items) dict.insert(item.key(), item.value().detach().to(torch::kCPU));
  };
  add(model.module().named_parameters());
  add(model.module().named_buffers());
  // torch::pickle_save writes the zip format of Python's torch.save.
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  try {
    track::write_atomically(file, [&](const std::filesystem::path& tmp) {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      out.flush();
      if (!out) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    });
  } catch (const std::exception& e) {
    throw CheckpointError(std::string("exporting weights failed: ") + e.what());
  }
  return static_cast<int64_t>(dict.size());
}

}  // namespace trainscope::models
