#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../Core/kernels/BlockImportance.h"
#include "../../Core/kernels/SirenCpu.h"
#include "../../Core/src/MlpView.h"
#include "ecnr/Ensemble.h"

using namespace ecnr;

namespace {

ScaleModel randomScale(const MlpShape& shape, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  ScaleModel s;
  s.mlpCount = m;
  for (int l = 0; l < shape.layerCount(); ++l) {
    std::vector<float> w(size_t(m * shape.fanIn(l) * shape.fanOut(l))), b(size_t(m * shape.fanOut(l)));
    for (float& v : w) v = u(rng) / (l == 0 ? 1.0f : shape.omega0 * 0.1f);
    for (float& v : b) v = u(rng);
    s.weights.push_back(w);
    s.biases.push_back(b);
  }
  return s;
}

// Straightforward per-MLP reference: one matrix-vector product per layer per sample.
float referenceMlp(const ScaleModel& s, const MlpShape& shape, int mlp, const float* x) {
  std::vector<double> h(x, x + shape.inputDim());
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int in = shape.fanIn(l), out = shape.fanOut(l);
    const float* W = s.weights[size_t(l)].data() + size_t(mlp * in * out);
    const float* b = s.biases[size_t(l)].data() + size_t(mlp * out);
    std::vector<double> o(static_cast<size_t>(out));
    for (int j = 0; j < out; ++j) {
      double acc = b[j];
      for (int i = 0; i < in; ++i) acc += double(W[i * out + j]) * h[size_t(i)];
      o[size_t(j)] = l < shape.sineLayers ? std::sin(shape.omega0 * acc) : acc;
    }
    h = o;
  }
  return float(h[0]);
}

}  // namespace

TEST(Ensemble, BatchedLayerEqualsPerMlpReference) {
  MlpShape shape;
  const int m = 5, batch = 33;
  const ScaleModel s = randomScale(shape, m, 3);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(size_t(m * batch * shape.inputDim()));
  for (float& v : x) v = u(rng);
  const std::vector<float> y = batchedForward(s, shape, x, batch);
  for (int k = 0; k < m; ++k)
    for (int i = 0; i < batch; ++i)
      EXPECT_NEAR(y[size_t(k * batch + i)], referenceMlp(s, shape, k, &x[size_t((k * batch + i) * shape.inputDim())]), 2e-4);
}

TEST(Ensemble, FusedBlockKernelEqualsBatchedLayer) {
  // The decoder's kernel folds the latent into the first bias and uses its own sine: it must agree with LibTorch.
  MlpShape shape;
  const int m = 3;
  const ScaleModel s = randomScale(shape, m, 5);
  const int bd[3] = {5, 4, 3}, valid[3] = {5, 3, 2};
  std::vector<float> latent(size_t(shape.latentDim));
  for (int k = 0; k < shape.latentDim; ++k) latent[size_t(k)] = 0.1f * float(k) - 0.3f;
  const int mlp = 2;
  const kernels::SirenView v = mlpView(shape, s, uint32_t(mlp));
  std::vector<float> out(60, 1234.0f);
  kernels::evalSirenBlock(v, latent.data(), bd, valid, out.data());
  for (int z = 0; z < 3; ++z)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 5; ++x) {
        const float got = out[size_t((z * 4 + y) * 5 + x)];
        if (x >= valid[0] || y >= valid[1] || z >= valid[2]) {
          EXPECT_EQ(got, 1234.0f) << "padding voxel was written";
          continue;
        }
        std::vector<float> in = {2.0f * x / 4 - 1, 2.0f * y / 3 - 1, 2.0f * z / 2 - 1};
        in.insert(in.end(), latent.begin(), latent.end());
        EXPECT_NEAR(got, referenceMlp(s, shape, mlp, in.data()), 2e-4);
      }
}

// The fast sine's error budget is checked in test_kernels.cpp (Kernels.FastSineErrorBudget).

TEST(Ensemble, TrainingFitsASmoothBlock) {
  // Two blocks of a smooth pattern, one MLP: the loss must drop far below the variance (0.5 for a sine wave).
  TrainingSet set;
  set.blockDims = {8, 8, 8};
  set.mlpCount = 1;
  for (int b = 0; b < 2; ++b) {
    set.validDims.push_back({8, 8, 8});
    set.mlpOfBlock.push_back(0);
    for (int z = 0; z < 8; ++z)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) set.values.push_back(std::sin(0.5f * x + 0.3f * y * (b + 1) - 0.2f * z));
  }
  MlpShape shape;
  TrainOptions o;
  o.epochs = 300;
  o.batchPerMlp = 256;
  o.threads = 2;
  ScaleModel out;
  for (int b = 0; b < 2; ++b) out.blocks.push_back(BlockRecord{uint32_t(b), 0, 0, -1, 1});
  const TrainStats st = trainEnsemble(set, shape, o, out, Progress());
  EXPECT_LT(st.finalLoss, 5e-3);
  EXPECT_EQ(out.latents.size(), size_t(2 * shape.latentDim));
  EXPECT_EQ(out.weights.size(), size_t(shape.layerCount()));
}

TEST(Ensemble, CudaRequestWithoutCudaIsAClearError) {
  if (cudaAvailable()) GTEST_SKIP() << "CUDA present";
  TrainingSet set;
  set.blockDims = {2, 2, 2};
  set.mlpCount = 1;
  set.validDims.push_back({2, 2, 2});
  set.mlpOfBlock.push_back(0);
  set.values.assign(8, 0.0f);
  TrainOptions o;
  o.device = "cuda";
  ScaleModel out;
  EXPECT_THROW(trainEnsemble(set, MlpShape{}, o, out, Progress()), Error);
}

TEST(ImportanceSampling, DrawsFollowTheErrorsAndTheWeightsKeepTheMean) {
  kernels::BlockImportance imp;
  imp.reset(4, 0.5f);
  for (size_t b = 0; b < 4; ++b) EXPECT_FLOAT_EQ(imp.probability(b), 0.25f) << "uniform before any error is seen";
  const float errors[4] = {0.0f, 0.01f, 0.04f, 0.25f};  // RMS 0, 0.1, 0.2, 0.5
  for (size_t b = 0; b < 4; ++b) imp.observe(b, errors[b]);
  imp.endStep();
  // Half uniform (0.125 each), half by RMS error (0, 0.1, 0.2, 0.5 of 0.8).
  const double expected[4] = {0.125, 0.125 + 0.5 * 0.125, 0.125 + 0.5 * 0.25, 0.125 + 0.5 * 0.625};
  std::mt19937_64 rng(7);
  std::vector<int> hits(4, 0);
  double weighted[4] = {0, 0, 0, 0};
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    float w = 0;
    const size_t b = imp.draw(rng(), &w);
    ++hits[b];
    weighted[b] += w;
    EXPECT_LE(w, 2.0f + 1e-6f) << "no weight above 1 / (1 - share)";
  }
  double sumP = 0;
  for (size_t b = 0; b < 4; ++b) {
    EXPECT_NEAR(imp.probability(b), expected[b], 1e-6);
    EXPECT_NEAR(double(hits[b]) / draws, expected[b], 0.005);
    // Unbiased: each block's weighted share of the draws is its uniform share.
    EXPECT_NEAR(weighted[b] / draws, 0.25, 0.005);
    sumP += imp.probability(b);
  }
  EXPECT_NEAR(sumP, 1.0, 1e-6);
}

namespace {

// One MLP, six blocks: five constant (easy), one of high frequency (hard); the final loss of `epochs`.
double hardBlockLoss(float importance, const std::string& trainer, int epochs, ScaleModel* out) {
  TrainingSet set;
  set.blockDims = {8, 8, 8};
  set.mlpCount = 1;
  for (int b = 0; b < 6; ++b) {
    set.validDims.push_back({8, 8, 8});
    set.mlpOfBlock.push_back(0);
    for (int z = 0; z < 8; ++z)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x)
          set.values.push_back(b == 5 ? std::sin(1.7f * x) * std::cos(1.3f * y + 0.9f * z) : 0.1f * float(b));
  }
  TrainOptions o;
  o.epochs = epochs;
  o.batchPerMlp = 64;
  o.threads = 1;
  o.trainer = trainer;
  o.importance = importance;
  for (int b = 0; b < 6; ++b) out->blocks.push_back(BlockRecord{uint32_t(b), 0, 0, -1, 1});
  return trainEnsemble(set, MlpShape{}, o, *out, Progress()).finalLoss;
}

}  // namespace

TEST(ImportanceSampling, BothTrainersSpendTheDrawsOnTheHardBlock) {
  for (const std::string trainer : {"fused", "libtorch"}) {
    const int epochs = trainer == "fused" ? 200 : 40;
    ScaleModel uniform, byError, again;
    const double lossUniform = hardBlockLoss(0.0f, trainer, epochs, &uniform);
    const double lossImportance = hardBlockLoss(0.8f, trainer, epochs, &byError);
    std::printf("%s: loss %.4g uniform, %.4g by importance\n", trainer.c_str(), lossUniform, lossImportance);
    EXPECT_TRUE(std::isfinite(lossImportance));
    EXPECT_LT(lossImportance, lossUniform) << trainer;
    hardBlockLoss(0.8f, trainer, epochs, &again);
    EXPECT_EQ(again.weights, byError.weights) << trainer << ": not reproducible for a seed";
  }
}
