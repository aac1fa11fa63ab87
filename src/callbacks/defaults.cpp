#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/callbacks/defaults.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/callbacks/progress.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/callbacks/tensorboard.h>
#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/train/trainer.h>

namespace trainscope::callbacks {

std::vector<std::shared_ptr<Callback>> default_callbacks(const TrainerOptions& o) {
  std::vector<std::shared_ptr<Callback>> out;
  out.push_back(std::make_shared<RunLogger>(o.log_every(), o.config()));
  out.push_back(std::make_shared<ProgressPrinter>(progress_style_from(o.progress()), o.config()));
  // TensorBoard event files beside run.sqlite, when the Trainer keeps a run directory.
  if (!o.runs_dir().empty())
    out.push_back(std::make_shared<TensorBoardLogger>(o.log_every(), o.config()));
  if (o.diagnostics()) {
    diagnose::DiagnosticsOptions d;
    d.every = o.diagnose_every() > 0 ? o.diagnose_every() : o.log_every();
    d.activations = o.diagnose_activations();
    d.print = o.progress() != "off";
    d.auto_remedy = o.auto_remedy();
    out.push_back(std::make_shared<diagnose::Diagnostics>(d));
  }
  if (auto schedule = make_lr_schedule(o.lr_schedule())) out.push_back(std::move(schedule));
  if (o.early_stopping()) out.push_back(std::make_shared<EarlyStopping>(o.stopping()));
  if (o.checkpoints()) out.push_back(std::make_shared<ModelCheckpoint>(o.checkpoint()));
  return out;
}

}  // namespace trainscope::callbacks
