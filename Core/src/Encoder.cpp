#include "ecnr/Encoder.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "ecnr/Archive.h"
#include "ecnr/Assignment.h"
#include "ecnr/Blocks.h"
#include "ecnr/BoundaryCNN.h"
#include "ecnr/Decoder.h"
#include "ecnr/Ensemble.h"
#include "ecnr/Pyramid.h"
#include "ecnr/Quality.h"
#include "ecnr/Series.h"
#include "ecnr/SizeModel.h"

namespace ecnr {

namespace {

Field normalize(const Field& f, float lo, float hi) {
  Field n(f.dims);
  const double range = double(hi) - double(lo);  // in double, as Model::toData (no overflow near the float limits)
  for (size_t i = 0; i < f.values.size(); ++i)
    n.values[i] = range > 0 ? float(2.0 * (double(f.values[i]) - lo) / range - 1.0) : 0.0f;
  return n;
}

// Features for k-means: the normalized block averaged down to at most ~512 values, so clustering cost does not
// grow with the block size.
std::vector<float> poolFeatures(const TrainingSet& set, int* dim) {
  std::array<int, 3> f{1, 1, 1};
  auto pooled = [&]() {
    return int64_t((set.blockDims[0] + f[0] - 1) / f[0]) * ((set.blockDims[1] + f[1] - 1) / f[1]) *
           ((set.blockDims[2] + f[2] - 1) / f[2]);
  };
  while (pooled() > 512) {
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
    const float* src = set.values.data() + b * V;
    float* dst = out.data() + b * *dim;
    for (int z = 0; z < set.blockDims[2]; ++z)
      for (int y = 0; y < set.blockDims[1]; ++y)
        for (int x = 0; x < set.blockDims[0]; ++x)
          dst[(z / f[2] * pd[1] + y / f[1]) * pd[0] + x / f[0]] += src[(int64_t(z) * set.blockDims[1] + y) * set.blockDims[0] + x];
    for (int k = 0; k < *dim; ++k) dst[k] /= count[size_t(k)];
  }
  return out;
}

// Effective blocks of one scale's target: every block at the coarsest scale, elsewhere only those whose mean
// squared residual exceeds the threshold. Fills the block table (min/max, on the scale's range grid when one is
// set: min rounded down, max up, and the block normalized with them) and the normalized training values.
void selectBlocks(const Field& target, const BlockGrid& grid, bool keepAll, float threshold, ScaleModel& scale,
                  TrainingSet& set, int64_t* totalBlocks) {
  const int64_t V = grid.voxelsPerBlock();
  std::vector<float> buf(static_cast<size_t>(V));
  const RangeGrid rg{scale.rangeLo, scale.rangeStep};
  *totalBlocks = grid.blocksPerStep() * target.dims.t;
  // Room for every block: untouched capacity costs address space, not memory, and the vector never regrows
  // (a doubling would briefly hold twice the training values).
  set.values.reserve(size_t(*totalBlocks) * size_t(V));
  for (int64_t t = 0; t < target.dims.t; ++t) {
    for (int64_t b = 0; b < grid.blocksPerStep(); ++b) {
      extractBlock(target, grid, t, b, buf.data());
      if (!keepAll && blockMeanSquare(grid, b, buf.data()) <= threshold) continue;
      const auto [lo, hi] = std::minmax_element(buf.begin(), buf.end());
      BlockRecord r;
      r.block = uint32_t(b);
      r.t = uint32_t(t);
      r.minValue = rg.step > 0 ? rg.value(rg.below(*lo)) : *lo;
      r.maxValue = rg.step > 0 ? rg.value(rg.above(*hi)) : *hi;
      scale.blocks.push_back(r);
      const float range = r.maxValue - r.minValue;
      for (float v : buf) set.values.push_back(range > 0 ? 2.0f * (v - r.minValue) / range - 1.0f : 0.0f);
      set.validDims.push_back(grid.validDims(b));
    }
  }
}

// V_i - U(V_{i+1}) for every level but the coarsest, which is kept as it is: what each scale would have to fit
// if the coarser scales were perfect. Used to predict how many blocks each scale keeps.
std::vector<Field> openLoopResiduals(const std::vector<Field>& levels, const PyramidPlan& plan) {
  std::vector<Field> res;
  for (size_t i = 0; i + 1 < levels.size(); ++i) {
    Field r = levels[i];
    const Field up = upsample(levels[i + 1], plan.halved[i + 1], levels[i].dims);
    for (size_t k = 0; k < r.values.size(); ++k) r.values[k] -= up.values[k];
    res.push_back(std::move(r));
  }
  res.push_back(levels.back());
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

// PSNR of the CNN's output, one time step at a time (no second copy of the series).
double psnrWithCnn(const BoundaryCnn& cnn, const Field& decoded, const Field& target) {
  const Dims4 d = decoded.dims;
  Field one(Dims4{d.x, d.y, d.z, 1});
  double se = 0;
  for (int64_t t = 0; t < d.t; ++t) {
    std::copy_n(decoded.step(t), d.voxelsPerStep(), one.values.data());
    applyBoundaryCnn(cnn, one);
    se += sumSquares(target.step(t), one.values.data(), size_t(d.voxelsPerStep()));
  }
  return psnrOfSquares(se, double(d.count()));
}

constexpr double kRdSlopeDb = 4.0;

// The boundary CNN learns the correction from the finest decode (what the decoder will produce, normalized
// units) to the original; it is kept only when it lowers the error.
void trainCnn(Model& model, const Field& decoded, const Field& original, const EncoderSettings& s,
              const Progress& progress, EncodeReport& rep) {
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
  BoundaryCnn cnn = trainBoundaryCnn(decoded, original, o, progress);
  rep.psnrBeforeCnn = psnrNormalized(original, decoded);
  rep.psnrAfterCnn = psnrWithCnn(cnn, decoded, original);
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

std::vector<Model> encodeWindows(const Field& field, const GridMeta& meta, const EncoderSettings& settings,
                                 int64_t windowSteps, const Progress& progress, std::vector<EncodeReport>* reports) {
  validateDims(field.dims);
  if (int64_t(field.values.size()) != field.dims.count()) throw Error("field size does not match its dims");
  if (!meta.times.empty() && int64_t(meta.times.size()) != field.dims.t)
    throw Error("time values: " + std::to_string(meta.times.size()) + " given for " + std::to_string(field.dims.t) + " steps");
  const int64_t T = field.dims.t;
  const int64_t w = windowSteps <= 0 || windowSteps >= T ? T : windowSteps;
  const int64_t count = (T + w - 1) / w;
  std::vector<Model> out;
  if (count == 1) {  // the whole series: no copy of it
    EncodeReport rep;
    out.push_back(encode(field, meta, settings, progress, &rep));
    if (reports) reports->push_back(rep);
    return out;
  }
  for (int64_t k = 0; k < count; ++k) {
    const int64_t first = k * w, n = std::min(w, T - first);
    auto [part, partMeta] = sliceWindow(field, meta, first, n);
    progress.report(double(k) / double(count), "time window " + std::to_string(k + 1) + "/" + std::to_string(count) +
                                                   ": steps " + std::to_string(first) + "-" + std::to_string(first + n - 1));
    EncodeReport rep;
    out.push_back(encode(part, partMeta, settings, progress, &rep));
    out.back().firstStep = first;
    if (reports) reports->push_back(rep);
  }
  return out;
}

Model encodeNetwork(const Field& field, const GridMeta& meta, const EncoderSettings& settings, const Progress& progress,
                    EncodeReport* report) {
  Timer timer;
  validateDims(field.dims);
  if (int64_t(field.values.size()) != field.dims.count()) throw Error("field size does not match its dims");
  checkFinite(field);
  if (!meta.times.empty() && int64_t(meta.times.size()) != field.dims.t)
    throw Error("time values: " + std::to_string(meta.times.size()) + " given for " + std::to_string(field.dims.t) + " steps");
  ResolvedSettings r = resolveSettings(settings, field.dims);
  const PyramidPlan plan = planPyramid(field.dims, r.s.scales, r.s.minAxisLength);
  const int S = int(plan.dims.size());

  Model model;
  model.dims = field.dims;
  model.meta = meta;
  const auto [lo, hi] = std::minmax_element(field.values.begin(), field.values.end());
  model.dataMin = *lo;
  model.dataMax = *hi;
  model.shape.latentDim = r.s.latentDim;
  model.shape.hidden = r.s.hidden;
  model.shape.sineLayers = r.s.sineLayers;
  model.shape.omega0 = r.s.omega0;

  // Pyramid of targets, finest first: V_0 = normalized input, V_{i+1} = D(V_i).
  std::vector<Field> levels;
  levels.push_back(normalize(field, model.dataMin, model.dataMax));
  for (int i = 1; i < S; ++i) levels.push_back(downsample(levels.back(), plan.halved[size_t(i)]));

  const bool chooseBlocks = settings.blockDims[0] <= 0 || settings.blockDims[1] <= 0 || settings.blockDims[2] <= 0;
  if (chooseBlocks) r.blockDims = chooseBlockDims(openLoopResiduals(levels, plan), r);
  EncodeReport rep;
  rep.blockDims = r.blockDims;
  const std::vector<double> share = progressShares(plan, r);
  double done = 0;
  Field recon;
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
    // (Memory: the full-resolution fields of a scale live only as long as they are needed; the blocks' training
    // values are the one copy kept while the MLPs train.)
    // The finest level becomes the target in place (it is the size of the input); it is normalized again from
    // the input when the scale is done.
    Field target = i == 0 ? std::move(levels[0]) : levels[size_t(i)];
    if (p > 0) {
      const Field base = upsample(recon, model.scales.back().halved, scale.dims);
      for (size_t k = 0; k < target.values.size(); ++k) target.values[k] -= base.values[k];
    }

    if (r.s.quantizeRanges && !target.values.empty()) {
      const auto [tlo, thi] = std::minmax_element(target.values.begin(), target.values.end());
      const RangeGrid rg = RangeGrid::covering(*tlo, *thi);
      scale.rangeLo = rg.lo;
      scale.rangeStep = rg.step;
    }
    TrainingSet set;
    set.blockDims = r.blockDims;
    ScaleReport sr;
    sr.dims = scale.dims;
    if (!constant) selectBlocks(target, grid, p == 0, r.s.threshold, scale, set, &sr.totalBlocks);
    target = Field();
    if (r.s.rangeWeightedLoss) set.lossWeight = rangeWeights(scale.blocks);
    int features = 0;
    const std::vector<float> feat = set.blockCount() > 0 ? poolFeatures(set, &features) : std::vector<float>{};
    set.mlpOfBlock = i == 0 && r.s.finestMlps > 0
                         ? assignBlocksToMlps(feat, set.blockCount(), std::max(1, features), r.s.finestMlps,
                                              r.s.seed + uint64_t(p), &set.mlpCount)
                         : assignBlocks(feat, set.blockCount(), std::max(1, features), r.blocksPerMlp[size_t(p)],
                                        r.s.seed + uint64_t(p), &set.mlpCount);
    for (int64_t b = 0; b < set.blockCount(); ++b) scale.blocks[size_t(b)].mlp = uint32_t(set.mlpOfBlock[size_t(b)]);

    TrainOptions o;
    o.epochs = r.epochs[size_t(p)];
    o.batchPerMlp = r.s.batchPerMlp;
    o.learningRate = r.s.learningRate;
    o.weightDecay = r.s.weightDecay;
    o.lrDecayFactor = r.s.lrDecayFactor;
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
    o.deep.fineTuneEpochs = r.s.quantBits > 0 ? int(std::ceil(r.s.fineTuneFraction * o.epochs)) : 0;
    o.deep.fineTuneLr = r.s.fineTuneLr;
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
    recon = reconstructScale(model, p, p == 0 ? nullptr : &recon);
    done += share[size_t(p)];

    sr.effectiveBlocks = effective;
    sr.mlps = mlps;
    sr.epochs = o.epochs;
    sr.trainSeconds = ts.seconds;
    sr.trainLoss = ts.finalLoss;
    sr.sparsity = ts.sparsity;
    sr.samplesPerSecond = ts.seconds > 0 ? double(ts.samples) / ts.seconds : 0;
    if (i == 0) levels[0] = normalize(field, model.dataMin, model.dataMax);
    sr.psnrAfter = psnrNormalized(levels[size_t(i)], recon);
    std::ostringstream fin;
    fin << o.label << " done: PSNR " << sr.psnrAfter << " dB at this scale, " << ts.seconds << " s";
    progress.report(done, fin.str());
    rep.scales.push_back(sr);
  }
  if (r.s.boundaryCnn && !constant) trainCnn(model, recon, levels[0], r.s, progress, rep);
  rep.seconds = timer.seconds();
  if (report) *report = rep;
  return model;
}

}  // namespace ecnr
