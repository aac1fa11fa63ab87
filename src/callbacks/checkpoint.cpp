#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>
#include <trainscope/track/run.h>

namespace trainscope::callbacks {

void save_weights(const torch::nn::Module& module, const std::filesystem::path& file) {
  try {
    track::write_atomically(file, [&](const std::filesystem::path& tmp) {
      torch::serialize::OutputArchive archive;
      module.save(archive);
      archive.save_to(tmp.string());
    });
  } catch (const std::exception& e) {
    throw CheckpointError(
        std::string("saving weights failed: ") + e.what() +
        " (the previous file, if any, is intact; check free disk space and permissions)");
  }
}

void load_weights(torch::nn::Module& module, const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw CheckpointError("weights file " + file.string() + " does not exist");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    module.load(archive);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("cannot load weights from " + file.string() + ": " +
                          what.substr(0, what.find('\n')) +
                          " (corrupt file, or weights of a different model)");
  }
}

void ModelCheckpoint::on_fit_start(TrainState&) { has_best_ = false; }

void ModelCheckpoint::on_epoch_end(TrainState& state) {
  if (state.run == nullptr) return;
  const bool has_val = state.val_metrics.count("loss") > 0;
  const double value = has_val ? state.val_metrics.at("loss") : state.train_metrics["loss"];
  const std::string monitor = has_val ? "val_loss" : "train_loss";
  auto& store = state.run->store();
  auto save = [&](const std::string& kind) {
    const std::string rel = "checkpoints/" + kind + ".pt";
    save_weights(state.model->module(), state.run->dir() / rel);
    store.add_checkpoint(
        {rel, kind, state.epoch, state.global_step, monitor, value, track::wall_time_now()});
  };
  save("last");
  if (std::isfinite(value) && (!has_best_ || value < best_)) {
    best_ = value;
    has_best_ = true;
    save("best");
  }
}

}  // namespace trainscope::callbacks
