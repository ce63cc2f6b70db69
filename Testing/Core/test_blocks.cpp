#include <gtest/gtest.h>

#include "ecnr/Blocks.h"

using namespace ecnr;

TEST(Blocks, PartitionAndReassemblyIsTheIdentityWithPadding) {
  const Dims4 d{23, 17, 9, 3};  // no axis divides by the block
  Field f(d);
  for (size_t i = 0; i < f.values.size(); ++i) f.values[i] = float(i % 1013) * 0.5f;
  const BlockGrid g = makeBlockGrid(d, {8, 8, 4});
  EXPECT_EQ(g.counts[0], 3);
  EXPECT_EQ(g.counts[1], 3);
  EXPECT_EQ(g.counts[2], 3);
  Field back(d, -1.0f);
  std::vector<float> buf(size_t(g.voxelsPerBlock()));
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t b = 0; b < g.blocksPerStep(); ++b) {
      extractBlock(f, g, t, b, buf.data());
      insertBlock(back.step(t), g, b, buf.data(), false);
    }
  EXPECT_EQ(back.values, f.values);
}

TEST(Blocks, PaddingReplicatesTheEdgeAndValidDimsClip) {
  const Dims4 d{10, 4, 1, 1};
  Field f(d);
  for (int64_t x = 0; x < 10; ++x)
    for (int64_t y = 0; y < 4; ++y) f.at(x, y, 0, 0) = float(x + 100 * y);
  const BlockGrid g = makeBlockGrid(d, {8, 8, 1});
  const auto v = g.validDims(1);
  EXPECT_EQ(v[0], 2);
  EXPECT_EQ(v[1], 4);
  EXPECT_EQ(g.validVoxels(1), 8);
  std::vector<float> buf(size_t(g.voxelsPerBlock()));
  extractBlock(f, g, 0, 1, buf.data());
  EXPECT_EQ(buf[7], 9.0f);            // x beyond the grid repeats x = 9
  EXPECT_EQ(buf[7 * 8 + 0], 308.0f);  // y beyond the grid repeats y = 3
}

TEST(Blocks, MeanSquareCountsOnlyValidVoxels) {
  const Dims4 d{5, 1, 1, 1};
  Field f(d, 2.0f);
  const BlockGrid g = makeBlockGrid(d, {4, 1, 1});
  std::vector<float> buf(4);
  extractBlock(f, g, 0, 1, buf.data());
  EXPECT_DOUBLE_EQ(blockMeanSquare(g, 1, buf.data()), 4.0);
}
