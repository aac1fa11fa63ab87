#pragma once
// Data: datasets, IDX files and the loader.
#include <trainscope/data/dataset.h>
#include <trainscope/data/idx.h>
#include <trainscope/data/loader.h>
