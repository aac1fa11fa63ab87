#pragma once
// trainscope: training and testing deep models on LibTorch with a practitioner's defaults.
//   #include <trainscope/trainscope.h>
//   namespace ts = trainscope;
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/callbacks/defaults.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/callbacks/progress.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/config.h>
#include <trainscope/data/data.h>
#include <trainscope/error.h>
#include <trainscope/models/models.h>
#include <trainscope/runtime.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>
#include <trainscope/train/callback.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/state.h>
#include <trainscope/train/trainer.h>
