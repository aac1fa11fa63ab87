#pragma once
// What a user writes about a run after the fact: tags and a note, as W&B's run tags and notes.
// They live in the run's store (meta keys "annotations.tags", one tag per line, and
// "annotations.note"), so that they travel with the run directory. The dashboard edits them
// through its API; nothing in training reads them.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace trainscope::track {

struct RunAnnotations {
  std::vector<std::string> tags;  // in the user's order, each once
  std::string note;
};

inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagLength = 64;      // bytes
inline constexpr size_t kMaxNoteLength = 10000;  // bytes

// Throws trainscope::Error naming the offending tag (or the note's length) and what is expected:
// at most kMaxTags tags, each 1 to kMaxTagLength bytes, without control characters or commas and
// without leading or trailing spaces, no tag twice; a note of at most kMaxNoteLength bytes.
void validate_annotations(const RunAnnotations& annotations);

// From a store's meta (StoreReader::meta()); empty when none were written.
RunAnnotations annotations_from_meta(const std::map<std::string, std::string>& meta);

// Validates, then writes them into the run store `store_file` (run.sqlite), which must exist. A
// live run's writer may hold the lock: waits for it up to 5 s. Throws trainscope::Error naming the
// file when it cannot be written.
void write_annotations(const std::filesystem::path& store_file, const RunAnnotations& annotations);

}  // namespace trainscope::track
