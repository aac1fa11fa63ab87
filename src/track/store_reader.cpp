#include <trainscope/error.h>
#include <trainscope/track/store_reader.h>

#include "track/sqlite_statement.h"

#include <utility>

namespace trainscope::track {
namespace {

constexpr RunStore::Mode kMode = RunStore::Mode::kReadOnly;
constexpr int kBusyTimeoutMs = 2000;

using detail::Statement;

// Streams rows of a statement selecting (rowid, step, epoch, split, tag, value, wall_time).
size_t visit_metrics(Statement& select, const MetricVisitor& visit) {
  size_t rows = 0;
  MetricRowView row;
  while (select.step()) {
    row.rowid = select.column_int(0);
    row.step = select.column_int(1);
    row.epoch = select.column_int(2);
    row.split = select.column_text_view(3);
    row.tag = select.column_text_view(4);
    row.value = select.column_real(5);
    row.wall_time = select.column_real(6);
    visit(row);
    ++rows;
  }
  return rows;
}

}  // namespace

StoreReader::StoreReader(const std::filesystem::path& file) : file_(file) {
  // No SQLite mutex: the contract leaves serializing calls to the caller, and the first load of a
  // big run makes several API calls per row for a million rows.
  db_ = detail::open_database(file_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, kMode,
                              "open read-only");
  try {
    // A reader can meet a lock briefly while the writer checkpoints the WAL.
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    detail::require_schema_version(db_, file_, kMode);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

StoreReader::~StoreReader() { sqlite3_close_v2(db_); }

size_t StoreReader::metrics_after(int64_t after_rowid, const MetricVisitor& visit) {
  Statement select(db_, file_, kMode, "read metrics",
                   "SELECT rowid, step, epoch, split, tag, value, wall_time FROM metrics "
                   "WHERE rowid > ?1 ORDER BY rowid");
  select.bind(1, after_rowid);
  return visit_metrics(select, visit);
}

size_t StoreReader::metrics_of(const std::string& split, const std::string& tag,
                               const MetricVisitor& visit) {
  // The (split, tag, step) index serves both the filter and the order.
  Statement select(db_, file_, kMode, "read metrics " + split + "/" + tag,
                   "SELECT rowid, step, epoch, split, tag, value, wall_time FROM metrics "
                   "WHERE split = ?1 AND tag = ?2 ORDER BY step, rowid");
  select.bind(1, split);
  select.bind(2, tag);
  return visit_metrics(select, visit);
}

std::optional<double> StoreReader::last_wall_time() {
  Statement select(db_, file_, kMode, "read the last metric's time",
                   "SELECT wall_time FROM metrics ORDER BY rowid DESC LIMIT 1");
  if (!select.step() || select.is_null(0)) return std::nullopt;
  return select.column_real(0);
}

std::optional<double> StoreReader::max_value(const std::string& split, const std::string& tag) {
  Statement select(db_, file_, kMode, "read the largest " + split + "/" + tag,
                   "SELECT max(value) FROM metrics WHERE split = ?1 AND tag = ?2");
  select.bind(1, split);
  select.bind(2, tag);
  if (!select.step() || select.is_null(0)) return std::nullopt;
  return select.column_real(0);
}

std::optional<double> StoreReader::min_value(const std::string& split, const std::string& tag) {
  Statement select(db_, file_, kMode, "read the smallest " + split + "/" + tag,
                   "SELECT min(value) FROM metrics WHERE split = ?1 AND tag = ?2");
  select.bind(1, split);
  select.bind(2, tag);
  if (!select.step() || select.is_null(0)) return std::nullopt;
  return select.column_real(0);
}

std::vector<StoreReader::LastValue> StoreReader::last_values() {
  Statement select(db_, file_, kMode, "read the last values",
                   "SELECT split, tag, value FROM metrics WHERE rowid IN (SELECT max(rowid) FROM "
                   "metrics WHERE split IN ('train', 'val', 'test', 'system') AND "
                   "instr(tag, '/') = 0 GROUP BY split, tag) ORDER BY split, tag");
  std::vector<LastValue> out;
  while (select.step())
    out.push_back(
        {select.column_text(0), select.column_text(1),
         select.is_null(2) ? std::numeric_limits<double>::quiet_NaN() : select.column_real(2)});
  return out;
}

StoreVersion StoreReader::version() {
  // max(rowid) and max(id) are lookups at the end of a b-tree, and the counted tables hold a few
  // rows, so a poll stays cheap however long the run. IFNULL keeps a recorded-but-NULL status
  // ("") apart from a missing one (NULL).
  Statement select(db_, file_, kMode, "read the store's version",
                   "SELECT (SELECT max(rowid) FROM metrics), (SELECT max(id) FROM findings), "
                   "(SELECT count(*) FROM checkpoints), (SELECT count(*) FROM results), "
                   "(SELECT IFNULL(value, '') FROM meta WHERE key = 'status')");
  StoreVersion v;
  if (!select.step()) return v;
  // An empty table's max() is NULL, which column_int reads as 0.
  v.last_metric = select.column_int(0);
  v.last_finding = select.column_int(1);
  v.checkpoints = select.column_int(2);
  v.results = select.column_int(3);
  if (!select.is_null(4)) v.status = select.column_text(4);
  return v;
}

std::map<std::string, std::string> StoreReader::meta() {
  Statement select(db_, file_, kMode, "read meta", "SELECT key, value FROM meta");
  std::map<std::string, std::string> out;
  while (select.step()) out[select.column_text(0)] = select.column_text(1);
  return out;
}

std::vector<SettingRecord> StoreReader::settings() {
  Statement select(db_, file_, kMode, "read settings",
                   "SELECT key, value, source, reason FROM settings ORDER BY key");
  std::vector<SettingRecord> out;
  while (select.step()) {
    out.push_back({select.column_text(0), select.column_text(1), select.column_text(2),
                   select.column_text(3)});
  }
  return out;
}

std::vector<ResultRecord> StoreReader::results() {
  Statement select(db_, file_, kMode, "read results",
                   "SELECT split, name, json FROM results ORDER BY split, name");
  std::vector<ResultRecord> out;
  while (select.step()) {
    out.push_back({select.column_text(0), select.column_text(1), select.column_text(2)});
  }
  return out;
}

std::vector<StoredFinding> StoreReader::findings() {
  Statement select(db_, file_, kMode, "read findings",
                   "SELECT id, kind, severity, step, epoch, message, evidence, remedy, wall_time "
                   "FROM findings ORDER BY id");
  std::vector<StoredFinding> out;
  while (select.step()) {
    StoredFinding f;
    f.id = select.column_int(0);
    f.finding.kind = select.column_text(1);
    f.finding.severity = select.column_text(2);
    f.finding.step = select.column_int(3);
    f.finding.epoch = select.column_int(4);
    f.finding.message = select.column_text(5);
    f.finding.evidence_json = select.column_text(6);
    f.finding.remedy = select.column_text(7);
    f.finding.wall_time = select.column_real(8);
    out.push_back(std::move(f));
  }
  return out;
}

std::map<std::string, int64_t> StoreReader::finding_counts() {
  Statement select(db_, file_, kMode, "count findings",
                   "SELECT severity, count(*) FROM findings GROUP BY severity");
  std::map<std::string, int64_t> out;
  while (select.step()) out[select.column_text(0)] = select.column_int(1);
  return out;
}

std::vector<CheckpointRecord> StoreReader::checkpoints() {
  return detail::select_checkpoints(db_, file_, kMode);
}

}  // namespace trainscope::track
