#pragma once
// Private to the dashboard: read-only access to one run.sqlite, with an in-memory copy of its
// metrics that each request extends incrementally (rows past the last rowid seen), so that a
// live run costs one small query per poll and a big run is read from disk once.

#include <trainscope/track/store_reader.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace trainscope::serve {

// One split/tag's points in insertion order (which is step order for a normal run).
struct Series {
  std::vector<int64_t> step;
  std::vector<double> value;
  std::vector<int32_t> epoch;     // the x-axis choices other than step: epoch, samples seen
  std::vector<double> wall_time;  // (from the epoch and step), wall and relative time
  bool has_non_finite = false;
  bool out_of_order = false;  // a step smaller than the previous one was appended
};

// Indices into [0, step.size()) of the points to send so that at most `max_points` go out: all
// of them when they fit; else the first, the last, and per bucket of consecutive points its
// minimum and maximum (in step order), plus its first non-finite value when the series has any.
// Only the points with from <= step <= to are considered.
std::vector<size_t> downsample_min_max(const std::vector<int64_t>& step,
                                       const std::vector<double>& value, size_t max_points,
                                       int64_t from = INT64_MIN, int64_t to = INT64_MAX,
                                       bool has_non_finite = false);

// Thread-safe (one mutex per run): the dashboard's worker threads share one reader per run.
// Opens the file read-only through track::StoreReader, which holds all the SQL; never writes.
// Throws trainscope::Error when it is not a run store (or one of a schema version this build
// does not read), and from any call when the file cannot be read.
class RunReader {
 public:
  explicit RunReader(const std::filesystem::path& file);
  ~RunReader();
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  // The run.sqlite it reads (fixed at construction).
  const std::filesystem::path& file() const { return file_; }

  // Runs list row: name, status, stop reason, best val metric, duration, epochs, findings count,
  // every setting (key: TOML literal), the final value of each scalar series ("final":
  // {"val/loss": ...}) and the user's annotations ({"tags", "note"}).
  nlohmann::json summary(const std::string& name);
  // meta, settings, tags (with counts and last values), results, checkpoints.
  nlohmann::json detail(const std::string& name);
  nlohmann::json findings();
  // Cheap change detector for live updates: last metric rowid, last finding id, status.
  nlohmann::json version();
  // {split, tag, count, step[], value[], epoch[], wall_time[]}; at most max_points points (see
  // downsample_min_max).
  // Empty arrays (count 0) for an unknown tag.
  nlohmann::json series(const std::string& split, const std::string& tag, size_t max_points,
                        int64_t from, int64_t to);
  // step,epoch,value,wall_time lines with a header; nullopt for an unknown tag.
  std::optional<std::string> csv(const std::string& split, const std::string& tag);
  // The weight and gradient histograms of the run's TensorBoard event files:
  // {"histograms": [{"tag", "items": [{step, wall_time, min, max, num, limits[], counts[]}]}]}.
  nlohmann::json histograms();
  // All points of every series (for the static report, downsampled per series).
  nlohmann::json all_series(size_t max_points);

 private:
  void refresh();  // appends rows added since the last call; callers hold mu_

  const std::filesystem::path file_;
  std::mutex mu_;
  track::StoreReader store_;  // guarded by mu_
  int64_t last_rowid_ = 0;
  std::unordered_map<std::string, Series> series_;  // key: split + '\x1f' + tag
  int64_t final_version_ = -1;                      // last_rowid the cached `final_` is of
  nlohmann::json final_;
};

// The checkpoint files `run_dir` holds now, from the store's records (the newest of each path
// whose file still holds its step) and previous.ckpt's header: what the checkpoints view lists.
nlohmann::json checkpoints_on_disk(const std::filesystem::path& run_dir,
                                   const std::vector<track::CheckpointRecord>& records);

}  // namespace trainscope::serve
