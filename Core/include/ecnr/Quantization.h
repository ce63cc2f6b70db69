// Quantization: global quantization of a scale's MLPs (paper Sec. 3.5). Each parameter group (the weights of one
// layer, the biases of one layer, the latent codes) gets one codebook of 2^bits shared values over *all* MLPs of
// the scale (k-means on the unpruned values); every parameter becomes one of them. Local quantization (one codebook
// per MLP and group) is there for comparison (paper Table 5). Fine-tuning of the shared values is the trainer's job
// (Ensemble); this file builds the codebooks, the ids that tie parameters to them, and writes values back.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ecnr/Model.h"

namespace ecnr {

/// Deterministic 1D k-means: centroids initialized evenly between min and max (Deep Compression found the linear
/// init best for weights: it keeps the rare large values), Lloyd iterations on the sorted values. Returns at most k
/// sorted centroids (fewer when there are fewer distinct values); empty for no values.
std::vector<float> kmeans1d(std::vector<float> values, int k, int iterations = 40);

/// Entries of a group's codebook, at most maxEntries (2^bits): weights at most one per valuesPerEntry values (at
/// least 64), so a small group (few MLPs) does not spend more on its codebook than on its indices; biases up to
/// one per value.
int codebookSize(int64_t values, int maxEntries, bool biases, int valuesPerEntry = 2);

/// Position of the codebook entry nearest to v (codebook sorted ascending, not empty).
int32_t nearestIndex(const std::vector<float>& codebook, float v);

struct QuantizationOptions {
  int bits = 8;          ///< weights and biases: 2^bits values per codebook
  bool local = false;    ///< one codebook per MLP and group (the paper's ECNR* baseline) instead of per scale
  int latentBits = 0;    ///< latent codes: 0 = not quantized
  int valuesPerEntry = 2;  ///< weights: at most one codebook entry per this many values (codebookSize)
  int biasBits = 0;      ///< biases: 2^biasBits values per codebook (0 = bits): they sit inside sin(omega0 (Wx + b)),
                         ///< where an error turns into a phase shift, so they keep more values than the weights
  /// Per group, in SharedTable's order (weights and biases of each layer, then latents): the codebook's size
  /// instead of codebookSize's (0 or missing: codebookSize's). The rate-aware choice fills it.
  std::vector<int> groupEntries;
};

/// One shared table for the whole scale and the ids that tie every parameter to it (-1: pruned, stays 0).
/// Codebook ranges: group g's codebook k (k = MLP for local codebooks, else 0) is values[offset[g] + k * size[g] ...].
struct SharedTable {
  std::vector<float> values;
  std::vector<std::vector<int32_t>> weightId, biasId;  ///< model layout, per layer
  std::vector<int32_t> latentId;                       ///< empty when latents are not quantized
  std::vector<int64_t> offset, size;                   ///< per group: 2 * layer (weights), 2 * layer + 1 (biases), then latents
  bool local = false;
};

/// Builds the codebooks of a trained scale (zeros = pruned are left out and stay 0), rounds them to the scale's
/// storage precision, sets every value to its codebook entry and scale.codebooks; returns the ids for fine-tuning.
SharedTable quantizeScale(ScaleModel& scale, const MlpShape& shape, const QuantizationOptions& options);

/// Estimated bits of a quantized scale: each group's indices at their order-0 entropy, plus ~10 bits per codebook
/// entry (float16 codebooks are stored as coded differences, Archive).
double quantizedBits(const SharedTable& table);

/// Which groups the rate-aware choice may shrink.
enum RateAwareGroups : int { kRateWeights = 1, kRateBiases = 2, kRateLatents = 4, kRateAll = 7 };

/// Rate-aware codebook sizes (issue 10), QuantizationOptions::groupEntries: starting from codebookSize's, each
/// group's codebook (of those in `groups`) may shrink to 128 or 64 entries where that pays at the operating point.
/// `loss` is the scale's error for a quantized copy of `trained`; with the codec's curve locally MSE ~ rate^-slope,
/// a smaller codebook pays when its relative loss increase is below slope times its relative saving of the
/// scale's bits (quantizedBits). Groups are decided in order, each against the choices before it (2 loss
/// evaluations per group). Local codebooks keep codebookSize's (empty result).
std::vector<int> rateAwareEntries(const ScaleModel& trained, const MlpShape& shape, const QuantizationOptions& o,
                                  const std::function<double(const ScaleModel&)>& loss, double slope, int groups);

/// Writes fine-tuned shared values back: codebooks (rounded to the storage precision) and every parameter.
void applySharedValues(ScaleModel& scale, const MlpShape& shape, const SharedTable& table, std::vector<float> values);

}  // namespace ecnr
