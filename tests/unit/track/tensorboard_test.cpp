// TensorBoard event files: CRC32C, TFRecord framing, and the messages decoded independently by
// `protoc --decode` against tests/data/tensorboard.proto (public field numbers).
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("trainscope-tb-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

uint64_t le64(const std::string& s, size_t pos) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}
uint32_t le32(const std::string& s, size_t pos) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}

// Splits a TFRecord file into its records, checking both CRCs of each.
std::vector<std::string> read_records(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < data.size()) {
    EXPECT_LE(pos + 12, data.size()) << "truncated record header";
    const uint64_t length = le64(data, pos);
    EXPECT_EQ(le32(data, pos + 8), ts::track::masked_crc32c(data.substr(pos, 8)))
        << "length CRC at " << pos;
    pos += 12;
    EXPECT_LE(pos + length + 4, data.size()) << "truncated record";
    std::string record = data.substr(pos, length);
    EXPECT_EQ(le32(data, pos + length), ts::track::masked_crc32c(record)) << "data CRC at " << pos;
    pos += length + 4;
    records.push_back(std::move(record));
  }
  return records;
}

bool have_protoc() { return std::system("protoc --version >/dev/null 2>&1") == 0; }

// protoc's text form of one Event record.
std::string decode(const std::string& record) {
  const fs::path tmp =
      fs::temp_directory_path() / ("trainscope-tb-record-" + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary);
    out << record;
  }
  const std::string cmd = "protoc --decode=tb.Event -I " TRAINSCOPE_SOURCE_DIR
                          "/tests/data " TRAINSCOPE_SOURCE_DIR "/tests/data/tensorboard.proto < " +
                          tmp.string() + " 2>&1";
  std::string text;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << text;
  }
  fs::remove(tmp);
  return text;
}

fs::path only_event_file(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      files.push_back(e.path());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? fs::path() : files[0];
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(ts::track::crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(ts::track::crc32c(""), 0u);
}

TEST(TensorBoard, HistogramBucketsCountEveryValue) {
  auto h = ts::track::make_histogram({0.0, 1.0, 2.0, 3.0, 4.0, 4.0}, 4);
  EXPECT_DOUBLE_EQ(h.min, 0.0);
  EXPECT_DOUBLE_EQ(h.max, 4.0);
  EXPECT_DOUBLE_EQ(h.num, 6.0);
  EXPECT_DOUBLE_EQ(h.sum, 14.0);
  EXPECT_DOUBLE_EQ(h.sum_squares, 46.0);
  ASSERT_EQ(h.bucket.size(), 4u);
  EXPECT_EQ(h.bucket,
            (std::vector<double>{2, 1, 1, 2}));  // (limit[i-1], limit[i]]; the minimum in bucket 0
  EXPECT_DOUBLE_EQ(h.bucket_limit.back(), 4.0);
}

TEST(TensorBoard, EventFileDecodesWithProtoc) {
  if (!have_protoc())
    GTEST_SKIP() << "protoc is missing (scripts/deps.sh installs protobuf-compiler)";
  const fs::path dir = fresh_dir("writer");
  {
    ts::track::EventWriter writer(dir);
    EXPECT_NE(writer.file().filename().string().find("events.out.tfevents."), std::string::npos);
    writer.add_scalar("train/loss", 0.25, 42, 1700000000.5);
    writer.add_histogram("weights/fc.weight", ts::track::make_histogram({-1.0, 0.0, 0.5, 1.0}, 2),
                         7, 1700000001.0);
    writer.add_text("config", "| key | value |\n|---|---|\n| train.lr | 0.001 |", 0, 1700000002.0);
    writer.add_session_start(31, 1700000003.0);
  }
  const auto records = read_records(only_event_file(dir));
  ASSERT_EQ(records.size(), 5u);
  EXPECT_NE(decode(records[0]).find("file_version: \"brain.Event:2\""), std::string::npos)
      << decode(records[0]);

  const std::string scalar = decode(records[1]);
  EXPECT_NE(scalar.find("wall_time: 1700000000.5"), std::string::npos) << scalar;
  EXPECT_NE(scalar.find("step: 42"), std::string::npos) << scalar;
  EXPECT_NE(scalar.find("tag: \"train/loss\""), std::string::npos) << scalar;
  EXPECT_NE(scalar.find("simple_value: 0.25"), std::string::npos) << scalar;

  const std::string histo = decode(records[2]);
  EXPECT_NE(histo.find("tag: \"weights/fc.weight\""), std::string::npos) << histo;
  EXPECT_NE(histo.find("min: -1"), std::string::npos) << histo;
  EXPECT_NE(histo.find("max: 1"), std::string::npos) << histo;
  EXPECT_NE(histo.find("num: 4"), std::string::npos) << histo;
  EXPECT_NE(histo.find("sum: 0.5"), std::string::npos) << histo;
  EXPECT_NE(histo.find("sum_squares: 2.25"), std::string::npos) << histo;
  EXPECT_NE(histo.find("bucket_limit: 0"), std::string::npos) << histo;
  EXPECT_NE(histo.find("bucket: 2"), std::string::npos) << histo;

  const std::string text = decode(records[3]);
  EXPECT_NE(text.find("plugin_name: \"text\""), std::string::npos) << text;
  EXPECT_NE(text.find("dtype: 7"), std::string::npos) << text;
  EXPECT_NE(text.find("train.lr | 0.001"), std::string::npos) << text;

  // A resumed run's restart marker: TensorBoard purges older events from this step on.
  const std::string restart = decode(records[4]);
  EXPECT_NE(restart.find("step: 31"), std::string::npos) << restart;
  EXPECT_NE(restart.find("session_log {\n  status: START\n}"), std::string::npos) << restart;
  fs::remove_all(dir);
}

TEST(TensorBoard, TrainerWritesScalarsHistogramsAndConfig) {
  if (!have_protoc())
    GTEST_SKIP() << "protoc is missing (scripts/deps.sh installs protobuf-compiler)";
  const fs::path runs = fresh_dir("fit");
  torch::manual_seed(0);
  auto x = torch::randn({128, 4});
  auto y = (x.sum(1) > 0).to(torch::kInt64);
  auto data = std::make_shared<ts::data::TensorDataset>(x, y);
  ts::Model model(
      torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::ReLU(), torch::nn::Linear(8, 2)));
  ts::Config config = ts::default_config();
  config.resolve();
  ts::SessionOptions options = ts::session_options(config);
  options.train.runs_dir(runs.string()).run_name("tb").max_epochs(2).batch_size(32).log_every(2);
  options.progress = "off";
  options.checkpoints = options.early_stopping = false;
  auto trainer_ptr = ts::session::make_trainer(options);
  ts::Trainer& trainer = *trainer_ptr;
  auto fit = trainer.fit(model, data, data);
  std::map<std::string, int> tags;
  std::string all;
  for (const auto& record : read_records(only_event_file(fit.run_dir))) {
    const std::string text = decode(record);
    all += text;
    const size_t at = text.find("tag: \"");
    if (at != std::string::npos) tags[text.substr(at + 6, text.find('"', at + 6) - at - 6)]++;
  }
  EXPECT_EQ(tags["config"], 1);
  EXPECT_EQ(tags["train/step_loss"], 4);  // 8 steps, every 2
  EXPECT_EQ(tags["train/lr"], 8);         // every step
  EXPECT_EQ(tags["train/loss"], 2);       // per epoch
  EXPECT_EQ(tags["val/loss"], 2);
  EXPECT_EQ(tags["val/accuracy"], 2);
  EXPECT_EQ(tags["weights/0.weight"], 2);  // per epoch, every parameter
  EXPECT_EQ(tags["grads/0.weight"], 2);
  EXPECT_EQ(tags["grads/2.bias"], 2);
  EXPECT_NE(all.find("num: 32"), std::string::npos) << "0.weight has 8x4 entries";
  fs::remove_all(runs);
}

// The dashboard reads the histograms back: every tag's events in step order, a resumed run's
// session start dropping what the earlier file held from its step on, a torn last record
// ignored, and the cap keeping evenly spaced events with the last one.
TEST(TensorBoard, HistogramsReadBackAsTheDashboardShowsThem) {
  const fs::path dir = fresh_dir("read");
  const auto h = [](double spread) {
    return ts::track::make_histogram({-spread, 0.0, spread, 2 * spread}, 4);
  };
  {
    ts::track::EventWriter first(dir);
    for (int64_t step = 10; step <= 50; step += 10) {
      first.add_histogram("weights/0.weight", h(step), step, 100.0 + step);
      first.add_scalar("train/loss", 1.0, step, 100.0 + step);
    }
    first.add_histogram("grads/0.weight", h(1), 10, 110.0);
  }
  // The resumed fit: a new file (a later name, ".1" within the same second) restarting at 40.
  fs::path second_file;
  {
    ts::track::EventWriter second(dir);
    second_file = second.file();
    second.add_session_start(40, 200.0);
    second.add_histogram("weights/0.weight", h(400), 40, 240.0);
    second.add_histogram("weights/0.weight", h(500), 50, 250.0);
  }
  {
    // A record torn in the middle, as a crash leaves one.
    std::ofstream torn(second_file, std::ios::binary | std::ios::app);
    torn.write("\x40\x00\x00\x00\x00\x00", 6);
  }
  const auto all = ts::track::read_histograms(dir);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].tag, "grads/0.weight");
  ASSERT_EQ(all[1].tag, "weights/0.weight");
  std::vector<int64_t> steps;
  for (const auto& e : all[1].events) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{10, 20, 30, 40, 50}));
  const ts::track::Histogram& resumed = all[1].events[3].histogram;
  EXPECT_DOUBLE_EQ(resumed.min, -400.0) << "step 40 comes from the resumed file";
  EXPECT_DOUBLE_EQ(resumed.max, 800.0);
  EXPECT_DOUBLE_EQ(all[1].events[3].wall_time, 240.0);
  EXPECT_EQ(resumed.bucket, h(400).bucket);
  EXPECT_EQ(resumed.bucket_limit, h(400).bucket_limit);
  EXPECT_DOUBLE_EQ(all[1].events[0].histogram.num, 4.0);

  const auto capped = ts::track::read_histograms(dir, 3);
  steps.clear();
  for (const auto& e : capped[1].events) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{10, 30, 50}));
  EXPECT_TRUE(ts::track::read_histograms(dir / "missing").empty());
  fs::remove_all(dir);
}
