// Generator: the embedded default dataset, a 3D Gray-Scott reaction-diffusion simulation whose spots and
// stripes grow, split and travel over time: real structure, not noise. Deterministic for a seed.
#pragma once

#include <cstdint>

#include "ecnr/Field.h"

namespace ecnr {

struct GrayScottParams {
  int64_t nx = 64, ny = 64, nz = 64;  ///< grid (periodic)
  int64_t steps = 16;                 ///< time steps written
  int64_t itersPerStep = 40;          ///< simulation iterations between written steps
  int64_t warmup = 400;               ///< iterations before the first written step
  double Du = 0.10, Dv = 0.05, F = 0.035, k = 0.060;  ///< Du < ~0.13 keeps dt = 1 stable in 3D
  uint64_t seed = 7;
  /// The simulation runs on a grid this many times coarser and is resampled (periodic trilinear) to nx x ny x nz,
  /// so structures span ~10-20 output voxels, as in well-resolved simulation output. 1 = simulate at full size.
  int64_t featureScale = 2;
};

/// Returns the V concentration (values in [0, ~0.5]) for every written step.
Field generateGrayScott(const GrayScottParams& p);

}  // namespace ecnr
