// LatentGrid: where a voxel's latent code comes from (issue 10: a coarse feature grid per block). Grid 1 is the
// paper's one code per block. Grid 2 gives each block a code at each of its 8 corners and a voxel the trilinear
// interpolation of them at its local coordinates in [-1, 1]^3, so the code (the MLP's input) varies across the
// block at the cost of 8 codes. A leaf shared by the trainer and the decoder so both weigh corners alike.
#pragma once

namespace ecnr {
namespace kernels {

constexpr int kMaxLatentGrid = 2;

inline int latentCorners(int grid) { return grid == 2 ? 8 : 1; }

/// w[c] for each corner c (bit a of c set: the +1 end of axis a) at local coordinates u; grid 1: w[0] = 1.
inline void latentCornerWeights(int grid, const float u[3], float* w) {
  if (grid != 2) {
    w[0] = 1.0f;
    return;
  }
  float hi[3], lo[3];
  for (int a = 0; a < 3; ++a) {
    hi[a] = 0.5f * (1.0f + u[a]);
    lo[a] = 1.0f - hi[a];
  }
  for (int c = 0; c < 8; ++c) w[c] = (c & 1 ? hi[0] : lo[0]) * (c & 2 ? hi[1] : lo[1]) * (c & 4 ? hi[2] : lo[2]);
}

}  // namespace kernels
}  // namespace ecnr
