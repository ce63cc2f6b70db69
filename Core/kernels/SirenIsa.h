// SirenIsa: the per-instruction-set entry points of the fused SIREN kernels (AVX-512, AVX2+FMA, portable), on
// plain arrays. SirenCpu.cpp and SirenTrainCpu.cpp pick one at run time; tests may force one to compare them.
// Every layer width is the hidden size padded to a multiple of 8 with zero weights (the padded neurons stay 0).
#pragma once

#include <cstddef>

namespace ecnr {
namespace kernels {

constexpr int kMaxSineLayers = 16;

/// One MLP prepared for decoding: sine layers are scaled by omega0 / pi (the sine takes x / pi), the block's latent
/// is folded into b0, the output layer is unscaled.
struct DecodeNet {
  int hidden = 24;     ///< padded
  int sineLayers = 3;
  /// Input rows of layer 0: the 3 coordinates, then (a latent grid, LatentGrid.h) each corner's weight, whose
  /// row of w0 holds that corner's code folded with the bias (the weights sum to 1, so b0 is then 0).
  int inRows = 3;
  const float* w0 = nullptr;  ///< inRows x hidden
  const float* b0 = nullptr;  ///< hidden
  const float* w[kMaxSineLayers] = {};  ///< layers 1..sineLayers-1: hidden x hidden, (in, out)
  const float* b[kMaxSineLayers] = {};
  const float* wOut = nullptr;  ///< hidden
  float bOut = 0;
  float* scratch = nullptr;     ///< 2 * hidden * lanes floats
};

/// One MLP prepared for one training step (see SirenTrainCpu.cpp).
struct TrainNet {
  int inDim = 11;
  int hidden = 24;  ///< padded
  int sineLayers = 3;
  float omega0 = 30;
  /// forward weights: layer l < sineLayers is (fanIn x hidden) scaled by omega0 / pi; layer sineLayers is the
  /// output column (hidden) and bias, unscaled
  const float* w[kMaxSineLayers + 1] = {};
  const float* b[kMaxSineLayers + 1] = {};
  /// transposed unscaled weights for the backward pass: layer l is (fanOut x fanIn)
  const float* wt[kMaxSineLayers + 1] = {};
  /// gradient accumulators (added to): gw[l] is (fanIn x fanOut), gb[l] (fanOut)
  float* gw[kMaxSineLayers + 1] = {};
  float* gb[kMaxSineLayers + 1] = {};
};

struct IsaKernels {
  const char* name;
  int lanes;  ///< floats per vector
  /// y[v] for n voxels (n a multiple of lanes) whose input rows (net.inRows: local coordinates, then corner
  /// weights) are coords[0..n), [n..2n), ...
  void (*decode)(const DecodeNet& net, const float* coords, int n, float* y);
  /// Forward + backward over n samples (n a multiple of lanes): x is (inDim x n), sample s contributes
  /// scale[s] * (y - target)^2 to the returned loss; gradients are added to net.gw / net.gb and the input
  /// gradient of the latent rows (inDim - 3) x n is written to dLatent. scratch: trainScratchFloats(net, n).
  double (*trainBatch)(const TrainNet& net, int n, const float* x, const float* target, const float* scale,
                       float* dLatent, float* scratch);
};

inline size_t trainScratchFloats(const TrainNet& net, int n) {
  return size_t(n) * size_t(2 * net.sineLayers * net.hidden + 2);
}

/// After trainBatch: the output gradient 2 scale[s] (y - target) of each of the n samples, kept in its scratch.
inline const float* trainOutputGradient(const TrainNet& net, int n, const float* scratch) {
  return scratch + size_t(2 * net.sineLayers) * size_t(net.hidden) * size_t(n);
}

namespace avx512 { extern const IsaKernels kKernels; }
namespace avx2 { extern const IsaKernels kKernels; }
namespace generic { extern const IsaKernels kKernels; }

enum class Isa { Auto, Generic, Avx2, Avx512 };

/// Whether this CPU (and this build) can run an instruction set.
bool isaSupported(Isa isa);
/// The kernels used by evalSirenBlock and the fused trainer: the best supported one unless forced.
const IsaKernels& activeKernels();
/// Forces an instruction set (Auto = best); returns false (and changes nothing) when it is not supported.
bool forceIsa(Isa isa);

}  // namespace kernels
}  // namespace ecnr
