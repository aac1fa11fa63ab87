#pragma once
// TensorBoard event files, written without TensorFlow or protobuf: a small encoder for the few
// messages TensorBoard reads (Event, Summary, HistogramProto, TensorProto for text) and the
// TFRecord framing around them. `tensorboard --logdir runs` shows the curves of every run.
//
// File: <dir>/events.out.tfevents.<unix seconds>.<hostname>; the first record is the
// file_version event "brain.Event:2". Each record is
//   uint64 length (little endian) | uint32 masked CRC32C of the length | data | uint32 masked
//   CRC32C of data

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace trainscope::track {

// A histogram as TensorBoard stores it: bucket i counts values in (bucket_limit[i-1],
// bucket_limit[i]].
struct Histogram {
  double min = 0.0;
  double max = 0.0;
  double num = 0.0;
  double sum = 0.0;
  double sum_squares = 0.0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

// Histogram of `values` in `buckets` equal-width buckets between their min and max (a test and
// small-data helper; the TensorBoard callback computes the same with torch ops on the device).
Histogram make_histogram(const std::vector<double>& values, int buckets = 30);

// CRC32C (Castagnoli) and the masked form TFRecord stores.
uint32_t crc32c(std::string_view data);
uint32_t masked_crc32c(std::string_view data);

// Protobuf encodings of the messages (exposed for tests).
namespace tbproto {
std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
std::string histogram_event(double wall_time, int64_t step, const std::string& tag,
                            const Histogram& h);
std::string text_event(double wall_time, int64_t step, const std::string& tag,
                       const std::string& text);
std::string file_version_event(double wall_time);
// SessionLog START at `step`: TensorBoard discards the events of earlier files at this step and
// after (a resumed run replaces them).
std::string session_start_event(double wall_time, int64_t step);
// One TFRecord: length, masked CRC of length, data, masked CRC of data.
std::string tfrecord(std::string_view data);
}  // namespace tbproto

// A histogram an event file holds, at a step.
struct HistogramEvent {
  int64_t step = 0;
  double wall_time = 0.0;
  Histogram histogram;
};

// One tag's histograms (e.g. "weights/0.weight"), in step order.
struct HistogramSeries {
  std::string tag;
  std::vector<HistogramEvent> events;
};

// The histograms of the event files in `dir` (every events.out.tfevents.* file, read in name
// order, which is creation order), one series per tag, sorted by tag. A session start at step s
// (what a resumed run writes) drops the events earlier files hold from step s on, as TensorBoard
// does. A truncated or corrupt record (a file still being written) ends that file. Keeps at most
// `max_per_tag` events per tag, evenly spaced, the last one always. Never throws for a missing
// directory or unreadable file: those give no series.
std::vector<HistogramSeries> read_histograms(const std::filesystem::path& dir,
                                             size_t max_per_tag = 200);

// Appends events to one new event file in `dir`. Buffered: flush() makes the events visible to
// TensorBoard (the destructor flushes too). Not thread-safe; not copyable; movable.
// Throws trainscope::Error naming the file when it cannot be created or written.
class EventWriter {
 public:
  explicit EventWriter(const std::filesystem::path& dir);
  ~EventWriter();
  EventWriter(EventWriter&& other) noexcept;
  EventWriter& operator=(EventWriter&& other) noexcept;
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  const std::filesystem::path& file() const { return file_; }

  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);
  void add_histogram(const std::string& tag, const Histogram& histogram, int64_t step,
                     double wall_time);
  // Shown by TensorBoard's text plugin (markdown).
  void add_text(const std::string& tag, const std::string& text, int64_t step, double wall_time);
  // A restart at `step`: TensorBoard drops what earlier event files hold from `step` on.
  void add_session_start(int64_t step, double wall_time);
  void flush();

 private:
  void write_record(const std::string& event);
  void close() noexcept;
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
};

}  // namespace trainscope::track
