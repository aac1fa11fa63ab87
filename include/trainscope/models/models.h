#pragma once
// Models: the Model handle and the zoo.
#include <trainscope/models/export.h>
#include <trainscope/models/model.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/models/transfer.h>
#include <trainscope/models/zoo.h>
