#include "serve/run_reader.h"

#include <trainscope/error.h>

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

namespace trainscope::serve {
namespace {

constexpr char kKeySep = '\x1f';

std::string key_of(const std::string& split, const std::string& tag) {
  return split + kKeySep + tag;
}

// A prepared statement, finalized on scope exit.
class Query {
 public:
  Query(sqlite3* db, const std::filesystem::path& file, const char* sql) : db_(db), file_(file) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail();
  }
  ~Query() { sqlite3_finalize(stmt_); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail();
  }
  std::string text(int i) const {
    const auto* t = sqlite3_column_text(stmt_, i);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, i)))
             : "";
  }
  std::string_view text_view(int i) const {
    const auto* t = sqlite3_column_text(stmt_, i);
    return t ? std::string_view(reinterpret_cast<const char*>(t),
                                static_cast<size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string_view();
  }
  int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  double real(int i) const {
    return is_null(i) ? std::numeric_limits<double>::quiet_NaN() : sqlite3_column_double(stmt_, i);
  }
  // JSON number or null.
  nlohmann::json number(int i) const {
    if (is_null(i)) return nullptr;
    if (sqlite3_column_type(stmt_, i) == SQLITE_INTEGER) return integer(i);
    return real(i);
  }

 private:
  [[noreturn]] void fail() {
    throw Error("run store " + file_.string() + ": cannot read: " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  const std::filesystem::path& file_;
  sqlite3_stmt* stmt_ = nullptr;
};

double to_double(const std::string& s) {
  double v = std::numeric_limits<double>::quiet_NaN();
  if (s.empty()) return v;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Evidence and results are JSON text; shown as a string when they do not parse.
nlohmann::json parse_or_string(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? nlohmann::json(text) : j;
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

std::vector<size_t> downsample_min_max(const std::vector<int64_t>& step,
                                       const std::vector<double>& value, size_t max_points,
                                       int64_t from, int64_t to, bool has_non_finite) {
  // The series is in step order (the reader sorts one that is not), so the range is a slice.
  const size_t a =
      static_cast<size_t>(std::lower_bound(step.begin(), step.end(), from) - step.begin());
  const size_t b =
      static_cast<size_t>(std::upper_bound(step.begin(), step.end(), to) - step.begin());
  std::vector<size_t> out;
  if (a >= b) return out;
  const size_t n = b - a;
  max_points = std::max<size_t>(max_points, 4);
  if (n <= max_points) {
    out.resize(n);
    std::iota(out.begin(), out.end(), a);
    return out;
  }
  const size_t per_bucket = has_non_finite ? 3 : 2;
  const size_t buckets = std::max<size_t>((max_points - 2) / per_bucket, 1);
  out.reserve(max_points);
  out.push_back(a);
  for (size_t k = 0; k < buckets; ++k) {
    const size_t lo = a + n * k / buckets, hi = a + n * (k + 1) / buckets;
    size_t imin = SIZE_MAX, imax = SIZE_MAX, ibad = SIZE_MAX;
    for (size_t i = lo; i < hi; ++i) {
      const double v = value[i];
      if (!std::isfinite(v)) {
        if (ibad == SIZE_MAX) ibad = i;
        continue;
      }
      if (imin == SIZE_MAX || v < value[imin]) imin = i;
      if (imax == SIZE_MAX || v > value[imax]) imax = i;
    }
    size_t picks[3] = {imin, imax, ibad};
    std::sort(std::begin(picks), std::end(picks));
    for (size_t p : picks)
      if (p != SIZE_MAX && p != out.back() && p != b - 1) out.push_back(p);
  }
  if (out.back() != b - 1) out.push_back(b - 1);
  return out;
}

RunReader::RunReader(const std::filesystem::path& file) : file_(file) {
  if (sqlite3_open_v2(file_.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error("run store " + file_.string() + ": cannot open read-only: " + message);
  }
  // A reader can meet a lock briefly while the writer checkpoints the WAL.
  sqlite3_busy_timeout(db_, 2000);
  try {
    Query q(db_, file_, "SELECT value FROM meta WHERE key = 'schema_version'");
    q.step();
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

RunReader::~RunReader() { sqlite3_close_v2(db_); }

void RunReader::refresh() {
  // The hot loop of a big run's first load (a million rows in a few hundred ms): rows of the
  // same series usually follow each other, so the map is consulted only when split or tag change.
  Query q(db_, file_,
          "SELECT rowid, step, split, tag, value FROM metrics WHERE rowid > ?1 ORDER BY rowid");
  q.bind(1, last_rowid_);
  std::string key, last_split, last_tag;
  Series* current = nullptr;
  std::vector<Series*> touched;
  while (q.step()) {
    last_rowid_ = q.integer(0);
    const std::string_view split = q.text_view(2), tag = q.text_view(3);
    if (current == nullptr || split != last_split || tag != last_tag) {
      last_split.assign(split);
      last_tag.assign(tag);
      key = last_split;
      key += kKeySep;
      key += last_tag;
      current = &series_[key];
    }
    Series& s = *current;
    const int64_t step = q.integer(1);
    if (!s.step.empty() && step < s.step.back() && !s.out_of_order) {
      s.out_of_order = true;
      touched.push_back(&s);
    }
    const double v = q.real(4);
    if (!std::isfinite(v)) s.has_non_finite = true;
    s.step.push_back(step);
    s.value.push_back(v);
  }
  // Rare (a resumed or hand-edited run): keep each series sorted by step, stable in insertion
  // order.
  for (Series* s : touched) {
    std::vector<size_t> order(s->step.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return s->step[x] < s->step[y]; });
    Series sorted;
    for (size_t i : order) {
      sorted.step.push_back(s->step[i]);
      sorted.value.push_back(s->value[i]);
    }
    sorted.has_non_finite = s->has_non_finite;
    *s = std::move(sorted);
  }
}

std::map<std::string, std::string> RunReader::meta_locked() {
  std::map<std::string, std::string> meta;
  Query q(db_, file_, "SELECT key, value FROM meta");
  while (q.step()) meta[q.text(0)] = q.text(1);
  return meta;
}

nlohmann::json RunReader::summary(const std::string& name) {
  std::lock_guard lock(mu_);
  auto meta = meta_locked();
  auto get = [&](const char* k) -> std::string {
    auto it = meta.find(k);
    return it == meta.end() ? std::string() : it->second;
  };
  nlohmann::json j;
  j["name"] = name;
  j["display_name"] = get("name").empty() ? name : get("name");
  j["status"] = get("status").empty() ? "unknown" : get("status");
  j["stop_reason"] = get("stop_reason");
  j["stop_message"] = get("stop_message");
  j["model"] = get("model");
  const double started = to_double(get("started_at")), ended = to_double(get("ended_at"));
  j["started_at"] = std::isfinite(started) ? nlohmann::json(started) : nlohmann::json(nullptr);
  j["ended_at"] = std::isfinite(ended) ? nlohmann::json(ended) : nlohmann::json(nullptr);
  {
    Query q(db_, file_, "SELECT wall_time FROM metrics ORDER BY rowid DESC LIMIT 1");
    j["last_update"] = q.step() ? q.number(0) : nlohmann::json(nullptr);
  }
  double last = j["last_update"].is_number() ? j["last_update"].get<double>() : started;
  const double end = std::isfinite(ended) ? ended : (j["status"] == "running" ? last : last);
  j["duration"] = std::isfinite(started) && std::isfinite(end)
                      ? nlohmann::json(std::max(0.0, end - started))
                      : nlohmann::json(nullptr);
  j["epochs"] =
      get("epochs").empty() ? nlohmann::json(0) : nlohmann::json(std::atoll(get("epochs").c_str()));
  j["max_epochs"] = get("max_epochs").empty()
                        ? nlohmann::json(nullptr)
                        : nlohmann::json(std::atoll(get("max_epochs").c_str()));
  j["best_epoch"] = get("best_epoch").empty()
                        ? nlohmann::json(nullptr)
                        : nlohmann::json(std::atoll(get("best_epoch").c_str()));
  const double best_loss = to_double(get("best_val_loss"));
  j["best_val_loss"] =
      std::isfinite(best_loss) ? nlohmann::json(best_loss) : nlohmann::json(nullptr);
  // Best validation metric: accuracy (max) for classifiers, else MAE/RMSE (min); index lookups.
  j["best_val_metric"] = nullptr;
  static const std::pair<const char*, const char*> kMetrics[] = {
      {"accuracy", "SELECT max(value) FROM metrics WHERE split = 'val' AND tag = 'accuracy'"},
      {"mae", "SELECT min(value) FROM metrics WHERE split = 'val' AND tag = 'mae'"},
      {"rmse", "SELECT min(value) FROM metrics WHERE split = 'val' AND tag = 'rmse'"},
  };
  for (const auto& [tag, sql] : kMetrics) {
    Query q(db_, file_, sql);
    if (q.step() && !q.is_null(0)) {
      j["best_val_metric"] = {{"tag", tag}, {"value", q.real(0)}};
      break;
    }
  }
  nlohmann::json severities = nlohmann::json::object();
  {
    Query q(db_, file_, "SELECT severity, count(*) FROM findings GROUP BY severity");
    while (q.step()) severities[q.text(0)] = q.integer(1);
  }
  j["findings"] = severities;
  return j;
}

nlohmann::json RunReader::detail(const std::string& name) {
  nlohmann::json j = summary(name);
  std::lock_guard lock(mu_);
  refresh();
  j["meta"] = meta_locked();
  nlohmann::json settings = nlohmann::json::array();
  {
    Query q(db_, file_, "SELECT key, value, source, reason FROM settings ORDER BY key");
    while (q.step())
      settings.push_back(
          {{"key", q.text(0)}, {"value", q.text(1)}, {"source", q.text(2)}, {"reason", q.text(3)}});
  }
  j["settings"] = settings;
  std::vector<std::string> keys;
  for (const auto& [key, s] : series_) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  nlohmann::json tags = nlohmann::json::array();
  for (const auto& key : keys) {
    const Series& s = series_.at(key);
    const size_t sep = key.find(kKeySep);
    tags.push_back({{"split", key.substr(0, sep)},
                    {"tag", key.substr(sep + 1)},
                    {"count", s.step.size()},
                    {"first_step", s.step.empty() ? 0 : s.step.front()},
                    {"last_step", s.step.empty() ? 0 : s.step.back()},
                    {"last_value",
                     s.value.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.value.back())}});
  }
  j["tags"] = tags;
  nlohmann::json results = nlohmann::json::object();
  {
    Query q(db_, file_, "SELECT split, name, json FROM results ORDER BY split, name");
    while (q.step()) results[q.text(0)][q.text(1)] = parse_or_string(q.text(2));
  }
  j["results"] = results;
  nlohmann::json checkpoints = nlohmann::json::array();
  {
    Query q(
        db_, file_,
        "SELECT path, kind, epoch, step, monitor, value, wall_time FROM checkpoints ORDER BY id");
    while (q.step())
      checkpoints.push_back({{"path", q.text(0)},
                             {"kind", q.text(1)},
                             {"epoch", q.integer(2)},
                             {"step", q.integer(3)},
                             {"monitor", q.text(4)},
                             {"value", q.number(5)},
                             {"wall_time", q.number(6)}});
  }
  j["checkpoints"] = checkpoints;
  return j;
}

nlohmann::json RunReader::findings() {
  std::lock_guard lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  Query q(db_, file_,
          "SELECT id, kind, severity, step, epoch, message, evidence, remedy, wall_time FROM "
          "findings ORDER BY id");
  while (q.step())
    out.push_back({{"id", q.integer(0)},
                   {"kind", q.text(1)},
                   {"severity", q.text(2)},
                   {"step", q.integer(3)},
                   {"epoch", q.integer(4)},
                   {"message", q.text(5)},
                   {"evidence", parse_or_string(q.text(6))},
                   {"remedy", q.text(7)},
                   {"wall_time", q.number(8)}});
  return out;
}

nlohmann::json RunReader::version() {
  std::lock_guard lock(mu_);
  nlohmann::json j;
  {
    Query q(db_, file_, "SELECT max(rowid) FROM metrics");
    j["metrics"] = q.step() && !q.is_null(0) ? q.integer(0) : 0;
  }
  {
    Query q(db_, file_, "SELECT max(id) FROM findings");
    j["findings"] = q.step() && !q.is_null(0) ? q.integer(0) : 0;
  }
  {
    Query q(db_, file_, "SELECT count(*) FROM checkpoints");
    j["checkpoints"] = q.step() ? q.integer(0) : 0;
  }
  {
    Query q(db_, file_, "SELECT value FROM meta WHERE key = 'status'");
    j["status"] = q.step() ? q.text(0) : "unknown";
  }
  {
    Query q(db_, file_, "SELECT count(*) FROM results");
    j["results"] = q.step() ? q.integer(0) : 0;
  }
  return j;
}

nlohmann::json RunReader::series(const std::string& split, const std::string& tag,
                                 size_t max_points, int64_t from, int64_t to) {
  std::lock_guard lock(mu_);
  refresh();
  nlohmann::json j;
  j["split"] = split;
  j["tag"] = tag;
  auto it = series_.find(key_of(split, tag));
  if (it == series_.end()) {
    j["count"] = 0;
    j["step"] = nlohmann::json::array();
    j["value"] = nlohmann::json::array();
    return j;
  }
  const Series& s = it->second;
  const auto picks = downsample_min_max(s.step, s.value, max_points, from, to, s.has_non_finite);
  std::vector<int64_t> steps;
  std::vector<double> values;
  steps.reserve(picks.size());
  values.reserve(picks.size());
  for (size_t i : picks) {
    steps.push_back(s.step[i]);
    values.push_back(s.value[i]);
  }
  j["count"] = s.step.size();
  j["returned"] = picks.size();
  j["downsampled"] = picks.size() < s.step.size();
  j["step"] = std::move(steps);
  // NaN and Inf become null in JSON; "non_finite" tells the chart that gaps are real.
  j["value"] = std::move(values);
  j["non_finite"] = s.has_non_finite;
  return j;
}

std::optional<std::string> RunReader::csv(const std::string& split, const std::string& tag) {
  std::lock_guard lock(mu_);
  // Every point with its epoch and wall time, straight from the store (the cache keeps only
  // what charts need); the (split, tag, step) index serves the query.
  Query q(db_, file_,
          "SELECT step, epoch, value, wall_time FROM metrics WHERE split = ?1 AND tag = ?2 ORDER "
          "BY step, rowid");
  q.bind(1, split);
  q.bind(2, tag);
  std::string out = "step,epoch,value,wall_time\n";
  size_t rows = 0;
  while (q.step()) {
    ++rows;
    append_int(out, q.integer(0));
    out += ',';
    append_int(out, q.integer(1));
    out += ',';
    append_number(out, q.real(2));
    out += ',';
    append_number(out, q.real(3));
    out += '\n';
  }
  if (rows == 0) return std::nullopt;
  return out;
}

nlohmann::json RunReader::all_series(size_t max_points) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    refresh();
    for (const auto& [key, s] : series_) keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& key : keys) {
    const size_t sep = key.find(kKeySep);
    out.push_back(
        series(key.substr(0, sep), key.substr(sep + 1), max_points, INT64_MIN, INT64_MAX));
  }
  return out;
}

}  // namespace trainscope::serve
