// The examples/ programs, each a user's program with its own data and model trained through a
// Session with every default on: each trains to a useful score on its tiny data, is interrupted
// (Ctrl-C after a few steps) and resumed to the same weights bit for bit, and its task's metrics
// reach the run store and `trainscope report`'s static page.
#include <gtest/gtest.h>

#include "../unit/scratch_dir.h"
#include "process.h"

#include <string>

#ifdef TRAINSCOPE_EXAMPLES_DIR

namespace {

using trainscope::testing::file_text;
using trainscope::testing::sh;

struct Case {
  const char* program;
  const char* flags;  // beyond the common ones
  int epochs;
  const char* metric;   // the test metric to check, as the example prints it
  double at_least;      // ... and its floor on this data
  const char* val_tag;  // a validation series the run store (and so the report) must hold
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.program << " " << c.flags; }

class Examples : public trainscope::testing::ScratchDirTest,
                 public ::testing::WithParamInterface<Case> {
 protected:
  trainscope::testing::ShellResult run(const std::string& flags) {
    const Case& c = GetParam();
    return sh("cd '" + dir_.string() + "' && '" TRAINSCOPE_EXAMPLES_DIR "/" + c.program + "' " +
              c.flags + " " + flags);
  }
};

std::string hash_of(const std::string& out) {
  const auto at = out.rfind("weights fnv1a ");
  return at == std::string::npos ? "" : out.substr(at + 14, 16);
}

double metric_of(const std::string& out, const std::string& name) {
  const auto at = out.rfind("test " + name + " ");
  return at == std::string::npos ? -1.0 : std::stod(out.substr(at + 6 + name.size()));
}

TEST_P(Examples, TrainWithEveryDefaultAndResumeBitIdentically) {
  const Case& c = GetParam();
  if (std::string(c.program) == "text_classifier") {
    const auto corpus =
        sh("cd '" + dir_.string() +
           "' && '" TRAINSCOPE_EXAMPLES_DIR "/text_classifier' --make-corpus corpus.tsv");
    ASSERT_EQ(corpus.status, 0) << corpus.out;
  }
  const std::string epochs = " --epochs " + std::to_string(c.epochs);
  const auto whole = run("--runs whole --name a" + epochs);
  ASSERT_EQ(whole.status, 0) << whole.out;
  EXPECT_GE(metric_of(whole.out, c.metric), c.at_least) << whole.out;
  ASSERT_EQ(hash_of(whole.out).size(), 16u) << whole.out;

  const auto stopped = run("--runs parts --name a --interrupt-after 7" + epochs);
  ASSERT_EQ(stopped.status, 130) << stopped.out;
  const auto resumed = run("--runs parts --name a --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_EQ(hash_of(resumed.out), hash_of(whole.out)) << resumed.out;

  // The task's metrics in the run store, and in the static report made from it.
  const auto rows =
      sh("sqlite3 '" + (dir_ / "whole/a/run.sqlite").string() +
         "' \"select count(*) from metrics where split = 'val' and tag = '" + c.val_tag + "'\"");
  EXPECT_GT(std::stoi(rows.out), 0) << c.val_tag << ": " << rows.out;
  const auto report =
      sh("cd '" + dir_.string() + "' && '" TRAINSCOPE_CLI "' report whole/a --out report.html");
  ASSERT_EQ(report.status, 0) << report.out;
  EXPECT_NE(file_text(dir_ / "report.html").find(std::string("\"") + c.val_tag + "\""),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Programs, Examples,
                         ::testing::Values(Case{"two_inputs", "", 6, "accuracy", 0.9, "accuracy"},
                                           Case{"multilabel", "", 6, "f1_micro", 0.85, "f1_micro"},
                                           Case{"segmentation", "", 6, "miou", 0.6, "miou"},
                                           Case{"text_classifier", "--corpus corpus.tsv", 6,
                                                "accuracy", 0.85, "accuracy"},
                                           Case{"custom_loss_metric", "", 8, "balanced_accuracy",
                                                0.8, "balanced_accuracy"},
                                           Case{"custom_loss_metric", "--multi-loss", 8,
                                                "balanced_accuracy", 0.8, "balanced_accuracy"}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const bool multi = std::string(info.param.flags) == "--multi-loss";
                           return std::string(info.param.program) + (multi ? "_multi_loss" : "");
                         });

}  // namespace

#endif
