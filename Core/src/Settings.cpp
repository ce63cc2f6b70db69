#include "ecnr/Settings.h"

#include <algorithm>
#include <cmath>

#include "ecnr/Pyramid.h"
#include "ecnr/SizeModel.h"

namespace ecnr {

EncoderSettings presetSettings(const std::string& name) {
  EncoderSettings s;
  if (name == "fast") {
    s.epochs = {30, 30, 40};
    s.targetRatio = 50;
  } else if (name == "default" || name.empty()) {
    s.epochs = {60, 60, 80};
    s.targetRatio = 50;
  } else if (name == "quality") {
    s.epochs = {150, 150, 200};
    s.targetRatio = 50;
    s.precision = WeightPrecision::Float32;
  } else if (name == "paper") {
    // What the paper (and the authors' code, where it is silent) does, at our epoch budget (its 500 per scale
    // would take hours here): b = 8/16/32, lr x 0.75 at each of the four pruning rounds, plain MSE, every scale
    // pruned to 30/40/45/50 %, 8-bit global quantization fine-tuned for 15 % of the epochs at lr 1e-5, float32
    // latent codes, shared values and block ranges, full-size codebooks, a 32-channel CNN quantized to 9 bits.
    s.epochs = {60, 60, 80};
    s.targetRatio = 50;
    s.seriesFinestBlocksPerMlp = 32;
    s.lrDecayFactor = 0.75f;
    s.rangeWeightedLoss = false;
    s.precision = WeightPrecision::Float32;
    s.pruning = true;
    s.pruneScales = 0;
    s.quantBits = 8;
    s.latentBits = 0;
    s.fineTuneFraction = 0.15;
    s.fineTuneLr = 1e-5f;
    s.quantizeRanges = false;
    s.cnnChannels = 32;
    s.codebookRateSlope = 0;  // codebooks of 2^8 entries, as the paper's
    s.capacityByError = 0;    // Algorithm 1: equal blocks per MLP
    s.codeSteps = 1;          // a latent code per block per step
  } else {
    throw Error("unknown preset '" + name + "' (expected fast, default, quality or paper)");
  }
  return s;
}

namespace {

// Stretches a per-scale list (coarsest first) to n entries by repeating its last value.
std::vector<int> fitToScales(std::vector<int> v, int n) {
  if (v.empty()) return v;
  v.resize(size_t(n), v.back());
  return v;
}

std::vector<int> defaultBlocksPerMlp(int scales, bool series, int seriesFinest) {
  std::vector<int> b;
  for (int p = 0; p < scales; ++p) {
    // Coarsest gets the fewest blocks per MLP (it carries the content); counts double towards the finest.
    // Series: 4/8/16 as in the authors' released Tangaroa config (the paper says 8/16/32); measured on the
    // 48^3 x 12 Gray-Scott series at equal ratio, 4/8/16 with 16^3 blocks beat 8/16/32 with 12^3 blocks by 0.8 dB.
    const int finestValue = series ? seriesFinest : 4;
    b.push_back(std::max(1, finestValue >> (scales - 1 - p)));
  }
  return b;
}

}  // namespace

bool useHalfTrainingValues(const Dims4& dims, const ResolvedSettings& r) {
  if (r.s.halfTrainingValues >= 0) return r.s.halfTrainingValues > 0;
  double bytes = 4.0 * double(dims.t);
  for (int a = 0; a < 3; ++a) {
    const double b = std::max(1, r.blockDims[size_t(a)]);
    bytes *= std::ceil(double(dims[a]) / b) * b;
  }
  return bytes > double(kHalfTrainingBytes);
}

ResolvedSettings resolveSettings(const EncoderSettings& in, const Dims4& dims) {
  validateDims(dims);
  if (in.scales < 1 || in.scales > 8) throw Error("scales must be in [1, 8]");
  if (in.latentDim < 0 || in.latentDim > 256) throw Error("latent size must be in [0, 256]");
  if (in.latentGrid != 1 && in.latentGrid != 2)
    throw Error("latent grid must be 1 (a code per block) or 2 (a code per block corner)");
  if (in.codeSteps < 1 || in.codeSteps > 1024) throw Error("steps per latent code must be in [1, 1024]");
  if (in.hidden < 1 || in.hidden > 1024) throw Error("hidden width must be in [1, 1024]");
  if (in.sineLayers < 1 || in.sineLayers > 16) throw Error("sine layers must be in [1, 16]");
  if (!(in.threshold >= 0)) throw Error("threshold must be >= 0");
  if (in.batchPerMlp < 16) throw Error("batch per MLP must be >= 16");
  if (!(in.importance >= 0 && in.importance <= 0.9f)) throw Error("importance share must be in [0, 0.9]");
  ResolvedSettings r;
  r.s = in;
  const PyramidPlan plan = planPyramid(dims, in.scales, in.minAxisLength);
  const int scales = int(plan.dims.size());
  r.s.scales = scales;
  if (dims.t == 1) r.s.codeSteps = 1;  // one step: nothing to share a code over (and no time input to add)
  r.blocksPerMlp = in.blocksPerMlp.empty() ? defaultBlocksPerMlp(scales, dims.t > 1, in.seriesFinestBlocksPerMlp)
                                           : fitToScales(in.blocksPerMlp, scales);
  if (in.seriesFinestBlocksPerMlp < 1) throw Error("blocks per MLP must be >= 1");
  for (int b : r.blocksPerMlp)
    if (b < 1) throw Error("blocks per MLP must be >= 1");
  if (in.finestMlps < 0) throw Error("the finest scale's MLP count must be >= 0");
  r.epochs = fitToScales(in.epochs.empty() ? presetSettings("default").epochs : in.epochs, scales);
  for (int e : r.epochs)
    if (e < 0) throw Error("epochs must be >= 0");
  if (in.quantBits < 0 || in.quantBits > 16 || in.latentBits < 0 || in.latentBits > 16 || in.biasBits < 0 ||
      in.biasBits > 16)
    throw Error("quantization bits must be in [0, 16]");
  if (in.valuesPerSharedWeight < 1) throw Error("values per shared weight must be >= 1");
  if (!(in.codebookRateSlope >= 0 && in.codebookRateSlope <= 100))
    throw Error("the codebook rate slope must be in [0, 100]");
  if (in.codebookRateGroups < 0 || in.codebookRateGroups > 7) throw Error("codebook rate groups must be in [0, 7]");
  if (!(in.fineTuneFraction >= 0 && in.fineTuneFraction <= 10)) throw Error("fine-tune fraction must be in [0, 10]");
  if (!(in.capacityByError >= 0 && in.capacityByError <= 4)) throw Error("capacity-by-error exponent must be in [0, 4]");
  if (!(in.quantAwareFraction >= 0 && in.quantAwareFraction <= 1))
    throw Error("quantization-aware fraction must be in [0, 1]");
  if (in.quantAwareFraction > 0 && (in.quantBits <= 0 || in.localQuantization))
    throw Error("quantization-aware training needs the scale's shared codebooks (--bits > 0, --quantization global)");
  if (in.pruning) {
    // The paper's rounds: time series at 150/225/300/375 of 500 epochs to 30/40/45/50 %; static volumes at 75 and
    // 115 of 200 to 20/30 %.
    const bool series = dims.t > 1;
    r.pruneAt = !in.pruneAt.empty() ? in.pruneAt : series ? std::vector<double>{0.3, 0.45, 0.6, 0.75}
                                                          : std::vector<double>{0.375, 0.575};
    r.pruneSparsity = !in.pruneSparsity.empty() ? in.pruneSparsity : series ? std::vector<double>{0.3, 0.4, 0.45, 0.5}
                                                                            : std::vector<double>{0.2, 0.3};
    if (r.pruneAt.size() != r.pruneSparsity.size()) throw Error("pruning: give one sparsity per round");
    for (size_t i = 0; i < r.pruneAt.size(); ++i)
      if (!(r.pruneAt[i] >= 0 && r.pruneAt[i] <= 1 && r.pruneSparsity[i] >= 0 && r.pruneSparsity[i] < 1))
        throw Error("pruning rounds must be in [0, 1] and sparsities in [0, 1)");
  }
  r.blockDims = in.blockDims;
  if (r.blockDims[0] <= 0 || r.blockDims[1] <= 0 || r.blockDims[2] <= 0) {
    r.blockDims = chooseBlockDims(dims, r);
  }
  for (int a = 0; a < 3; ++a) {
    if (r.blockDims[a] < 1) throw Error("block dims must be >= 1");
    r.blockDims[a] = int(std::min<int64_t>(r.blockDims[a], dims[a]));
  }
  return r;
}

}  // namespace ecnr
