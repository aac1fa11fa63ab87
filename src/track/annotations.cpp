#include <trainscope/error.h>
#include <trainscope/track/annotations.h>
#include <trainscope/track/run_store.h>

#include <algorithm>
#include <sstream>

namespace trainscope::track {
namespace {

constexpr const char* kTagsKey = "annotations.tags";
constexpr const char* kNoteKey = "annotations.note";

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

}  // namespace

void validate_annotations(const RunAnnotations& a) {
  if (a.tags.size() > kMaxTags)
    throw Error("a run takes at most " + std::to_string(kMaxTags) + " tags; " +
                std::to_string(a.tags.size()) + " were given");
  for (size_t i = 0; i < a.tags.size(); ++i) {
    const std::string& tag = a.tags[i];
    const std::string where = "tag " + std::to_string(i + 1) + " '" + tag + "'";
    if (tag.empty() || tag.size() > kMaxTagLength)
      throw Error(where + " has " + std::to_string(tag.size()) + " bytes; expected 1 to " +
                  std::to_string(kMaxTagLength));
    if (std::any_of(tag.begin(), tag.end(), [](char c) { return is_control(c) || c == ','; }))
      throw Error(where + " holds a comma or a control character; expected a word or short phrase");
    if (tag.front() == ' ' || tag.back() == ' ')
      throw Error(where + " starts or ends with a space; trim it");
    if (std::find(a.tags.begin(), a.tags.begin() + static_cast<std::ptrdiff_t>(i), tag) !=
        a.tags.begin() + static_cast<std::ptrdiff_t>(i))
      throw Error(where + " is given twice");
  }
  if (a.note.size() > kMaxNoteLength)
    throw Error("the note has " + std::to_string(a.note.size()) + " bytes; expected at most " +
                std::to_string(kMaxNoteLength));
}

RunAnnotations annotations_from_meta(const std::map<std::string, std::string>& meta) {
  RunAnnotations a;
  if (auto it = meta.find(kTagsKey); it != meta.end()) {
    std::istringstream lines(it->second);
    for (std::string tag; std::getline(lines, tag);)
      if (!tag.empty()) a.tags.push_back(tag);
  }
  if (auto it = meta.find(kNoteKey); it != meta.end()) a.note = it->second;
  return a;
}

void write_annotations(const std::filesystem::path& store_file, const RunAnnotations& a) {
  validate_annotations(a);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(store_file, ec))
    throw Error("cannot annotate " + store_file.string() + ": no run store there");
  std::string tags;
  for (const std::string& tag : a.tags) tags += tag + "\n";
  RunStore store(store_file);
  store.set_meta(kTagsKey, tags);
  store.set_meta(kNoteKey, a.note);
  store.flush();
}

}  // namespace trainscope::track
