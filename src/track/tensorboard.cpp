#include <trainscope/error.h>
#include <trainscope/track/tensorboard.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <utility>

namespace trainscope::track {
namespace {

// --- CRC32C, reflected polynomial 0x82F63B78, one table of 256 entries ---
const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// --- protobuf wire format: just what the messages below need ---
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, WireType type) {
  put_varint(out, (uint64_t{field} << 3) | type);
}
void put_fixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_fixed32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_fixed64(out, bits);
}
void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_fixed32(out, bits);
}
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));  // negative values: ten bytes, as protobuf does
}
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}
void put_packed_doubles(std::string& out, uint32_t field, const std::vector<double>& values) {
  std::string packed;
  for (double v : values) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    put_fixed64(packed, bits);
  }
  put_bytes(out, field, packed);
}

// Event{wall_time = 1, step = 2, file_version = 3, summary = 5}
std::string event(double wall_time, int64_t step, const std::string* summary,
                  const std::string* file_version) {
  std::string e;
  put_double(e, 1, wall_time);
  put_int64(e, 2, step);
  if (file_version) put_bytes(e, 3, *file_version);
  if (summary) put_bytes(e, 5, *summary);
  return e;
}

// Summary{value = 1 (repeated)} with one value.
std::string summary_of(const std::string& value) {
  std::string s;
  put_bytes(s, 1, value);
  return s;
}

// --- reading: the same wire format, for the dashboard's histogram views ---

// A cursor over one protobuf message. Any malformed input (a length past the end, a varint over
// ten bytes) makes ok() false and every later read return nothing.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool done() const { return !ok_ || pos_ >= data_.size(); }

  // The next field's number and wire type; false at the end or on malformed input.
  bool next(uint32_t& field, uint32_t& type) {
    if (done()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    type = static_cast<uint32_t>(key & 7);
    return ok_;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && ok_; shift += 7) {
      if (pos_ >= data_.size()) break;
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      v |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  double fixed64_double() {
    const std::string_view b = take(8);
    uint64_t bits = 0;
    for (size_t i = 0; i < b.size(); ++i)
      bits |= uint64_t{static_cast<unsigned char>(b[i])} << (8 * i);
    double v = 0.0;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string_view bytes() { return take(static_cast<size_t>(varint())); }
  void skip(uint32_t type) {
    switch (type) {
      case kVarint:
        varint();
        break;
      case kFixed64:
        take(8);
        break;
      case kLengthDelimited:
        bytes();
        break;
      case kFixed32:
        take(4);
        break;
      default:
        ok_ = false;
    }
  }

 private:
  std::string_view take(size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    const std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

std::vector<double> packed_doubles(std::string_view bytes) {
  std::vector<double> out(bytes.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t bits = 0;
    for (size_t b = 0; b < 8; ++b)
      bits |= uint64_t{static_cast<unsigned char>(bytes[8 * i + b])} << (8 * b);
    std::memcpy(&out[i], &bits, sizeof bits);
  }
  return out;
}

std::optional<Histogram> parse_histogram(std::string_view bytes) {
  Histogram h;
  WireReader r(bytes);
  uint32_t field = 0, type = 0;
  while (r.next(field, type)) {
    if (field >= 1 && field <= 5 && type == kFixed64) {
      const double v = r.fixed64_double();
      double* slots[] = {&h.min, &h.max, &h.num, &h.sum, &h.sum_squares};
      *slots[field - 1] = v;
    } else if ((field == 6 || field == 7) && type == kLengthDelimited) {
      auto values = packed_doubles(r.bytes());
      (field == 6 ? h.bucket_limit : h.bucket) = std::move(values);
    } else if ((field == 6 || field == 7) && type == kFixed64) {
      (field == 6 ? h.bucket_limit : h.bucket).push_back(r.fixed64_double());  // unpacked
    } else {
      r.skip(type);
    }
  }
  if (!r.ok() || h.bucket.size() != h.bucket_limit.size()) return std::nullopt;
  return h;
}

// What one event holds that the histogram views need.
struct ParsedEvent {
  int64_t step = 0;
  double wall_time = 0.0;
  bool session_start = false;
  std::vector<std::pair<std::string, Histogram>> histograms;
};

std::optional<ParsedEvent> parse_event(std::string_view bytes) {
  ParsedEvent e;
  WireReader r(bytes);
  uint32_t field = 0, type = 0;
  while (r.next(field, type)) {
    if (field == 1 && type == kFixed64) {
      e.wall_time = r.fixed64_double();
    } else if (field == 2 && type == kVarint) {
      e.step = static_cast<int64_t>(r.varint());
    } else if (field == 7 && type == kLengthDelimited) {  // SessionLog{status = 1}
      WireReader log(r.bytes());
      uint32_t f = 0, t = 0;
      while (log.next(f, t)) {
        if (f == 1 && t == kVarint)
          e.session_start = log.varint() == 1;
        else
          log.skip(t);
      }
    } else if (field == 5 && type == kLengthDelimited) {  // Summary{value = 1}
      WireReader summary(r.bytes());
      uint32_t f = 0, t = 0;
      while (summary.next(f, t)) {
        if (f != 1 || t != kLengthDelimited) {
          summary.skip(t);
          continue;
        }
        WireReader value(summary.bytes());  // Value{tag = 1, histo = 5}
        std::string tag;
        std::optional<Histogram> histo;
        uint32_t vf = 0, vt = 0;
        while (value.next(vf, vt)) {
          if (vf == 1 && vt == kLengthDelimited)
            tag = std::string(value.bytes());
          else if (vf == 5 && vt == kLengthDelimited)
            histo = parse_histogram(value.bytes());
          else
            value.skip(vt);
        }
        if (histo && !tag.empty()) e.histograms.emplace_back(std::move(tag), std::move(*histo));
      }
    } else {
      r.skip(type);
    }
  }
  if (!r.ok()) return std::nullopt;
  return e;
}

// The TFRecord payloads of one file, up to its first truncated or corrupt record.
std::vector<std::string> read_records(const std::filesystem::path& file) {
  std::vector<std::string> out;
  std::ifstream in(file, std::ios::binary);
  for (;;) {
    char header[12];
    if (!in.read(header, sizeof header)) break;
    uint64_t length = 0;
    uint32_t length_crc = 0;
    for (int i = 0; i < 8; ++i)
      length |= uint64_t{static_cast<unsigned char>(header[i])} << (8 * i);
    for (int i = 0; i < 4; ++i)
      length_crc |= uint32_t{static_cast<unsigned char>(header[8 + i])} << (8 * i);
    if (masked_crc32c(std::string_view(header, 8)) != length_crc || length > (uint64_t{1} << 30))
      break;
    std::string data(static_cast<size_t>(length), '\0');
    char footer[4];
    if (!in.read(data.data(), static_cast<std::streamsize>(length)) || !in.read(footer, 4)) break;
    uint32_t data_crc = 0;
    for (int i = 0; i < 4; ++i)
      data_crc |= uint32_t{static_cast<unsigned char>(footer[i])} << (8 * i);
    if (masked_crc32c(data) != data_crc) break;
    out.push_back(std::move(data));
  }
  return out;
}

std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  std::string name(buf);
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  const auto& table = crc_table();
  uint32_t c = 0xffffffffu;
  for (unsigned char byte : data) c = table[(c ^ byte) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

Histogram make_histogram(const std::vector<double>& values, int buckets) {
  Histogram h;
  buckets = std::max(buckets, 1);
  if (values.empty()) return h;
  h.min = *std::min_element(values.begin(), values.end());
  h.max = *std::max_element(values.begin(), values.end());
  h.num = static_cast<double>(values.size());
  for (double v : values) {
    h.sum += v;
    h.sum_squares += v * v;
  }
  const double width = (h.max - h.min) / buckets;
  h.bucket.assign(buckets, 0.0);
  for (int i = 0; i < buckets; ++i)
    h.bucket_limit.push_back(i + 1 == buckets ? h.max : h.min + width * (i + 1));
  for (double v : values) {
    // Bucket i holds (limit[i-1], limit[i]], as TensorBoard reads it; the minimum goes to bucket 0.
    int i = width > 0 ? static_cast<int>(std::ceil((v - h.min) / width)) - 1 : 0;
    h.bucket[std::clamp(i, 0, buckets - 1)] += 1.0;
  }
  return h;
}

namespace tbproto {

std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string v;  // Summary.Value{tag = 1, simple_value = 2}
  put_bytes(v, 1, tag);
  put_float(v, 2, value);
  const std::string s = summary_of(v);
  return event(wall_time, step, &s, nullptr);
}

std::string histogram_event(double wall_time, int64_t step, const std::string& tag,
                            const Histogram& h) {
  std::string
      histo;  // HistogramProto{min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6, bucket 7}
  put_double(histo, 1, h.min);
  put_double(histo, 2, h.max);
  put_double(histo, 3, h.num);
  put_double(histo, 4, h.sum);
  put_double(histo, 5, h.sum_squares);
  put_packed_doubles(histo, 6, h.bucket_limit);
  put_packed_doubles(histo, 7, h.bucket);
  std::string v;  // Summary.Value{tag = 1, histo = 5}
  put_bytes(v, 1, tag);
  put_bytes(v, 5, histo);
  const std::string s = summary_of(v);
  return event(wall_time, step, &s, nullptr);
}

std::string text_event(double wall_time, int64_t step, const std::string& tag,
                       const std::string& text) {
  // What TensorBoard's text plugin reads: metadata.plugin_data.plugin_name = "text" and a scalar
  // DT_STRING tensor. SummaryMetadata{plugin_data = 1}; PluginData{plugin_name = 1}.
  std::string plugin_data;
  put_bytes(plugin_data, 1, "text");
  std::string metadata;
  put_bytes(metadata, 1, plugin_data);
  // TensorProto{dtype = 1 (DT_STRING = 7), tensor_shape = 2 (scalar: empty), string_val = 8}
  std::string tensor;
  put_key(tensor, 1, kVarint);
  put_varint(tensor, 7);
  put_bytes(tensor, 2, "");
  put_bytes(tensor, 8, text);
  std::string v;  // Summary.Value{tag = 1, tensor = 8, metadata = 9}
  put_bytes(v, 1, tag);
  put_bytes(v, 8, tensor);
  put_bytes(v, 9, metadata);
  const std::string s = summary_of(v);
  return event(wall_time, step, &s, nullptr);
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string log;  // SessionLog{status = 1 (START = 1)}
  put_key(log, 1, kVarint);
  put_varint(log, 1);
  std::string e;
  put_double(e, 1, wall_time);
  put_int64(e, 2, step);
  put_bytes(e, 7, log);  // Event.session_log = 7
  return e;
}

std::string file_version_event(double wall_time) {
  const std::string version = "brain.Event:2";
  return event(wall_time, 0, nullptr, &version);
}

std::string tfrecord(std::string_view data) {
  std::string header;
  put_fixed64(header, data.size());
  std::string out = header;
  put_fixed32(out, masked_crc32c(header));
  out.append(data.data(), data.size());
  put_fixed32(out, masked_crc32c(data));
  return out;
}

}  // namespace tbproto

EventWriter::EventWriter(const std::filesystem::path& dir) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Seconds in the name as TensorFlow writes them; a second writer in the same second gets a
  // suffix so that it never appends to another's file.
  const std::string base =
      "events.out.tfevents." + std::to_string(static_cast<long long>(now)) + "." + hostname();
  file_ = dir / base;
  for (int i = 1; std::filesystem::exists(file_); ++i)
    file_ = dir / (base + "." + std::to_string(i));
  out_ = std::fopen(file_.c_str(), "wb");
  if (out_ == nullptr)
    throw Error("cannot create TensorBoard event file " + file_.string() + ": " +
                std::strerror(errno) + " (check the run directory is writable)");
  write_record(tbproto::file_version_event(now));
  flush();
}

EventWriter::~EventWriter() { close(); }

EventWriter::EventWriter(EventWriter&& other) noexcept
    : file_(std::move(other.file_)), out_(std::exchange(other.out_, nullptr)) {}

EventWriter& EventWriter::operator=(EventWriter&& other) noexcept {
  if (this != &other) {
    close();
    file_ = std::move(other.file_);
    out_ = std::exchange(other.out_, nullptr);
  }
  return *this;
}

void EventWriter::add_session_start(int64_t step, double wall_time) {
  write_record(tbproto::session_start_event(wall_time, step));
}

void EventWriter::close() noexcept {
  if (out_ == nullptr) return;
  std::fclose(out_);
  out_ = nullptr;
}

void EventWriter::write_record(const std::string& event) {
  if (out_ == nullptr) throw Error("TensorBoard event file used after being moved from");
  const std::string record = tbproto::tfrecord(event);
  if (std::fwrite(record.data(), 1, record.size(), out_) != record.size())
    throw Error("cannot write TensorBoard event file " + file_.string() + ": " +
                std::strerror(errno));
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  write_record(tbproto::scalar_event(wall_time, step, tag, static_cast<float>(value)));
}

void EventWriter::add_histogram(const std::string& tag, const Histogram& histogram, int64_t step,
                                double wall_time) {
  write_record(tbproto::histogram_event(wall_time, step, tag, histogram));
}

void EventWriter::add_text(const std::string& tag, const std::string& text, int64_t step,
                           double wall_time) {
  write_record(tbproto::text_event(wall_time, step, tag, text));
}

void EventWriter::flush() {
  if (out_ != nullptr && std::fflush(out_) != 0)
    throw Error("cannot write TensorBoard event file " + file_.string() + ": " +
                std::strerror(errno));
}

std::vector<HistogramSeries> read_histograms(const std::filesystem::path& dir, size_t max_per_tag) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      files.push_back(it->path());
  std::sort(files.begin(), files.end());

  std::map<std::string, std::vector<HistogramEvent>> by_tag;
  for (const fs::path& file : files) {
    for (const std::string& record : read_records(file)) {
      std::optional<ParsedEvent> e = parse_event(record);
      if (!e) break;
      if (e->session_start) {
        for (auto& [tag, events] : by_tag)
          events.erase(std::remove_if(events.begin(), events.end(),
                                      [&](const HistogramEvent& h) { return h.step >= e->step; }),
                       events.end());
        continue;
      }
      for (auto& [tag, histogram] : e->histograms)
        by_tag[tag].push_back({e->step, e->wall_time, std::move(histogram)});
    }
  }

  std::vector<HistogramSeries> out;
  for (auto& [tag, events] : by_tag) {
    std::stable_sort(
        events.begin(), events.end(),
        [](const HistogramEvent& a, const HistogramEvent& b) { return a.step < b.step; });
    if (max_per_tag > 0 && events.size() > max_per_tag) {
      // Evenly spaced picks, the first and the last included.
      std::vector<HistogramEvent> kept;
      const size_t n = events.size();
      for (size_t i = 0; i < max_per_tag; ++i) {
        const size_t at = max_per_tag == 1 ? n - 1 : i * (n - 1) / (max_per_tag - 1);
        kept.push_back(std::move(events[at]));
      }
      events = std::move(kept);
    }
    out.push_back({tag, std::move(events)});
  }
  return out;
}

}  // namespace trainscope::track
