#pragma once
// trainscope: training and testing deep models on LibTorch with a practitioner's defaults.
//   #include <trainscope/trainscope.h>
//   namespace ts = trainscope;
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/callbacks/monitor.h>
#include <trainscope/callbacks/progress.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/callbacks/tensorboard.h>
#include <trainscope/config.h>
#include <trainscope/data/data.h>
#include <trainscope/diagnose/detectors.h>
#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/diagnose/preflight.h>
#include <trainscope/dist/data_parallel.h>
#include <trainscope/dist/process_group.h>
#include <trainscope/error.h>
#include <trainscope/models/models.h>
#include <trainscope/runtime.h>
#include <trainscope/serve/dashboard.h>
#include <trainscope/session/session.h>
#include <trainscope/session/settings.h>
#include <trainscope/session/source.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>
#include <trainscope/track/tensorboard.h>
#include <trainscope/train/archive.h>
#include <trainscope/train/callback.h>
#include <trainscope/train/gradient_sync.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/state.h>
#include <trainscope/train/trainer.h>
#include <trainscope/tune/batch_size.h>
#include <trainscope/tune/lr_finder.h>
