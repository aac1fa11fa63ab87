#pragma once
// The callbacks every Trainer installs unless its options turn them off, in callback order:
// RunLogger, ProgressPrinter and TensorBoardLogger (kLogging; TensorBoard only with a run
// directory), Diagnostics, the lr schedule (kUser; none by default), EarlyStopping,
// ModelCheckpoint.
#include <trainscope/train/callback.h>

#include <memory>
#include <vector>

namespace trainscope {
struct TrainerOptions;
}

namespace trainscope::callbacks {

std::vector<std::shared_ptr<Callback>> default_callbacks(const TrainerOptions& options);

}  // namespace trainscope::callbacks
