// Importance sampling of one MLP's blocks during training (issue 10, "capacity where the error is"): a share of
// the draws goes to each block in proportion to its running RMS error, the rest stays uniform, and every sample is
// weighted by 1 / (blocks x its block's probability), so the loss (and its gradient) keep the expectation of
// uniform sampling: the objective stays the MSE that PSNR measures, with less variance where the error is.
// Used by both trainers (the fused CPU one per MLP, the LibTorch one per MLP of the batch).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ecnr {
namespace kernels {

class BlockImportance {
public:
  /// n blocks; `share` of the draws by error (0 < share < 1 keeps every probability at least (1 - share) / n,
  /// so no weight exceeds 1 / (1 - share)).
  void reset(size_t n, float share) {
    share_ = share;
    err_.assign(n, 1.0f);
    seen_.assign(n, 0);
    sum_.assign(n, 0.0f);
    count_.assign(n, 0);
    prob_.assign(n, 1.0f / float(n));
    cdf_.assign(n, 0.0);
    update();
  }

  /// A block by a uniform 64-bit random number; *weight: the sample's loss weight factor.
  size_t draw(uint64_t r, float* weight) const {
    const double u = double(r >> 11) * 0x1p-53;
    const size_t i = size_t(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    const size_t k = std::min(i, prob_.size() - 1);
    *weight = 1.0f / (float(prob_.size()) * prob_[k]);
    return k;
  }

  /// One sample's squared error (times its block's loss weight, without the importance factor).
  void observe(size_t block, float squaredError) {
    sum_[block] += squaredError;
    ++count_[block];
  }

  /// Folds the step's observations into the running errors and rebuilds the probabilities.
  void endStep() {
    for (size_t i = 0; i < err_.size(); ++i) {
      if (count_[i] == 0) continue;
      const float mean = sum_[i] / float(count_[i]);
      err_[i] = seen_[i] ? (1.0f - kEma) * err_[i] + kEma * mean : mean;
      seen_[i] = 1;
      sum_[i] = 0.0f;
      count_[i] = 0;
    }
    update();
  }

  float probability(size_t block) const { return prob_[block]; }

private:
  static constexpr float kEma = 0.2f;  // a block is drawn a few dozen times a step: its error settles in ~5 steps

  void update() {
    double total = 0;
    for (float e : err_) total += std::sqrt(double(std::max(e, 0.0f)));
    const double n = double(err_.size());
    double acc = 0;
    for (size_t i = 0; i < err_.size(); ++i) {
      const double byError = total > 0 ? std::sqrt(double(std::max(err_[i], 0.0f))) / total : 1.0 / n;
      prob_[i] = float((1.0 - share_) / n + share_ * byError);
      acc += prob_[i];
      cdf_[i] = acc;
    }
    for (double& c : cdf_) c /= acc;
  }

  float share_ = 0;
  std::vector<float> err_, sum_;
  std::vector<uint8_t> seen_;
  std::vector<uint32_t> count_;
  std::vector<float> prob_;
  std::vector<double> cdf_;
};

}  // namespace kernels
}  // namespace ecnr
