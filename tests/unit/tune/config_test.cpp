#include <trainscope/config.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

fs::path temp_file(const std::string& name, const std::string& text) {
  fs::path dir = fs::temp_directory_path() / ("ts_config_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ts::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Config, DefaultsCarryTheirReasons) {
  auto c = ts::Config::defaults();
  c.resolve();
  EXPECT_EQ(c.get_string("train.optimizer"), "adam");
  EXPECT_DOUBLE_EQ(c.get_double("train.lr"), 1e-3);
  EXPECT_EQ(c.get_int("train.max_epochs"), 50);
  EXPECT_EQ(c.get_string("train.batch_size"), "auto");
  EXPECT_EQ(c.get_string("train.lr_scaling"), "keep");
  EXPECT_EQ(c.get_int("train.patience"), 5);
  EXPECT_DOUBLE_EQ(c.get_double("data.val_fraction"), 0.1);
  EXPECT_EQ(c.get_string("train.loss"), "cross_entropy");
  EXPECT_EQ(c.setting("train.lr").reason, "the Adam rule of thumb");
  EXPECT_EQ(c.setting("train.lr").source, "default");
  EXPECT_GE(c.get_int("runtime.threads"), 1);
  for (const auto& s : c.settings()) EXPECT_FALSE(s.reason.empty()) << s.key;
}

TEST(Config, DependentDefaultsFollowTaskAndRegime) {
  auto c = ts::Config::defaults();
  c.set_from_string("train.regime=finetune");
  c.set_from_string("train.task=regression");
  c.set_from_string("model.name=mlp");
  c.resolve();
  EXPECT_EQ(c.get_int("train.max_epochs"), 6);
  EXPECT_EQ(c.get_string("train.loss"), "mse");
  EXPECT_EQ(c.get_ints("model.hidden"), (std::vector<int64_t>{256, 128}));
  // A user's explicit value is never replaced by a derived default.
  auto d = ts::Config::defaults();
  d.set_from_string("train.regime=finetune");
  d.set_from_string("train.max_epochs=9");
  d.resolve();
  EXPECT_EQ(d.get_int("train.max_epochs"), 9);
}

TEST(Config, SetParsesByTypeAndNamesBadValues) {
  auto c = ts::Config::defaults();
  c.set_from_string("train.lr=3e-4");
  c.set_from_string("train.early_stopping=false");
  c.set_from_string("model.channels=[16, 32, 64]");
  c.set_from_string("train.lr=1", "--lr");  // an integer is fine for a number
  EXPECT_DOUBLE_EQ(c.get_double("train.lr"), 1.0);
  EXPECT_FALSE(c.get_bool("train.early_stopping"));
  EXPECT_EQ(c.get_ints("model.channels"), (std::vector<int64_t>{16, 32, 64}));
  EXPECT_EQ(c.setting("train.lr").source, "--lr");

  EXPECT_EQ(error_of([&] { c.set_from_string("train.patience=big"); }),
            "--set train.patience: expected an integer, got 'big'");
  EXPECT_EQ(error_of([&] { c.set_from_string("train.lrr=0.1"); }),
            "--set train.lrr: unknown setting 'train.lrr'; did you mean 'train.lr'?");
  EXPECT_NE(error_of([&] { c.set_from_string("train.lr"); }).find("expected key=value"),
            std::string::npos);
}

TEST(Config, ResolveRejectsOutOfRangeValuesNamingThem) {
  auto bad = [](const std::string& assignment) {
    return error_of([&] {
      auto c = ts::Config::defaults();
      c.set_from_string(assignment);
      c.resolve();
    });
  };
  EXPECT_EQ(bad("train.lr=-0.1"),
            "--set: train.lr = -0.1 is out of range; expected a positive number such as 0.001")
      << "the message names the key, the value and what was expected";
  EXPECT_NE(bad("train.batch_size=0")
                .find("train.batch_size = \"0\" is out of range; expected auto or a positive"),
            std::string::npos);
  EXPECT_NE(bad("train.batch_size=big").find("expected auto or a positive integer"),
            std::string::npos);
  EXPECT_EQ(bad("train.batch_size=64"), "no error");
  EXPECT_NE(bad("data.val_fraction=1.5").find("data.val_fraction"), std::string::npos);
  EXPECT_NE(bad("model.name=resnet9000").find("expected one of: cnn, mlp"), std::string::npos);
  EXPECT_NE(bad("train.optimizer=adagrad").find("adam, adamw, sgd"), std::string::npos);
  EXPECT_NE(bad("train.max_epochs=0").find("train.max_epochs"), std::string::npos);
}

TEST(Config, TomlFileErrorsNameFileAndLine) {
  auto f = temp_file("bad.toml", "[train]\nlr = 0.01\nbatch_sise = 64\n");
  auto msg = error_of([&] { ts::Config::defaults().merge_file(f); });
  EXPECT_EQ(
      msg, f.string() + ":3: unknown setting 'train.batch_sise'; did you mean 'train.batch_size'?");

  auto g = temp_file("type.toml", "[train]\nlr = \"fast\"\n");
  EXPECT_NE(error_of([&] {
              ts::Config::defaults().merge_file(g);
            }).find(g.string() + ":2: train.lr: expected a number"),
            std::string::npos);

  auto h = temp_file("syntax.toml", "[train\nlr = 1\n");
  EXPECT_NE(error_of([&] { ts::Config::defaults().merge_file(h); }).find("not valid TOML"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ts::Config::defaults().merge_file("/nonexistent/x.toml");
            }).find("does not exist"),
            std::string::npos);
}

TEST(Config, TomlRoundTripsEveryValue) {
  auto c = ts::Config::defaults();
  c.set_from_string("train.lr=0.0003");
  c.set_from_string("model.channels=8,16");
  c.set_from_string("run.name=with \"quotes\"");
  c.set_from_string("data.val_fraction=0.2");
  c.resolve();
  auto f = temp_file("round.toml", c.to_toml());
  auto d = ts::Config::defaults();
  d.merge_file(f);
  d.resolve();
  for (const auto& s : c.settings())
    EXPECT_EQ(ts::to_toml_literal(s.value), ts::to_toml_literal(d.setting(s.key).value)) << s.key;
  EXPECT_NE(c.to_toml().find("lr = 0.0003  # from --set"), std::string::npos);
  EXPECT_NE(c.to_toml().find("optimizer = \"adam\"  # default: Adam converges well without tuning"),
            std::string::npos);
}
