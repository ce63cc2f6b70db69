// The CUDA block decoder against the CPU kernel (skipped without a usable GPU, e.g. on CI machines without one).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../Core/kernels/SirenCpu.h"
#include "../../Core/kernels/SirenCuda.h"
#include "ecnr/Model.h"

using namespace ecnr;

TEST(CudaDecoder, WithoutGpuReportsWhy) {
  if (kernels::cudaDecoderAvailable()) GTEST_SKIP() << "a GPU is visible";
  EXPECT_FALSE(kernels::cudaDecoderStatus().empty());
  const int bd[3] = {4, 4, 4};
  EXPECT_THROW(kernels::CudaScaleDecoder(1, 8, 24, 3, 30.0f, {}, {}, {}, bd), std::runtime_error);
}

TEST(CudaDecoder, MatchesTheCpuKernel) {
  if (!kernels::cudaDecoderAvailable()) GTEST_SKIP() << kernels::cudaDecoderStatus();
  for (const MlpShape shape : {MlpShape{8, 24, 3, 30.0f}, MlpShape{4, 20, 2, 30.0f}, MlpShape{8, 32, 3, 30.0f}}) {
    const int m = 3, blocks = 7;
    std::mt19937 rng(9);
    std::vector<std::vector<float>> W, b;
    for (int l = 0; l < shape.layerCount(); ++l) {
      const int in = shape.fanIn(l), out = shape.fanOut(l);
      const float wb = 1.5f * (l == 0 ? 1.0f / float(in) : std::sqrt(6.0f / float(in)) / shape.omega0);
      std::uniform_real_distribution<float> uw(-wb, wb), ub(-0.5f, 0.5f);
      W.emplace_back(size_t(m * in * out));
      b.emplace_back(size_t(m * out));
      for (float& v : W.back()) v = uw(rng);
      for (float& v : b.back()) v = ub(rng);
    }
    std::normal_distribution<float> nrm;
    std::vector<float> latents(size_t(blocks * shape.latentDim));
    for (float& v : latents) v = nrm(rng);
    const int bd[3] = {16, 16, 8};
    kernels::CudaBlockList list;
    for (int i = 0; i < blocks; ++i) {
      list.mlp.push_back(i % m);
      list.latentRow.push_back(blocks - 1 - i);
      list.validDims.insert(list.validDims.end(), {16, i % 2 ? 11 : 16, i % 3 ? 8 : 5});
    }
    kernels::CudaScaleDecoder gpu(m, shape.latentDim, shape.hidden, shape.sineLayers, shape.omega0, W, b, latents, bd);
    const int V = bd[0] * bd[1] * bd[2];
    std::vector<float> got(size_t(blocks * V));
    gpu.decode(list, got.data());
    for (int i = 0; i < blocks; ++i) {
      kernels::SirenView v;
      v.inDim = shape.inputDim();
      v.hidden = shape.hidden;
      v.sineLayers = shape.sineLayers;
      v.omega0 = shape.omega0;
      for (int l = 0; l < shape.layerCount(); ++l) {
        v.W[l] = W[size_t(l)].data() + size_t(list.mlp[size_t(i)] * shape.fanIn(l) * shape.fanOut(l));
        v.b[l] = b[size_t(l)].data() + size_t(list.mlp[size_t(i)] * shape.fanOut(l));
      }
      std::vector<float> cpu(size_t(V), 0.0f);
      kernels::evalSirenBlock(v, latents.data() + size_t(list.latentRow[size_t(i)] * shape.latentDim), bd,
                              &list.validDims[size_t(3 * i)], cpu.data());
      for (int k = 0; k < V; ++k)
        ASSERT_NEAR(got[size_t(i * V + k)], cpu[size_t(k)], 2e-5) << "block " << i << " voxel " << k;
    }
  }
}
