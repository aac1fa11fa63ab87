// Quickstart: the reference CNN on Fashion-MNIST with every default, from the library.
//   quickstart [--limit N] [--epochs N]
#include <trainscope/trainscope.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace ts = trainscope;

int main(int argc, char** argv) {
  int64_t limit = 0, epochs = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--limit") limit = std::atoll(argv[i + 1]);
    if (flag == "--epochs") epochs = std::atoll(argv[i + 1]);
  }
  ts::configure_process();  // threads and allocator set for training (see runtime.h)

  try {
    ts::data::IdxOptions data_options;
    data_options.limit = limit;
    data_options.test_limit = limit;
    auto data = ts::data::fashion_mnist(data_options);
    auto model = ts::models::cnn(ts::models::CnnOptions().classes(data.num_classes));

    ts::TrainerOptions options;  // Adam, lr 1e-3, cross-entropy, early stopping, checkpoints
    options.class_names(data.class_names).runs_dir("runs").progress("plain");
    if (epochs > 0) options.max_epochs(epochs);
    ts::Trainer trainer(options);
    ts::FitResult fit = trainer.fit(model, data.train, data.val);
    ts::EvalResult test = trainer.test(model, *data.test);
    std::cout << "stopped: " << fit.stop_message << "; test accuracy " << test.metrics["accuracy"]
              << "; run in " << fit.run_dir << "\n";
  } catch (const ts::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
