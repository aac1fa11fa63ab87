#pragma once
// Export: a model's weights in the file format Python's torch.load reads.
#include <trainscope/models/model.h>

#include <filesystem>

namespace trainscope::models {

// Writes every parameter and buffer of `model` as a state dict: torch.load(file) in Python
// returns a dict from the module's names ("0.weight", "1.running_mean", ...; the same names a
// torch.nn module of the same structure has) to CPU tensors, ready for load_state_dict. Written
// atomically. Returns the number of tensors. Throws CheckpointError naming the file when it
// cannot be written.
int64_t export_state_dict(const Model& model, const std::filesystem::path& file);

}  // namespace trainscope::models
