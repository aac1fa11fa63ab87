#include <trainscope/config.h>
#include <trainscope/session/settings.h>

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
  auto c = ts::default_config();
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
  auto c = ts::default_config();
  c.set_from_string("train.regime=finetune");
  c.set_from_string("train.task=regression");
  c.set_from_string("model.name=mlp");
  c.resolve();
  EXPECT_EQ(c.get_int("train.max_epochs"), 30);
  EXPECT_EQ(c.get_int("train.patience"), 8);
  EXPECT_NE(c.setting("train.patience").reason.find("fine-tuning"), std::string::npos);
  EXPECT_EQ(ts::default_config().get_int("train.patience"), 5) << "training from scratch";
  EXPECT_EQ(c.get_string("train.loss"), "mse");
  EXPECT_EQ(c.get_ints("model.hidden"), (std::vector<int64_t>{256, 128}));
  // A user's explicit value is never replaced by a derived default.
  auto d = ts::default_config();
  d.set_from_string("train.regime=finetune");
  d.set_from_string("train.max_epochs=9");
  d.resolve();
  EXPECT_EQ(d.get_int("train.max_epochs"), 9);
}

// Fine-tuning augments from the first epoch and trains in float32 (its head phase caches float32
// features); from scratch the augmentation waits for overfitting, and the precision follows the
// CPU: bf16 exactly where it multiplies bfloat16 natively.
TEST(Config, AugmentationStartAndPrecisionFollowRegimeAndCpu) {
  auto scratch = ts::default_config();
  scratch.set_from_string("runtime.device=cpu");
  scratch.resolve();
  EXPECT_EQ(scratch.get_string("data.augment_from"), "auto");
  const std::string isa = ts::native_bf16();
  EXPECT_EQ(scratch.get_string("train.precision"), isa.empty() ? "fp32" : "bf16");
  EXPECT_NE(scratch.setting("train.precision").reason.find(isa.empty() ? "no native" : isa),
            std::string::npos)
      << scratch.setting("train.precision").reason;

  auto finetune = ts::default_config();
  finetune.set_from_string("runtime.device=cpu");
  finetune.set_from_string("train.regime=finetune");
  finetune.resolve();
  EXPECT_EQ(finetune.get_string("data.augment_from"), "1");
  EXPECT_EQ(finetune.get_string("train.precision"), "fp32");
  EXPECT_NE(finetune.setting("train.precision").reason.find("fine-tuning"), std::string::npos);

  auto chosen = ts::default_config();
  chosen.set_from_string("train.precision=fp32");
  chosen.set_from_string("data.augment_from=4");
  chosen.resolve();
  EXPECT_EQ(chosen.get_string("train.precision"), "fp32");
  EXPECT_EQ(ts::session_options(chosen).augment_from, 4);
  EXPECT_EQ(ts::session_options(scratch).augment_from, 0) << "auto";

  auto bad = [](const std::string& assignment) {
    return error_of([&] {
      auto c = ts::default_config();
      c.set_from_string(assignment);
      c.resolve();
    });
  };
  EXPECT_NE(
      bad("data.augment_from=0")
          .find("data.augment_from = \"0\" is out of range; expected auto or a positive epoch"),
      std::string::npos)
      << bad("data.augment_from=0");
  EXPECT_NE(bad("train.precision=fp64").find("expected one of: fp32, bf16, fp16, auto"),
            std::string::npos)
      << bad("train.precision=fp64");
}

TEST(Config, SetParsesByTypeAndNamesBadValues) {
  auto c = ts::default_config();
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
      auto c = ts::default_config();
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
  EXPECT_NE(bad("model.name=resnet9000").find("expected cnn, mlp, resnet or torchscript:PATH"),
            std::string::npos);
  EXPECT_NE(bad("train.optimizer=adagrad").find("adam, adamw, sgd"), std::string::npos);
  EXPECT_NE(bad("train.max_epochs=0").find("train.max_epochs"), std::string::npos);
}

TEST(Config, TomlFileErrorsNameFileAndLine) {
  auto f = temp_file("bad.toml", "[train]\nlr = 0.01\nbatch_sise = 64\n");
  auto msg = error_of([&] { ts::default_config().merge_file(f); });
  EXPECT_EQ(
      msg, f.string() + ":3: unknown setting 'train.batch_sise'; did you mean 'train.batch_size'?");

  auto g = temp_file("type.toml", "[train]\nlr = \"fast\"\n");
  EXPECT_NE(error_of([&] {
              ts::default_config().merge_file(g);
            }).find(g.string() + ":2: train.lr: expected a number"),
            std::string::npos);

  auto h = temp_file("syntax.toml", "[train\nlr = 1\n");
  EXPECT_NE(error_of([&] { ts::default_config().merge_file(h); }).find("not valid TOML"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ts::default_config().merge_file("/nonexistent/x.toml");
            }).find("does not exist"),
            std::string::npos);
}

TEST(Config, TomlRoundTripsEveryValue) {
  auto c = ts::default_config();
  c.set_from_string("train.lr=0.0003");
  c.set_from_string("model.channels=8,16");
  c.set_from_string("run.name=with \"quotes\"");
  c.set_from_string("data.val_fraction=0.2");
  c.resolve();
  auto f = temp_file("round.toml", c.to_toml());
  auto d = ts::default_config();
  d.merge_file(f);
  d.resolve();
  for (const auto& s : c.settings())
    EXPECT_EQ(ts::to_toml_literal(s.value), ts::to_toml_literal(d.setting(s.key).value)) << s.key;
  EXPECT_NE(c.to_toml().find("lr = 0.0003  # from --set"), std::string::npos);
  EXPECT_NE(c.to_toml().find("optimizer = \"adam\"  # default: Adam converges well without tuning"),
            std::string::npos);
}

// Each setting is declared once, bound to one field: the field's literal default is the setting's
// default, and a config survives the trip through the options unchanged.
TEST(Settings, EveryOptionsDefaultIsItsSettingsDefault) {
  const ts::SessionOptions defaults;
  size_t checked = 0;
  for (const auto& b : ts::setting_bindings()) {
    EXPECT_EQ(ts::to_toml_literal(b.read(defaults)), ts::to_toml_literal(b.spec.default_value))
        << b.spec.key << ": the options field's default disagrees with the settings table";
    ++checked;
  }
  EXPECT_EQ(checked, ts::default_config().settings().size());
  EXPECT_GT(checked, 80u);
}

// data.mean and data.std: one number or one per channel, from the command line and from files;
// files written before they took lists (a bare number, 0 for "computed") still read.
TEST(Settings, NormalizationTakesANumberOrOnePerChannel) {
  auto c = ts::default_config();
  c.set_from_string("data.mean=[0.485, 0.456, 0.406]");
  c.set_from_string("data.std=0.229,0.224,0.225");
  c.resolve();
  EXPECT_EQ(c.get_doubles("data.mean"), (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(ts::to_toml_literal(c.setting("data.std").value), "[0.229, 0.224, 0.225]");
  EXPECT_EQ(ts::session_options(c).data.std, (std::vector<double>{0.229, 0.224, 0.225}));

  auto old = ts::default_config();
  old.merge_text("[data]\nmean = 0.0\nstd = 0.0\n", "old.toml");
  old.resolve();
  EXPECT_TRUE(ts::session_options(old).data.std.empty()) << "0: computed from the training split";
  auto given = ts::default_config();
  given.merge_text("[data]\nmean = 0.286\nstd = [0.353]\n", "given.toml");
  given.resolve();
  EXPECT_EQ(ts::session_options(given).data.mean, std::vector<double>{0.286});
  EXPECT_EQ(ts::session_options(given).data.std, std::vector<double>{0.353});
  const ts::Config back = ts::config_of(ts::session_options(c));
  EXPECT_EQ(ts::to_toml_literal(back.setting("data.mean").value), "[0.485, 0.456, 0.406]");

  auto message = [](const std::string& text) {
    try {
      auto bad = ts::default_config();
      bad.merge_text(text, "bad.toml");
      bad.resolve();
    } catch (const ts::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("[data]\nstd = [0.2, -1.0]\n")
                .find("bad.toml:2: data.std = [0.2, -1.0] is out "
                      "of range; expected positive numbers"),
            std::string::npos)
      << message("[data]\nstd = [0.2, -1.0]\n");
  EXPECT_NE(message("[data]\nstd = \"wide\"\n").find("expected a number or a list of numbers"),
            std::string::npos);
  auto cli = ts::default_config();
  EXPECT_THROW(cli.set_from_string("data.mean=0.5,abc"), ts::ConfigError);
}

TEST(Settings, ConfigToOptionsAndBackIsTheSameConfig) {
  auto c = ts::default_config();
  c.set_from_string("train.lr=0.0003");
  c.set_from_string("train.optimizer=sgd");
  c.set_from_string("train.lr_schedule=cosine");
  c.set_from_string("runtime.device=cpu");
  c.set_from_string("train.precision=bf16");
  c.set_from_string("train.batch_size=64");
  c.set_from_string("train.monitor=val_accuracy");
  c.set_from_string("data.std=0.25");
  c.set_from_string("data.mean=0.5");
  c.resolve();
  const ts::SessionOptions o = ts::session_options(c);
  EXPECT_EQ(o.train.lr(), 0.0003);
  EXPECT_EQ(o.train.optimizer(), ts::Optimizer::kSgd);
  EXPECT_EQ(o.schedule.kind, ts::callbacks::ScheduleKind::kCosine);
  EXPECT_EQ(o.train.device().kind, ts::DeviceChoice::Kind::kCpu);
  EXPECT_EQ(o.train.precision(), ts::Precision::kBf16);
  EXPECT_EQ(o.batch_size, std::optional<int64_t>(64));
  EXPECT_EQ(o.train.monitor(), "val_accuracy") << "one setting, every field that watches it";
  EXPECT_EQ(o.schedule.monitor, "val_accuracy");
  EXPECT_EQ(o.data.std, std::vector<double>{0.25});
  EXPECT_EQ(o.data.mean, std::vector<double>{0.5});
  const ts::Config back = ts::config_of(o);
  for (const auto& s : c.settings())
    EXPECT_EQ(ts::to_toml_literal(back.setting(s.key).value), ts::to_toml_literal(s.value))
        << s.key;
  EXPECT_EQ(back.setting("train.lr").source, "library");
  EXPECT_EQ(back.setting("train.patience").source, "default");
}

TEST(Settings, EnumSettingsNameTheirChoices) {
  auto bad = [](const std::string& assignment) {
    auto c = ts::default_config();
    c.set_from_string(assignment);
    try {
      c.resolve();
    } catch (const ts::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(bad("train.lr_schedule=exponential"),
            "--set: train.lr_schedule = \"exponential\" is not known; expected one of: none, "
            "step, cosine, onecycle, plateau");
  EXPECT_NE(bad("train.precision=fp8").find("expected one of: fp32, bf16, fp16, auto"),
            std::string::npos);
  EXPECT_NE(bad("runtime.device=tpu").find("expected auto, cpu, cuda or cuda:N"),
            std::string::npos);
  EXPECT_NE(bad("train.loss=hinge").find("expected one of: auto, cross_entropy, bce, mse"),
            std::string::npos);
}
