#include "serve/run_reader.h"

#include <trainscope/track/annotations.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/tensorboard.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <utility>

namespace trainscope::serve {
namespace {

constexpr char kKeySep = '\x1f';

std::string key_of(const std::string& split, const std::string& tag) {
  return split + kKeySep + tag;
}

// JSON number, or null where the store holds NULL (read back as NaN).
nlohmann::json number_or_null(double v) {
  return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}

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

RunReader::RunReader(const std::filesystem::path& file) : file_(file), store_(file) {}

RunReader::~RunReader() = default;

void RunReader::refresh() {
  // The hot loop of a big run's first load (a million rows in a few hundred ms): rows of the
  // same series usually follow each other, so the map is consulted only when split or tag change.
  std::string key, last_split, last_tag;
  Series* current = nullptr;
  std::vector<Series*> touched;
  store_.metrics_after(last_rowid_, [&](const track::MetricRowView& row) {
    last_rowid_ = row.rowid;
    if (current == nullptr || row.split != last_split || row.tag != last_tag) {
      last_split.assign(row.split);
      last_tag.assign(row.tag);
      key = last_split;
      key += kKeySep;
      key += last_tag;
      current = &series_[key];
    }
    Series& s = *current;
    if (!s.step.empty() && row.step < s.step.back() && !s.out_of_order) {
      s.out_of_order = true;
      touched.push_back(&s);
    }
    if (!std::isfinite(row.value)) s.has_non_finite = true;
    s.step.push_back(row.step);
    s.value.push_back(row.value);
    s.epoch.push_back(static_cast<int32_t>(row.epoch));
    s.wall_time.push_back(row.wall_time);
  });
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
      sorted.epoch.push_back(s->epoch[i]);
      sorted.wall_time.push_back(s->wall_time[i]);
    }
    sorted.has_non_finite = s->has_non_finite;
    *s = std::move(sorted);
  }
}

nlohmann::json RunReader::summary(const std::string& name) {
  std::lock_guard lock(mu_);
  const std::map<std::string, std::string> meta = store_.meta();
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
  // A sweep's trial: the sweep's name, and what this trial sets (the setting's reason).
  j["sweep"] = nullptr;
  for (const auto& s : store_.settings()) {
    if (s.key != "run.sweep" && s.key != "run.sweep_trial") continue;
    std::string v = s.value;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (!v.empty()) j[s.key == "run.sweep" ? "sweep" : "sweep_trial"] = v;
  }
  const double started = to_double(get("started_at")), ended = to_double(get("ended_at"));
  j["started_at"] = std::isfinite(started) ? nlohmann::json(started) : nlohmann::json(nullptr);
  j["ended_at"] = std::isfinite(ended) ? nlohmann::json(ended) : nlohmann::json(nullptr);
  const std::optional<double> last_update = store_.last_wall_time();
  j["last_update"] = last_update ? nlohmann::json(*last_update) : nlohmann::json(nullptr);
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
  static const std::pair<const char*, bool> kMetrics[] = {
      {"accuracy", /*higher_is_better=*/true},
      {"mae", false},
      {"rmse", false},
  };
  for (const auto& [tag, higher_is_better] : kMetrics) {
    const std::optional<double> best =
        higher_is_better ? store_.max_value("val", tag) : store_.min_value("val", tag);
    if (best) {
      j["best_val_metric"] = {{"tag", tag}, {"value", *best}};
      break;
    }
  }
  nlohmann::json severities = nlohmann::json::object();
  for (const auto& [severity, count] : store_.finding_counts()) severities[severity] = count;
  j["findings"] = severities;
  nlohmann::json settings = nlohmann::json::object();
  for (const track::SettingRecord& s : store_.settings()) settings[s.key] = s.value;
  j["settings"] = std::move(settings);
  // The final values read the whole metrics index: recomputed only when the run has new rows.
  const int64_t version = store_.version().last_metric;
  if (version != final_version_) {
    final_ = nlohmann::json::object();
    for (const auto& v : store_.last_values())
      final_[v.split + "/" + v.tag] = number_or_null(v.value);
    final_version_ = version;
  }
  j["final"] = final_;
  const track::RunAnnotations notes = track::annotations_from_meta(meta);
  j["annotations"] = {{"tags", notes.tags}, {"note", notes.note}};
  return j;
}

nlohmann::json RunReader::detail(const std::string& name) {
  nlohmann::json j = summary(name);
  std::lock_guard lock(mu_);
  refresh();
  j["meta"] = store_.meta();
  nlohmann::json settings = nlohmann::json::array();
  for (const track::SettingRecord& s : store_.settings())
    settings.push_back(
        {{"key", s.key}, {"value", s.value}, {"source", s.source}, {"reason", s.reason}});
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
  for (const track::ResultRecord& r : store_.results())
    results[r.split][r.name] = parse_or_string(r.json);
  j["results"] = results;
  j["checkpoints"] = checkpoints_on_disk(store_.file().parent_path(), store_.checkpoints());
  return j;
}

// The checkpoint files a run has now, each once: the newest record of each path whose file is
// still there and still holds that step (rotation removes and replaces epoch files), and
// previous.ckpt, which the store does not record, from its own header.
nlohmann::json checkpoints_on_disk(const std::filesystem::path& run_dir,
                                   const std::vector<track::CheckpointRecord>& records) {
  namespace fs = std::filesystem;
  std::vector<track::CheckpointRecord> latest;
  for (const auto& c : records) {
    auto same = std::find_if(latest.begin(), latest.end(),
                             [&](const track::CheckpointRecord& l) { return l.path == c.path; });
    if (same != latest.end())
      *same = c;
    else
      latest.push_back(c);
  }
  auto row = [](const track::CheckpointRecord& c, uintmax_t bytes) {
    return nlohmann::json{{"path", c.path},
                          {"kind", c.kind},
                          {"epoch", c.epoch},
                          {"step", c.step},
                          {"monitor", c.monitor},
                          {"value", number_or_null(c.value)},
                          {"wall_time", number_or_null(c.wall_time)},
                          {"bytes", bytes}};
  };
  nlohmann::json out = nlohmann::json::array();
  std::error_code ec;
  for (const auto& c : latest) {
    const fs::path file = run_dir / c.path;
    const uintmax_t bytes = fs::file_size(file, ec);
    if (ec) continue;  // removed by rotation, or never finished
    try {
      if (track::read_checkpoint_info(file).step != c.step) continue;
    } catch (const std::exception&) {
      continue;  // damaged: resume sets it aside
    }
    out.push_back(row(c, bytes));
  }
  const fs::path previous = run_dir / "checkpoints" / "previous.ckpt";
  try {
    if (fs::exists(previous, ec)) {
      const track::CheckpointInfo info = track::read_checkpoint_info(previous);
      out.push_back(row({"checkpoints/previous.ckpt", "previous", info.epoch, info.step,
                         info.monitor, info.value, info.wall_time},
                        fs::file_size(previous, ec)));
    }
  } catch (const std::exception&) {
    // A damaged previous.ckpt is not listed.
  }
  return out;
}

nlohmann::json RunReader::findings() {
  std::lock_guard lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const track::StoredFinding& stored : store_.findings()) {
    const track::FindingRecord& f = stored.finding;
    out.push_back({{"id", stored.id},
                   {"kind", f.kind},
                   {"severity", f.severity},
                   {"step", f.step},
                   {"epoch", f.epoch},
                   {"message", f.message},
                   {"evidence", parse_or_string(f.evidence_json)},
                   {"remedy", f.remedy},
                   {"wall_time", number_or_null(f.wall_time)}});
  }
  return out;
}

nlohmann::json RunReader::version() {
  std::lock_guard lock(mu_);
  const track::StoreVersion v = store_.version();
  nlohmann::json j;
  j["metrics"] = v.last_metric;
  j["findings"] = v.last_finding;
  j["checkpoints"] = v.checkpoints;
  j["status"] = v.status ? *v.status : std::string("unknown");
  j["results"] = v.results;
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
    j["epoch"] = nlohmann::json::array();
    j["wall_time"] = nlohmann::json::array();
    return j;
  }
  const Series& s = it->second;
  const auto picks = downsample_min_max(s.step, s.value, max_points, from, to, s.has_non_finite);
  std::vector<int64_t> steps;
  std::vector<double> values;
  std::vector<int32_t> epochs;
  std::vector<double> walls;
  steps.reserve(picks.size());
  values.reserve(picks.size());
  epochs.reserve(picks.size());
  walls.reserve(picks.size());
  for (size_t i : picks) {
    steps.push_back(s.step[i]);
    values.push_back(s.value[i]);
    epochs.push_back(s.epoch[i]);
    walls.push_back(s.wall_time[i]);
  }
  j["count"] = s.step.size();
  j["returned"] = picks.size();
  j["downsampled"] = picks.size() < s.step.size();
  j["step"] = std::move(steps);
  // NaN and Inf become null in JSON; "non_finite" tells the chart that gaps are real.
  j["value"] = std::move(values);
  j["epoch"] = std::move(epochs);
  j["wall_time"] = std::move(walls);
  j["non_finite"] = s.has_non_finite;
  return j;
}

std::optional<std::string> RunReader::csv(const std::string& split, const std::string& tag) {
  std::lock_guard lock(mu_);
  // Every point with its epoch and wall time, straight from the store (the cache keeps only
  // what charts need).
  std::string out = "step,epoch,value,wall_time\n";
  const size_t rows = store_.metrics_of(split, tag, [&](const track::MetricRowView& row) {
    append_int(out, row.step);
    out += ',';
    append_int(out, row.epoch);
    out += ',';
    append_number(out, row.value);
    out += ',';
    append_number(out, row.wall_time);
    out += '\n';
  });
  if (rows == 0) return std::nullopt;
  return out;
}

nlohmann::json RunReader::histograms() {
  // The event files sit beside run.sqlite; read on each request (a few per epoch per layer).
  nlohmann::json out = nlohmann::json::array();
  for (const track::HistogramSeries& series : track::read_histograms(store_.file().parent_path())) {
    nlohmann::json items = nlohmann::json::array();
    for (const track::HistogramEvent& e : series.events)
      items.push_back({{"step", e.step},
                       {"wall_time", e.wall_time},
                       {"min", e.histogram.min},
                       {"max", e.histogram.max},
                       {"num", e.histogram.num},
                       {"limits", e.histogram.bucket_limit},
                       {"counts", e.histogram.bucket}});
    out.push_back({{"tag", series.tag}, {"items", std::move(items)}});
  }
  return {{"histograms", std::move(out)}};
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
