#include "ecnr/Blocks.h"

#include <algorithm>
#include <cmath>

namespace ecnr {

BlockGrid makeBlockGrid(const Dims4& dims, const std::array<int, 3>& blockDims) {
  BlockGrid g;
  g.dims = dims;
  g.blockDims = blockDims;
  for (int a = 0; a < 3; ++a) {
    if (blockDims[size_t(a)] < 1) throw Error("block dims must be >= 1");
    g.counts[size_t(a)] = (dims[a] + blockDims[size_t(a)] - 1) / blockDims[size_t(a)];
  }
  return g;
}

std::array<int64_t, 3> BlockGrid::coords(int64_t block) const {
  return {block % counts[0], (block / counts[0]) % counts[1], block / (counts[0] * counts[1])};
}

std::array<int64_t, 3> BlockGrid::origin(int64_t block) const {
  const auto c = coords(block);
  return {c[0] * blockDims[0], c[1] * blockDims[1], c[2] * blockDims[2]};
}

std::array<int, 3> BlockGrid::validDims(int64_t block) const {
  const auto o = origin(block);
  std::array<int, 3> v;
  for (int a = 0; a < 3; ++a) v[size_t(a)] = int(std::min<int64_t>(blockDims[size_t(a)], dims[a] - o[size_t(a)]));
  return v;
}

int64_t BlockGrid::validVoxels(int64_t block) const {
  const auto v = validDims(block);
  return int64_t(v[0]) * v[1] * v[2];
}

void extractBlock(const Field& f, const BlockGrid& g, int64_t t, int64_t block, float* out) {
  extractBlock(f.step(t), g, block, out);
}

void extractBlock(const float* step, const BlockGrid& g, int64_t block, float* out) {
  const auto o = g.origin(block);
  const auto v = g.validDims(block);
  const int bx = g.blockDims[0], by = g.blockDims[1], bz = g.blockDims[2];
  for (int z = 0; z < bz; ++z) {
    const int64_t fz = o[2] + std::min(z, v[2] - 1);  // edge replication beyond the grid
    for (int y = 0; y < by; ++y) {
      const int64_t fy = o[1] + std::min(y, v[1] - 1);
      const float* row = step + (fz * g.dims.y + fy) * g.dims.x + o[0];
      float* dst = out + (int64_t(z) * by + y) * bx;
      for (int x = 0; x < bx; ++x) dst[x] = row[std::min(x, v[0] - 1)];
    }
  }
}

void insertBlock(float* step, const BlockGrid& g, int64_t block, const float* in, bool add) {
  const auto o = g.origin(block);
  const auto v = g.validDims(block);
  const int bx = g.blockDims[0], by = g.blockDims[1];
  for (int z = 0; z < v[2]; ++z) {
    for (int y = 0; y < v[1]; ++y) {
      float* row = step + ((o[2] + z) * g.dims.y + o[1] + y) * g.dims.x + o[0];
      const float* src = in + (int64_t(z) * by + y) * bx;
      if (add) {
        for (int x = 0; x < v[0]; ++x) row[x] += src[x];
      } else {
        std::copy(src, src + v[0], row);
      }
    }
  }
}

double blockMeanSquare(const BlockGrid& g, int64_t block, const float* in) {
  const auto v = g.validDims(block);
  const int bx = g.blockDims[0], by = g.blockDims[1];
  double sum = 0;
  for (int z = 0; z < v[2]; ++z)
    for (int y = 0; y < v[1]; ++y) {
      const float* src = in + (int64_t(z) * by + y) * bx;
      for (int x = 0; x < v[0]; ++x) sum += double(src[x]) * src[x];
    }
  return sum / double(g.validVoxels(block));
}

RangeGrid RangeGrid::covering(float lo, float hi) {
  RangeGrid g;
  g.lo = lo;
  // A hair wider than [lo, hi] so that rounding never leaves hi above the last level.
  g.step = hi > lo ? float(double(hi - lo) / double(kLevels) * (1.0 + 1e-6)) : 0.0f;
  return g;
}

float RangeGrid::value(uint32_t q) const { return lo + float(q) * step; }

uint32_t RangeGrid::below(float v) const {
  if (!(step > 0)) return 0;
  int64_t q = std::clamp<int64_t>(int64_t(std::floor(double(v - lo) / double(step))), 0, kLevels);
  while (q > 0 && value(uint32_t(q)) > v) --q;
  while (q < int64_t(kLevels) && value(uint32_t(q + 1)) <= v) ++q;
  return uint32_t(q);
}

uint32_t RangeGrid::above(float v) const {
  if (!(step > 0)) return 0;
  int64_t q = std::clamp<int64_t>(int64_t(std::ceil(double(v - lo) / double(step))), 0, kLevels);
  while (q < int64_t(kLevels) && value(uint32_t(q)) < v) ++q;
  while (q > 0 && value(uint32_t(q - 1)) >= v) --q;
  return uint32_t(q);
}

int64_t RangeGrid::exact(float v) const {
  if (!(step > 0)) return v == lo ? 0 : -1;
  const double r = std::round(double(v - lo) / double(step));
  if (!(r >= 0 && r <= double(kLevels))) return -1;
  return value(uint32_t(r)) == v ? int64_t(r) : -1;
}

}  // namespace ecnr
