#pragma once
// Data: datasets (IDX, image folders, CSV, tensors), the loader and batched augmentation.
#include <trainscope/data/csv.h>
#include <trainscope/data/dataset.h>
#include <trainscope/data/idx.h>
#include <trainscope/data/image_folder.h>
#include <trainscope/data/loader.h>
#include <trainscope/data/spec.h>
#include <trainscope/data/transforms.h>
