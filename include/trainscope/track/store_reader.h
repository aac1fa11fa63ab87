#pragma once
// StoreReader: read-only queries over a run store (run.sqlite) for the dashboard and the static
// report. RunStore (run_store.h) writes the store and owns its schema; the SQL that reads it for
// display lives beside it in src/track, so that a schema change stays inside the track layer.
// This header includes no torch header: the dashboard's sources compile without torch.

#include <trainscope/track/run_store.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace trainscope::track {

// One row of the metrics table as a visitor sees it. `split` and `tag` point into SQLite's row
// buffer and are valid only during the call that receives them: copy them to keep them.
// `value` and `wall_time` are NaN where the store holds NULL (a NaN was written).
struct MetricRowView {
  int64_t rowid = 0;
  int64_t step = 0;
  int64_t epoch = 0;
  std::string_view split;
  std::string_view tag;
  double value = 0.0;
  double wall_time = 0.0;
};
using MetricVisitor = std::function<void(const MetricRowView&)>;

// One named result (see RunStore::put_result); `json` is the text as written.
struct ResultRecord {
  std::string split;
  std::string name;
  std::string json;
};

// A finding with the id the store gave it (ids grow with insertion order).
struct StoredFinding {
  int64_t id = 0;
  FindingRecord finding;
};

// What a live view polls to learn whether anything changed, read in one statement (so one
// consistent snapshot).
struct StoreVersion {
  int64_t last_metric = 0;            // largest metrics rowid; 0 when there are none
  int64_t last_finding = 0;           // largest finding id; 0 when there are none
  int64_t checkpoints = 0;            // number of checkpoint records
  int64_t results = 0;                // number of results
  std::optional<std::string> status;  // meta "status"; nullopt when not recorded
};

// Owns one read-only SQLite connection to a run store; never writes, never creates the file, and
// reads while a RunStore in another thread or process writes (the writer uses WAL). A lock met
// while the writer checkpoints the WAL is waited for up to 2000 ms.
//
// Not thread-safe: every call uses the one connection, opened without SQLite's own mutex for
// speed, so callers that share a reader serialize their calls (the dashboard's RunReader holds a
// mutex). Not copyable or movable.
// Every call throws trainscope::Error naming the file when the database cannot be read; the
// constructor also when it cannot be opened, is not a run store, or has a schema version this
// build does not read.
class StoreReader {
 public:
  explicit StoreReader(const std::filesystem::path& file);
  ~StoreReader();
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  const std::filesystem::path& file() const { return file_; }

  // Calls `visit` for every metrics row with rowid > `after_rowid`, in rowid (insertion) order,
  // streaming: rows are not collected first. Returns the number of rows visited. Incremental
  // readers pass the last rowid they saw, so that a poll reads only the new rows. An exception
  // from `visit` stops the walk and propagates.
  size_t metrics_after(int64_t after_rowid, const MetricVisitor& visit);
  // Calls `visit` for every row of exactly this split and tag (an empty string matches only an
  // empty one), ordered by step, then rowid. Returns the number of rows visited.
  size_t metrics_of(const std::string& split, const std::string& tag, const MetricVisitor& visit);
  // The wall_time of the last metrics row written; nullopt when there is none or it is NULL.
  std::optional<double> last_wall_time();
  // The largest / smallest value of a split and tag; nullopt when it has no non-NULL value.
  std::optional<double> max_value(const std::string& split, const std::string& tag);
  std::optional<double> min_value(const std::string& split, const std::string& tag);

  // The last value written (largest rowid) of every series whose tag has no '/' (so not the
  // per-layer ones) in the splits train, val, test and system: what a runs table shows as a
  // run's final metrics. `value` is NaN where the store holds NULL. Reads the whole metrics
  // index: callers cache it by version().
  struct LastValue {
    std::string split;
    std::string tag;
    double value = 0.0;
  };
  std::vector<LastValue> last_values();
  StoreVersion version();
  // Every meta key and value (a NULL value reads as "").
  std::map<std::string, std::string> meta();
  // Ordered by key.
  std::vector<SettingRecord> settings();
  // Ordered by split, then name.
  std::vector<ResultRecord> results();
  // In insertion (id) order.
  std::vector<StoredFinding> findings();
  // Number of findings per severity.
  std::map<std::string, int64_t> finding_counts();
  // In insertion order. `value` and `wall_time` are NaN where the store holds NULL.
  std::vector<CheckpointRecord> checkpoints();

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

}  // namespace trainscope::track
