#include <trainscope/data/csv.h>
#include <trainscope/error.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "data/split.h"

namespace trainscope::data {
namespace {

// Splits one line into cells; quoted cells may hold the delimiter and "" for a quote.
std::vector<std::string> split_line(const std::string& line, char delim, const std::string& where) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"' && cell.find_first_not_of(" \t") == std::string::npos) {
      quoted = was_quoted = true;
      cell.clear();
    } else if (c == delim) {
      cells.push_back(was_quoted ? cell : cell);
      cell.clear();
      was_quoted = false;
    } else {
      cell += c;
    }
  }
  if (quoted) throw DataError(where + ": unterminated quoted cell");
  cells.push_back(cell);
  return cells;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Parses a number, or explains why not.
bool parse_number(const std::string& text, double& out) {
  const std::string t = trim(text);
  if (t.empty()) return false;
  const char* begin = t.data() + (t[0] == '+' ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, t.data() + t.size(), out);
  return ec == std::errc() && ptr == t.data() + t.size();
}

std::string column_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 20; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 20) out += ", ...";
  return out;
}

}  // namespace

CsvTable read_csv(const std::filesystem::path& file, const std::vector<std::string>& targets,
                  bool classification, char delim, bool multilabel) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError("CSV file " + file.string() + " does not exist or cannot be read");
  if (targets.empty())
    throw DataError(file.string() + ": no target column named; write csv:FILE,target=COLUMN");
  if (classification && targets.size() != 1)
    throw DataError(file.string() + ": classification takes one target column, got " +
                    std::to_string(targets.size()) +
                    "; several targets need train.task = \"regression\" or \"multilabel\"");
  std::string line;
  int64_t line_no = 0;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    header = split_line(line, delim, file.string() + ":" + std::to_string(line_no));
    break;
  }
  if (header.empty())
    throw DataError(file.string() + " is empty; expected a header line of column names");
  for (auto& h : header) h = trim(h);
  std::vector<int> role(header.size(), -1);  // -1 feature, else target index
  CsvTable t;
  for (size_t k = 0; k < targets.size(); ++k) {
    auto it = std::find(header.begin(), header.end(), targets[k]);
    if (it == header.end())
      throw DataError(file.string() + ": no column named '" + targets[k] + "'; the columns are " +
                      column_list(header));
    role[size_t(it - header.begin())] = int(k);
  }
  for (size_t i = 0; i < header.size(); ++i)
    if (role[i] < 0) t.feature_names.push_back(header[i]);
  t.target_names = targets;
  if (t.feature_names.empty())
    throw DataError(file.string() + ": every column is a target; no features remain");

  const size_t nf = t.feature_names.size(), nt = targets.size();
  std::vector<float> xs, ys;
  std::vector<std::string> text_labels;
  std::vector<int64_t> text_label_lines;
  bool text_mode = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const std::string where = file.string() + ":" + std::to_string(line_no);
    auto cells = split_line(line, delim, where);
    if (cells.size() != header.size())
      throw DataError(where + ": " + std::to_string(cells.size()) + " cells but the header has " +
                      std::to_string(header.size()) + " columns");
    for (size_t i = 0; i < cells.size(); ++i) {
      double v = 0;
      const bool ok = parse_number(cells[i], v);
      const std::string col = "column " + std::to_string(i + 1) + " '" + header[i] + "'";
      if (role[i] >= 0 && classification) {
        // Class labels: indices, or texts when the first label is not a number.
        if (t.class_names.empty() && text_labels.empty() && ys.empty()) text_mode = !ok;
        if (text_mode) {
          if (trim(cells[i]).empty())
            throw DataError(where + ": " + col + " is empty; expected a class label");
          text_labels.push_back(trim(cells[i]));
          continue;
        }
        if (!ok)
          throw DataError(where + ": " + col + " holds '" + cells[i] + "'; expected a class index");
        if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 1e9)
          throw DataError(where + ": " + col + " holds label " + trim(cells[i]) +
                          "; expected a class index (an integer >= 0)");
        ys.push_back(float(v));
        continue;
      }
      if (!ok)
        throw DataError(where + ": " + col + " holds '" + cells[i] + "'; expected a number" +
                        (trim(cells[i]).empty() ? " (the cell is empty)" : ""));
      if (!std::isfinite(v))
        throw DataError(where + ": " + col + " holds " + trim(cells[i]) +
                        "; expected a finite number");
      if (role[i] >= 0 && multilabel && v != 0 && v != 1)
        throw DataError(where + ": " + col + " holds " + trim(cells[i]) +
                        "; expected 0 or 1 (train.task = multilabel: does the example have the "
                        "label?)");
      (role[i] >= 0 ? ys : xs).push_back(float(v));
    }
  }
  const int64_t n = int64_t(xs.size() / nf);
  if (n == 0) throw DataError(file.string() + ": no data lines after the header");
  t.x = torch::from_blob(xs.data(), {n, int64_t(nf)}, torch::kFloat32).clone();
  if (classification && text_mode) {
    std::vector<std::string> names = text_labels;
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::map<std::string, int64_t> index;
    for (size_t i = 0; i < names.size(); ++i) index[names[i]] = int64_t(i);
    std::vector<int64_t> y;
    for (const auto& s : text_labels) y.push_back(index[s]);
    t.y = torch::tensor(y, torch::kInt64);
    t.class_names = names;
  } else if (classification) {
    t.y = torch::from_blob(ys.data(), {n}, torch::kFloat32).to(torch::kInt64);
  } else {
    t.y = torch::from_blob(ys.data(), {n, int64_t(nt)}, torch::kFloat32).clone();
  }
  return t;
}

DataSplits load_csv(const CsvOptions& o) {
  CsvTable t = read_csv(o.file, o.targets, o.classification, o.delimiter, o.multilabel);
  torch::Tensor x = t.x, y = t.y, xt, yt;
  auto [rest, held] = std::pair<torch::Tensor, torch::Tensor>{};
  if (!o.test_file.empty()) {
    CsvTable test = read_csv(o.test_file, o.targets, o.classification, o.delimiter, o.multilabel);
    if (test.feature_names != t.feature_names)
      throw DataError(o.test_file.string() + ": feature columns (" +
                      column_list(test.feature_names) + ") differ from " + o.file.string() + " (" +
                      column_list(t.feature_names) + ")");
    if (!t.class_names.empty() || !test.class_names.empty()) {
      // Text labels: map the test file's names onto the training file's classes.
      std::vector<int64_t> mapped;
      auto a = test.y.accessor<int64_t, 1>();
      for (int64_t i = 0; i < a.size(0); ++i) {
        const auto& name = test.class_names[size_t(a[i])];
        auto it = std::find(t.class_names.begin(), t.class_names.end(), name);
        if (it == t.class_names.end())
          throw DataError(o.test_file.string() + ": class label '" + name + "' does not occur in " +
                          o.file.string());
        mapped.push_back(int64_t(it - t.class_names.begin()));
      }
      test.y = torch::tensor(mapped, torch::kInt64);
    }
    xt = test.x, yt = test.y;
    rest = torch::arange(x.size(0), torch::kInt64);
  } else {
    std::tie(rest, held) = split_indices(x.size(0), o.test_fraction, o.split_seed + 7919);
    xt = x.index_select(0, held), yt = y.index_select(0, held);
  }
  auto [tr, va] = split_indices(rest.size(0), o.val_fraction, o.split_seed);
  auto train_idx = rest.index_select(0, tr), val_idx = rest.index_select(0, va);
  if (o.limit > 0 && o.limit < train_idx.size(0)) train_idx = train_idx.slice(0, 0, o.limit);
  if (train_idx.size(0) == 0)
    throw DataError(o.file.string() + ": too few rows for a training split");

  DataSplits out;
  out.source = "csv:" + o.file.string();
  auto x_train = x.index_select(0, train_idx);
  // Per-feature statistics of the training split only; constant features keep std 1.
  auto mean = x_train.mean(0);
  auto std = x_train.size(0) > 1 ? x_train.std(0) : torch::ones_like(mean);
  std = torch::where(std > 0, std, torch::ones_like(std));
  auto standardize = [&](const torch::Tensor& v) { return ((v - mean) / std).contiguous(); };
  out.train = std::make_shared<TensorDataset>(standardize(x_train), y.index_select(0, train_idx));
  out.val = std::make_shared<TensorDataset>(standardize(x.index_select(0, val_idx)),
                                            y.index_select(0, val_idx));
  out.test = std::make_shared<TensorDataset>(standardize(xt), yt);
  out.train_origin = train_idx;
  out.val_origin = val_idx;
  if (held.defined()) out.test_origin = held;
  out.feature_mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
  out.feature_std.assign(std.data_ptr<float>(), std.data_ptr<float>() + std.numel());
  out.feature_names = t.feature_names;
  out.input_shape = {x.size(1)};
  if (o.multilabel) {
    out.num_classes = y.size(1);  // one output per label
    out.class_names = t.target_names;
  } else if (o.classification) {
    const int64_t top =
        std::max(y.max().item<int64_t>(), yt.numel() ? yt.max().item<int64_t>() : 0);
    out.num_classes = t.class_names.empty() ? top + 1 : int64_t(t.class_names.size());
    out.class_names = t.class_names;
  }
  return out;
}

}  // namespace trainscope::data
