#include <trainscope/track/checkpoint_dir.h>

#include <trainscope/error.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace trainscope::track {

namespace fs = std::filesystem;

std::optional<GoodCheckpoint> newest_good_checkpoint(const fs::path& dir, bool set_aside) {
  std::error_code ec;
  auto put_aside = [&](const fs::path& file, const std::string& why, const char* then) {
    if (!set_aside) return;
    std::fprintf(stderr, "trainscope: %s; set aside as %s.corrupt%s\n", why.c_str(),
                 file.filename().c_str(), then);
    fs::rename(file, file.string() + ".corrupt", ec);
  };
  struct Candidate {
    fs::path file;
    CheckpointInfo info;
  };
  std::vector<Candidate> candidates;
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw CheckpointError(dir.string() + " is not a directory");
  std::error_code listing;
  for (const auto& entry : fs::directory_iterator(dir, listing)) {
    if (entry.path().extension() != ".ckpt") continue;
    try {
      candidates.push_back({entry.path(), read_checkpoint_info(entry.path())});
    } catch (const CheckpointDamaged& e) {
      put_aside(entry.path(), e.what(), "");
    }
  }
  if (listing && listing != std::errc::no_such_file_or_directory)
    throw CheckpointError("cannot list " + dir.string() + ": " + listing.message());
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.info.step != b.info.step) return a.info.step > b.info.step;
    if (a.info.epoch_complete != b.info.epoch_complete) return a.info.epoch_complete;
    return a.file.filename() == "last.ckpt" && b.file.filename() != "last.ckpt";
  });
  std::vector<fs::path> damaged;
  for (const auto& c : candidates) {
    if (!fs::exists(c.file) || std::count(damaged.begin(), damaged.end(), c.file)) continue;
    try {
      return GoodCheckpoint{c.file, c.info, read_checkpoint_payload(c.file)};
    } catch (const CheckpointDamaged& e) {
      // Hard links share the damage: every name of the same file goes.
      std::vector<fs::path> twins;
      for (const auto& other : candidates)
        if (other.file != c.file && fs::exists(other.file) &&
            fs::equivalent(other.file, c.file, ec))
          twins.push_back(other.file);
      put_aside(c.file, e.what(), ", trying an older checkpoint");
      damaged.push_back(c.file);
      for (const auto& twin : twins) {
        put_aside(twin, twin.filename().string() + " is the same file", "");
        damaged.push_back(twin);
      }
    }
  }
  return std::nullopt;
}

}  // namespace trainscope::track
