#include <trainscope/error.h>
#include <trainscope/track/archive.h>

namespace trainscope {
namespace {

c10::IValue read(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  if (!archive.try_read(key, v))
    throw CheckpointError("the checkpoint has no '" + key +
                          "' (written by another version of this callback?)");
  return v;
}

}  // namespace

int64_t read_int(torch::serialize::InputArchive& a, const std::string& key) {
  return read(a, key).toInt();
}
double read_double(torch::serialize::InputArchive& a, const std::string& key) {
  return read(a, key).toDouble();
}
bool read_bool(torch::serialize::InputArchive& a, const std::string& key) {
  return read(a, key).toBool();
}
std::string read_string(torch::serialize::InputArchive& a, const std::string& key) {
  return read(a, key).toStringRef();
}

}  // namespace trainscope
