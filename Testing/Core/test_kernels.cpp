// The fused CPU kernels against their references: the decoder kernel against a double-precision per-voxel MLP,
// every instruction set against the others, the fused trainer's loss and gradients against LibTorch autograd,
// and fused training's determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../Core/kernels/SirenCpu.h"
#include "../../Core/src/MlpView.h"
#include "../../Core/kernels/SirenIsa.h"
#include "../../Core/kernels/SirenTrainCpu.h"
#include "ecnr/Ensemble.h"

using namespace ecnr;

namespace {

const kernels::Isa kAllIsas[] = {kernels::Isa::Generic, kernels::Isa::Avx2, kernels::Isa::Avx512};

// Restores automatic dispatch when a test that forced an instruction set ends.
struct IsaGuard {
  ~IsaGuard() { kernels::forceIsa(kernels::Isa::Auto); }
};

// SIREN-initialised weights (the trainer's distribution), slightly enlarged so activations are not tiny.
ScaleModel sirenScale(const MlpShape& shape, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  ScaleModel s;
  s.mlpCount = m;
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int in = shape.fanIn(l), out = shape.fanOut(l);
    const float wb = 1.5f * (l == 0 ? 1.0f / float(in) : std::sqrt(6.0f / float(in)) / shape.omega0);
    std::uniform_real_distribution<float> uw(-wb, wb), ub(-0.5f, 0.5f);
    std::vector<float> w(size_t(m * in * out)), b(size_t(m * out));
    for (float& v : w) v = uw(rng);
    for (float& v : b) v = ub(rng);
    s.weights.push_back(w);
    s.biases.push_back(b);
  }
  return s;
}

double referenceMlp(const ScaleModel& s, const MlpShape& shape, int mlp, const std::vector<double>& x) {
  std::vector<double> h = x;
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int in = shape.fanIn(l), out = shape.fanOut(l);
    const float* W = s.weights[size_t(l)].data() + size_t(mlp * in * out);
    const float* b = s.biases[size_t(l)].data() + size_t(mlp * out);
    std::vector<double> o(static_cast<size_t>(out));
    for (int j = 0; j < out; ++j) {
      double acc = b[j];
      for (int i = 0; i < in; ++i) acc += double(W[i * out + j]) * h[size_t(i)];
      o[size_t(j)] = l < shape.sineLayers ? std::sin(double(shape.omega0) * acc) : acc;
    }
    h = o;
  }
  return h[0];
}

kernels::SirenView viewOf(const ScaleModel& s, const MlpShape& shape, int mlp) {
  return mlpView(shape, s, uint32_t(mlp));
}

double maxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

}  // namespace

TEST(Kernels, FastSineErrorBudget) {
  // Budget: 1e-6 beyond two ulps of the argument. The argument itself is only known to about an ulp (it is a float
  // sum), and the sine works on x / pi, whose rounding adds up to an ulp more. Pre-activations stay well below 400.
  double worst = 0, worstSmall = 0;
  for (double x = -400; x < 400; x += 0.00731) {
    const float xf = float(x);
    const double err = std::fabs(double(kernels::fastSin(xf)) - std::sin(double(xf)));
    const double ulp = double(std::nextafter(std::fabs(xf), 1e9f) - std::fabs(xf));
    worst = std::max(worst, err - 2 * ulp);
    if (std::fabs(x) <= 8) worstSmall = std::max(worstSmall, err);
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_LT(worstSmall, 2e-6);  // |x| <= 8: absolute
}

TEST(Kernels, FusedDecoderMatchesDoubleReferenceOnEveryInstructionSet) {
  // Shapes: the default, a width that needs padding (20), 32, one and four sine layers, a wide one (300).
  const MlpShape shapes[] = {MlpShape{8, 24, 3, 30.0f}, MlpShape{4, 20, 2, 30.0f}, MlpShape{8, 32, 3, 30.0f},
                             MlpShape{2, 16, 1, 30.0f}, MlpShape{8, 24, 4, 30.0f}, MlpShape{8, 300, 2, 30.0f}};
  IsaGuard guard;
  for (kernels::Isa isa : kAllIsas) {
    if (!kernels::forceIsa(isa)) continue;
    for (const MlpShape& shape : shapes) {
      const int m = 2;
      const ScaleModel s = sirenScale(shape, m, 17);
      std::mt19937 rng(5);
      std::normal_distribution<float> nrm;
      std::vector<float> latent(size_t(shape.latentDim));
      for (float& v : latent) v = nrm(rng);
      const int bd[3] = {16, 8, 5}, valid[3] = {13, 8, 4};
      std::vector<float> out(16 * 8 * 5, 1234.0f);
      kernels::evalSirenBlock(viewOf(s, shape, 1), latent.data(), bd, valid, out.data());
      double worst = 0;
      for (int z = 0; z < bd[2]; ++z)
        for (int y = 0; y < bd[1]; ++y)
          for (int x = 0; x < bd[0]; ++x) {
            const float got = out[size_t((z * bd[1] + y) * bd[0] + x)];
            if (x >= valid[0] || y >= valid[1] || z >= valid[2]) {
              ASSERT_EQ(got, 1234.0f) << "padding voxel written";
              continue;
            }
            std::vector<double> in = {2.0 * x / (bd[0] - 1) - 1, 2.0 * y / (bd[1] - 1) - 1, 2.0 * z / (bd[2] - 1) - 1};
            in.insert(in.end(), latent.begin(), latent.end());
            worst = std::max(worst, std::fabs(double(got) - referenceMlp(s, shape, 1, in)));
          }
      // Tolerance 1e-5 in normalized units (outputs are O(1); measured <= 1e-6); a trained fit errs by ~1e-3.
      EXPECT_LT(worst, 1e-5) << kernels::activeKernels().name << " hidden " << shape.hidden << " layers "
                             << shape.sineLayers;
    }
  }
}

// A latent grid (issue 10): the code at each voxel is its block's 8 corner codes interpolated trilinearly. The
// decoder folds each corner's code into a row of layer 0; against the double reference fed the interpolated code.
TEST(Kernels, LatentGridDecoderMatchesInterpolatedReference) {
  MlpShape shape{4, 20, 2, 30.0f};
  shape.latentGrid = 2;
  const ScaleModel s = sirenScale(shape, 2, 29);
  std::mt19937 rng(31);
  std::normal_distribution<float> nrm;
  std::vector<float> corners(size_t(shape.latentsPerBlock()));
  for (float& v : corners) v = nrm(rng);
  const int bd[3] = {9, 6, 5}, valid[3] = {7, 6, 5};
  IsaGuard guard;
  for (kernels::Isa isa : kAllIsas) {
    if (!kernels::forceIsa(isa)) continue;
    std::vector<float> out(9 * 6 * 5, 1234.0f);
    kernels::evalSirenBlock(mlpView(shape, s, 1), corners.data(), bd, valid, out.data());
    double worst = 0;
    for (int z = 0; z < bd[2]; ++z)
      for (int y = 0; y < bd[1]; ++y)
        for (int x = 0; x < bd[0]; ++x) {
          const float got = out[size_t((z * bd[1] + y) * bd[0] + x)];
          if (x >= valid[0]) {
            ASSERT_EQ(got, 1234.0f) << "padding voxel written";
            continue;
          }
          const double u[3] = {2.0 * x / (bd[0] - 1) - 1, 2.0 * y / (bd[1] - 1) - 1, 2.0 * z / (bd[2] - 1) - 1};
          std::vector<double> in(u, u + 3);
          for (int q = 0; q < shape.latentDim; ++q) {
            double code = 0;
            for (int c = 0; c < 8; ++c) {
              double w = 1;
              for (int a = 0; a < 3; ++a) w *= (c >> a) & 1 ? 0.5 * (1 + u[a]) : 0.5 * (1 - u[a]);
              code += w * corners[size_t(c * shape.latentDim + q)];
            }
            in.push_back(code);
          }
          worst = std::max(worst, std::fabs(double(got) - referenceMlp(s, shape, 1, in)));
        }
    EXPECT_LT(worst, 1e-5) << kernels::activeKernels().name;
  }
  // At a corner voxel the code is that corner's alone: the same output as one code per block equal to it.
  MlpShape one = shape;
  one.latentGrid = 1;
  const int c = 5;  // +x, -y, +z
  std::vector<float> single(corners.begin() + c * shape.latentDim, corners.begin() + (c + 1) * shape.latentDim);
  std::vector<float> a(9 * 6 * 5), b(9 * 6 * 5);
  kernels::evalSirenBlock(mlpView(shape, s, 0), corners.data(), bd, bd, a.data());
  kernels::evalSirenBlock(mlpView(one, s, 0), single.data(), bd, bd, b.data());
  const size_t at = size_t((4 * bd[1] + 0) * bd[0] + 8);
  EXPECT_NEAR(a[at], b[at], 1e-6);
  EXPECT_GT(std::fabs(a[0] - b[0]), 1e-4) << "the far corner should see another code";
}

// Shared codes (issue 10): the time input is the last input of layer 0, after the latent code.
TEST(Kernels, TimeInputDecoderMatchesReference) {
  MlpShape shape{4, 16, 2, 30.0f};
  shape.codeSteps = 4;
  ASSERT_EQ(shape.inputDim(), 8);
  const ScaleModel s = sirenScale(shape, 1, 37);
  const std::vector<float> latent{0.3f, -1.2f, 0.7f, 0.1f};
  const int bd[3] = {6, 5, 4};
  for (float time : {-1.0f, 1.0f / 3.0f}) {
    std::vector<float> out(6 * 5 * 4);
    kernels::evalSirenBlock(mlpView(shape, s, 0), latent.data(), bd, bd, out.data(), time);
    double worst = 0;
    for (int z = 0; z < 4; ++z)
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 6; ++x) {
          std::vector<double> in = {2.0 * x / 5 - 1, 2.0 * y / 4 - 1, 2.0 * z / 3 - 1};
          in.insert(in.end(), latent.begin(), latent.end());
          in.push_back(time);
          worst = std::max(worst, std::fabs(double(out[size_t((z * 5 + y) * 6 + x)]) - referenceMlp(s, shape, 0, in)));
        }
    EXPECT_LT(worst, 1e-5) << "time " << time;
  }
}

TEST(Kernels, FusedDecoderMatchesLibTorchForward) {
  // The decoder's kernel against the LibTorch batched forward (the training path) on the same voxels.
  const MlpShape shape;
  const int m = 3, bd[3] = {8, 8, 8}, V = 512;
  const ScaleModel s = sirenScale(shape, m, 41);
  std::mt19937 rng(43);
  std::normal_distribution<float> nrm;
  std::vector<float> latents(size_t(m * shape.latentDim));
  for (float& v : latents) v = nrm(rng);
  std::vector<float> inputs;
  for (int k = 0; k < m; ++k)
    for (int z = 0; z < 8; ++z)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) {
          inputs.insert(inputs.end(), {2.0f * float(x) / 7 - 1, 2.0f * float(y) / 7 - 1, 2.0f * float(z) / 7 - 1});
          inputs.insert(inputs.end(), latents.begin() + k * shape.latentDim, latents.begin() + (k + 1) * shape.latentDim);
        }
  const std::vector<float> ref = batchedForward(s, shape, inputs, V);
  double worst = 0;
  for (int k = 0; k < m; ++k) {
    std::vector<float> out(static_cast<size_t>(V));
    kernels::evalSirenBlock(viewOf(s, shape, k), latents.data() + k * shape.latentDim, bd, bd, out.data());
    for (int i = 0; i < V; ++i) worst = std::max(worst, double(std::fabs(out[size_t(i)] - ref[size_t(k * V + i)])));
  }
  EXPECT_LT(worst, 1e-5);  // both float; LibTorch's own sine and summation order differ
}

TEST(Kernels, InstructionSetsAgree) {
  const MlpShape shape;
  const ScaleModel s = sirenScale(shape, 1, 23);
  std::vector<float> latent(8, 0.25f);
  const int bd[3] = {16, 16, 16};
  IsaGuard guard;
  std::vector<float> first;
  for (kernels::Isa isa : kAllIsas) {
    if (!kernels::forceIsa(isa)) continue;
    std::vector<float> out(4096, 0.0f);
    kernels::evalSirenBlock(viewOf(s, shape, 0), latent.data(), bd, bd, out.data());
    if (first.empty()) {
      first = out;
      continue;
    }
    double worst = 0;
    for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, double(std::fabs(out[i] - first[i])));
    EXPECT_LT(worst, 5e-6) << kernels::activeKernels().name;  // measured 4e-7
  }
}

TEST(Kernels, FusedGradientsMatchLibTorchAutograd) {
  // Same weights, same samples: loss, every weight / bias gradient and the latent gradients agree to 1e-5 of the
  // largest entry of each gradient (both are float; the differences are rounding).
  const MlpShape shapes[] = {MlpShape{8, 24, 3, 30.0f}, MlpShape{4, 20, 2, 30.0f}};
  IsaGuard guard;
  for (kernels::Isa isa : kAllIsas) {
    if (!kernels::forceIsa(isa)) continue;
    for (const MlpShape& shape : shapes) {
      const int m = 3, batch = 37, D = shape.inputDim();
      const ScaleModel s = sirenScale(shape, m, 29);
      std::mt19937 rng(31);
      std::uniform_real_distribution<float> u(-1, 1), w(0.2f, 2.0f);
      std::normal_distribution<float> nrm;
      std::vector<float> inputs(size_t(m * batch * D)), targets(size_t(m * batch)), weights(size_t(m * batch));
      for (int i = 0; i < m * batch; ++i) {
        for (int c = 0; c < D; ++c) inputs[size_t(i * D + c)] = c < 3 ? u(rng) : nrm(rng);
        targets[size_t(i)] = u(rng);
        weights[size_t(i)] = w(rng);
      }
      const LossGradients ref = batchedLossGradients(s, shape, inputs, targets, weights, batch);
      double loss = 0;
      for (int k = 0; k < m; ++k) {
        std::vector<std::vector<float>> W, b, gW, gB;
        for (int l = 0; l < shape.layerCount(); ++l) {
          const size_t nw = size_t(shape.fanIn(l) * shape.fanOut(l)), nb = size_t(shape.fanOut(l));
          W.emplace_back(s.weights[size_t(l)].begin() + std::ptrdiff_t(k * nw), s.weights[size_t(l)].begin() + std::ptrdiff_t((k + 1) * nw));
          b.emplace_back(s.biases[size_t(l)].begin() + std::ptrdiff_t(k * nb), s.biases[size_t(l)].begin() + std::ptrdiff_t((k + 1) * nb));
        }
        const std::vector<float> in(inputs.begin() + k * batch * D, inputs.begin() + (k + 1) * batch * D);
        const std::vector<float> t(targets.begin() + k * batch, targets.begin() + (k + 1) * batch);
        std::vector<float> scale(weights.begin() + k * batch, weights.begin() + (k + 1) * batch);
        for (float& v : scale) v /= float(m * batch);
        std::vector<float> gLat;
        loss += kernels::fusedLossGradients(W, b, shape.latentDim, shape.hidden, shape.sineLayers, shape.omega0, in, t,
                                            scale, gW, gB, gLat);
        for (int l = 0; l < shape.layerCount(); ++l) {
          const size_t nw = size_t(shape.fanIn(l) * shape.fanOut(l)), nb = size_t(shape.fanOut(l));
          const double tolW = 1e-5 * maxAbs(ref.gradWeights[size_t(l)]), tolB = 1e-5 * maxAbs(ref.gradBiases[size_t(l)]);
          for (size_t i = 0; i < nw; ++i)
            ASSERT_NEAR(gW[size_t(l)][i], ref.gradWeights[size_t(l)][k * nw + i], tolW)
                << kernels::activeKernels().name << " layer " << l << " mlp " << k << " weight " << i;
          for (size_t j = 0; j < nb; ++j)
            ASSERT_NEAR(gB[size_t(l)][j], ref.gradBiases[size_t(l)][k * nb + j], tolB)
                << kernels::activeKernels().name << " layer " << l << " mlp " << k << " bias " << j;
        }
        const double tolX = 1e-5 * maxAbs(ref.gradInputs);
        for (int i = 0; i < batch; ++i)
          for (int q = 0; q < shape.latentDim; ++q)
            ASSERT_NEAR(gLat[size_t(i * shape.latentDim + q)], ref.gradInputs[size_t((k * batch + i) * D + 3 + q)], tolX)
                << kernels::activeKernels().name << " latent gradient, mlp " << k << " sample " << i;
      }
      EXPECT_NEAR(loss, ref.loss, 1e-5 * ref.loss);
    }
  }
}

namespace {

TrainingSet smallSet(int m) {
  TrainingSet set;
  set.blockDims = {8, 8, 8};
  set.mlpCount = m;
  for (int b = 0; b < 3 * m; ++b) {
    set.validDims.push_back({8, b % 2 ? 5 : 8, 8});
    set.mlpOfBlock.push_back(b % m);
    set.lossWeight.push_back(0.5f + float(b % 3) * 0.5f);
    for (int z = 0; z < 8; ++z)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) set.values.push_back(std::sin(0.5f * x + 0.3f * y * float(b + 1) - 0.2f * z));
  }
  return set;
}

ScaleModel train(const TrainingSet& set, const std::string& trainer, int threads, int epochs, TrainStats* stats = nullptr) {
  TrainOptions o;
  o.trainer = trainer;
  o.threads = threads;
  o.epochs = epochs;
  o.batchPerMlp = 300;  // not a multiple of the sub-batch or the vector width
  ScaleModel out;
  for (int64_t b = 0; b < set.blockCount(); ++b) out.blocks.push_back(BlockRecord{uint32_t(b), 0, 0, -1, 1});
  const TrainStats st = trainEnsemble(set, MlpShape{}, o, out, Progress());
  if (stats) *stats = st;
  return out;
}

}  // namespace

TEST(Kernels, FusedTrainingIsDeterministicForAnyThreadCount) {
  const TrainingSet set = smallSet(3);
  TrainStats st;
  const ScaleModel a = train(set, "fused", 1, 3, &st);
  EXPECT_EQ(st.trainer, "fused");
  const ScaleModel b = train(set, "fused", 2, 3);
  const ScaleModel c = train(set, "fused", 2, 3);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.biases, b.biases);
  EXPECT_EQ(a.latents, b.latents);
  EXPECT_EQ(b.weights, c.weights);
  EXPECT_EQ(b.latents, c.latents);
}

TEST(Kernels, FusedAndLibTorchTrainersReachTheSameLoss) {
  // Different random streams, same algorithm: after the same training both fit the blocks about equally well.
  const TrainingSet set = smallSet(2);
  TrainStats fused, torch;
  train(set, "fused", 2, 80, &fused);
  train(set, "libtorch", 2, 80, &torch);
  EXPECT_EQ(torch.trainer, "libtorch");
  EXPECT_LT(fused.finalLoss, 2.0 * torch.finalLoss + 1e-3);
  EXPECT_LT(torch.finalLoss, 2.0 * fused.finalLoss + 1e-3);
  EXPECT_LT(fused.finalLoss, 0.05);  // the loss starts near 0.5 (variance of a sine wave)
}

TEST(Kernels, FusedTrainerOnCudaIsRefused) {
  TrainOptions o;
  o.trainer = "fused";
  o.device = "cuda";
  const TrainingSet set = smallSet(1);
  ScaleModel out;
  EXPECT_THROW(trainEnsemble(set, MlpShape{}, o, out, Progress()), Error);
}
