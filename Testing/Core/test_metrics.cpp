#include <gtest/gtest.h>

#include <cmath>

#include "ecnr/Metrics.h"

using namespace ecnr;

namespace {

/// Values 0..4 so the range is exactly 4.
Field ramp(const Dims4& d) {
  Field f(d);
  for (size_t i = 0; i < f.values.size(); ++i) f.values[i] = float(i % 5);
  return f;
}

}  // namespace

TEST(Metrics, KnownMseGivesKnownPsnr) {
  const Field a = ramp(Dims4{5, 4, 3, 2});
  Field b = a;
  for (size_t i = 0; i < b.values.size(); ++i) b.values[i] += (i % 2 ? 0.25f : -0.25f);
  const ErrorStats s = compareFields(a, b);
  EXPECT_DOUBLE_EQ(s.range, 4.0);
  EXPECT_NEAR(s.rmse, 0.25, 1e-12);
  EXPECT_NEAR(s.maxAbs, 0.25, 1e-12);
  const double expected = 20 * std::log10(4.0) - 10 * std::log10(0.0625);
  EXPECT_NEAR(s.psnr, expected, 1e-9);
  EXPECT_NEAR(s.meanStepPsnr, expected, 1e-9);
}

TEST(Metrics, IdenticalFieldsAreInfinitePsnr) {
  const Field a = ramp(Dims4{4, 4, 4, 3});
  const ErrorStats s = compareFields(a, a);
  EXPECT_TRUE(std::isinf(s.psnr) && s.psnr > 0);
  EXPECT_EQ(s.rmse, 0.0);
  EXPECT_EQ(s.maxAbs, 0.0);
  EXPECT_DOUBLE_EQ(s.meanStepPsnr, 200.0);  // lossless steps are capped
}

TEST(Metrics, MaxErrorLocationIsReported) {
  const Field a = ramp(Dims4{4, 3, 2, 2});
  Field b = a;
  b.at(1, 0, 0, 0) += 0.1f;
  b.at(2, 1, 1, 1) -= 0.7f;
  b.at(3, 2, 1, 1) += 0.5f;
  const ErrorStats s = compareFields(a, b);
  EXPECT_EQ(s.maxAbsIndex, a.index(2, 1, 1, 1));
  EXPECT_NEAR(s.maxAbs, 0.7, 1e-6);
}

TEST(Metrics, MeanStepPsnrUsesTheGlobalRange) {
  Field a = ramp(Dims4{5, 2, 1, 2});
  for (int64_t x = 0; x < 5; ++x) a.at(x, 0, 0, 1) = a.at(x, 1, 0, 1) = 1.0f;  // step 1 alone has range 0
  Field b = a;
  for (int64_t x = 0; x < 5; ++x) b.at(x, 0, 0, 1) += 0.5f;
  const ErrorStats s = compareFields(a, b);
  const double step1 = 20 * std::log10(4.0) - 10 * std::log10(0.125);  // half the step is off by 0.5
  EXPECT_NEAR(s.meanStepPsnr, (200.0 + step1) / 2, 1e-9);
  EXPECT_NEAR(s.psnr, 20 * std::log10(4.0) - 10 * std::log10(0.0625), 1e-9);
}

TEST(Metrics, ConstantOriginalWithErrorIsMinusInfinity) {
  const Field a(Dims4{3, 3, 3, 1}, 2.0f);
  Field b = a;
  b.values[5] = 2.5f;
  const ErrorStats s = compareFields(a, b);
  EXPECT_EQ(s.range, 0.0);
  EXPECT_TRUE(std::isinf(s.psnr) && s.psnr < 0);
}

TEST(Metrics, NaNInDecodedIsNotHidden) {
  const Field a = ramp(Dims4{4, 4, 1, 1});
  Field b = a;
  b.values[3] = std::nanf("");
  const ErrorStats s = compareFields(a, b);
  EXPECT_TRUE(std::isnan(s.maxAbs));
  EXPECT_EQ(s.maxAbsIndex, 3);
  EXPECT_TRUE(std::isnan(s.psnr));
}

TEST(Metrics, DifferentDimsAreRefused) {
  EXPECT_THROW(compareFields(Field(Dims4{4, 4, 4, 1}), Field(Dims4{4, 4, 4, 2})), Error);
}
