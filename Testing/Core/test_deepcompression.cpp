// Deep compression (paper Sec. 3.5): block-guided pruning, global quantization with fine-tuning, and what the
// archive stores of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <stdexcept>

#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Ensemble.h"
#include "ecnr/Pruning.h"
#include "ecnr/Metrics.h"
#include "ecnr/Quantization.h"
#include "ecnr/Settings.h"
#include "../../Core/kernels/SirenTrainCpu.h"
#include "../../Core/src/MlpView.h"

using namespace ecnr;

namespace {

ScaleModel randomParams(const MlpShape& shape, int m, uint64_t seed) {
  std::mt19937 rng{uint32_t(seed)};
  std::normal_distribution<float> normal(0.0f, 0.3f);
  ScaleModel s;
  s.mlpCount = m;
  for (int l = 0; l < shape.layerCount(); ++l) {
    s.weights.emplace_back(size_t(m) * size_t(shape.fanIn(l) * shape.fanOut(l)));
    s.biases.emplace_back(size_t(m) * size_t(shape.fanOut(l)));
    for (float& x : s.weights.back()) x = normal(rng);
    for (float& x : s.biases.back()) x = normal(rng);
  }
  return s;
}

int64_t zerosIn(const std::vector<uint8_t>& mask) { return int64_t(std::count(mask.begin(), mask.end(), uint8_t(0))); }

// Smooth blocks of different content, four MLPs: a small real training problem.
TrainingSet smallSet(int blocks, int mlps) {
  TrainingSet set;
  set.blockDims = {8, 8, 8};
  set.mlpCount = mlps;
  for (int b = 0; b < blocks; ++b) {
    set.validDims.push_back({8, 8, 8});
    set.mlpOfBlock.push_back(b % mlps);
    for (int z = 0; z < 8; ++z)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x)
          set.values.push_back(std::sin(0.4f * x * (1 + b % 3) + 0.3f * y - 0.2f * z * (b % 2)) * 0.9f);
  }
  return set;
}

// The fused trainer's problem over a training set (valid: its valid dims, flattened; must outlive the problem).
kernels::FusedTrainProblem problemOf(const TrainingSet& set, std::vector<int>& valid) {
  valid.clear();
  for (const auto& v : set.validDims) valid.insert(valid.end(), {v[0], v[1], v[2]});
  kernels::FusedTrainProblem pr;
  for (int a = 0; a < 3; ++a) pr.blockDims[a] = set.blockDims[size_t(a)];
  pr.blockCount = set.blockCount();
  pr.validDims = valid.data();
  pr.values = set.values.data();
  pr.mlpOfBlock = set.mlpOfBlock.data();
  pr.mlpCount = set.mlpCount;
  return pr;
}

ScaleModel tableFor(const TrainingSet& set) {
  ScaleModel out;
  for (int64_t b = 0; b < set.blockCount(); ++b)
    out.blocks.push_back(BlockRecord{uint32_t(b), 0, uint32_t(set.mlpOfBlock[size_t(b)]), -1, 1});
  return out;
}

// A one-scale model around a trained scale, so that the archive and the decoder can be exercised on it.
Model modelAround(const ScaleModel& trained, const MlpShape& shape, int blocks) {
  Model m;
  m.dims = Dims4{8 * blocks, 8, 8, 1};
  m.dataMin = -1;
  m.dataMax = 1;
  m.shape = shape;
  ScaleModel s = trained;
  s.dims = m.dims;
  s.blockDims = {8, 8, 8};
  m.scales.push_back(s);
  return m;
}

// The settings of the encode-level tests: the fast preset on 8^3 blocks, these epochs, no CNN, two threads, quiet.
EncoderSettings smallEncode(const std::vector<int>& epochs) {
  EncoderSettings s = presetSettings("fast");
  s.blockDims = {8, 8, 8};
  s.epochs = epochs;
  s.boundaryCnn = false;
  s.threads = 2;
  s.verbose = false;
  return s;
}

// A smooth n^3 x steps series with a little fine texture (x % 3): what the encode-level tests compress.
Field smoothSeries(int n, int steps) {
  Field f(Dims4{n, n, n, steps});
  for (int64_t t = 0; t < steps; ++t)
    for (int64_t z = 0; z < n; ++z)
      for (int64_t y = 0; y < n; ++y)
        for (int64_t x = 0; x < n; ++x)
          f.at(x, y, z, t) = std::sin(0.4f * x + 0.3f * y) * std::cos(0.25f * z + 0.5f * t) + 0.1f * float(x % 3);
  return f;
}

}  // namespace

TEST(Pruning, ReachesTheTargetSparsityAndRespectsTheExclusions) {
  const MlpShape shape;
  const int m = 6;
  const ScaleModel p = randomParams(shape, m, 3);
  const std::vector<double> loss{0.1, 0.5, 0.2, 0.9, 0.05, 0.3};
  PruneMasks masks = keepAll(shape, m);
  for (double target : {0.3, 0.4, 0.45, 0.5}) {
    const PruneMasks next = blockGuidedPrune(p, shape, loss, target, 0.1, masks);
    EXPECT_NEAR(candidateSparsity(next, shape), target, 1e-3);
    for (int l = 0; l < shape.layerCount(); ++l) {
      if (!prunableWeights(shape, l)) EXPECT_EQ(zerosIn(next.weights[size_t(l)]), 0) << "layer " << l;
      if (!prunableBiases(shape, l)) EXPECT_EQ(zerosIn(next.biases[size_t(l)]), 0) << "layer " << l;
      for (size_t i = 0; i < masks.weights[size_t(l)].size(); ++i)
        if (!masks.weights[size_t(l)][i]) EXPECT_EQ(next.weights[size_t(l)][i], 0) << "a pruned weight came back";
    }
    masks = next;
  }
  // The exclusions of the paper: output-layer weights, first and last biases.
  EXPECT_FALSE(prunableWeights(shape, shape.sineLayers));
  EXPECT_FALSE(prunableBiases(shape, 0));
  EXPECT_FALSE(prunableBiases(shape, shape.sineLayers));
  EXPECT_TRUE(prunableBiases(shape, 1));
}

TEST(Pruning, MlpsThatFitWellArePrunedMore) {
  const MlpShape shape;
  const int m = 4;
  const ScaleModel p = randomParams(shape, m, 5);
  const std::vector<double> loss{0.01, 1.0, 0.5, 0.02};
  const PruneMasks masks = blockGuidedPrune(p, shape, loss, 0.4, 0.1, keepAll(shape, m));
  auto prunedOf = [&](int q) {
    int64_t n = 0;
    for (int l = 0; l < shape.sineLayers; ++l) {
      const size_t per = masks.weights[size_t(l)].size() / size_t(m);
      for (size_t i = 0; i < per; ++i) n += masks.weights[size_t(l)][size_t(q) * per + i] == 0;
    }
    return n;
  };
  EXPECT_GT(prunedOf(0), prunedOf(1));
  EXPECT_GT(prunedOf(3), prunedOf(2));
}

TEST(Quantization, KMeansKeepsFewDistinctValuesExactly) {
  const std::vector<float> v{0.5f, -1.0f, 0.5f, 2.0f, -1.0f, 2.0f, 0.5f};
  EXPECT_EQ(kmeans1d(v, 8), (std::vector<float>{-1.0f, 0.5f, 2.0f}));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> many(5000);
  for (float& x : many) x = normal(rng);
  const std::vector<float> cb = kmeans1d(many, 16);
  EXPECT_LE(cb.size(), 16u);
  EXPECT_GE(cb.size(), 14u);  // an extreme centroid of the linear init may end with no value
  EXPECT_TRUE(std::is_sorted(cb.begin(), cb.end()));
  double err = 0;
  for (float x : many) err += std::pow(x - cb[size_t(nearestIndex(cb, x))], 2);
  EXPECT_LT(err / 5000, 0.02);  // 4 bits on a unit Gaussian: Lloyd-Max distortion is about 0.0095
}

TEST(Quantization, EveryParameterIsACodebookEntryAndZerosStayPruned) {
  const MlpShape shape;
  ScaleModel s = randomParams(shape, 5, 9);
  s.precision = WeightPrecision::Float16;
  s.weights[1][7] = 0.0f;  // pruned
  s.latents.assign(5 * size_t(shape.latentDim), 0.25f);
  const SharedTable t = quantizeScale(s, shape, QuantizationOptions{6, false, 4});
  for (int l = 0; l < shape.layerCount(); ++l) {
    const std::vector<float>& cb = s.codebooks.weights[size_t(l)];
    EXPECT_LE(cb.size(), 64u);
    for (float w : s.weights[size_t(l)])
      EXPECT_TRUE(w == 0.0f || std::find(cb.begin(), cb.end(), w) != cb.end());
  }
  EXPECT_EQ(s.weights[1][7], 0.0f);
  EXPECT_EQ(t.weightId[1][7], -1);
  EXPECT_EQ(s.codebooks.latents, std::vector<float>{0.25f});
}

TEST(Quantization, QuantizedModelDecodesExactlyFromIndicesAndCodebooks) {
  for (bool local : {false, true}) {
    const MlpShape shape;
    const int blocks = 6;
    TrainingSet set = smallSet(blocks, 3);
    TrainOptions o;
    o.epochs = 6;
    o.batchPerMlp = 256;
    o.threads = 2;
    o.deep.pruneAt = {0.5};
    o.deep.pruneSparsity = {0.4};
    o.deep.bits = 7;
    o.deep.local = local;
    o.deep.latentBits = 6;
    o.deep.fineTuneEpochs = 2;
    ScaleModel out = tableFor(set);
    out.precision = WeightPrecision::Float16;
    trainEnsemble(set, shape, o, out, Progress());
    EXPECT_TRUE(out.codebooks.any());
    const Model m = modelAround(out, shape, blocks);
    const std::vector<uint8_t> bytes = serializeArchive({m});
    const Model back = parseArchive(bytes.data(), bytes.size())[0];
    const ScaleModel& b = back.scales[0];
    for (int l = 0; l < shape.layerCount(); ++l) {
      EXPECT_EQ(0, std::memcmp(b.weights[size_t(l)].data(), out.weights[size_t(l)].data(), out.weights[size_t(l)].size() * 4));
      EXPECT_EQ(0, std::memcmp(b.biases[size_t(l)].data(), out.biases[size_t(l)].data(), out.biases[size_t(l)].size() * 4));
    }
    EXPECT_EQ(b.latents, out.latents);
    EXPECT_EQ(b.codebooks.local, local);
    const Field d1 = Decoder(m).decodeAll(), d2 = Decoder(back).decodeAll();
    EXPECT_EQ(d1.values, d2.values);
    // Masks, codebooks and indices are where the bytes went.
    const ArchiveSummary sum = summarizeArchive(bytes.data(), bytes.size());
    EXPECT_EQ(sum.bytes.total(), bytes.size());
    EXPECT_GT(sum.bytes.masks, 0u);
    EXPECT_GT(sum.bytes.codebooks, 0u);
    EXPECT_GT(sum.bytes.indices, 0u);
    EXPECT_EQ(sum.bytes.weights, 0u);
    // The codebooks come back exactly, in fewer bytes than plain halves (their key differences are coded).
    EXPECT_EQ(b.codebooks.weights, out.codebooks.weights);
    EXPECT_EQ(b.codebooks.biases, out.codebooks.biases);
    EXPECT_EQ(b.codebooks.latents, out.codebooks.latents);
    size_t entries = out.codebooks.latents.size(), groups = 1;
    for (int l = 0; l < shape.layerCount(); ++l) {
      entries += out.codebooks.weights[size_t(l)].size() + out.codebooks.biases[size_t(l)].size();
      groups += 2;
    }
    EXPECT_LT(sum.bytes.codebooks, 2 * entries + 4 * groups) << (local ? "local" : "global");
  }
}

TEST(DeepCompression, BothTrainersPruneQuantizeAndFineTune) {
  for (const char* trainer : {"fused", "libtorch"}) {
    const MlpShape shape;
    TrainingSet set = smallSet(8, 4);
    TrainOptions o;
    o.trainer = trainer;
    o.epochs = 10;
    o.batchPerMlp = 256;
    o.threads = 2;
    o.deep.pruneAt = {0.3, 0.6};
    o.deep.pruneSparsity = {0.3, 0.5};
    o.deep.bits = 6;
    o.deep.latentBits = 6;
    o.deep.fineTuneEpochs = 4;
    ScaleModel out = tableFor(set);
    const TrainStats st = trainEnsemble(set, shape, o, out, Progress());
    EXPECT_EQ(st.trainer, trainer);
    EXPECT_NEAR(st.sparsity, 0.5, 0.01) << trainer;
    // Pruned parameters stayed zero through training and fine-tuning: candidate zeros reach the target.
    int64_t zeros = 0, candidates = 0;
    for (int l = 0; l < shape.sineLayers; ++l) {
      candidates += int64_t(out.weights[size_t(l)].size());
      zeros += std::count(out.weights[size_t(l)].begin(), out.weights[size_t(l)].end(), 0.0f);
    }
    EXPECT_GE(double(zeros) / double(candidates), 0.45) << trainer;
    for (float b : out.biases[0]) EXPECT_NE(b, 0.0f) << "first-layer biases are never pruned";
    std::set<float> distinct(out.weights[1].begin(), out.weights[1].end());
    EXPECT_LE(distinct.size(), 64u + 1u) << trainer;  // 2^6 shared values and the pruned zero
    EXPECT_LE(st.lossAfterFineTune, st.lossBeforeFineTune * 1.05) << trainer;
    EXPECT_LT(st.finalLoss, 0.1) << trainer;
    std::printf("%s: loss %.4g after quantization, %.4g after fine-tuning\n", trainer, st.lossBeforeFineTune,
                st.lossAfterFineTune);
  }
}

TEST(BoundaryCnnInArchive, TravelsInTheArchiveAndCorrectsEveryDecodePath) {
  // A small series with blocks of 4^3, so boundaries are everywhere; a quick CNN.
  Field f(Dims4{16, 12, 8, 3});
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t z = 0; z < 8; ++z)
      for (int64_t y = 0; y < 12; ++y)
        for (int64_t x = 0; x < 16; ++x) f.at(x, y, z, t) = std::sin(0.5f * x + 0.3f * y + 0.2f * z + 0.4f * t);
  EncoderSettings s = presetSettings("fast");
  s.scales = 2;
  s.blockDims = {4, 4, 4};
  s.epochs = {10, 10};
  s.boundaryCnn = true;
  s.cnnSteps = 60;
  s.threads = 2;
  s.verbose = false;
  EncodeReport rep;
  Model m = encode(f, GridMeta{}, s, Progress(), &rep);
  EXPECT_GT(rep.psnrAfterCnn, 0.0);
  // The encoder keeps the CNN only when it helps; force one for the archive and decoder checks either way.
  if (!m.hasCnn()) {
    m.cnn = makeBoundaryCnn(5, 4);
    m.cnn.weights[0][0] = 0.25f;
    m.cnn.weights[4][13] = 0.5f;
    quantizeBoundaryCnn(m.cnn, 9);
  }
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const Model back = parseArchive(bytes.data(), bytes.size())[0];
  ASSERT_TRUE(back.hasCnn());
  EXPECT_EQ(back.cnn.weights, m.cnn.weights);
  EXPECT_FALSE(parseArchive(bytes.data(), bytes.size(), 1)[0].hasCnn()) << "a coarse preview reads no CNN";
  const ArchiveSummary sum = summarizeArchive(bytes.data(), bytes.size());
  EXPECT_GT(sum.bytes.cnn, 0u);
  EXPECT_EQ(sum.bytes.total(), bytes.size());

  Decoder with(back), without(back);
  without.setBoundaryCnn(false);
  const Field all = with.decodeAll(), plain = without.decodeAll();
  EXPECT_NE(all.values, plain.values) << "the CNN changed nothing";
  const int64_t V = f.dims.voxelsPerStep();
  for (int64_t t = 0; t < 3; ++t) {
    const Field step = with.decodeStep(t);
    for (int64_t i = 0; i < V; ++i) ASSERT_NEAR(step.values[size_t(i)], all.values[size_t(t * V + i)], 1e-5);
  }
  // A sub-extent decodes a halo around itself, so it equals the same voxels of the whole step.
  const Extent box{3, 9, 2, 7, 1, 5};
  const Field region = with.decodeRegion(1, box);
  for (int64_t z = box[4]; z <= box[5]; ++z)
    for (int64_t y = box[2]; y <= box[3]; ++y)
      for (int64_t x = box[0]; x <= box[1]; ++x)
        ASSERT_NEAR(region.at(x - box[0], y - box[2], z - box[4], 0), all.at(x, y, z, 1), 1e-5);
}

TEST(PaperPreset, ResolvesToThePapersChoices) {
  const EncoderSettings s = presetSettings("paper");
  const ResolvedSettings series = resolveSettings(s, Dims4{64, 64, 64, 16});
  EXPECT_EQ(series.blocksPerMlp, (std::vector<int>{8, 16, 32}));
  EXPECT_EQ(series.pruneSparsity, (std::vector<double>{0.3, 0.4, 0.45, 0.5}));
  const ResolvedSettings volume = resolveSettings(s, Dims4{64, 64, 64, 1});
  EXPECT_EQ(volume.blocksPerMlp, (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(volume.pruneSparsity, (std::vector<double>{0.2, 0.3}));
  EXPECT_EQ(s.capacityByError, 0.0) << "the paper's Algorithm 1 shares blocks by count";
  EXPECT_EQ(resolveSettings(presetSettings("default"), Dims4{64, 64, 64, 16}).blocksPerMlp,
            (std::vector<int>{4, 8, 16}));
  EXPECT_THROW(presetSettings("papr"), Error);
}

TEST(PaperPreset, PrunesEveryScaleAndStoresFloat32LatentCodesAndRanges) {
  const Field f = smoothSeries(16, 4);
  EncoderSettings s = presetSettings("paper");
  s.blockDims = {4, 4, 4};
  s.epochs = {30, 30, 40};
  s.boundaryCnn = false;
  s.minAxisLength = 4;
  s.threshold = 0;  // every block of every scale is fitted, so every scale has MLPs to prune
  s.threads = 2;
  s.verbose = false;
  const Model m = encode(f, GridMeta{}, s, Progress());
  ASSERT_EQ(m.scales.size(), 3u);
  for (const ScaleModel& sc : m.scales) {
    ASSERT_GT(sc.mlpCount, 0);
    const std::vector<float>& w = sc.weights[1];  // a hidden layer: a pruning candidate
    const double zeros = double(std::count(w.begin(), w.end(), 0.0f)) / double(w.size());
    EXPECT_GT(zeros, 0.3) << "scale " << sc.dims.str() << " not pruned";
    EXPECT_TRUE(sc.codebooks.latents.empty()) << "latent codes quantized";
    EXPECT_EQ(sc.precision, WeightPrecision::Float32);
    EXPECT_EQ(sc.rangeStep, 0.0f) << "block ranges on a grid";
  }
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const ErrorStats e = compareFields(f, Decoder(parseArchive(bytes.data(), bytes.size())[0]).decodeAll());
  EXPECT_GT(e.psnr, 20.0);
}

TEST(Quantization, CodebookSizeFollowsTheGroupSize) {
  EXPECT_EQ(codebookSize(3456, 256, false), 256);       // one entry per two weights, capped by 2^bits
  EXPECT_EQ(codebookSize(3456, 256, false, 54), 64);    // one per 54 weights
  EXPECT_EQ(codebookSize(100000, 256, false, 54), 256);
  EXPECT_EQ(codebookSize(1000, 256, false, 54), 64);    // never below 64 entries
  EXPECT_EQ(codebookSize(144, 256, true, 54), 144);     // biases keep one entry per value
  EXPECT_EQ(codebookSize(144, 64, true), 64);
}

// The rate-aware choice against a loss the test controls: a group shrinks where the loss does not care, and keeps
// its 256 entries where every bit of it shows in the loss.
TEST(Quantization, RateAwareCodebooksShrinkOnlyWhereTheLossAllows) {
  const MlpShape shape;
  const int L = shape.layerCount();
  ScaleModel trained = randomParams(shape, 40, 5);  // hidden layers: 40 x 576 weights, 256 entries by size
  std::mt19937 rng{3};
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (int i = 0; i < 40 * shape.latentDim; ++i) trained.latents.push_back(normal(rng));
  QuantizationOptions q;
  q.bits = 8;
  q.biasBits = 8;
  q.latentBits = 8;
  ScaleModel plain = trained;
  const double bitsBySize = quantizedBits(quantizeScale(plain, shape, q));
  auto layerError = [&](const ScaleModel& m, int l) {
    double e = 0;
    for (size_t i = 0; i < m.weights[size_t(l)].size(); ++i)
      e += std::pow(double(m.weights[size_t(l)][i]) - trained.weights[size_t(l)][i], 2);
    return e;
  };
  auto indifferent = [](const ScaleModel&) { return 1.0; };
  // Indifferent loss: every group that may shrink goes down to 64 entries, and the estimate of the bits falls.
  const std::vector<int> free = rateAwareEntries(trained, shape, q, indifferent, 1.0, kRateAll);
  ASSERT_EQ(free.size(), size_t(2 * L + 1));
  for (int l = 0; l < L; ++l) {
    EXPECT_EQ(free[size_t(2 * l)], 64) << "weights of layer " << l;
    // The sine layers' 40 x 24 biases have 256 entries by size; the output layer's 40 keep one each.
    EXPECT_EQ(free[size_t(2 * l + 1)], l < shape.sineLayers ? 64 : 40) << "biases of layer " << l;
  }
  EXPECT_EQ(free[size_t(2 * L)], 64) << "latent codes";
  q.groupEntries = free;
  ScaleModel small = trained;
  EXPECT_LT(quantizedBits(quantizeScale(small, shape, q)), 0.9 * bitsBySize);
  for (int l = 0; l < L; ++l) EXPECT_LE(small.codebooks.weights[size_t(l)].size(), 64u);
  EXPECT_LE(small.codebooks.latents.size(), 64u);
  q.groupEntries.clear();
  // Only the groups asked for move: weights alone leave biases and latent codes at their sizes.
  const std::vector<int> weightsOnly = rateAwareEntries(trained, shape, q, indifferent, 1.0, kRateWeights);
  EXPECT_EQ(weightsOnly[0], 64);
  EXPECT_EQ(weightsOnly[1], 256);
  EXPECT_EQ(weightsOnly[size_t(2 * L)], 256);
  // Layer 1's error is the whole loss (plus a floor as large as it is at 256 entries): halving its codebook about
  // quadruples that error, far more than the few percent of bits it saves; the other weights still shrink.
  const double floor = layerError(plain, 1);
  const std::vector<int> sensitive = rateAwareEntries(
      trained, shape, q, [&](const ScaleModel& m) { return floor + layerError(m, 1); }, 1.0, kRateWeights);
  EXPECT_EQ(sensitive[2], 256);
  EXPECT_EQ(sensitive[0], 64);
  EXPECT_EQ(sensitive[4], 64);
  // Local codebooks keep their sizes by group size.
  q.local = true;
  EXPECT_TRUE(rateAwareEntries(trained, shape, q, indifferent, 1.0, kRateAll).empty());
}

// Through the encoder (the default since issue 10): the archive decodes, is never larger than with codebooks by
// size (at one seed the training is the same up to the quantization), and a second run writes the same bytes.
TEST(Quantization, RateAwareCodebooksEncodeReproduciblyAndNoLarger) {
  const Field f = smoothSeries(24, 4);
  EncoderSettings s = smallEncode({8, 8, 10});
  s.codebookRateSlope = 0;
  const std::vector<uint8_t> bySize = serializeArchive({encode(f, GridMeta{}, s, Progress())});
  s.codebookRateSlope = 1.0;
  const std::vector<uint8_t> byRate = serializeArchive({encode(f, GridMeta{}, s, Progress())});
  EXPECT_LE(byRate.size(), bySize.size());
  EXPECT_EQ(byRate, serializeArchive({encode(f, GridMeta{}, s, Progress())}));
  const ErrorStats e = compareFields(f, Decoder(parseArchive(byRate.data(), byRate.size())[0]).decodeAll());
  const ErrorStats e0 = compareFields(f, Decoder(parseArchive(bySize.data(), bySize.size())[0]).decodeAll());
  EXPECT_GT(e.psnr, e0.psnr - 3.0);
  std::printf("codebooks by size: %zu bytes, %.2f dB; by rate: %zu bytes, %.2f dB\n", bySize.size(), e0.psnr,
              byRate.size(), e.psnr);
  s.codebookRateSlope = -1;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
}

// Quantization-aware training (issue 10): while forward codebooks are set, every step runs at the rounded
// parameters. With the single entry 0 the network outputs 0 whatever its float weights do, so on targets of 0.5
// every round's loss is exactly 0.25; the float weights still move (straight-through), and without the codebooks
// the loss is the float network's again.
TEST(QuantAware, EveryStepRunsAtTheCodebookRoundedParameters) {
  TrainingSet set = smallSet(4, 2);
  std::fill(set.values.begin(), set.values.end(), 0.5f);
  std::vector<int> valid;
  kernels::FusedTrainProblem pr = problemOf(set, valid);
  pr.steps = 12;
  pr.batchPerMlp = 256;
  pr.threads = 1;
  pr.stepsPerRound = 1;
  std::vector<double> losses;
  pr.onRound = [&](int64_t, double loss) {
    losses.push_back(loss);
    return true;
  };
  kernels::FusedTrainer tr(pr);
  const MlpShape shape;
  kernels::ForwardCodebooks zero;
  zero.weights.assign(size_t(shape.layerCount()), {0.0f});
  zero.biases.assign(size_t(shape.layerCount()), {0.0f});
  tr.setForwardCodebooks(zero);
  const kernels::FusedTrainResult before = tr.result();
  ASSERT_TRUE(tr.run(0, 6));
  for (double l : losses) EXPECT_NEAR(l, 0.25, 1e-6);
  EXPECT_NE(tr.result().weights[1], before.weights[1]) << "the float weights did not move";
  tr.setForwardCodebooks({});
  losses.clear();
  ASSERT_TRUE(tr.run(6, 12));
  for (double l : losses) EXPECT_GT(std::abs(l - 0.25), 1e-3);
  kernels::ForwardCodebooks unsorted = zero;
  unsorted.weights[0] = {1.0f, 0.0f};
  EXPECT_THROW(tr.setForwardCodebooks(unsorted), std::invalid_argument);
}

// Through the encoder, on both trainers: archives that decode to about the same quality (the two trainers draw
// different samples), the same bytes twice, and the options a shared codebook needs checked.
TEST(QuantAware, BothTrainersEncodeDecodableArchives) {
  const Field f = smoothSeries(16, 4);
  EncoderSettings s = smallEncode({8, 8, 8});
  s.quantAwareFraction = 0.5;
  std::vector<double> psnr;
  for (const char* trainer : {"fused", "libtorch"}) {
    s.trainer = trainer;
    const std::vector<uint8_t> bytes = serializeArchive({encode(f, GridMeta{}, s, Progress())});
    psnr.push_back(compareFields(f, Decoder(parseArchive(bytes.data(), bytes.size())[0]).decodeAll()).psnr);
    EXPECT_GT(psnr.back(), 20.0) << trainer;
    if (s.trainer == "fused") EXPECT_EQ(bytes, serializeArchive({encode(f, GridMeta{}, s, Progress())}));
  }
  EXPECT_NEAR(psnr[0], psnr[1], 3.0);
  std::printf("quantization-aware half: fused %.2f dB, libtorch %.2f dB\n", psnr[0], psnr[1]);
  s.trainer = "fused";
  s.quantAwareFraction = 1.5;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
  s.quantAwareFraction = 0.5;
  s.localQuantization = true;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
}

// A latent grid (issue 10: a code at each block corner, interpolated): both trainers send each sample's gradient
// to its block's corners (every corner code moves), encode archives that decode to about the same quality and are
// written as version 4 (one code per block stays version 2); the fused trainer's bytes are reproducible.
TEST(LatentGrid, BothTrainersFitEveryCornerAndTheArchiveKeepsTheGrid) {
  TrainingSet set = smallSet(4, 2);
  std::vector<int> valid;
  kernels::FusedTrainProblem pr = problemOf(set, valid);
  pr.latentDim = 3;
  pr.latentGrid = 2;
  pr.steps = 20;
  pr.batchPerMlp = 256;
  pr.threads = 1;
  pr.weightDecay = 0;
  kernels::FusedTrainer tr(pr);
  const std::vector<float> before = tr.result().latents;
  ASSERT_EQ(before.size(), size_t(4 * 8 * 3));
  ASSERT_TRUE(tr.run(0, pr.steps));
  const std::vector<float> after = tr.result().latents;
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NE(before[i], after[i]) << "latent value " << i << " never moved";

  // The trainer's interpolation is the decoder's: at fixed parameters (shared values, learning rate 0) with
  // corner codes drawn apart, its loss over sampled voxels is the decoder's mean squared error over the blocks.
  kernels::FusedTrainResult r = tr.result();
  std::mt19937 rng(3);
  std::normal_distribution<float> nrm;
  for (float& v : r.latents) v = nrm(rng);
  kernels::SharedParameters table;
  auto share = [&](const std::vector<float>& group) {
    std::vector<int32_t> ids;
    for (float v : group) {
      ids.push_back(int32_t(table.values.size()));
      table.values.push_back(v);
    }
    return ids;
  };
  for (size_t l = 0; l < r.weights.size(); ++l) {
    table.weightId.push_back(share(r.weights[l]));
    table.biasId.push_back(share(r.biases[l]));
  }
  table.latentId = share(r.latents);
  double sampled = 0;
  pr.latentGrid = 2;
  pr.learningRate = [](int64_t) { return 0.0f; };
  pr.batchPerMlp = 4096;
  pr.onRound = [&](int64_t, double loss) {
    sampled += loss;
    return true;
  };
  kernels::FusedTrainer fixed(pr);
  fixed.shareParameters(table);
  ASSERT_TRUE(fixed.run(0, 10));
  sampled /= 10;
  MlpShape shape;
  shape.latentDim = 3;
  shape.latentGrid = 2;
  ScaleModel sc;
  sc.mlpCount = set.mlpCount;
  sc.weights = r.weights;
  sc.biases = r.biases;
  sc.latents = r.latents;
  double decoded = 0;
  std::vector<float> out(512);
  for (int64_t b = 0; b < set.blockCount(); ++b) {
    const int bd[3] = {8, 8, 8};
    kernels::evalSirenBlock(mlpView(shape, sc, uint32_t(set.mlpOfBlock[size_t(b)])), sc.latents.data() + b * 24, bd, bd,
                            out.data());
    for (int i = 0; i < 512; ++i) decoded += std::pow(double(out[size_t(i)]) - set.values[size_t(b * 512 + i)], 2);
  }
  decoded /= double(set.blockCount() * 512);
  EXPECT_NEAR(sampled, decoded, 0.05 * decoded) << "sampled " << sampled << ", decoded " << decoded;
  pr.latentGrid = 3;
  EXPECT_THROW(kernels::FusedTrainer{pr}, std::invalid_argument);

  const Field f = smoothSeries(16, 4);
  EncoderSettings s = smallEncode({8, 8, 8});
  s.latentGrid = 2;
  s.latentDim = 4;
  s.codeSteps = 1;  // a code (of 8 corners) per block per step
  std::vector<double> psnr;
  for (const char* trainer : {"fused", "libtorch"}) {
    s.trainer = trainer;
    const std::vector<uint8_t> bytes = serializeArchive({encode(f, GridMeta{}, s, Progress())});
    const Model m = parseArchive(bytes.data(), bytes.size())[0];
    EXPECT_EQ(m.shape.latentGrid, 2);
    EXPECT_EQ(m.scales.back().latents.size(), m.scales.back().blocks.size() * 32);
    EXPECT_EQ(summarizeArchive(bytes.data(), bytes.size()).version, 4u);
    psnr.push_back(compareFields(f, Decoder(m).decodeAll()).psnr);
    EXPECT_GT(psnr.back(), 17.0) << trainer;  // 8 epochs; one code per block: 20-22 dB
    if (s.trainer == "fused") EXPECT_EQ(bytes, serializeArchive({encode(f, GridMeta{}, s, Progress())}));
  }
  EXPECT_NEAR(psnr[0], psnr[1], 3.0);
  std::printf("latent grid: fused %.2f dB, libtorch %.2f dB\n", psnr[0], psnr[1]);
  s.trainer = "fused";
  s.latentGrid = 1;
  const std::vector<uint8_t> plain = serializeArchive({encode(f, GridMeta{}, s, Progress())});
  EXPECT_EQ(summarizeArchive(plain.data(), plain.size()).version, 2u);
  s.latentGrid = 4;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
}

// Shared codes (issue 10, temporal structure): the records of one block in one group of W steps share a code
// slot, the slots counted in (group, block) order, and each step's time input spans [-1, 1] over its group.
TEST(SharedCodes, SlotsGroupABlockOverItsSteps) {
  ScaleModel s;
  s.dims = Dims4{16, 8, 8, 5};
  s.blockDims = {8, 8, 8};
  for (uint32_t t = 0; t < 5; ++t)
    for (uint32_t b = 0; b < 2; ++b)
      if (!(t == 1 && b == 0)) s.blocks.push_back(BlockRecord{b, t, 0, 0, 1});
  int64_t count = 0;
  const std::vector<uint32_t> one = codeSlots(s, 1, &count);
  EXPECT_EQ(count, 9);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], i);
  const std::vector<uint32_t> two = codeSlots(s, 2, &count);
  // records (t, block): (0,0) (0,1) (1,1) (2,0) (2,1) (3,0) (3,1) (4,0) (4,1)
  EXPECT_EQ(count, 6);
  EXPECT_EQ(two, (std::vector<uint32_t>{0, 1, 1, 2, 3, 2, 3, 4, 5}));
  EXPECT_EQ(codeTime(0, 4), -1.0f);
  EXPECT_EQ(codeTime(3, 4), 1.0f);
  EXPECT_FLOAT_EQ(codeTime(5, 4), -1.0f / 3.0f);
  EXPECT_EQ(codeTime(7, 1), 0.0f);
}

// Through the encoder on both trainers: a series whose blocks share their codes over 4 steps keeps a quarter of
// the codes, the blocks of a code share an MLP, the archive (version 4) decodes to about the quality of one code
// per step, and the fused trainer's bytes are reproducible.
TEST(SharedCodes, BothTrainersEncodeDecodableArchivesWithFewerCodes) {
  const Field f = smoothSeries(16, 8);
  EncoderSettings s = smallEncode({8, 8, 8});
  s.trainer = "fused";
  const double perStep = compareFields(f, Decoder(encode(f, GridMeta{}, s, Progress())).decodeAll()).psnr;
  s.codeSteps = 4;
  for (const char* trainer : {"fused", "libtorch"}) {
    s.trainer = trainer;
    const std::vector<uint8_t> bytes = serializeArchive({encode(f, GridMeta{}, s, Progress())});
    EXPECT_EQ(summarizeArchive(bytes.data(), bytes.size()).version, 4u);
    const Model m = parseArchive(bytes.data(), bytes.size())[0];
    EXPECT_EQ(m.shape.codeSteps, 4);
    const ScaleModel& fine = m.scales.back();
    int64_t codes = 0;
    const std::vector<uint32_t> slot = codeSlots(fine, 4, &codes);
    EXPECT_EQ(codes * 4, int64_t(fine.blocks.size()));  // 8 steps: two groups of 4, every block kept
    EXPECT_EQ(fine.latents.size(), size_t(codes * m.shape.latentDim));
    std::vector<int64_t> mlpOfCode(size_t(codes), -1);
    for (size_t i = 0; i < slot.size(); ++i) {
      int64_t& owner = mlpOfCode[slot[i]];
      if (owner < 0) owner = fine.blocks[i].mlp;
      EXPECT_EQ(owner, int64_t(fine.blocks[i].mlp)) << "a code's blocks in two MLPs";
    }
    const double psnr = compareFields(f, Decoder(m).decodeAll()).psnr;
    EXPECT_GT(psnr, perStep - 3.0) << trainer;
    std::printf("shared codes (4 steps), %s: %.2f dB (a code per step: %.2f dB)\n", trainer, psnr, perStep);
    if (s.trainer == "fused") EXPECT_EQ(bytes, serializeArchive({encode(f, GridMeta{}, s, Progress())}));
  }
  s.codeSteps = 0;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
}

// Capacity where the error is, through the encoder: on a series whose right half is rough and left half nearly
// flat, the finest scale's MLPs that fit rough blocks hold fewer blocks than those that fit flat ones (with equal
// counts they hold the same), and the archive decodes.
TEST(CapacityByError, RoughBlocksGetMlpsOfFewerBlocks) {
  Field f(Dims4{32, 32, 16, 4});
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t z = 0; z < 16; ++z)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x)
          f.at(x, y, z, t) = x < 16 ? 0.01f * std::sin(0.1f * float(x + y + t))
                                    : std::sin(1.3f * x + 0.7f * y * (1 + t % 2)) * std::cos(0.9f * z + 0.4f * x * y);
  EncoderSettings s = presetSettings("fast");
  s.blockDims = {8, 8, 8};
  s.epochs = {2, 2, 2};
  s.threshold = 0;
  s.boundaryCnn = false;
  s.threads = 2;
  s.verbose = false;
  s.codeSteps = 1;  // the blocks themselves are shared out (with shared codes, the codes are)
  for (double exponent : {0.0, 1.0}) {
    s.capacityByError = exponent;
    const Model m = encode(f, GridMeta{}, s, Progress());
    const ScaleModel& fine = m.scales.back();
    std::vector<int> size(size_t(fine.mlpCount), 0);
    for (const BlockRecord& b : fine.blocks) ++size[size_t(b.mlp)];
    // The mean size of the MLP a block is fitted by, over the rough blocks and over the flat ones.
    const int64_t bx = fine.blockGrid()[0];
    double roughSize = 0, flatSize = 0;
    int roughBlocks = 0, flatBlocks = 0;
    for (const BlockRecord& b : fine.blocks) {
      const bool rough = int64_t(b.block) % bx >= bx / 2;
      (rough ? roughSize : flatSize) += size[size_t(b.mlp)];
      ++(rough ? roughBlocks : flatBlocks);
    }
    ASSERT_GT(roughBlocks, 0);
    ASSERT_GT(flatBlocks, 0);
    const double ratio = (flatSize / flatBlocks) / (roughSize / roughBlocks);
    if (exponent == 0) EXPECT_NEAR(ratio, 1.0, 0.2);
    else EXPECT_GT(ratio, 1.5);
    std::printf("exponent %.0f: a rough block's MLP fits %.1f blocks, a flat one's %.1f (%d MLPs)\n", exponent,
                roughSize / roughBlocks, flatSize / flatBlocks, fine.mlpCount);
    const std::vector<uint8_t> bytes = serializeArchive({m});
    EXPECT_GT(compareFields(f, Decoder(parseArchive(bytes.data(), bytes.size())[0]).decodeAll()).psnr, 10.0);
  }
  s.capacityByError = -1;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress()), Error);
}
