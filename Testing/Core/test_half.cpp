#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ecnr/Half.h"

using namespace ecnr;

namespace {

float pow2(int e) { return std::ldexp(1.0f, e); }

uint32_t bitsOf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

}  // namespace

TEST(Half, ExactValues) {
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(0.5f), 0x3800);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(pow2(-14)), 0x0400);  // smallest normal
  EXPECT_EQ(halfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(halfToFloat(0xC000), -2.0f);
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(bitsOf(halfToFloat(0x8000)), bitsOf(-0.0f));
}

TEST(Half, Subnormals) {
  EXPECT_EQ(floatToHalf(pow2(-24)), 0x0001);
  EXPECT_EQ(halfToFloat(0x0001), pow2(-24));
  EXPECT_EQ(floatToHalf(-pow2(-24)), 0x8001);
  EXPECT_EQ(halfToFloat(0x03FF), 1023 * pow2(-24));  // largest subnormal
  EXPECT_EQ(floatToHalf(1023 * pow2(-24)), 0x03FF);
  EXPECT_EQ(floatToHalf(pow2(-25)), 0x0000);                     // tie between 0 and 2^-24: even is 0
  EXPECT_EQ(floatToHalf(std::nextafter(pow2(-25), 1.0f)), 0x0001);  // just above the tie
  EXPECT_EQ(floatToHalf(1.5f * pow2(-24)), 0x0002);              // tie between 1 and 2 units: even is 2
  EXPECT_EQ(floatToHalf(2.5f * pow2(-24)), 0x0002);              // tie between 2 and 3 units: even is 2
  EXPECT_EQ(floatToHalf(pow2(-14) - pow2(-25)), 0x0400);         // rounds up into the normals
  EXPECT_EQ(floatToHalf(pow2(-30)), 0x0000);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(floatToHalf(-std::numeric_limits<float>::denorm_min()), 0x8000);
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(floatToHalf(1.0f + pow2(-11)), 0x3C00);      // tie, 1.0 is even
  EXPECT_EQ(floatToHalf(1.0f + 3 * pow2(-11)), 0x3C02);  // tie, 1 + 2^-9 is even
  EXPECT_EQ(floatToHalf(std::nextafter(1.0f + pow2(-11), 2.0f)), 0x3C01);  // above the tie
  EXPECT_EQ(floatToHalf(2049.0f), floatToHalf(2048.0f));
  EXPECT_EQ(halfToFloat(floatToHalf(2051.0f)), 2052.0f);
  EXPECT_EQ(floatToHalf(65519.0f), 0x7BFF);  // below the overflow threshold
  EXPECT_EQ(floatToHalf(-65519.0f), 0xFBFF);
}

TEST(Half, OverflowAndInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(floatToHalf(-65520.0f), 0xFC00);
  EXPECT_EQ(floatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(floatToHalf(inf), 0x7C00);
  EXPECT_EQ(floatToHalf(-inf), 0xFC00);
  EXPECT_EQ(halfToFloat(0x7C00), inf);
  EXPECT_EQ(halfToFloat(0xFC00), -inf);
}

TEST(Half, NaNStaysNaN) {
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(-std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low bits must not become inf when those bits are dropped.
  uint32_t lowPayload = 0x7F800001u;
  float f;
  std::memcpy(&f, &lowPayload, sizeof f);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(f))));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7C01)));
  EXPECT_TRUE(std::isnan(halfToFloat(0xFE00)));
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const float f = halfToFloat(uint16_t(h));
    const bool isNaN = (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0;
    if (isNaN) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_TRUE(std::isnan(halfToFloat(floatToHalf(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(floatToHalf(f), h) << std::hex << h;
    }
  }
}

TEST(Half, MatchesRoundingOfNeighbours) {
  // Between two adjacent halves, the midpoint decides: below rounds down, above rounds up.
  for (uint32_t h = 0x0000; h < 0x7BFF; h += 7) {
    const float lo = halfToFloat(uint16_t(h)), hi = halfToFloat(uint16_t(h + 1));
    const float mid = lo + (hi - lo) / 2;  // exact in float
    ASSERT_EQ(floatToHalf(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(floatToHalf(std::nextafter(mid, 1e9f)), h + 1) << std::hex << h;
    ASSERT_EQ(floatToHalf(mid), (h & 1u) ? h + 1 : h) << std::hex << h;
  }
}
