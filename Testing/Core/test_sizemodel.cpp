#include <gtest/gtest.h>

#include <cmath>

#include "ecnr/Pyramid.h"
#include "ecnr/SizeModel.h"

using namespace ecnr;

namespace {

// Smooth everywhere except a detailed corner: only blocks near the corner need fine-scale work.
std::vector<Field> residualsOfCornerField(ResolvedSettings& r) {
  const Dims4 d{64, 64, 64, 1};
  Field f(d);
  for (int64_t z = 0; z < 64; ++z)
    for (int64_t y = 0; y < 64; ++y)
      for (int64_t x = 0; x < 64; ++x)
        f.at(x, y, z, 0) = 0.3f * std::sin(0.05f * x) + (x < 16 && y < 16 && z < 16 ? 0.5f * std::sin(1.7f * x * y) : 0.0f);
  EncoderSettings s;
  s.blockDims = {8, 8, 8};
  r = resolveSettings(s, d);
  const PyramidPlan plan = planPyramid(d, r.s.scales, r.s.minAxisLength);
  std::vector<Field> levels{f};
  for (size_t i = 1; i < plan.dims.size(); ++i) levels.push_back(downsample(levels.back(), plan.halved[i]));
  std::vector<Field> res;
  for (size_t i = 0; i + 1 < levels.size(); ++i) {
    Field e = levels[i];
    const Field up = upsample(levels[i + 1], plan.halved[i + 1], levels[i].dims);
    for (size_t k = 0; k < e.values.size(); ++k) e.values[k] -= up.values[k];
    res.push_back(e);
  }
  res.push_back(levels.back());
  return res;
}

}  // namespace

TEST(SizeModel, UpperBoundCountsEveryBlock) {
  EncoderSettings s;
  s.blockDims = {8, 8, 8};
  const ResolvedSettings r = resolveSettings(s, Dims4{64, 64, 64, 1});
  const SizeEstimate e = estimateSize(Dims4{64, 64, 64, 1}, r, {8, 8, 8});
  EXPECT_EQ(e.blocks, 512 + 64 + 8);
  EXPECT_EQ(e.mlps, 512 / 4 + 64 / 2 + 8);
  EXPECT_NEAR(e.ratio, 64.0 * 64 * 64 * 4 / double(e.bytes), 1e-9);
}

TEST(SizeModel, DataAwareEstimateKeepsOnlyDetailedBlocks) {
  ResolvedSettings r;
  const std::vector<Field> res = residualsOfCornerField(r);
  const SizeEstimate bound = estimateSize(res.front().dims, r, {8, 8, 8});
  const SizeEstimate aware = estimateSize(res, r, {8, 8, 8});
  EXPECT_LT(aware.blocks, bound.blocks / 2);
  EXPECT_GT(aware.ratio, bound.ratio);
  EXPECT_GE(aware.blocks, 8 + 8);  // the coarsest scale is always kept, and the corner at the finest
}

TEST(SizeModel, ChooserReachesTheTargetWithTheSmallestBlock) {
  ResolvedSettings r;
  const std::vector<Field> res = residualsOfCornerField(r);
  r.s.targetRatio = 100;
  r.s.boundaryCnn = false;  // a fixed cost this small field cannot amortize
  const auto bd = chooseBlockDims(res, r);
  EXPECT_GE(estimateSize(res, r, bd).ratio, 100.0);
  EXPECT_LT(estimateSize(res, r, {4, 4, 4}).ratio, 100.0);  // so the chooser had to grow the block
}
