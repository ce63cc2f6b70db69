// Residual: the error-bounded correction's coder alone (no training, so it also runs in the ASan/UBSan build):
// round trips, the bound under decoder noise, Lorenzo on smooth corrections, exact voxels, hostile streams.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ecnr/Residual.h"

using namespace ecnr;

TEST(Residual, StepRoundTripsAndKeepsTheBoundUnderDecoderNoise) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const Dims4 d{13, 9, 5, 1};
  std::vector<float> orig(size_t(d.voxelsPerStep())), dec(orig.size());
  for (size_t i = 0; i < orig.size(); ++i) {
    orig[i] = std::sin(0.3f * float(i)) * 10.0f + noise(rng);
    dec[i] = orig[i] + 0.5f * noise(rng);
  }
  for (double bound : {1.0, 0.1, 1e-3, 1e-5}) {
    const double slack = bound * 0.1;
    ResidualStepStats st;
    const std::vector<uint8_t> s = encodeResidualStep(orig.data(), dec.data(), d, 2 * (bound - slack), bound, slack, &st);
    EXPECT_EQ(st.bytes, s.size());
    // A decoder that differs from the reference by up to the slack still lands within the bound.
    for (float jitter : {0.0f, float(slack), -float(slack)}) {
      std::vector<float> out(dec);
      for (float& v : out) v += jitter;
      applyResidualStep(s, d, 2 * (bound - slack), out.data());
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_LE(std::fabs(double(orig[i]) - out[i]), bound) << "bound " << bound << " voxel " << i;
    }
  }
}

TEST(Residual, LorenzoIsChosenForSmoothCorrectionsAndSubBoxesMatch) {
  const Dims4 d{24, 20, 6, 1};
  std::vector<float> orig(size_t(d.voxelsPerStep())), dec(orig.size(), 0.0f);
  for (int64_t z = 0, i = 0; z < d.z; ++z)
    for (int64_t y = 0; y < d.y; ++y)
      for (int64_t x = 0; x < d.x; ++x, ++i) orig[size_t(i)] = 0.05f * float(x + 2 * y + 3 * z);  // a ramp
  ResidualStepStats st;
  const std::vector<uint8_t> s = encodeResidualStep(orig.data(), dec.data(), d, 0.01, 0.005, 0, &st);
  EXPECT_EQ(st.predictor, ResidualPredictor::Lorenzo);
  std::vector<float> full(dec);
  applyResidualStep(s, d, 0.01, full.data());
  const std::array<int64_t, 6> box{3, 10, 4, 4, 1, 5};
  std::vector<float> part(8 * 1 * 5, 0.0f);
  applyResidualStep(s, d, 0.01, part.data(), &box);
  for (int64_t z = 1; z <= 5; ++z)
    for (int64_t x = 3; x <= 10; ++x)
      EXPECT_EQ(part[size_t((z - 1) * 8 + (x - 3))], full[size_t((z * d.y + 4) * d.x + x)]);
}

TEST(Residual, HugeAndNonFiniteDecodesAreStoredExactly) {
  const Dims4 d{4, 4, 1, 1};
  std::vector<float> orig(16), dec(16);
  for (int i = 0; i < 16; ++i) {
    orig[size_t(i)] = i % 2 ? 3.0e38f : -3.0e38f;  // a range beyond FLT_MAX
    dec[size_t(i)] = i == 5 ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  }
  ResidualStepStats st;
  const std::vector<uint8_t> s = encodeResidualStep(orig.data(), dec.data(), d, 1e30, 1e30, 0, &st);
  EXPECT_GT(st.exact, 0);
  std::vector<float> out(dec);
  applyResidualStep(s, d, 1e30, out.data());
  for (int i = 0; i < 16; ++i) EXPECT_LE(std::fabs(double(orig[size_t(i)]) - out[size_t(i)]), 1e30) << i;
}

TEST(Residual, MalformedStreamsAreRefused) {
  const Dims4 d{8, 8, 2, 1};
  std::vector<float> orig(128), dec(128, 0.0f);
  for (size_t i = 0; i < orig.size(); ++i) orig[i] = float(i % 7) - 3.0f;
  const std::vector<uint8_t> good = encodeResidualStep(orig.data(), dec.data(), d, 0.1, 0.05, 0);
  std::vector<float> out(dec);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    const std::vector<uint8_t> bad(good.begin(), good.begin() + long(cut));
    EXPECT_THROW(applyResidualStep(bad, d, 0.1, out.data()), Error) << "truncated at " << cut;
  }
  std::vector<uint8_t> trailing = good;
  trailing.push_back(0);
  EXPECT_THROW(applyResidualStep(trailing, d, 0.1, out.data()), Error);
  std::vector<uint8_t> predictor = good;
  predictor[0] = 9;
  EXPECT_THROW(applyResidualStep(predictor, d, 0.1, out.data()), Error);
  std::mt19937 rng(3);
  for (int k = 0; k < 200; ++k) {  // random flips: an error or some values, never a crash
    std::vector<uint8_t> flip = good;
    flip[rng() % flip.size()] ^= uint8_t(1u << (rng() % 8));
    try {
      applyResidualStep(flip, d, 0.1, out.data());
    } catch (const Error&) {
    }
  }
}

