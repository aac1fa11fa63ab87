#pragma once
// Batched augmentation: transforms act on a whole batch with torch ops on the batch's device,
// one launch per op per batch (never a loop over images). Every random choice comes from an
// explicit generator, so the same seed gives the same augmented batch.
//
// Inputs are image batches x: float [B, C, H, W], normalized as (raw - mean) / std with raw in
// [0, 1] (PixelStats says which mean/std); transforms that need raw values (brightness,
// contrast) or a black border (rotation, crops) take the statistics into account.

#include <trainscope/data/dataset.h>

#include <memory>
#include <string>
#include <vector>

namespace trainscope::data {

// A batch -> batch function. Implementations are immutable after construction and thread-safe;
// all randomness comes from `gen`, a CPU generator (parameters are drawn on the CPU, a few
// numbers per image, and moved to the batch's device, so the result does not depend on the
// device). Throws DataError when the batch is not an image batch [B, C, H, W].
class Transform {
 public:
  virtual ~Transform() = default;
  virtual Batch apply(Batch batch, at::Generator& gen) const = 0;
  // The config item that builds this transform, e.g. "rotate(10)".
  virtual std::string describe() const = 0;
};

// Sampling used by geometric transforms.
enum class Interpolation { kNearest, kBilinear };

// Random affine resampling in one grid_sample: rotation by U(-degrees, degrees), integer
// translation by U{-max_shift_px..max_shift_px} pixels (crop with padding) or by a fraction of
// the size (translate_frac), isotropic scale U(scale_min, scale_max), mirroring, output
// out_h x out_w (0: the input's size). The border is filled with black (raw 0).
struct AffineOptions {
  double degrees = 0.0;
  int64_t max_shift_px = 0;
  double translate_frac = 0.0;
  double scale_min = 1.0, scale_max = 1.0;
  int64_t out_h = 0, out_w = 0;
  Interpolation mode = Interpolation::kNearest;
  double hflip_p = 0.0, vflip_p = 0.0;  // mirror with this probability (a flip fused in)
};

// The transforms by name; each is also a config item (parse_augmentation).
std::shared_ptr<Transform> random_affine(AffineOptions options, PixelStats stats = {});
// "hflip", "vflip": mirror each image with probability p.
std::shared_ptr<Transform> random_flip(bool horizontal, double p = 0.5);
// "resized_crop(size, min_scale=0.08)": torchvision's RandomResizedCrop (area fraction in
// [min_scale, 1], aspect ratio in [3/4, 4/3] log-uniform), bilinear, output size x size.
std::shared_ptr<Transform> random_resized_crop(int64_t size, double min_scale = 0.08,
                                               PixelStats stats = {});
// "brightness(b)": raw * U(1-b, 1+b), clamped to [0, 1].
std::shared_ptr<Transform> random_brightness(double b, PixelStats stats = {});
// "contrast(c)": blend with the image's mean gray by U(1-c, 1+c), clamped to [0, 1].
std::shared_ptr<Transform> random_contrast(double c, PixelStats stats = {});
// "erase(p=0.5)": torchvision's RandomErasing: with probability p a rectangle of area
// U(0.02, 0.33) of the image and aspect ratio log-U(0.3, 3.3) is set to 0 (the mean).
std::shared_ptr<Transform> random_erasing(double p = 0.5);
// "normalize(mean, std)": (x - mean) / std.
std::shared_ptr<Transform> normalize(double mean, double std);
// "mixup(alpha)", "cutmix(alpha)": blend each image with another of the batch (whole image or a
// box) by lambda ~ Beta(alpha, alpha); targets become class probabilities [B, classes], which
// the Trainer's cross-entropy accepts. Need integer class targets.
std::shared_ptr<Transform> mixup(double alpha, int64_t classes);
std::shared_ptr<Transform> cutmix(double alpha, int64_t classes);

// Applies transforms in order.
class Compose : public Transform {
 public:
  explicit Compose(std::vector<std::shared_ptr<Transform>> transforms)
      : transforms_(std::move(transforms)) {}
  Batch apply(Batch batch, at::Generator& gen) const override;
  std::string describe() const override;
  const std::vector<std::shared_ptr<Transform>>& transforms() const { return transforms_; }

 private:
  std::vector<std::shared_ptr<Transform>> transforms_;
};

// What parse_augmentation needs to know about the data.
struct AugmentContext {
  PixelStats stats;
  int64_t classes = 0;  // for mixup / cutmix
};

// Builds the pipeline of a config list such as {"hflip", "rotate(10)", "crop(28, pad=2)"}.
// Items: hflip[(p)], vflip[(p)], rotate(deg), crop([size,] pad=N), translate(frac), scale(lo, hi),
// resized_crop(size, min_scale=s), brightness(b), contrast(c), erase[(p=..)], normalize(m, s),
// mixup(alpha), cutmix(alpha). Consecutive geometric items (rotate, crop, translate, scale, and
// flips next to them) are fused into one resampling: one grid_sample per batch. An empty list gives
// nullptr. Throws ConfigError naming the item, its position and what was expected.
std::shared_ptr<Transform> parse_augmentation(const std::vector<std::string>& items,
                                              const AugmentContext& context = {});

// The generator for batch `batch` of `epoch`: augmentation depends only on (seed, epoch, batch),
// so a run resumed mid-epoch augments exactly as an uninterrupted one.
at::Generator augment_generator(uint64_t seed, int64_t epoch, int64_t batch);

// Functional forms, used by the transforms and pinned against torchvision by tests.
// Resamples x [B, C, H, W] with per-example 2x3 matrices [B, 2, 3] that map output pixel
// coordinates (relative to the output's centre) to input pixel coordinates (relative to the
// input's centre); outside the input reads `fill`.
torch::Tensor affine_sample(const torch::Tensor& x, const torch::Tensor& matrix, int64_t out_h,
                            int64_t out_w, Interpolation mode, double fill = 0.0);
// The same with a per-channel fill, broadcastable over [B, C, H, W] (PixelStats::black).
torch::Tensor affine_sample(const torch::Tensor& x, const torch::Tensor& matrix, int64_t out_h,
                            int64_t out_w, Interpolation mode, const torch::Tensor& fill);
// Rotates each image counter-clockwise by angles_deg[i] degrees about its centre (torchvision's
// rotate with the same interpolation).
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& angles_deg, Interpolation mode,
                     double fill = 0.0);

}  // namespace trainscope::data

namespace trainscope::data {

// A picture of what the model sees: the first `count` examples of `dataset` in the top row and
// `rows` augmented versions below (row r drawn with augment_generator(seed, 1, r)), as uint8
// [C, H', W'] with each cell scaled up `scale` times and 2-pixel gaps. `augment` may be null
// (originals only). Throws DataError for data that are not images.
torch::Tensor augmentation_grid(const Dataset& dataset, const Transform* augment, PixelStats stats,
                                int64_t count = 8, int64_t rows = 3, uint64_t seed = 0,
                                int64_t scale = 3);

}  // namespace trainscope::data
