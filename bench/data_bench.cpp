// Data pipeline benchmarks; each run prints one "RESULT {json}" line (bench/run_data_bench.sh).
//   --mode augment  batched augmentation throughput (images/s) on Fashion-MNIST, 28x28 gray,
//                   batches of 128 gathered by index_select from a shuffled order, one pass;
//                   --items "rotate(10),hflip,crop(28, pad=2)" (the order given, no fusion) or
//                   "hflip,rotate(10),crop(28, pad=2)" (rotate and crop fused into one resampling)
//   --mode jpeg     JPEG decode: raw tjDecompress2 from memory vs the image-folder data set
//                   (file read + decode + collate + normalize), one thread, then the DataLoader
//                   with 2 workers; --size 28 (gray, as Fashion-MNIST) or 224 (RGB upscaled)
#include <trainscope/trainscope.h>
#include <turbojpeg.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

std::vector<std::string> split_items(const std::string& text) {
  ts::Config c = ts::default_config();
  c.set_from_string("data.augment=[" + text + "]");
  return c.get_strings("data.augment");
}

int bench_augment(int argc, char** argv) {
  const std::string items = arg(argc, argv, "--items", "rotate(10),hflip,crop(28, pad=2)");
  const int64_t n = std::stoll(arg(argc, argv, "--n", "60000"));
  auto x8 = ts::data::read_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
                .slice(0, 0, n);
  const double mean = 0.2860, std = 0.3530;
  auto x = x8.to(torch::kFloat32).div_(255).sub_(mean).div_(std).unsqueeze(1).contiguous();
  auto y = torch::zeros({x.size(0)}, torch::kInt64);
  auto aug = ts::data::parse_augmentation(split_items(items), {{{mean}, {std}}, 10});
  const int64_t b = 128;
  for (int i = 0; i < 5; ++i) {  // warm-up, untimed
    auto gen = ts::data::augment_generator(1, 0, i);
    aug->apply({x.slice(0, 0, b), y.slice(0, 0, b)}, gen);
  }
  auto perm = torch::randperm(x.size(0), at::detail::createCPUGenerator(0), torch::kInt64);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t images = 0;
  double checksum = 0;
  for (int64_t i = 0, k = 0; i < x.size(0); i += b, ++k) {
    auto idx = perm.slice(0, i, std::min(x.size(0), i + b));
    auto gen = ts::data::augment_generator(0, 1, k);
    auto out = aug->apply({x.index_select(0, idx), y.index_select(0, idx)}, gen);
    images += out.x.size(0);
    if (k == 0) checksum = out.x.mean().item<double>();
  }
  const double dt = seconds_since(t0);
  std::string pipeline = aug->describe();  // quotes become ' to stay one JSON string
  for (char& c : pipeline)
    if (c == '"') c = '\'';
  std::printf(
      "RESULT {\"script\": \"data_bench\", \"mode\": \"augment\", \"items\": \"%s\", "
      "\"pipeline\": \"%s\", \"images\": %lld, \"threads\": %d, \"pass_s\": %.3f, "
      "\"images_per_s\": %.1f, \"first_batch_mean\": %.4f}\n",
      items.c_str(), pipeline.c_str(), static_cast<long long>(images), torch::get_num_threads(), dt,
      images / dt, checksum);
  return 0;
}

std::vector<uint8_t> encode_jpeg(const torch::Tensor& chw, int quality) {
  auto hwc = chw.permute({1, 2, 0}).contiguous();
  const int c = int(chw.size(0));
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj, hwc.data_ptr<uint8_t>(), int(chw.size(2)), 0, int(chw.size(1)),
                  c == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &size, c == 1 ? TJSAMP_GRAY : TJSAMP_420,
                  quality, 0) != 0)
    throw std::runtime_error(tjGetErrorStr2(tj));
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

int bench_jpeg(int argc, char** argv) {
  const int64_t size = std::stoll(arg(argc, argv, "--size", "28"));
  const int64_t n = std::stoll(arg(argc, argv, "--n", size > 64 ? "1000" : "10000"));
  const fs::path dir = fs::temp_directory_path() / ("ts-jpeg-bench-" + std::to_string(size));
  auto x8 = ts::data::read_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
                .slice(0, 0, n);
  // Fixture: Fashion-MNIST images as JPEG files, 10 class folders; 224: RGB, upscaled bilinearly.
  std::vector<std::vector<uint8_t>> blobs;
  fs::remove_all(dir);
  int64_t bytes = 0;
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor img = x8[i].unsqueeze(0);
    if (size != 28)
      img = torch::upsample_bilinear2d(img.unsqueeze(0).to(torch::kFloat32), {size, size}, false)
                .squeeze(0)
                .expand({3, size, size})
                .round()
                .clamp(0, 255)
                .to(torch::kUInt8);
    blobs.push_back(encode_jpeg(img, 90));
    bytes += int64_t(blobs.back().size());
    const fs::path f =
        dir / std::string("c").append(std::to_string(i % 10)) / std::to_string(i).append(".jpg");
    fs::create_directories(f.parent_path());
    std::ofstream(f, std::ios::binary)
        .write(reinterpret_cast<const char*>(blobs.back().data()),
               std::streamsize(blobs.back().size()));
  }
  // Raw libjpeg-turbo: decode from memory into one reused buffer, one thread.
  tjhandle tj = tjInitDecompress();
  const int channels = size == 28 ? 1 : 3;
  std::vector<uint8_t> pixels(size_t(size * size * channels));
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& blob : blobs)
    tjDecompress2(tj, blob.data(), blob.size(), pixels.data(), int(size), 0, int(size),
                  channels == 1 ? TJPF_GRAY : TJPF_RGB, 0);
  const double raw_s = seconds_since(t0);
  tjDestroy(tj);

  // The image-folder data set, one thread: file read + header + decode + collate + normalize.
  torch::set_num_threads(1);
  ts::data::ImageFolderOptions o;
  o.dir = dir;
  o.val_fraction = 0;
  o.test_fraction = 0;
  o.mean = {0.286};
  o.std = {0.353};
  auto data = ts::data::load_image_folder(o);
  t0 = std::chrono::steady_clock::now();
  int64_t seen = 0;
  for (int64_t i = 0; i < data.train->size(); i += 128)
    seen +=
        data.train->get_batch(torch::arange(i, std::min(data.train->size(), i + 128))).x.size(0);
  const double folder_s = seconds_since(t0);

  // The DataLoader with 2 worker threads (what training uses), consumer doing nothing else.
  ts::data::LoaderOptions lo{128, true, false, 0};
  lo.workers = 2;
  ts::data::DataLoader loader(data.train, lo);
  loader.start_epoch(1);
  t0 = std::chrono::steady_clock::now();
  ts::data::Batch batch;
  int64_t loaded = 0;
  while (loader.next(batch)) loaded += batch.x.size(0);
  const double loader_s = seconds_since(t0);
  fs::remove_all(dir);
  std::printf(
      "RESULT {\"script\": \"data_bench\", \"mode\": \"jpeg\", \"size\": %lld, \"channels\": %d, "
      "\"images\": %lld, \"mean_jpeg_bytes\": %.0f, \"raw_tjdecompress_images_per_s\": %.1f, "
      "\"folder_dataset_1thread_images_per_s\": %.1f, \"loader_2workers_images_per_s\": %.1f}\n",
      static_cast<long long>(size), channels, static_cast<long long>(n), double(bytes) / double(n),
      double(n) / raw_s, double(seen) / folder_s, double(loaded) / loader_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ts::RuntimeOptions runtime;  // configured as the CLI does (threads = cores, malloc tuning)
  ts::configure_process(runtime);
  if (const int threads = std::stoi(arg(argc, argv, "--threads", "0")); threads > 0)
    torch::set_num_threads(threads);
  const std::string mode = arg(argc, argv, "--mode", "augment");
  if (mode == "augment") return bench_augment(argc, argv);
  if (mode == "jpeg") return bench_jpeg(argc, argv);
  std::fprintf(stderr, "unknown --mode %s (augment or jpeg)\n", mode.c_str());
  return 2;
}
