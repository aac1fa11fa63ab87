#pragma once
// A run's checkpoints/ directory, as a resume reads it: which file to continue from.

#include <trainscope/track/checkpoint_file.h>

#include <filesystem>
#include <optional>
#include <string>

namespace trainscope::track {

// A checkpoint whose payload read back intact.
struct GoodCheckpoint {
  std::filesystem::path file;
  CheckpointInfo info;
  std::string payload;  // verified (length and CRC-32)
};

// The newest checkpoint in `dir` whose payload verifies. Newest means the most optimizer steps;
// at a tie, the state at an epoch's end before one mid-epoch, then last.ckpt before its copies.
// A damaged file (truncated, corrupt) is skipped for the next older one; with `set_aside` it is
// renamed to <file>.corrupt, with every hard link to the same file, and a line on stderr says so.
// nullopt when `dir` holds no usable checkpoint (or does not exist). Throws CheckpointError when
// `dir` is not a directory or cannot be listed, and for a file that cannot be read at all or
// comes from a newer trainscope: that says nothing about its contents, so the resume stops.
std::optional<GoodCheckpoint> newest_good_checkpoint(const std::filesystem::path& dir,
                                                     bool set_aside);

}  // namespace trainscope::track
