#pragma once
// A fresh directory per test, removed afterwards. Its name carries the test's name, the pid and a
// random suffix, so that parallel ctest runs never share one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

namespace trainscope::testing {

class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device random;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("trainscope_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
            std::to_string(::getpid()) + "_" + std::to_string(random()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::filesystem::path dir_;
};

}  // namespace trainscope::testing
