// The boundary CNN: the decode-side CPU kernel against LibTorch's conv3d forward (every instruction set), the
// byte format (exact round trip, refusal of truncated and garbage input), identity at zero weights, 2D data, and
// that training removes most of a synthetic block-offset artifact.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <random>

#include "../../Core/kernels/Conv3dCpu.h"
#include "ecnr/BoundaryCNN.h"

using namespace ecnr;

namespace {

// Restores automatic dispatch when a test that forced an instruction set ends.
struct IsaGuard {
  ~IsaGuard() { kernels::forceConvIsa(kernels::ConvIsa::Auto); }
};

BoundaryCnn randomCnn(int layers, int channels, int kernel, bool residual, uint32_t seed) {
  BoundaryCnn c = makeBoundaryCnn(layers, channels, kernel, residual);
  std::mt19937 rng(seed);
  for (int l = 0; l < layers; ++l) {
    // He-like scale so activations stay O(1) through the stack.
    const float s = std::sqrt(3.0f / float(c.inChannels(l) * kernel * kernel * kernel));
    std::uniform_real_distribution<float> uw(-s, s), ub(-0.2f, 0.2f);
    for (float& w : c.weights[size_t(l)]) w = uw(rng);
    for (float& b : c.biases[size_t(l)]) b = ub(rng);
  }
  return c;
}

Field randomField(const Dims4& d, uint32_t seed) {
  Field f(d);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& v : f.values) v = u(rng);
  return f;
}

// A smooth field in [-1, 1] and the same plus an offset per 8^3 block (per 8^2 tile when z = 1), of random size in
// [amplitude / 2, amplitude] and alternating sign: a 3D checkerboard of steps, which a CNN with a receptive radius
// of 5 can tell from the direction of the nearest jump. (Random signs are only partly recoverable from local jumps:
// 200 steps give about 1.2x there.)
void blockyPair(const Dims4& d, Field& smooth, Field& blocky, float amplitude, uint32_t seed) {
  smooth = Field(d);
  blocky = Field(d);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.5f * amplitude, amplitude);
  const int64_t bx = (d.x + 7) / 8, by = (d.y + 7) / 8, bz = (d.z + 7) / 8;
  std::vector<float> offset(size_t(bx * by * bz * d.t));
  for (size_t i = 0; i < offset.size(); ++i) {
    const int64_t x = int64_t(i) % bx, y = int64_t(i) / bx % by, z = int64_t(i) / (bx * by) % bz;
    offset[i] = (x + y + z) % 2 ? -u(rng) : u(rng);
  }
  const double pi = 3.14159265358979;
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x) {
          const double v = 0.5 * std::sin(2 * pi * (1.3 * x / d.x + 0.1 * t)) * std::cos(2 * pi * 0.9 * y / d.y) +
                           0.3 * std::sin(2 * pi * (1.1 * z / std::max<int64_t>(d.z, 8) + 0.7 * x / d.x));
          const size_t i = size_t(smooth.index(x, y, z, t));
          smooth.values[i] = float(v);
          blocky.values[i] = float(v) + offset[size_t(((t * bz + z / 8) * by + y / 8) * bx + x / 8)];
        }
}

double mse(const Field& a, const Field& b) {
  double s = 0;
  for (size_t i = 0; i < a.values.size(); ++i) s += double(a.values[i] - b.values[i]) * double(a.values[i] - b.values[i]);
  return s / double(a.values.size());
}

double maxAbsDiff(const Field& a, const Field& b) {
  double m = 0;
  for (size_t i = 0; i < a.values.size(); ++i) m = std::max(m, double(std::fabs(a.values[i] - b.values[i])));
  return m;
}

}  // namespace

TEST(BoundaryCnn, CpuApplyMatchesLibTorchConv3d) {
  IsaGuard guard;
  struct Case {
    Dims4 dims;
    int layers, channels, kernel;
    bool residual;
  };
  const Case cases[] = {
      {{13, 11, 7, 2}, 5, 8, 3, true},   // odd dims: x tails, y/z margins
      {{40, 9, 10, 1}, 5, 32, 3, true},  // the paper's width
      {{17, 6, 5, 1}, 3, 12, 3, false},  // channels not a multiple of the channel blocks
      {{11, 8, 7, 1}, 2, 4, 5, true},    // kernel 5
      {{9, 7, 3, 1}, 2, 3, 1, true},     // kernel 1
      {{1, 1, 1, 1}, 5, 8, 3, true},     // a single voxel
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const BoundaryCnn cnn = randomCnn(c.layers, c.channels, c.kernel, c.residual, seed++);
    const Field in = randomField(c.dims, seed++);
    Field ref = in;
    applyBoundaryCnnTorch(cnn, ref);
    for (auto isa : {kernels::ConvIsa::Generic, kernels::ConvIsa::Avx2, kernels::ConvIsa::Avx512}) {
      kernels::forceConvIsa(isa);
      Field out = in;
      applyBoundaryCnn(cnn, out);
      EXPECT_LT(maxAbsDiff(out, ref), 1e-4) << c.dims.str() << " channels " << c.channels << " kernel " << c.kernel
                                            << " isa " << int(kernels::convIsaInUse());
    }
  }
}

TEST(BoundaryCnn, TwoDimensionalVolumesWork) {
  IsaGuard guard;
  // z = 1: replicate padding makes the 3^3 kernel a 3^2 one (the kernel folds the z taps); LibTorch pads for real.
  const BoundaryCnn cnn = randomCnn(5, 16, 3, true, 7);
  const Field in = randomField({37, 21, 1, 3}, 8);
  Field ref = in;
  applyBoundaryCnnTorch(cnn, ref);
  for (auto isa : {kernels::ConvIsa::Generic, kernels::ConvIsa::Avx2, kernels::ConvIsa::Avx512}) {
    kernels::forceConvIsa(isa);
    Field out = in;
    applyBoundaryCnn(cnn, out);
    EXPECT_LT(maxAbsDiff(out, ref), 1e-4) << "isa " << int(kernels::convIsaInUse());
  }

  // And training on a 2D image with blocky offsets helps there too.
  Field smooth, blocky;
  blockyPair({64, 64, 1, 2}, smooth, blocky, 0.05f, 3);
  BoundaryCnnOptions o;
  o.channels = 8;
  o.steps = 150;
  o.patch = 24;
  o.batch = 2;
  o.learningRate = 3e-3f;
  o.threads = 1;
  const BoundaryCnn trained = trainBoundaryCnn(blocky, smooth, o);
  Field fixed = blocky;
  applyBoundaryCnn(trained, fixed);
  const double before = mse(blocky, smooth), after = mse(fixed, smooth);
  std::cout << "[ train    ] 64^2 x 2 (z = 1), 8 channels, " << o.steps << " steps: MSE " << before << " -> " << after
            << " (" << before / after << "x)\n";
  EXPECT_LT(after, 0.7 * before);
}

TEST(BoundaryCnn, ZeroWeightsWithResidualIsIdentity) {
  const BoundaryCnn cnn = makeBoundaryCnn(5, 8, 3, true);
  const Field in = randomField({10, 9, 8, 2}, 3);
  Field out = in;
  applyBoundaryCnn(cnn, out);
  EXPECT_EQ(out.values, in.values);
  // Without the residual the same network outputs zero.
  BoundaryCnn plain = cnn;
  plain.residual = false;
  applyBoundaryCnn(plain, out);
  for (float v : out.values) ASSERT_EQ(v, 0.0f);
}

TEST(BoundaryCnn, SerializeParseRoundTripIsExact) {
  BoundaryCnn cnn = randomCnn(5, 32, 3, true, 11);
  EXPECT_THROW(serializeBoundaryCnn(cnn), Error);  // not quantized yet
  quantizeBoundaryCnn(cnn, 9);
  const std::vector<uint8_t> bytes = serializeBoundaryCnn(cnn);
  const BoundaryCnn back = parseBoundaryCnn(bytes.data(), bytes.size());
  EXPECT_EQ(back.layers, cnn.layers);
  EXPECT_EQ(back.channels, cnn.channels);
  EXPECT_EQ(back.kernel, cnn.kernel);
  EXPECT_EQ(back.residual, cnn.residual);
  EXPECT_EQ(back.bits, 9);
  EXPECT_EQ(back.weights, cnn.weights);
  EXPECT_EQ(back.biases, cnn.biases);
  EXPECT_EQ(back.weightScale, cnn.weightScale);
  EXPECT_EQ(back.biasScale, cnn.biasScale);
  EXPECT_EQ(serializeBoundaryCnn(back), bytes);
  // 9 bits a value plus 12 header bytes and 8 per layer.
  EXPECT_EQ(bytes.size(), size_t(12 + 8 * 5 + (cnn.parameterCount() * 9 + 7) / 8));

  // Quantization keeps the values close: within half a step of the layer's scale.
  const BoundaryCnn orig = randomCnn(5, 32, 3, true, 11);
  for (size_t l = 0; l < 5; ++l)
    for (size_t i = 0; i < orig.weights[l].size(); ++i)
      ASSERT_LE(std::fabs(orig.weights[l][i] - cnn.weights[l][i]), 0.5001f * cnn.weightScale[l]);

  for (int channels : {32, 16, 8}) {
    BoundaryCnn c = randomCnn(5, channels, 3, true, 5);
    quantizeBoundaryCnn(c, 9);
    std::cout << "[ size     ] boundary CNN, 5 layers, " << channels << " channels, 9 bits: "
              << serializeBoundaryCnn(c).size() << " bytes (" << c.parameterCount() << " parameters)\n";
  }
}

TEST(BoundaryCnn, ParseRefusesTruncationAndGarbage) {
  BoundaryCnn cnn = randomCnn(3, 2, 3, true, 4);
  quantizeBoundaryCnn(cnn, 9);
  std::vector<uint8_t> bytes = serializeBoundaryCnn(cnn);
  ASSERT_NO_THROW(parseBoundaryCnn(bytes.data(), bytes.size()));
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(parseBoundaryCnn(bytes.data(), n), Error) << n;
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(parseBoundaryCnn(longer.data(), longer.size()), Error);

  // Every header byte changed in turn: refused, or (when the change is benign) a well-formed network.
  for (size_t i = 0; i < 12; ++i)
    for (int delta : {1, 0x80, 0xFF}) {
      std::vector<uint8_t> b = bytes;
      b[i] = uint8_t(b[i] + delta);
      try {
        parseBoundaryCnn(b.data(), b.size()).validate();
      } catch (const Error&) {
      }
    }
  // Claims of a huge network are refused by the size check before anything is allocated.
  std::vector<uint8_t> huge = bytes;
  huge[6] = 16;
  huge[8] = 0;
  huge[9] = 1;  // 256 channels
  EXPECT_THROW(parseBoundaryCnn(huge.data(), huge.size()), Error);

  std::mt19937 rng(9);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> g(size_t(rng() % 200));
    for (auto& v : g) v = uint8_t(rng());
    if (trial % 2 && g.size() >= 12) std::copy(bytes.begin(), bytes.begin() + 12, g.begin());  // valid header
    EXPECT_THROW(parseBoundaryCnn(g.data(), g.size()), Error);
  }
  // Random payload behind the exact header and length: refused or well-formed, never anything else.
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint8_t> g = bytes;
    for (size_t i = 12; i < g.size(); ++i) g[i] = uint8_t(rng());
    try {
      parseBoundaryCnn(g.data(), g.size()).validate();
    } catch (const Error&) {
    }
  }
}

TEST(BoundaryCnn, TrainingReducesBlockBoundaryError) {
  Field smooth, blocky;
  blockyPair({32, 32, 32, 2}, smooth, blocky, 0.05f, 1);
  BoundaryCnnOptions o;
  o.channels = 8;
  o.steps = 200;
  o.patch = 16;
  o.batch = 1;
  o.learningRate = 3e-3f;
  o.threads = 1;  // LibTorch's OpenMP regions run ~10x slower on 2 threads when other jobs share the 2 cores
  const auto t0 = std::chrono::steady_clock::now();
  const BoundaryCnn cnn = trainBoundaryCnn(blocky, smooth, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(cnn.bits, 9);  // quantized: what the archive would store
  EXPECT_FALSE(cnn.isIdentity());
  Field fixed = blocky;
  applyBoundaryCnn(cnn, fixed);
  const double before = mse(blocky, smooth), after = mse(fixed, smooth);
  std::cout << "[ train    ] 32^3 x 2, 8 channels, " << o.steps << " steps: MSE " << before << " -> " << after << " ("
            << before / after << "x) in " << seconds << " s\n";
  EXPECT_LT(after, 0.6 * before);
}

TEST(BoundaryCnn, TrainingOnAnExactDecodeReturnsTheIdentity) {
  // Nothing to correct: any trained correction is noise, so the held-out check falls back to the identity.
  Field smooth, blocky;
  blockyPair({24, 24, 24, 1}, smooth, blocky, 0.05f, 2);
  BoundaryCnnOptions o;
  o.channels = 4;
  o.steps = 20;
  o.patch = 8;
  o.learningRate = 1e-2f;
  o.threads = 1;
  const BoundaryCnn cnn = trainBoundaryCnn(smooth, smooth, o);
  EXPECT_TRUE(cnn.isIdentity());
  EXPECT_EQ(cnn.bits, 9);
  Field f = smooth;
  applyBoundaryCnn(cnn, f);
  EXPECT_EQ(f.values, smooth.values);
}
