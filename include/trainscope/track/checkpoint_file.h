#pragma once
// Checkpoint files: a verified container around a serialized training state.
//
//   bytes 0-7    "TSCKPT" 0x00 and the format version (1)
//   bytes 8-15   the header's length and its CRC-32, little-endian u32 each
//   header       JSON: what the file holds (CheckpointInfo), with the payload's length and CRC-32
//   payload      a torch::serialize archive (model, optimizer, callbacks, RNG, loader, counters)
//
// The header reads without the payload, so checkpoints can be listed and ranked cheaply; reading
// the payload verifies its length (a truncated file) and its checksum (a corrupt one).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace trainscope::track {

inline constexpr int kCheckpointFormatVersion = 1;

// What a checkpoint holds and where in the run it was taken.
struct CheckpointInfo {
  std::string kind;             // "last", "epoch" (top-k), "best"
  int64_t epoch = 0;            // 1-based epoch the state belongs to; 0 before the first
  int64_t step = 0;             // optimizer steps taken
  int64_t batches = 0;          // batches of `epoch` done
  bool epoch_complete = false;  // true at an epoch's end (validation and callbacks done)
  std::string monitor;          // e.g. "val_loss"; empty mid-epoch
  double value = std::numeric_limits<double>::quiet_NaN();
  double wall_time = 0.0;
  // Rows of the run store's metrics and findings tables when the state was captured: resuming
  // from this checkpoint drops what was written after (track::RunStore::truncate_to).
  int64_t metrics_mark = 0;
  int64_t findings_mark = 0;
  std::string trainscope_version;
  std::string torch_version;
  // Filled by write_checkpoint_file and checked by read_checkpoint_payload.
  uint64_t payload_bytes = 0;
  uint32_t payload_crc = 0;
  int format_version = kCheckpointFormatVersion;
};

// Writes `payload` with a header describing it to `file` atomically: a temporary file beside it
// is written, fsync'ed and renamed over `file`, and the directory fsync'ed, so `file` is either
// its previous version or the complete new one. Throws CheckpointError naming the file, the
// bytes written and the system's reason (a full disk, a read-only directory) after removing the
// temporary; the previous file stays intact. `before_replace`, when given, runs once the new file
// is complete on disk, just before it replaces `file` (ModelCheckpoint keeps the old one as
// previous.ckpt there).
void write_checkpoint_file(const std::filesystem::path& file, CheckpointInfo info,
                           const std::string& payload,
                           const std::function<void()>& before_replace = {});

// The header of `file`, checked (magic, version, header checksum) but without reading the
// payload. Throws CheckpointError naming the file and what is wrong.
CheckpointInfo read_checkpoint_info(const std::filesystem::path& file);

// The whole payload, verified: its length (truncation) and CRC-32 (corruption). Throws
// CheckpointError naming the file and what is wrong with it. `info`, when given, receives the
// header.
std::string read_checkpoint_payload(const std::filesystem::path& file,
                                    CheckpointInfo* info = nullptr);

// True when `file` starts with the checkpoint magic (whether or not it is intact).
bool is_checkpoint_file(const std::filesystem::path& file);

// CRC-32 (zlib's polynomial) of `size` bytes.
uint32_t crc32(const void* data, size_t size);

}  // namespace trainscope::track
