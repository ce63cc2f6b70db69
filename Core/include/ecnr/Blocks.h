// Blocks: the equal-size 3D spatial blocks of one scale. Blocks on the far faces are padded (edge values
// replicated) so every block has the same shape for the MLPs; only the valid part is written back.
#pragma once

#include <array>
#include <cstdint>

#include "ecnr/Field.h"

namespace ecnr {

struct BlockGrid {
  Dims4 dims;                       ///< the scale's grid (t is the number of time steps)
  std::array<int, 3> blockDims{};   ///< block size in voxels
  std::array<int64_t, 3> counts{};  ///< blocks per axis = ceil(dims / blockDims)

  int64_t blocksPerStep() const { return counts[0] * counts[1] * counts[2]; }
  int64_t voxelsPerBlock() const { return int64_t(blockDims[0]) * blockDims[1] * blockDims[2]; }
  std::array<int64_t, 3> coords(int64_t block) const;   ///< block grid coordinates
  std::array<int64_t, 3> origin(int64_t block) const;   ///< first voxel
  std::array<int, 3> validDims(int64_t block) const;    ///< voxels inside the grid
  int64_t validVoxels(int64_t block) const;
};

BlockGrid makeBlockGrid(const Dims4& dims, const std::array<int, 3>& blockDims);

/// Copies block `block` of time step t into out (voxelsPerBlock floats, x fastest), padding by edge replication.
void extractBlock(const Field& f, const BlockGrid& g, int64_t t, int64_t block, float* out);
/// The same from one time step (a 3D array of g.dims).
void extractBlock(const float* step, const BlockGrid& g, int64_t block, float* out);
/// Writes (or adds, when add is true) the valid part of a block into time step `step` (a 3D array of g.dims).
void insertBlock(float* step, const BlockGrid& g, int64_t block, const float* in, bool add);
/// Mean of squares over the valid voxels of a block (in: a full block as extractBlock returns it).
double blockMeanSquare(const BlockGrid& g, int64_t block, const float* in);

/// The per-block min/max of a scale on a 16-bit grid (side data the archive entropy-codes instead of two float32
/// per block): value(q) = lo + q * step. The encoder normalizes each block with its *rounded* range (min rounded
/// down, max up), so the grid costs no accuracy.
struct RangeGrid {
  float lo = 0, step = 0;  ///< step 0: ranges are plain floats
  static constexpr uint32_t kLevels = 65535;

  static RangeGrid covering(float lo, float hi);
  float value(uint32_t q) const;
  uint32_t below(float v) const;  ///< largest q with value(q) <= v (0 if none)
  uint32_t above(float v) const;  ///< smallest q with value(q) >= v (kLevels if none)
  /// q with value(q) == v exactly, or -1: the archive writer's check that a range lies on the grid.
  int64_t exact(float v) const;
};

}  // namespace ecnr
