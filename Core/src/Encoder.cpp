#include "ecnr/Encoder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <tuple>
#include <sstream>

#include "ecnr/Archive.h"
#include "ecnr/Assignment.h"
#include "ecnr/Blocks.h"
#include "ecnr/BoundaryCNN.h"
#include "ecnr/Decoder.h"
#include "ecnr/Ensemble.h"
#include "ecnr/FieldSource.h"
#include "ecnr/Pyramid.h"
#include "ecnr/Quality.h"
#include "ecnr/Series.h"
#include "ecnr/SizeModel.h"

namespace ecnr {

namespace {

// 2 (v - lo) / (hi - lo) - 1, in double as Model::toData inverts it (no overflow near the float limits).
void normalizeInPlace(float* v, int64_t n, float lo, float hi) {
  const double range = double(hi) - double(lo);
  for (int64_t i = 0; i < n; ++i) v[i] = range > 0 ? float(2.0 * (double(v[i]) - lo) / range - 1.0) : 0.0f;
}

/// One time step of a scale-sized field into out (a 3D array of the scale's dims).
using StepReader = std::function<void(int64_t t, float* out)>;

StepReader stepsOf(const Field& f) {
  return [&f](int64_t t, float* out) { std::copy_n(f.step(t), f.dims.voxelsPerStep(), out); };
}

// input - U(coarse), one step of `dims` at a time (the reader owns its upsampler and base step; `coarse` must
// outlive it).
StepReader minusUpsampled(const StepReader& input, const Field& coarse, const HalvedAxes& halved, const Dims4& dims) {
  auto up = std::make_shared<StepUpsampler>(coarse, halved, dims);
  auto base = std::make_shared<std::vector<float>>(size_t(dims.voxelsPerStep()));
  return [input, up, base](int64_t t, float* out) {
    input(t, out);
    up->step(t, base->data());
    for (size_t k = 0; k < base->size(); ++k) out[k] -= (*base)[k];
  };
}

// Features for k-means: the normalized block averaged down to at most maxDim values, so clustering cost does not
// grow with the block size.
std::vector<float> poolFeatures(const TrainingSet& set, int64_t maxDim, int* dim) {
  std::array<int, 3> f{1, 1, 1};
  auto pooled = [&]() {
    return int64_t((set.blockDims[0] + f[0] - 1) / f[0]) * ((set.blockDims[1] + f[1] - 1) / f[1]) *
           ((set.blockDims[2] + f[2] - 1) / f[2]);
  };
  while (pooled() > maxDim) {
    int axis = 0;  // halve the axis with the most pooled cells left
    for (int k = 0; k < 3; ++k)
      if (set.blockDims[size_t(k)] / f[size_t(k)] > set.blockDims[size_t(axis)] / f[size_t(axis)]) axis = k;
    f[size_t(axis)] *= 2;
  }
  const std::array<int, 3> pd{(set.blockDims[0] + f[0] - 1) / f[0], (set.blockDims[1] + f[1] - 1) / f[1],
                              (set.blockDims[2] + f[2] - 1) / f[2]};
  *dim = pd[0] * pd[1] * pd[2];
  const int64_t V = set.voxelsPerBlock();
  std::vector<float> out(size_t(set.blockCount() * *dim), 0.0f);
  std::vector<float> count(size_t(*dim), 0.0f);
  for (int z = 0; z < set.blockDims[2]; ++z)
    for (int y = 0; y < set.blockDims[1]; ++y)
      for (int x = 0; x < set.blockDims[0]; ++x)
        count[size_t((z / f[2] * pd[1] + y / f[1]) * pd[0] + x / f[0])] += 1;
#pragma omp parallel for
  for (int64_t b = 0; b < set.blockCount(); ++b) {
    float* dst = out.data() + b * *dim;
    for (int z = 0; z < set.blockDims[2]; ++z)
      for (int y = 0; y < set.blockDims[1]; ++y)
        for (int x = 0; x < set.blockDims[0]; ++x)
          dst[(z / f[2] * pd[1] + y / f[1]) * pd[0] + x / f[0]] += set.value(b * V + (int64_t(z) * set.blockDims[1] + y) * set.blockDims[0] + x);
    for (int k = 0; k < *dim; ++k) dst[k] /= count[size_t(k)];
  }
  return out;
}

// Effective blocks of one scale's target: every block at the coarsest scale, elsewhere only those whose mean
// squared residual exceeds the threshold. Fills the block table (min/max, on the scale's range grid when one is
// set: min rounded down, max up, and the block normalized with them) and the normalized training values.
void selectBlocks(const StepReader& target, const BlockGrid& grid, bool keepAll, float threshold, bool half,
                  ScaleModel& scale, TrainingSet& set, int64_t* totalBlocks) {
  const int64_t V = grid.voxelsPerBlock();
  std::vector<float> buf(static_cast<size_t>(V)), step(size_t(grid.dims.voxelsPerStep()));
  const RangeGrid rg{scale.rangeLo, scale.rangeStep};
  *totalBlocks = grid.blocksPerStep() * grid.dims.t;
  // Room for every block: untouched capacity costs address space, not memory, and the vector never regrows
  // (a doubling would briefly hold twice the training values).
  (half ? set.halfValues.reserve(size_t(*totalBlocks) * size_t(V)) : set.values.reserve(size_t(*totalBlocks) * size_t(V)));
  for (int64_t t = 0; t < grid.dims.t; ++t) {
    target(t, step.data());
    for (int64_t b = 0; b < grid.blocksPerStep(); ++b) {
      extractBlock(step.data(), grid, b, buf.data());
      if (!keepAll && blockMeanSquare(grid, b, buf.data()) <= threshold) continue;
      const auto [lo, hi] = std::minmax_element(buf.begin(), buf.end());
      BlockRecord r;
      r.block = uint32_t(b);
      r.t = uint32_t(t);
      r.minValue = rg.step > 0 ? rg.value(rg.below(*lo)) : *lo;
      r.maxValue = rg.step > 0 ? rg.value(rg.above(*hi)) : *hi;
      scale.blocks.push_back(r);
      const float range = r.maxValue - r.minValue;
      for (float v : buf) {
        const float x = range > 0 ? 2.0f * (v - r.minValue) / range - 1.0f : 0.0f;
        if (half) set.halfValues.push_back(floatToHalf(x));
        else set.values.push_back(x);
      }
      set.validDims.push_back(grid.validDims(b));
    }
  }
}

// The scale's range grid (RangeGrid::covering its target's min and max), one pass over the target.
void setRangeGrid(const StepReader& target, const Dims4& dims, ScaleModel& scale) {
  std::vector<float> step(size_t(dims.voxelsPerStep()));
  float lo = HUGE_VALF, hi = -HUGE_VALF;
  for (int64_t t = 0; t < dims.t; ++t) {
    target(t, step.data());
    const auto [a, b] = std::minmax_element(step.begin(), step.end());
    lo = std::min(lo, *a);  // the first smallest and the last largest, as one minmax_element over the scale
    if (!(*b < hi)) hi = *b;
  }
  const RangeGrid rg = RangeGrid::covering(lo, hi);
  scale.rangeLo = rg.lo;
  scale.rangeStep = rg.step;
}

// V_i - U(V_{i+1}) for every level but the coarsest, which is kept as it is: what each scale would have to fit
// if the coarser scales were perfect. Used to predict how many blocks each scale keeps. The finest (V_0, the
// size of the input) is computed step by step by `finest`; levels[0] is not held.
ResidualSteps openLoopResiduals(const std::vector<Field>& levels, const PyramidPlan& plan, const StepReader& finest) {
  auto coarse = std::make_shared<std::vector<Field>>();
  for (size_t i = 1; i + 1 < levels.size(); ++i) {
    Field r = levels[i];
    const Field up = upsample(levels[i + 1], plan.halved[i + 1], levels[i].dims);
    for (size_t k = 0; k < r.values.size(); ++k) r.values[k] -= up.values[k];
    coarse->push_back(std::move(r));
  }
  ResidualSteps res;
  res.dims = plan.dims;
  res.read = [coarse, &levels, finest](int i, int64_t t, float* out) {
    if (i == 0) return finest(t, out);
    const Field& f = size_t(i) + 1 < levels.size() ? (*coarse)[size_t(i - 1)] : levels[size_t(i)];
    std::copy_n(f.step(t), f.dims.voxelsPerStep(), out);
  };
  return res;
}

// (max - min)^2 per block, scaled to mean 1 so the learning rate keeps its meaning.
std::vector<float> rangeWeights(const std::vector<BlockRecord>& blocks) {
  std::vector<float> w;
  double sum = 0;
  for (const BlockRecord& b : blocks) {
    const double r = double(b.maxValue) - b.minValue;
    w.push_back(float(r * r));
    sum += r * r;
  }
  const double mean = blocks.empty() ? 1.0 : sum / double(blocks.size());
  for (float& x : w) x = mean > 0 ? float(x / mean) : 1.0f;
  return w;
}

// Capacity where the error is (issue 10): each block's weight in the assignment (assignBlocksByWeight), its RMS
// about its mean in the scale's units (the training values are normalized to the block's range) to the power
// `exponent`, so that hard blocks share an MLP with fewer others.
std::vector<float> difficultyWeights(const TrainingSet& set, const std::vector<BlockRecord>& blocks, double exponent) {
  std::vector<float> w;
  const int64_t V = set.voxelsPerBlock();
  const int bx = set.blockDims[0], by = set.blockDims[1];
  for (int64_t b = 0; b < set.blockCount(); ++b) {
    const auto& v = set.validDims[size_t(b)];
    double sum = 0, squares = 0;
    for (int z = 0; z < v[2]; ++z)
      for (int y = 0; y < v[1]; ++y)
        for (int x = 0; x < v[0]; ++x) {
          const double val = set.value(b * V + x + int64_t(bx) * (y + int64_t(by) * z));
          sum += val, squares += val * val;
        }
    const double count = double(v[0]) * v[1] * v[2], mean = sum / count;
    const double range = double(blocks[size_t(b)].maxValue) - blocks[size_t(b)].minValue;
    const double rms = std::sqrt(std::max(0.0, squares / count - mean * mean)) * range / 2;
    w.push_back(float(std::pow(rms, exponent)));
  }
  return w;
}

// Shared codes (MlpShape::codeSteps, issue 10): each block's code and time input, so that the blocks of one
// spatial block over one group of steps train one latent code.
void shareCodes(const ScaleModel& scale, int codeSteps, TrainingSet& set) {
  const std::vector<uint32_t> slot = codeSlots(scale, codeSteps, &set.codeCount);
  set.codeOfBlock.assign(slot.begin(), slot.end());
  set.blockTime.clear();
  for (const BlockRecord& r : scale.blocks) set.blockTime.push_back(codeTime(r.t, codeSteps));
}

// The assignment with shared codes: the blocks of a code go to one MLP (they train one code), so the codes are
// assigned, each by its blocks' mean features and weighing their count (or summed weights): MLPs still get equal
// shares of blocks. Returns each block's MLP.
std::vector<int> assignCodes(const std::vector<float>& feat, int dim, const TrainingSet& set, int64_t mlps,
                             uint64_t seed, const std::vector<float>& weights, int* mlpCount) {
  const int64_t codes = set.codeCount, n = set.blockCount();
  std::vector<float> mean(size_t(codes) * size_t(dim), 0.0f), weight(size_t(codes), 0.0f);
  std::vector<int> members(size_t(codes), 0);
  for (int64_t b = 0; b < n; ++b) {
    const size_t c = size_t(set.codeOfBlock[size_t(b)]);
    for (int i = 0; i < dim; ++i) mean[c * size_t(dim) + size_t(i)] += feat[size_t(b) * size_t(dim) + size_t(i)];
    weight[c] += weights.empty() ? 1.0f : weights[size_t(b)];
    ++members[c];
  }
  for (size_t c = 0; c < size_t(codes); ++c)
    for (int i = 0; i < dim; ++i) mean[c * size_t(dim) + size_t(i)] /= float(members[c]);
  const std::vector<int> ofCode =
      assignBlocksByWeight(mean, codes, dim, std::min(mlps, codes), seed, weight, mlpCount);
  std::vector<int> ofBlock(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; ++b) ofBlock[size_t(b)] = ofCode[size_t(set.codeOfBlock[size_t(b)])];
  return ofBlock;
}

// PSNR in the encoder's normalized units (range 2) from a sum of squared errors over n values.
double psnrOfSquares(double se, double n) {
  const double mse = se / n;
  return mse > 0 ? 20.0 * std::log10(2.0) - 10.0 * std::log10(mse) : 999.0;
}

double sumSquares(const float* a, const float* b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - b[i];
    se += d * d;
  }
  return se;
}

double psnrNormalized(const Field& target, const Field& recon) {
  return psnrOfSquares(sumSquares(target.values.data(), recon.values.data(), target.values.size()),
                       double(target.values.size()));
}

// PSNR of a decode against its target, both read step by step.
double psnrOfSteps(const Dims4& d, const StepReader& target, const StepReader& decoded, const Progress& progress) {
  std::vector<float> a(size_t(d.voxelsPerStep())), b(a.size());
  double se = 0;
  for (int64_t t = 0; t < d.t; ++t) {
    progress.checkCancel();
    target(t, a.data());
    decoded(t, b.data());
    se += sumSquares(a.data(), b.data(), a.size());
  }
  return psnrOfSquares(se, double(d.count()));
}

// Share of the job's progress bar per scale: proportional to its training work (voxels x epochs).
std::vector<double> progressShares(const PyramidPlan& plan, const ResolvedSettings& r) {
  const int S = int(plan.dims.size());
  std::vector<double> w(static_cast<size_t>(S));
  double sum = 0;
  for (int p = 0; p < S; ++p) {
    w[size_t(p)] = double(plan.dims[size_t(S - 1 - p)].count()) * std::max(1, r.epochs[size_t(p)]);
    sum += w[size_t(p)];
  }
  for (double& x : w) x /= sum;
  return w;
}

constexpr double kRdSlopeDb = 4.0;

// The boundary CNN learns the correction from the finest decode (what the decoder will produce, normalized
// units) to the original; it is kept only when it lowers the error. Both are read step by step (the decode is
// computed again for each pass: it is never held whole).
void trainCnn(Model& model, const Dims4& d, const StepReader& decoded, const StepReader& original,
              const EncoderSettings& s, const Progress& progress, EncodeReport& rep) {
  Timer t;
  BoundaryCnnOptions o;
  o.channels = s.cnnChannels;
  o.steps = s.cnnSteps;
  o.bits = s.cnnBits;
  o.seed = s.seed;
  // One LibTorch thread: its OpenMP workers spin, and with the cores shared (ctest -j, MPI ranks, other jobs)
  // two threads ran about 10x slower than one; on an idle 2-core machine one thread loses little here.
  o.threads = 1;
  o.comm = s.comm;
  progress.report(1.0, "training the boundary CNN");
  BoundaryCnn cnn = trainBoundaryCnn(
      d, [&](int64_t step, float* dec, float* orig) { decoded(step, dec), original(step, orig); }, o, progress);
  Field one(Dims4{d.x, d.y, d.z, 1});
  rep.psnrAfterCnn = psnrOfSteps(d, original, [&](int64_t step, float* out) {
    decoded(step, one.values.data());
    applyBoundaryCnn(cnn, one);
    std::copy(one.values.begin(), one.values.end(), out);
  }, progress);
  rep.cnnSeconds = t.seconds();
  // Kept when its gain beats what its bytes would buy elsewhere: about kRdSlopeDb per doubling of the archive
  // (the slope of ECNR's own rate-distortion curve near CR 100-300, BENCHMARKS.md).
  const double modelBytes = double(serializeArchive({model}).size());
  const double cnnBytes = double(serializeBoundaryCnn(cnn).size());
  const double worth = kRdSlopeDb * std::log2((modelBytes + cnnBytes) / modelBytes);
  if (!cnn.isIdentity() && rep.psnrAfterCnn - rep.psnrBeforeCnn > worth) model.cnn = std::move(cnn);
  std::ostringstream msg;
  msg << "boundary CNN: PSNR " << rep.psnrBeforeCnn << " -> " << rep.psnrAfterCnn << " dB, " << rep.cnnSeconds << " s"
      << (model.hasCnn() ? "" : " (not kept)");
  progress.report(1.0, msg.str());
}

}  // namespace

Model encode(const Field& field, const GridMeta& meta, const EncoderSettings& settings, const Progress& progress,
             EncodeReport* report) {
  if (settings.mode == QualityMode::Expert) return encodeNetwork(field, meta, settings, progress, report);
  return encodeWithQuality(field, meta, settings, progress, report);
}

Model encode(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
             const Progress& progress, EncodeReport* report) {
  if (settings.mode == QualityMode::Expert) return encodeNetwork(source, meta, settings, progress, report);
  if (const Field* f = source.field()) return encodeWithQuality(*f, meta, settings, progress, report);
  return encodeWithQuality(readAll(source), meta, settings, progress, report);
}

std::vector<Model> encodeWindows(const Field& field, const GridMeta& meta, const EncoderSettings& settings,
                                 int64_t windowSteps, const Progress& progress, std::vector<EncodeReport>* reports) {
  return encodeWindows(MemorySource(field), meta, settings, windowSteps, progress, reports);
}

std::vector<Model> encodeWindows(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
                                 int64_t windowSteps, const Progress& progress, std::vector<EncodeReport>* reports) {
  const Dims4 dims = source.dims();
  validateDims(dims);
  if (!meta.times.empty() && int64_t(meta.times.size()) != dims.t)
    throw Error("time values: " + std::to_string(meta.times.size()) + " given for " + std::to_string(dims.t) + " steps");
  const int64_t T = dims.t;
  const int64_t w = windowSteps <= 0 || windowSteps >= T ? T : windowSteps;
  const int64_t count = (T + w - 1) / w;
  std::vector<Model> out;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t first = k * w, n = std::min(w, T - first);
    GridMeta partMeta = meta;
    if (!meta.times.empty()) partMeta.times.assign(meta.times.begin() + first, meta.times.begin() + first + n);
    if (count > 1)
      progress.report(double(k) / double(count), "time window " + std::to_string(k + 1) + "/" + std::to_string(count) +
                                                     ": steps " + std::to_string(first) + "-" + std::to_string(first + n - 1));
    EncodeReport rep;
    if (count == 1) {
      out.push_back(encode(source, partMeta, settings, progress, &rep));  // the whole series: no window view
    } else {
      // A window of an in-memory field is read in place (the quality modes want a Field: they get the window's).
      const WindowSource part(source, first, n);
      out.push_back(encode(part, partMeta, settings, progress, &rep));
    }
    out.back().firstStep = first;
    if (reports) reports->push_back(rep);
  }
  return out;
}

Model encodeNetwork(const Field& field, const GridMeta& meta, const EncoderSettings& settings, const Progress& progress,
                    EncodeReport* report) {
  return encodeNetwork(MemorySource(field), meta, settings, progress, report);
}

Model encodeNetwork(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
                    const Progress& progress, EncodeReport* report) {
  Timer timer;
  const Dims4 dims = source.dims();
  validateDims(dims);
  if (!meta.times.empty() && int64_t(meta.times.size()) != dims.t)
    throw Error("time values: " + std::to_string(meta.times.size()) + " given for " + std::to_string(dims.t) + " steps");
  ResolvedSettings r = resolveSettings(settings, dims);
  const PyramidPlan plan = planPyramid(dims, r.s.scales, r.s.minAxisLength);
  const int S = int(plan.dims.size());

  Model model;
  model.dims = dims;
  model.meta = meta;
  std::tie(model.dataMin, model.dataMax) = finiteRange(source);  // refuses NaN / Inf
  model.shape.latentDim = r.s.latentDim;
  model.shape.latentGrid = r.s.latentGrid;
  model.shape.codeSteps = r.s.codeSteps;
  model.shape.hidden = r.s.hidden;
  model.shape.sineLayers = r.s.sineLayers;
  model.shape.omega0 = r.s.omega0;

  // Pyramid of targets, finest first: V_0 = normalized input, V_{i+1} = D(V_i). V_0, the size of the input, is
  // never held: it is read and normalized step by step from the source whenever a pass needs it.
  const float lo = model.dataMin, hi = model.dataMax;
  const StepReader input = [&source, lo, hi, n = dims.voxelsPerStep()](int64_t t, float* out) {
    source.readStep(t, out);
    normalizeInPlace(out, n, lo, hi);
  };
  std::vector<Field> levels(static_cast<size_t>(S));
  if (S > 1) levels[1] = downsample(source, plan.halved[1], [lo, hi](float* v, int64_t n) { normalizeInPlace(v, n, lo, hi); });
  for (int i = 2; i < S; ++i) levels[size_t(i)] = downsample(levels[size_t(i - 1)], plan.halved[size_t(i)]);

  const bool chooseBlocks = settings.blockDims[0] <= 0 || settings.blockDims[1] <= 0 || settings.blockDims[2] <= 0;
  if (chooseBlocks) {
    // V_0 - U(V_1), step by step (S = 1: the single scale is the coarsest, nothing to read).
    const StepReader finest = S > 1 ? minusUpsampled(input, levels[1], plan.halved[1], dims) : input;
    r.blockDims = chooseBlockDims(openLoopResiduals(levels, plan, finest), r);
  }
  EncodeReport rep;
  rep.blockDims = r.blockDims;
  const std::vector<double> share = progressShares(plan, r);
  double done = 0;
  Field recon;  // the reconstruction of the last scale done, while it is a coarse one
  std::unique_ptr<StepUpsampler> finestUp;
  StepReader finestDecoded;  // the finest scale's reconstruction, step by step, once it is trained
  std::vector<uint32_t> finestCodes;  // its blocks' latent codes (blockCodes), for finestDecoded
  const bool constant = !(model.dataMax > model.dataMin);
  for (int p = 0; p < S; ++p) {
    const int i = S - 1 - p;  // plan index, 0 = finest
    progress.checkCancel();
    ScaleModel scale;
    scale.dims = plan.dims[size_t(i)];
    scale.halved = plan.halved[size_t(i)];  // relative to the next finer scale
    scale.blockDims = r.blockDims;
    scale.precision = r.s.precision;
    const BlockGrid grid = makeBlockGrid(scale.dims, r.blockDims);
    // Closed loop: the residual is taken against what the decoder will reconstruct, not the ideal coarse level.
    // A coarse scale's target is held while its blocks are selected; the finest scale's (the size of the input)
    // is computed step by step: V_0 - U(coarser reconstruction). The blocks' training values are the one copy of
    // the scale kept while the MLPs train.
    Field target;
    StepReader targetStep;
    if (i > 0) {
      target = levels[size_t(i)];
      if (p > 0) {
        const Field b = upsample(recon, model.scales.back().halved, scale.dims);
        for (size_t k = 0; k < target.values.size(); ++k) target.values[k] -= b.values[k];
      }
      targetStep = stepsOf(target);
    } else {
      targetStep = p == 0 ? input : minusUpsampled(input, recon, model.scales.back().halved, scale.dims);
    }
    if (r.s.quantizeRanges) setRangeGrid(targetStep, scale.dims, scale);
    TrainingSet set;
    set.blockDims = r.blockDims;
    ScaleReport sr;
    sr.dims = scale.dims;
    // The finest scale's training values in half precision when they would be large (memory, not accuracy: a
    // block-normalized half is within 2^-11, some 80 dB below what the MLPs reach).
    const bool half = i == 0 && useHalfTrainingValues(dims, r);
    if (!constant) selectBlocks(targetStep, grid, p == 0, r.s.threshold, half, scale, set, &sr.totalBlocks);
    target = Field();
    targetStep = StepReader();  // its upsampler and base step go too
    if (r.s.rangeWeightedLoss) set.lossWeight = rangeWeights(scale.blocks);
    // k-means features: blocks of up to 512 voxels are clustered on their training values as they are (no copy:
    // with 8^3 blocks that copy was the size of the input); larger ones pooled to 512 values, to 64 for a large
    // assignment (Assignment.h).
    const int64_t n = set.blockCount();
    const int64_t mlpsWanted = i == 0 && r.s.finestMlps > 0 ? r.s.finestMlps
                                                            : (n + r.blocksPerMlp[size_t(p)] - 1) / r.blocksPerMlp[size_t(p)];
    const int64_t maxFeatures = largeAssignment(n, mlpsWanted) || set.half() ? 64 : 512;
    int features = int(set.voxelsPerBlock());
    std::vector<float> pooled;
    if (n > 0 && (set.voxelsPerBlock() > maxFeatures || set.half())) pooled = poolFeatures(set, maxFeatures, &features);
    const std::vector<float>& feat = pooled.empty() ? set.values : pooled;
    const std::vector<float> weights =
        r.s.capacityByError > 0 ? difficultyWeights(set, scale.blocks, r.s.capacityByError) : std::vector<float>{};
    const bool sharedCodes = model.shape.codeSteps > 1 && n > 0;
    if (sharedCodes) shareCodes(scale, model.shape.codeSteps, set);
    set.mlpOfBlock = sharedCodes ? assignCodes(feat, std::max(1, features), set, mlpsWanted, r.s.seed + uint64_t(p),
                                               weights, &set.mlpCount)
                                 : assignBlocksByWeight(feat, n, std::max(1, features), mlpsWanted,
                                                        r.s.seed + uint64_t(p), weights, &set.mlpCount);
    pooled = std::vector<float>();
    for (int64_t b = 0; b < set.blockCount(); ++b) scale.blocks[size_t(b)].mlp = uint32_t(set.mlpOfBlock[size_t(b)]);
    TrainOptions o;
    o.epochs = r.epochs[size_t(p)];
    o.batchPerMlp = r.s.batchPerMlp;
    o.learningRate = r.s.learningRate;
    o.weightDecay = r.s.weightDecay;
    o.lrDecayFactor = r.s.lrDecayFactor;
    o.importance = r.s.importance;
    o.epochOfEqualShare = !weights.empty() || sharedCodes;
    o.seed = r.s.seed * 1000003ULL + uint64_t(p);
    o.threads = r.s.threads;
    o.device = r.s.device;
    o.trainer = r.s.trainer;
    o.comm = r.s.comm;
    if (r.s.pruneScales <= 0 || p >= S - r.s.pruneScales) {
      o.deep.pruneAt = r.pruneAt;
      o.deep.pruneSparsity = r.pruneSparsity;
    }
    o.deep.lambda = r.s.pruneLambda;
    o.deep.bits = r.s.quantBits;
    o.deep.local = r.s.localQuantization;
    o.deep.latentBits = r.s.quantBits > 0 ? r.s.latentBits : 0;
    o.deep.biasBits = r.s.biasBits;
    o.deep.valuesPerEntry = r.s.valuesPerSharedWeight;
    o.deep.codebookRateSlope = r.s.codebookRateSlope;
    o.deep.codebookRateGroups = r.s.codebookRateGroups;
    o.deep.fineTuneEpochs = r.s.quantBits > 0 ? int(std::ceil(r.s.fineTuneFraction * o.epochs)) : 0;
    o.deep.fineTuneLr = r.s.fineTuneLr;
    o.deep.quantAwareFraction = r.s.quantAwareFraction;
    o.progressBegin = done;
    o.progressEnd = done + share[size_t(p)];
    o.label = "scale " + std::to_string(p + 1) + "/" + std::to_string(S);
    std::ostringstream msg;
    msg << o.label << ": " << scale.dims.str() << ", " << set.blockCount() << "/" << sr.totalBlocks
        << " effective blocks, " << set.mlpCount << " MLPs";
    progress.report(done, msg.str());
    const TrainStats ts = trainEnsemble(set, model.shape, o, scale, progress);
    const int64_t effective = set.blockCount();
    const int mlps = set.mlpCount;
    set = TrainingSet();
    applyStoragePrecision(scale, model.shape);
    model.scales.push_back(std::move(scale));
    if (i > 0) recon = reconstructScale(model, p, p == 0 ? nullptr : &recon);
    done += share[size_t(p)];

    sr.effectiveBlocks = effective;
    sr.mlps = mlps;
    sr.epochs = o.epochs;
    sr.trainSeconds = ts.seconds;
    sr.trainLoss = ts.finalLoss;
    sr.sparsity = ts.sparsity;
    sr.samplesPerSecond = ts.seconds > 0 ? double(ts.samples) / ts.seconds : 0;
    if (i > 0) {
      sr.psnrAfter = psnrNormalized(levels[size_t(i)], recon);
    } else {
      // The finest reconstruction, as reconstructScale computes it, one step at a time: U(coarser) + blocks.
      if (p > 0) finestUp = std::make_unique<StepUpsampler>(recon, model.scales[size_t(p - 1)].halved, dims);
      finestCodes = blockCodes(model, p);
      finestDecoded = [&, p](int64_t t, float* out) {
        if (finestUp) finestUp->step(t, out);
        else std::fill_n(out, dims.voxelsPerStep(), 0.0f);
        addBlockOutputs(model, p, t, out, nullptr, &finestCodes);
      };
      sr.psnrAfter = psnrOfSteps(dims, input, finestDecoded, progress);
    }
    std::ostringstream fin;
    fin << o.label << " done: PSNR " << sr.psnrAfter << " dB at this scale, " << ts.seconds << " s";
    progress.report(done, fin.str());
    rep.scales.push_back(sr);
  }
  if (r.s.boundaryCnn && !constant) {
    rep.psnrBeforeCnn = rep.scales.back().psnrAfter;
    trainCnn(model, dims, finestDecoded, input, r.s, progress, rep);
  }
  rep.seconds = timer.seconds();
  if (report) *report = rep;
  return model;
}

}  // namespace ecnr
