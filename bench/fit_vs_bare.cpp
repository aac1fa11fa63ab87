// Trainer::fit with every default callback vs bare LibTorch loops doing the same work: the
// reference CNN, Adam 1e-3, batch 128, E epochs over the same Fashion-MNIST training subset with
// a validation pass after each epoch. One mode per process, because thread and allocator settings
// are process-wide; bench/run_fit_bench.sh runs the modes side by side and compares.
//
//   bench_fit --mode fit            trainscope::Trainer, process configured by configure_process()
//                                   (--diagnostics 0 turns the diagnostics callback off)
//   bench_fit --mode bare           a bare loop; threads from --threads (0: LibTorch's default),
//                                   BLAS and malloc from the environment (the script sets them)
// Prints one line on stderr: RESULT {json} (stdout carries the Trainer's console output).
#include <trainscope/trainscope.h>

#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

namespace ts = trainscope;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

torch::nn::Sequential reference_cnn() {
  namespace nn = torch::nn;
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::BatchNorm2d(32),
                        nn::ReLU(), nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                        nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::BatchNorm2d(64),
                        nn::ReLU(), nn::MaxPool2d(nn::MaxPool2dOptions(2)), nn::Flatten(),
                        nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
}

// The loop a LibTorch user writes by hand: shuffle, step, validate.
double bare_loop(torch::nn::Sequential model, const ts::data::TensorDataset& train,
                 const ts::data::TensorDataset& val, int epochs, double* val_loss) {
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  const int64_t n = train.size(), b = 128;
  auto t0 = std::chrono::steady_clock::now();
  for (int e = 0; e < epochs; ++e) {
    model->train();
    auto perm = torch::randperm(n, torch::kInt64);
    for (int64_t i = 0; i < n; i += b) {
      auto idx = perm.slice(0, i, std::min(n, i + b));
      auto x = train.x().index_select(0, idx), y = train.y().index_select(0, idx);
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
      loss.backward();
      opt.step();
    }
    model->eval();
    torch::NoGradGuard no_grad;
    double sum = 0;
    for (int64_t i = 0; i < val.size(); i += 1000) {
      auto x = val.x().slice(0, i, i + 1000), y = val.y().slice(0, i, i + 1000);
      sum += torch::nn::functional::cross_entropy(model->forward(x), y).item<double>() * x.size(0);
    }
    *val_loss = sum / val.size();
  }
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "fit", tag;
  int threads = 0, epochs = 2, diagnostics = 1, workers = -1;
  int64_t limit = 14222;  // 12,800 training examples after the 10% holdout: 100 batches
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode")
      mode = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--epochs")
      epochs = std::stoi(v);
    else if (k == "--limit")
      limit = std::stoll(v);
    else if (k == "--diagnostics")
      diagnostics = std::stoi(v);
    else if (k == "--workers")
      workers = std::stoi(v);
    else if (k == "--tag")
      tag = v;
    else {
      std::cerr << "unknown argument " << k << "\n";
      return 2;
    }
  }
  const int default_threads = at::get_num_threads();
  std::string runtime;
  if (mode == "fit") {
    for (const auto& line : ts::configure_process().lines) runtime += line + "; ";
  } else if (threads > 0) {
    torch::set_num_threads(threads);
  }

  ts::data::IdxOptions o;
  o.limit = limit;
  o.test_limit = 100;
  o.mean = {0.2860};
  o.std = {0.3530};
  auto data = ts::data::fashion_mnist(o);
  auto& train = static_cast<const ts::data::TensorDataset&>(*data.train);
  auto& val = static_cast<const ts::data::TensorDataset&>(*data.val);

  torch::manual_seed(0);
  auto net = reference_cnn();
  // Warm up the allocator and kernels outside the timed region, the same way in every mode.
  {
    torch::optim::Adam warm(net->parameters(), torch::optim::AdamOptions(0.0));
    for (int i = 0; i < 5; ++i) {
      warm.zero_grad();
      torch::nn::functional::cross_entropy(net->forward(train.x().slice(0, 0, 128)),
                                           train.y().slice(0, 0, 128))
          .backward();
    }
  }
  torch::manual_seed(0);
  net = reference_cnn();

  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  double seconds = 0, val_loss = 0;
  if (mode == "fit") {
    ts::Model model(net, "cnn");
    ts::SessionOptions options;  // the Session's default callbacks on the bench's data and model
    options.train.max_epochs(epochs)
        .runs_dir("/tmp/trainscope-bench-runs")
        .class_names(data.class_names);
    options.progress = "plain";
    options.diagnostics = diagnostics != 0;
    if (workers >= 0) options.train.loader_workers(workers);
    auto trainer_ptr = ts::session::make_trainer(options);
    ts::Trainer& trainer = *trainer_ptr;
    auto t0 = std::chrono::steady_clock::now();
    auto fit = trainer.fit(model, data.train, data.val);
    seconds = seconds_since(t0);
    val_loss = fit.val_metrics["loss"];
    std::filesystem::remove_all(fit.run_dir);
  } else {
    seconds = bare_loop(net, train, val, epochs, &val_loss);
  }
  getrusage(RUSAGE_SELF, &r1);
  const double minflt =
      double(r1.ru_minflt - r0.ru_minflt) / (epochs * ((train.size() + 127) / 128));
  std::fprintf(
      stderr,
      "RESULT {\"bench\": \"fit_vs_bare\", \"mode\": \"%s\", \"tag\": \"%s\", \"threads\": %d, "
      "\"default_threads\": %d, \"epochs\": %d, \"train_examples\": %lld, \"seconds\": %.3f, "
      "\"samples_per_s\": %.1f, \"val_loss\": %.4f, \"minflt_per_batch\": %.0f, \"runtime\": "
      "\"%s\"}\n",
      mode.c_str(), tag.c_str(), at::get_num_threads(), default_threads, epochs,
      static_cast<long long>(train.size()), seconds, epochs * train.size() / seconds, val_loss,
      minflt, runtime.c_str());
  return 0;
}
