// Any bytes given to read_idx either parse or raise trainscope::DataError; nothing else.
#include <trainscope/data/idx.h>
#include <trainscope/error.h>

#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = fuzz_file(data, size, "input.idx");
  try {
    auto t = trainscope::data::read_idx(file);
    (void)t.numel();
  } catch (const trainscope::DataError&) {
  }
  return 0;
}
