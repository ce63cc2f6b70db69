#include <gtest/gtest.h>

#include <cmath>
#include <random>

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
