// The data pipeline through the CLI: data preview writes a PNG grid, CSV data train, data and
// augmentation mistakes exit 2 with one line naming the file/line or the item.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <trainscope/data/image_folder.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

class DataCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_data_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::pair<int, std::string> run(const std::string& args) {
    std::string cmd = "cd '" + dir_.string() + "' && '" TRAINSCOPE_CLI "' " + args + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  }

  fs::path dir_;
};

}  // namespace

TEST_F(DataCli, PreviewWritesAGridOfOriginalsAndAugmentations) {
  auto [status, out] =
      run("data preview --out grid.png --count 4 --rows 2 --scale 2 --set data.limit=64");
  ASSERT_EQ(status, 0) << out;
  auto img = trainscope::data::read_image(dir_ / "grid.png");
  // 3 rows (originals + 2 augmented) of 4 cells of 56x56 pixels with 2-pixel gaps.
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{1, 3 * 58 + 2, 4 * 58 + 2}));
  EXPECT_NE(out.find("2 augmented rows"), std::string::npos) << out;
}

TEST_F(DataCli, CsvRegressionTrainsAndRecordsItsData) {
  std::ofstream csv(dir_ / "houses.csv");
  csv << "rooms,area,price\n";
  for (int i = 0; i < 300; ++i)
    csv << (i % 5 + 1) << "," << (30 + i % 97) << "," << (50 * (i % 5) + i % 97) << "\n";
  csv.close();
  auto [status, out] = run(
      "train --data csv:houses.csv,target=price --set train.task=regression --model mlp --epochs 2 "
      "--progress off --name r");
  ASSERT_EQ(status, 0) << out;
  EXPECT_TRUE(fs::exists(dir_ / "runs" / "r" / "run.sqlite"));
}

TEST_F(DataCli, DataMistakesExit2NamingFileLineOrItem) {
  std::ofstream(dir_ / "bad.csv") << "rooms,area,price\n1,2,3\n4,x5,6\n";
  auto [status, out] =
      run("train --data csv:bad.csv,target=price --set train.task=regression --model mlp");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("bad.csv:3: column 2 'area' holds 'x5'; expected a number"), std::string::npos)
      << out;

  std::tie(status, out) =
      run("train --set 'data.augment=[\"hflip\", \"rotat(10)\"]' --set data.limit=64");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("data.augment item 2 \"rotat(10)\": unknown transform"), std::string::npos)
      << out;

  std::tie(status, out) = run("train --data folder:nowhere");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("image folder nowhere does not exist"), std::string::npos) << out;

  std::tie(status, out) = run("train --data parquet:x");
  EXPECT_EQ(status, 2) << out;
}

// Three labels an example may have any of, each a rule over the features: the MLP learns them
// with BCE, the test report has a row per label, and the run store has the task's metrics.
TEST_F(DataCli, CsvMultilabelTrainsWithBceAndReportsPerLabel) {
  std::ofstream csv(dir_ / "tags.csv");
  csv << "a,b,c,outdoor,people,night\n";
  uint32_t state = 7;
  auto next = [&] { return (state = state * 1664525u + 1013904223u) >> 8 & 0xff; };
  for (int i = 0; i < 600; ++i) {
    const int a = int(next()), b = int(next()), c = int(next());
    csv << a << "," << b << "," << c << "," << (a > 128) << "," << (b + c > 256) << ","
        << (c < 64) << "\n";
  }
  csv.close();
  auto [status, out] = run(
      "train --data csv:tags.csv,target=outdoor,target=people,target=night --set "
      "train.task=multilabel --set 'train.metrics=[\"f1_macro\"]' --model mlp --epochs 8 "
      "--progress plain --no-dashboard --name m");
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("label "), std::string::npos) << out;
  EXPECT_NE(out.find("people"), std::string::npos) << out;
  EXPECT_NE(out.find("binary cross-entropy"), std::string::npos) << out;
  // The test split's metrics, read back from the line the report prints.
  const auto line = out.find("\ntest: ");
  ASSERT_NE(line, std::string::npos) << out;
  EXPECT_NE(out.find("exact_match", line), std::string::npos) << out;
  const auto f1 = out.find("f1_macro ", line);
  ASSERT_NE(f1, std::string::npos) << out;
  EXPECT_GT(std::stod(out.substr(f1 + 9)), 0.8) << out;
}

TEST_F(DataCli, TaskAndDataMistakesExit2NamingBoth) {
  std::ofstream(dir_ / "tags.csv") << "a,x,y\n1,0,1\n2,1,1\n3,2,0\n";
  auto [status, out] = run(
      "train --data csv:tags.csv,target=x,target=y --set train.task=multilabel --model mlp");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("tags.csv:4: column 2 'x' holds 2; expected 0 or 1"), std::string::npos)
      << out;

  std::tie(status, out) = run("train --set train.task=multilabel --set data.limit=64");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("needs 0/1 targets, one per label"), std::string::npos) << out;

  std::tie(status, out) = run("train --set train.task=segmentation --set data.limit=64");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("needs a class for every pixel"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ / "runs")) << "nothing is written for a mistake";

  std::tie(status, out) = run("train --set train.task=multilabel --set train.loss=mse "
                              "--data csv:tags.csv,target=x --model mlp");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("train.loss = mse does not fit train.task = multilabel"), std::string::npos)
      << out;
}
