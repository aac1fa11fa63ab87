// Any bytes given to read_csv either parse or raise trainscope::DataError; nothing else.
#include <trainscope/data/csv.h>
#include <trainscope/error.h>

#include "fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = fuzz_file(data, size, "input.csv");
  for (bool classification : {true, false}) {
    try {
      auto t = trainscope::data::read_csv(file, {"y"}, classification);
      (void)t.x.numel();
    } catch (const trainscope::DataError&) {
    }
  }
  return 0;
}
