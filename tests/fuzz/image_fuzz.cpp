// Any bytes given to decode_image (JPEG through libjpeg-turbo, PNG through libspng) either
// decode or raise trainscope::DataError; nothing else.
#include <trainscope/data/image_folder.h>
#include <trainscope/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (int channels : {0, 1, 3}) {
    try {
      auto t = trainscope::data::decode_image(data, size, "input", channels);
      (void)t.numel();
    } catch (const trainscope::DataError&) {
    }
  }
  return 0;
}
