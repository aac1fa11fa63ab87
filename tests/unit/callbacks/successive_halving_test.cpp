// SuccessiveHalving: the rung rule (keep the best 1/factor once factor trials reached a rung), the
// rung epochs, and the shared rungs file (a resumed attempt replaces its record; a damaged line is
// an error that names file and line).
#include <trainscope/callbacks/successive_halving.h>
#include <trainscope/error.h>

#include <gtest/gtest.h>

#include "../scratch_dir.h"

#include <fstream>

namespace ts = trainscope;
using ts::callbacks::decide_rung;

namespace {

TEST(SuccessiveHalving, KeepsTheBestOneOverFactorOnceEnoughTrialsReachARung) {
  struct Row {
    double value;
    std::vector<double> others;
    int64_t factor;
    bool maximize;
    bool prune;
    int64_t rank, keep;
    double cutoff;
  };
  const Row rows[] = {
      // Fewer than `factor` values at the rung: too few to rank, all go on.
      {0.9, {}, 3, false, false, 1, 1, 0.9},
      {0.9, {0.1}, 3, false, false, 2, 2, 0.9},
      // Three at factor 3: only the best goes on.
      {0.9, {0.1, 0.5}, 3, false, true, 3, 1, 0.1},
      {0.05, {0.1, 0.5}, 3, false, false, 1, 1, 0.05},
      {0.5, {0.1, 0.9}, 3, false, true, 2, 1, 0.1},
      // Maximized metrics rank the other way.
      {0.9, {0.1, 0.5}, 3, true, false, 1, 1, 0.9},
      // Six at factor 2: the best three go on; a tie with the cutoff goes on.
      {0.3, {0.1, 0.2, 0.3, 0.4, 0.5}, 2, false, false, 3, 3, 0.3},
      {0.4, {0.1, 0.2, 0.3, 0.35, 0.5}, 2, false, true, 5, 3, 0.3},
      // Two at factor 2: the better one.
      {0.2, {0.1}, 2, false, true, 2, 1, 0.1},
  };
  for (const Row& r : rows) {
    const auto d = decide_rung(r.value, r.others, r.factor, r.maximize);
    SCOPED_TRACE(::testing::Message() << "value " << r.value << " among " << r.others.size()
                                      << " others, factor " << r.factor);
    EXPECT_EQ(d.prune, r.prune);
    EXPECT_EQ(d.rank, r.rank);
    EXPECT_EQ(d.keep, r.keep);
    EXPECT_EQ(d.trials, static_cast<int64_t>(r.others.size()) + 1);
    EXPECT_DOUBLE_EQ(d.cutoff, r.cutoff);
  }
}

TEST(SuccessiveHalving, RungsGrowByTheFactorBelowTheBudget) {
  EXPECT_EQ(ts::callbacks::rung_epochs(1, 3, 50), (std::vector<int64_t>{1, 3, 9, 27}));
  EXPECT_EQ(ts::callbacks::rung_epochs(2, 2, 16), (std::vector<int64_t>{2, 4, 8}));
  EXPECT_EQ(ts::callbacks::rung_epochs(1, 3, 1), (std::vector<int64_t>{}));
  EXPECT_EQ(ts::callbacks::rung_epochs(5, 3, 5), (std::vector<int64_t>{}));
}

class RungsFile : public ts::testing::ScratchDirTest {};

TEST_F(RungsFile, ARecordReplacesTheSameTrialsAtTheSameRung) {
  const auto file = dir_ / "rungs.tsv";
  ts::callbacks::record_rung(file, {1, "s-001", 0.5});
  ts::callbacks::record_rung(file, {1, "s-002", 0.7});
  ts::callbacks::record_rung(file, {3, "s-001", 0.4});
  // s-002 killed after its rung and resumed: it records again, with its new value.
  const auto all = ts::callbacks::record_rung(file, {1, "s-002", 0.6});
  ASSERT_EQ(all.size(), 3u);
  int at_rung_1 = 0;
  for (const auto& r : all) {
    if (r.epoch != 1) continue;
    ++at_rung_1;
    EXPECT_DOUBLE_EQ(r.value, r.trial == "s-001" ? 0.5 : 0.6) << r.trial;
  }
  EXPECT_EQ(at_rung_1, 2);

  std::ofstream(file, std::ios::app) << "two\tbad\n";
  try {
    ts::callbacks::record_rung(file, {1, "s-003", 0.1});
    FAIL() << "a damaged line was read";
  } catch (const ts::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + ":5: cannot read 'two\tbad'"),
              std::string::npos)
        << e.what();
  }
}

TEST(SuccessiveHalving, OptionsOutOfRangeAreConfigErrors) {
  EXPECT_THROW(ts::callbacks::SuccessiveHalving({"r.tsv", "t", 0, 3}), ts::ConfigError);
  EXPECT_THROW(ts::callbacks::SuccessiveHalving({"r.tsv", "t", 1, 1}), ts::ConfigError);
  EXPECT_THROW(ts::callbacks::SuccessiveHalving({"", "t", 1, 3}), ts::ConfigError);
}

}  // namespace
