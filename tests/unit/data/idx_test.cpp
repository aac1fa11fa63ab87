#include <trainscope/data/data.h>
#include <trainscope/error.h>

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_idx_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims,
                                        const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
    for (uint32_t d : dims)
      for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  }
  fs::path write(const std::string& name, const std::vector<uint8_t>& bytes, bool gzip = false) {
    fs::path p = dir_ / name;
    if (gzip) {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(p, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    return p;
  }
  std::string error_of(const fs::path& p) {
    try {
      ts::data::read_idx(p);
    } catch (const ts::DataError& e) {
      return e.what();
    }
    return "no error";
  }
  // A tiny MNIST-like directory: n_train 2x2 images with labels i % classes.
  void write_dataset(int n_train, int n_test, int classes, bool gzip) {
    auto images = [](int n) {
      std::vector<uint8_t> px;
      for (int k = 0; k < n; ++k)  // image k is unique for k < 256
        for (int m : {1, 3, 5, 11}) px.push_back(static_cast<uint8_t>(k * m % 256));
      return px;
    };
    auto labels = [&](int n) {
      std::vector<uint8_t> l;
      for (int i = 0; i < n; ++i) l.push_back(static_cast<uint8_t>(i % classes));
      return l;
    };
    std::string ext = gzip ? ".gz" : "";
    write("train-images-idx3-ubyte" + ext,
          idx_bytes(0x08, {uint32_t(n_train), 2, 2}, images(n_train)), gzip);
    write("train-labels-idx1-ubyte" + ext, idx_bytes(0x08, {uint32_t(n_train)}, labels(n_train)),
          gzip);
    write("t10k-images-idx3-ubyte" + ext, idx_bytes(0x08, {uint32_t(n_test), 2, 2}, images(n_test)),
          gzip);
    write("t10k-labels-idx1-ubyte" + ext, idx_bytes(0x08, {uint32_t(n_test)}, labels(n_test)),
          gzip);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(IdxTest, ReadsRawAndGzipWithDimsAndValues) {
  auto bytes = idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 6});
  for (bool gz : {false, true}) {
    auto t = ts::data::read_idx(write(gz ? "a.gz" : "a", bytes, gz));
    EXPECT_EQ(t.scalar_type(), torch::kUInt8);
    EXPECT_EQ(t.sizes(), torch::IntArrayRef({2, 3}));
    EXPECT_EQ(t[1][2].item<int>(), 6);
  }
}

TEST_F(IdxTest, ReadsBigEndianMultiByteTypes) {
  auto t =
      ts::data::read_idx(write("i32", idx_bytes(0x0C, {2}, {0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE})));
  EXPECT_EQ(t.scalar_type(), torch::kInt32);
  EXPECT_EQ(t[0].item<int>(), 258);
  EXPECT_EQ(t[1].item<int>(), -2);
  auto f = ts::data::read_idx(write("f32", idx_bytes(0x0D, {1}, {0x3F, 0xC0, 0, 0})));
  EXPECT_FLOAT_EQ(f[0].item<float>(), 1.5f);
}

TEST_F(IdxTest, MalformedFilesAreRejectedWithTheReason) {
  EXPECT_NE(error_of(write("magic", {1, 2, 8, 1, 0, 0, 0, 1, 5})).find("not an IDX file"),
            std::string::npos);
  EXPECT_NE(
      error_of(write("type", idx_bytes(0x07, {1}, {5}))).find("unknown IDX element type 0x07"),
      std::string::npos);
  EXPECT_NE(error_of(write("short", idx_bytes(0x08, {10}, {1, 2, 3})))
                .find("promises 10 bytes of data, file has 3 (truncated)"),
            std::string::npos);
  EXPECT_NE(error_of(write("long", idx_bytes(0x08, {1}, {1, 2}))).find("(trailing bytes)"),
            std::string::npos);
  EXPECT_NE(error_of(write("header", {0, 0, 8, 3, 0, 0})).find("truncated IDX header"),
            std::string::npos);
  EXPECT_NE(error_of(write("dims", {0, 0, 8, 0})).find("declares 0 dimensions"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "missing").find("does not exist"), std::string::npos);
  // Every message names the file.
  EXPECT_NE(error_of(write("named", idx_bytes(0x07, {1}, {5}))).find((dir_ / "named").string()),
            std::string::npos);
}

TEST_F(IdxTest, TruncatedGzipIsReported) {
  auto p = write("full.gz", idx_bytes(0x08, {4096}, std::vector<uint8_t>(4096, 3)), true);
  auto size = fs::file_size(p);
  fs::resize_file(p, size / 2);
  EXPECT_NE(error_of(p).find("truncated"), std::string::npos) << error_of(p);
}

TEST_F(IdxTest, DirectorySplitsAreDisjointNormalizedAndDeterministic) {
  write_dataset(100, 20, 4, /*gzip=*/true);
  ts::data::IdxOptions o;
  o.dir = dir_;
  o.val_fraction = 0.2;
  o.split_seed = 7;
  auto d = ts::data::load_idx_dir(o);
  EXPECT_EQ(d.train->size(), 80);
  EXPECT_EQ(d.val->size(), 20);
  EXPECT_EQ(d.test->size(), 20);
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_EQ(d.input_shape, (std::vector<int64_t>{1, 2, 2}));

  auto all = [](const ts::data::Dataset& ds) { return ds.get_batch(torch::arange(ds.size())); };
  auto train = all(*d.train), val = all(*d.val);
  EXPECT_EQ(train.x.sizes(), torch::IntArrayRef({80, 1, 2, 2}));
  EXPECT_EQ(train.y.scalar_type(), torch::kInt64);
  // Normalized with the training split's statistics.
  EXPECT_NEAR(train.x.mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(train.x.std().item<double>(), 1.0, 1e-5);
  // Disjoint and covering: the 100 distinct source images each appear exactly once.
  auto rows = torch::cat({train.x.flatten(1), val.x.flatten(1)});
  EXPECT_EQ(std::get<0>(torch::unique_dim(rows, 0)).size(0), 100);

  auto again = ts::data::load_idx_dir(o);
  EXPECT_TRUE(torch::equal(all(*again.val).x, val.x));
  o.split_seed = 8;
  auto other = ts::data::load_idx_dir(o);
  EXPECT_FALSE(torch::equal(all(*other.val).x, val.x));
}

TEST_F(IdxTest, MissingFilesAndBadLabelsNameTheFile) {
  ts::data::IdxOptions o;
  o.dir = dir_;
  try {
    ts::data::load_idx_dir(o);
    FAIL() << "expected DataError";
  } catch (const ts::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("train-images-idx3-ubyte.gz does not exist"),
              std::string::npos)
        << e.what();
  }
  write_dataset(10, 5, 3, false);
  // A test label outside the training classes.
  write("t10k-labels-idx1-ubyte", idx_bytes(0x08, {5}, {0, 1, 2, 9, 0}));
  try {
    ts::data::load_idx_dir(o);
    FAIL() << "expected DataError";
  } catch (const ts::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("label 9 at index 3 is outside [0, 3)"), std::string::npos)
        << e.what();
  }
  // Image and label counts disagree.
  write("t10k-labels-idx1-ubyte", idx_bytes(0x08, {4}, {0, 1, 2, 0}));
  EXPECT_THROW(ts::data::load_idx_dir(o), ts::DataError);
}

TEST_F(IdxTest, DefaultDirectoryMessageNamesTheDebianPackage) {
  ts::data::IdxOptions o;
  o.dir = "/usr/share/datasets/fashion-mnist";
  if (fs::exists(o.dir / "train-images-idx3-ubyte.gz")) {
    auto d = ts::data::fashion_mnist([] {
      ts::data::IdxOptions small;
      small.limit = 500;
      small.test_limit = 100;
      return small;
    }());
    EXPECT_EQ(d.num_classes, 10);
    EXPECT_EQ(d.class_names.size(), 10u);
    EXPECT_EQ(d.train->size() + d.val->size(), 500);
    EXPECT_EQ(d.test->size(), 100);
  }
  // The package hint is given for the default directory only; check the wording on a copy of
  // the path logic through a directory that does not exist.
  o.dir = dir_ / "nothing";
  try {
    ts::data::load_idx_dir(o);
  } catch (const ts::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
              std::string::npos);
  }
}
