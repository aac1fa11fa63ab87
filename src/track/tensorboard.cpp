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

}  // namespace trainscope::track
