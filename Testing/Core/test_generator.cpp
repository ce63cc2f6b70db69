#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ecnr/Generator.h"

using namespace ecnr;

namespace {

GrayScottParams smallParams(uint64_t seed = 7) {
  GrayScottParams p;
  p.nx = 32, p.ny = 32, p.nz = 32;
  p.steps = 6, p.warmup = 300, p.itersPerStep = 40;
  p.seed = seed;
  return p;
}

double stepStd(const Field& f, int64_t t) {
  const int64_t n = f.dims.voxelsPerStep();
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += f.step(t)[i], sq += double(f.step(t)[i]) * f.step(t)[i];
  const double mean = sum / double(n);
  return std::sqrt(std::max(0.0, sq / double(n) - mean * mean));
}

double meanAbsDifference(const Field& f, int64_t a, int64_t b) {
  const int64_t n = f.dims.voxelsPerStep();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(double(f.step(a)[i]) - f.step(b)[i]);
  return sum / double(n);
}

}  // namespace

TEST(Generator, SameSeedIsBitIdentical) {
  const Field a = generateGrayScott(smallParams());
  const Field b = generateGrayScott(smallParams());
  ASSERT_EQ(a.dims, b.dims);
  EXPECT_EQ(std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)), 0);
}

TEST(Generator, DifferentSeedDiffers) {
  const Field a = generateGrayScott(smallParams(7));
  const Field b = generateGrayScott(smallParams(8));
  EXPECT_NE(std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)), 0);
}

TEST(Generator, ValuesAreFiniteAndInUnitRange) {
  const Field f = generateGrayScott(smallParams());
  EXPECT_EQ(f.dims, (Dims4{32, 32, 32, 6}));
  for (float v : f.values) {
    ASSERT_TRUE(std::isfinite(v));
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

TEST(Generator, EveryStepHasStructureAndTheFieldEvolves) {
  const Field f = generateGrayScott(smallParams());
  for (int64_t t = 0; t < f.dims.t; ++t) EXPECT_GT(stepStd(f, t), 0.01) << "step " << t << " is nearly uniform";
  EXPECT_GT(meanAbsDifference(f, 0, f.dims.t - 1), 0.01) << "the pattern does not evolve";
}

TEST(Generator, DefaultsGiveAGrowingPattern) {
  const GrayScottParams p;
  const Field f = generateGrayScott(p);
  ASSERT_EQ(f.dims, (Dims4{p.nx, p.ny, p.nz, p.steps}));
  for (int64_t t = 0; t < f.dims.t; ++t) EXPECT_GT(stepStd(f, t), 0.05) << "step " << t;
  for (int64_t t = 1; t < f.dims.t; ++t) EXPECT_GT(meanAbsDifference(f, t - 1, t), 1e-3) << "step " << t;
}

TEST(Generator, RefusesUnstableOrEmptyParameters) {
  GrayScottParams p = smallParams();
  p.Du = 0.16;  // satisfies 6 Du < 1 but the reaction terms make dt = 1 unstable
  EXPECT_THROW(generateGrayScott(p), Error);
  p = smallParams();
  p.steps = 0;
  EXPECT_THROW(generateGrayScott(p), Error);
  p = smallParams();
  p.itersPerStep = 0;
  EXPECT_THROW(generateGrayScott(p), Error);
}
