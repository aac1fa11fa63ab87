#pragma once
// Reading checkpointed values back (Callback::on_checkpoint_load, the training payload): the
// key's value as the type it was written with, or a CheckpointError naming the key.
//   archive.write("wait", c10::IValue(wait_));        // on_checkpoint_save
//   wait_ = read_int(archive, "wait");                 // on_checkpoint_load
#include <torch/torch.h>

#include <string>

namespace trainscope {

int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key);
double read_double(torch::serialize::InputArchive& archive, const std::string& key);
bool read_bool(torch::serialize::InputArchive& archive, const std::string& key);
std::string read_string(torch::serialize::InputArchive& archive, const std::string& key);

}  // namespace trainscope
