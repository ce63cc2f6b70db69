#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ecnr/Pyramid.h"

using namespace ecnr;

namespace {
Field linearField(const Dims4& d) {
  Field f(d);
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x) f.at(x, y, z, t) = 0.5f * x - 0.25f * y + 0.125f * z + 0.75f * t;
  return f;
}
}  // namespace

TEST(Pyramid, PlanHalvesEveryLongAxisAndNeverFlatOnes) {
  const PyramidPlan p = planPyramid(Dims4{144, 73, 1, 132}, 3, 8);
  ASSERT_EQ(p.dims.size(), 3u);
  EXPECT_EQ(p.dims[1], (Dims4{72, 37, 1, 67}));  // time keeps even steps + the last
  EXPECT_EQ(p.dims[2], (Dims4{36, 19, 1, 34}));
  EXPECT_FALSE(p.halved[1][2]);
}

TEST(Pyramid, ShortAxesStopHalving) {
  const PyramidPlan p = planPyramid(Dims4{64, 64, 19, 12}, 3, 8);
  ASSERT_EQ(p.dims.size(), 3u);
  EXPECT_EQ(p.dims[1], (Dims4{32, 32, 10, 7}));
  EXPECT_TRUE(p.halved[1][2]);
  EXPECT_FALSE(p.halved[2][2]);  // 10 -> 5 would drop below 8
  EXPECT_TRUE(p.halved[2][3]);   // 7 -> 4 stays >= 8 / 2
  EXPECT_EQ(p.dims[2], (Dims4{16, 16, 10, 4}));
}

TEST(Pyramid, StaticVolumeNeverHalvesTime) {
  const PyramidPlan p = planPyramid(Dims4{32, 32, 32, 1}, 3, 4);
  EXPECT_EQ(p.dims[2], (Dims4{8, 8, 8, 1}));
}

TEST(Pyramid, DownsampleOfConstantIsConstant) {
  Field f(Dims4{9, 8, 7, 5}, 3.5f);
  const Field c = downsample(f, HalvedAxes{true, true, true, true});
  EXPECT_EQ(c.dims, (Dims4{5, 4, 4, 3}));
  for (float v : c.values) EXPECT_FLOAT_EQ(v, 3.5f);
}

TEST(Pyramid, UpsampleReproducesLinearFieldsInside) {
  // Linear interpolation is exact on a linear field wherever no clamping happens (interior, odd lengths).
  const Dims4 fine{9, 9, 9, 5};
  const HalvedAxes h{true, true, true, true};
  Field coarse(downsampledDims(fine, h));
  const Field full = linearField(fine);
  for (int64_t t = 0; t < coarse.dims.t; ++t)
    for (int64_t z = 0; z < coarse.dims.z; ++z)
      for (int64_t y = 0; y < coarse.dims.y; ++y)
        for (int64_t x = 0; x < coarse.dims.x; ++x) coarse.at(x, y, z, t) = full.at(2 * x, 2 * y, 2 * z, std::min<int64_t>(2 * t, 4));
  const Field up = upsample(coarse, h, fine);
  for (size_t i = 0; i < up.values.size(); ++i) EXPECT_NEAR(up.values[i], full.values[i], 1e-5);
}

TEST(Pyramid, TimeInterpolatesBetweenKeptSteps) {
  const Dims4 fine{4, 4, 1, 6};
  Field f = linearField(fine);
  const HalvedAxes h{false, false, false, true};
  const Field c = downsample(f, h);
  ASSERT_EQ(c.dims.t, 4);  // steps 0, 2, 4, 5
  const Field up = upsample(c, h, fine);
  // Steps 0..5 of a field linear in t: the [1 2 1] prefilter is exact inside, and the kept end step clamps.
  for (int64_t x = 0; x < 4; ++x) {
    EXPECT_NEAR(up.at(x, 1, 0, 3), f.at(x, 1, 0, 3), 1e-5);
    EXPECT_NEAR(up.at(x, 1, 0, 2), f.at(x, 1, 0, 2), 1e-5);
  }
}

TEST(Pyramid, UpsampleRefusesMismatchedDims) {
  Field c(Dims4{3, 3, 3, 1});
  EXPECT_THROW(upsample(c, HalvedAxes{true, true, true, false}, Dims4{9, 9, 9, 1}), Error);
}

namespace {
// D written out over the whole 4D series: [1 2 1]/4 along each halved axis in turn (x, y, z, t; edges clamped,
// every pass rounded to float), then the kept samples (space: even positions; time: even steps and the last).
Field referenceDownsample(const Field& fine, const HalvedAxes& h) {
  Field s = fine;
  const Dims4 d = fine.dims;
  for (int a = 0; a < 4; ++a) {
    if (!h[size_t(a)]) continue;
    Field out = s;
    for (int64_t t = 0; t < d.t; ++t)
      for (int64_t z = 0; z < d.z; ++z)
        for (int64_t y = 0; y < d.y; ++y)
          for (int64_t x = 0; x < d.x; ++x) {
            int64_t p[4] = {x, y, z, t};
            const float c = s.at(x, y, z, t);
            const int64_t pos = p[a];
            p[a] = pos - 1;
            const float lo = pos > 0 ? s.at(p[0], p[1], p[2], p[3]) : c;
            p[a] = pos + 1;
            const float hi = pos + 1 < d[a] ? s.at(p[0], p[1], p[2], p[3]) : c;
            out.at(x, y, z, t) = 0.25f * lo + 0.5f * c + 0.25f * hi;
          }
    s = std::move(out);
  }
  Field coarse(downsampledDims(d, h));
  for (int64_t t = 0; t < coarse.dims.t; ++t)
    for (int64_t z = 0; z < coarse.dims.z; ++z)
      for (int64_t y = 0; y < coarse.dims.y; ++y)
        for (int64_t x = 0; x < coarse.dims.x; ++x)
          coarse.at(x, y, z, t) = s.at(h[0] ? 2 * x : x, h[1] ? 2 * y : y, h[2] ? 2 * z : z,
                                       h[3] ? std::min(2 * t, d.t - 1) : t);
  return coarse;
}

Field noiseField(const Dims4& d, unsigned seed) {
  Field f(d);
  unsigned s = seed;
  for (float& v : f.values) {
    s = s * 1664525u + 1013904223u;
    v = float(s >> 8) / float(1 << 24) * 2.0f - 1.0f;
  }
  return f;
}
}  // namespace

// The encoder never holds the finest level: it builds V_1 from the input step by step and upsamples the coarser
// reconstruction one step at a time. Both must be the whole-series operators to the bit (D written out over the
// 4D series, U as upsample() computes it), or archives would depend on how the input was read.
TEST(Pyramid, StepByStepOperatorsEqualTheWholeSeriesOnesToTheBit) {
  for (const Dims4 d : {Dims4{17, 12, 9, 11}, Dims4{16, 16, 16, 8}, Dims4{9, 8, 1, 6}, Dims4{12, 10, 8, 1}}) {
    const PyramidPlan plan = planPyramid(d, 2, 4);
    ASSERT_EQ(plan.dims.size(), 2u) << d.str();
    const HalvedAxes h = plan.halved[1];
    const Field f = noiseField(d, unsigned(d.count()));
    auto twice = [](float* v, int64_t n) {
      for (int64_t i = 0; i < n; ++i) v[i] *= 2.0f;
    };
    Field prepared = f;
    twice(prepared.values.data(), int64_t(prepared.values.size()));
    const Field whole = referenceDownsample(prepared, h);
    const Field streamed = downsample(MemorySource(f), h, twice);
    ASSERT_EQ(streamed.dims, whole.dims);
    EXPECT_EQ(0, std::memcmp(streamed.values.data(), whole.values.data(), whole.values.size() * 4)) << d.str();
    EXPECT_EQ(downsample(prepared, h).values, whole.values) << d.str();

    const Field coarse = noiseField(plan.dims[1], 7);
    const Field up = upsample(coarse, h, d);
    StepUpsampler steps(coarse, h, d);
    std::vector<float> one(size_t(d.voxelsPerStep()));
    for (int64_t t : {int64_t(0), int64_t(1), d.t - 1, int64_t(0), d.t / 2}) {  // in order and back again
      if (t >= d.t) continue;
      steps.step(t, one.data());
      EXPECT_EQ(0, std::memcmp(one.data(), up.step(t), one.size() * 4)) << d.str() << " t=" << t;
    }
    EXPECT_THROW(steps.step(d.t, one.data()), Error);
  }
}
