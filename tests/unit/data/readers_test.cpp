#include <gtest/gtest.h>
#include <trainscope/data/data.h>
#include <trainscope/error.h>
#include <turbojpeg.h>

#include <filesystem>
#include <fstream>

namespace ts = trainscope;
namespace td = trainscope::data;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("ts-readers-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

void write_bytes(const fs::path& file, const std::vector<uint8_t>& bytes, size_t keep = SIZE_MAX) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            std::streamsize(std::min(keep, bytes.size())));
}

std::vector<uint8_t> jpeg(const torch::Tensor& chw) {
  auto hwc = chw.permute({1, 2, 0}).contiguous();
  const int c = int(chw.size(0)), h = int(chw.size(1)), w = int(chw.size(2));
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(tj, hwc.data_ptr<uint8_t>(), w, 0, h, c == 1 ? TJPF_GRAY : TJPF_RGB, &buf,
                        &size, c == 1 ? TJSAMP_GRAY : TJSAMP_444, 95, 0),
            0);
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

torch::Tensor picture(int64_t c, int64_t h, int64_t w, int64_t seed) {
  auto gen = at::detail::createCPUGenerator(uint64_t(seed));
  return torch::randint(0, 256, {c, h, w}, gen, torch::kUInt8);
}

td::ImageFolderOptions folder(const fs::path& dir) {
  td::ImageFolderOptions o;
  o.dir = dir;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ts::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

// ---- CSV ----

TEST(CsvReader, ReadsFeaturesAndAClassTarget) {
  TempDir dir;
  write(dir.path() / "a.csv", "x1,label,x2\n1,0,2\n3,2,4.5\r\n\n5,1,-6e-1\n");
  auto t = td::read_csv(dir.path() / "a.csv", {"label"}, true);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"x1", "x2"}));
  EXPECT_TRUE(torch::allclose(t.x, torch::tensor({1.f, 2.f, 3.f, 4.5f, 5.f, -0.6f}).view({3, 2})));
  EXPECT_TRUE(torch::equal(t.y, torch::tensor({0, 2, 1}, torch::kInt64)));
}

TEST(CsvReader, TextLabelsBecomeSortedClasses) {
  TempDir dir;
  write(dir.path() / "iris.csv", "a,b,species\n1,2,setosa\n3,4,virginica\n5,6,\"setosa\"\n");
  auto t = td::read_csv(dir.path() / "iris.csv", {"species"}, true);
  EXPECT_EQ(t.class_names, (std::vector<std::string>{"setosa", "virginica"}));
  EXPECT_TRUE(torch::equal(t.y, torch::tensor({0, 1, 0}, torch::kInt64)));
}

TEST(CsvReader, RegressionTakesSeveralTargets) {
  TempDir dir;
  write(dir.path() / "r.csv", "a,p,b,q\n1,10,2,20\n3,30,4,40\n");
  auto t = td::read_csv(dir.path() / "r.csv", {"p", "q"}, false);
  EXPECT_TRUE(torch::equal(t.y, torch::tensor({10.f, 20.f, 30.f, 40.f}).view({2, 2})));
  EXPECT_EQ(t.x.sizes(), (std::vector<int64_t>{2, 2}));
}

TEST(CsvReader, ErrorsNameFileLineAndColumn) {
  TempDir dir;
  const auto f = dir.path() / "bad.csv";
  auto check = [&](const std::string& text, const std::vector<std::string>& targets, bool cls,
                   const std::string& expected) {
    write(f, text);
    const std::string msg = error_of([&] { td::read_csv(f, targets, cls); });
    EXPECT_NE(msg.find(expected), std::string::npos) << "got: " << msg;
    if (msg != "no error") {
      EXPECT_NE(msg.find(f.string()), std::string::npos) << "no file name in: " << msg;
    }
  };
  check("a,y\n1,0\nabc,1\n", {"y"}, true, ":3: column 1 'a' holds 'abc'; expected a number");
  check("a,y\n1,0\n2\n", {"y"}, true, ":3: 1 cells but the header has 2 columns");
  check("a,y\n1,0\nnan,1\n", {"y"}, true, ":3: column 1 'a' holds nan; expected a finite number");
  check("a,y\n1,0\n,1\n", {"y"}, true, "(the cell is empty)");
  check("a,y\n1,-1\n", {"y"}, true, ":2: column 2 'y' holds label -1; expected a class index");
  check("a,y\n1,0.5\n", {"y"}, true, "holds label 0.5");
  check("a,y\n1,0\n", {"price"}, false, "no column named 'price'; the columns are a, y");
  check("a,y\n", {"y"}, true, "no data lines");
  check("", {"y"}, true, "is empty");
  check("a,y,z\n1,2,3\n", {"y", "z"}, true, "classification takes one target column");
  EXPECT_NE(error_of([&] {
              td::read_csv(dir.path() / "missing.csv", {"y"}, true);
            }).find("does not exist"),
            std::string::npos);
}

TEST(CsvReader, LoadStandardizesWithTrainingStatistics) {
  TempDir dir;
  std::string text = "f,g,y\n";
  for (int i = 0; i < 200; ++i) text += std::to_string(i) + ",7," + std::to_string(i % 3) + "\n";
  write(dir.path() / "d.csv", text);
  td::CsvOptions o;
  o.file = dir.path() / "d.csv";
  o.targets = {"y"};
  auto d = td::load_csv(o);
  EXPECT_EQ(d.train->size() + d.val->size() + d.test->size(), 200);
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.input_shape, (std::vector<int64_t>{2}));
  auto x = std::static_pointer_cast<const td::TensorDataset>(d.train)->x();
  EXPECT_NEAR(x.select(1, 0).mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(x.select(1, 0).std().item<double>(), 1.0, 1e-4);
  EXPECT_EQ(d.feature_std[1], 1.0);  // a constant feature is centred, not divided by 0
  EXPECT_TRUE(torch::all(x.select(1, 1).eq(0)).item<bool>());
}

// ---- images ----

TEST(ImageCodec, PngAndJpegRoundTrip) {
  auto gray = picture(1, 9, 7, 1), rgb = picture(3, 5, 6, 2);
  auto png = td::encode_png(rgb);
  EXPECT_TRUE(torch::equal(td::decode_image(png.data(), png.size(), "x.png"), rgb));
  auto png1 = td::encode_png(gray);
  EXPECT_TRUE(torch::equal(td::decode_image(png1.data(), png1.size(), "g.png"), gray));
  EXPECT_EQ(td::decode_image(png1.data(), png1.size(), "g.png", 3).sizes(),
            (std::vector<int64_t>{3, 9, 7}));
  auto smooth = torch::arange(64, torch::kUInt8).mul(3).view({1, 8, 8});
  auto j = jpeg(smooth);
  auto decoded = td::decode_image(j.data(), j.size(), "s.jpg");
  EXPECT_EQ(decoded.sizes(), smooth.sizes());
  EXPECT_LE((decoded.to(torch::kInt32) - smooth.to(torch::kInt32)).abs().max().item<int>(),
            12);  // lossy
}

TEST(ImageCodec, CorruptAndTruncatedFilesNameTheFile) {
  auto png = td::encode_png(picture(3, 16, 16, 3));
  auto j = jpeg(picture(3, 16, 16, 4));
  std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_NE(error_of([&] {
              td::decode_image(junk.data(), junk.size(), "junk.png");
            }).find("junk.png: not a JPEG or PNG"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { td::decode_image(png.data(), png.size() / 2, "half.png"); }).find("half.png"),
      std::string::npos);
  EXPECT_NE(
      error_of([&] { td::decode_image(j.data(), j.size() / 2, "half.jpg"); }).find("half.jpg"),
      std::string::npos);
  EXPECT_NE(error_of([&] { td::decode_image(j.data(), 20, "head.jpg"); }).find("head.jpg"),
            std::string::npos);
}

TEST(ImageFolder, LoadsClassesSplitsAndStatistics) {
  TempDir dir;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 10; ++i) {
      auto img = picture(1, 8, 8, k * 100 + i);
      const auto base = dir.path() / ("class" + std::to_string(k)) / ("img" + std::to_string(i));
      if (i % 2)
        write_bytes(base.string() + ".png", td::encode_png(img));
      else
        write_bytes(base.string() + ".jpg", jpeg(img));
    }
  td::ImageFolderOptions o;
  o.dir = dir.path();
  auto d = td::load_image_folder(o);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"class0", "class1", "class2"}));
  EXPECT_EQ(d.input_shape, (std::vector<int64_t>{1, 8, 8}));
  EXPECT_EQ(d.train->size() + d.val->size() + d.test->size(), 30);
  EXPECT_GT(d.pixels.mean.at(0), 0.3);  // uniform random pixels: mean ~0.5, std ~0.29
  EXPECT_LT(d.pixels.mean.at(0), 0.7);
  auto b = d.train->get_batch(torch::arange(d.train->size()));
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{d.train->size(), 1, 8, 8}));
  EXPECT_NEAR(b.x.mean().item<double>(), 0.0, 0.2);  // normalized with the training statistics
  EXPECT_TRUE(b.y.ge(0).logical_and(b.y.lt(3)).all().item<bool>());
}

TEST(ImageFolder, ErrorsNameTheFolderOrFile) {
  {
    TempDir dir;
    write_bytes(dir.path() / "a" / "1.png", td::encode_png(picture(1, 8, 8, 1)));
    fs::create_directories(dir.path() / "b");
    auto msg = error_of([&] { td::load_image_folder(folder(dir.path())); });
    EXPECT_NE(msg.find((dir.path() / "b").string() + " holds no .jpg, .jpeg or .png images"),
              std::string::npos)
        << msg;
  }
  {
    TempDir dir;
    write_bytes(dir.path() / "a" / "1.png", td::encode_png(picture(1, 8, 8, 1)));
    write_bytes(dir.path() / "a" / "2.png", td::encode_png(picture(1, 9, 8, 2)));
    auto msg = error_of([&] { td::load_image_folder(folder(dir.path())); });
    EXPECT_NE(msg.find("2.png is 8x9 but"), std::string::npos) << msg;
    EXPECT_NE(msg.find("must share one size"), std::string::npos) << msg;
  }
  {
    TempDir dir;
    auto msg = error_of([&] { td::load_image_folder(folder(dir.path())); });
    EXPECT_NE(msg.find("has no class sub-folders"), std::string::npos) << msg;
    EXPECT_NE(error_of([&] {
                td::load_image_folder(folder(dir.path() / "nope"));
              }).find("does not exist"),
              std::string::npos);
  }
}

TEST(ImageFolder, BadImagesFailOrAreSkippedAndCounted) {
  TempDir dir;
  for (int i = 0; i < 6; ++i)
    write_bytes(dir.path() / "a" / (std::to_string(i) + ".png"),
                td::encode_png(picture(1, 8, 8, i)));
  for (int i = 0; i < 6; ++i)
    write_bytes(dir.path() / "b" / (std::to_string(i) + ".jpg"), jpeg(picture(1, 8, 8, 10 + i)));
  write(dir.path() / "b" / "header.jpg", "not an image at all");
  auto good = jpeg(picture(1, 8, 8, 99));
  write_bytes(dir.path() / "b" / "truncated.jpg", good,
              good.size() - 8);  // header intact, scan cut short

  td::ImageFolderOptions o;
  o.dir = dir.path();
  auto msg = error_of([&] { td::load_image_folder(o); });
  EXPECT_NE(msg.find("header.jpg"), std::string::npos) << msg;

  o.on_bad_image = td::BadImagePolicy::kSkip;
  o.val_fraction = 0;
  o.test_fraction = 0.0;
  auto d = td::load_image_folder(o);
  EXPECT_EQ(d.skipped, 1);  // the bad header, found by the scan
  EXPECT_EQ(d.train->size(), 13);
  // The truncated body is found when decoding: skipped and counted by the data set.
  auto b = d.train->get_batch(torch::arange(13));
  EXPECT_EQ(b.x.size(0), 12);
  EXPECT_EQ(b.y.size(0), 12);
  EXPECT_EQ(std::static_pointer_cast<const td::ImageFolderDataset>(d.train)->skipped(), 1);

  // With fail, the truncated file stops the load: the normalization statistics decode it.
  o.on_bad_image = td::BadImagePolicy::kFail;
  fs::remove(dir.path() / "b" / "header.jpg");
  msg = error_of([&] { td::load_image_folder(o); });
  EXPECT_NE(msg.find("truncated.jpg: cannot decode JPEG"), std::string::npos) << msg;
  // Given statistics, nothing is decoded until a batch needs the file.
  o.mean = {0.5};
  o.std = {0.25};
  auto strict = td::load_image_folder(o);
  msg = error_of([&] { strict.train->get_batch(torch::arange(strict.train->size())); });
  EXPECT_NE(msg.find("truncated.jpg: cannot decode JPEG"), std::string::npos) << msg;
}

// ---- spec ----

TEST(DataSpec, ParsesKindsAndNamesMistakes) {
  auto csv = td::parse_data_spec("csv:/d/h.csv,target=price,target=rooms,test=/d/t.csv");
  EXPECT_EQ(csv.kind, "csv");
  EXPECT_EQ(csv.path, "/d/h.csv");
  EXPECT_EQ(csv.params["target"], (std::vector<std::string>{"price", "rooms"}));
  EXPECT_EQ(csv.params["test"], (std::vector<std::string>{"/d/t.csv"}));
  EXPECT_EQ(td::parse_data_spec("folder:/imgs").path, "/imgs");
  EXPECT_EQ(td::parse_data_spec("fashion-mnist").kind, "fashion-mnist");
  EXPECT_NE(error_of([] { td::parse_data_spec("mnist"); }).find("'mnist': unknown data set"),
            std::string::npos);
  EXPECT_NE(error_of([] { td::parse_data_spec("csv:/a.csv"); }).find("no target column"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { td::parse_data_spec("csv:/a.csv,label=y"); }).find("unknown option 'label'"),
      std::string::npos);
  EXPECT_NE(error_of([] { td::parse_data_spec("folder:"); }).find("missing directory"),
            std::string::npos);
  EXPECT_THROW(td::parse_data_spec("tfrecord:/x"), ts::ConfigError);
}
