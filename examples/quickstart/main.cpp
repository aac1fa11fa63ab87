// Quickstart: the reference CNN on Fashion-MNIST with every default, from the library. It trains
// exactly as `trainscope train` does on the same settings: the same printed settings, pre-flight
// checks, augmentation, batch choice and, on CPU, the same weights bit for bit.
//   quickstart [--limit N] [--epochs N]
#include <trainscope/trainscope.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace ts = trainscope;

int main(int argc, char** argv) {
  ts::Config config = ts::default_config();  // every default, each with its reason
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int64_t value = std::atoll(argv[i + 1]);
    if (flag == "--limit") {  // the first N training and N test examples
      config.set("data.limit", value);
      config.set("data.test_limit", value);
    } else if (flag == "--epochs") {
      config.set("train.max_epochs", value);
    }
  }
  try {
    ts::Session session(config);
    // Data and augmentation, the model, the batch size, pre-flight checks, the fit with early
    // stopping, checkpoints, diagnostics and the run store, then the test pass.
    ts::SessionResult result = session.train();
    std::cout << result.message << "\n";
    if (result.test) std::cout << "test accuracy " << result.test->metrics["accuracy"] << "\n";
    return result.exit_code();
  } catch (const ts::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
