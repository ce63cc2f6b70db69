// Pyramid: the 4D Laplacian pyramid's operators. D prefilters and halves the chosen axes (x, y, z, t);
// U brings a coarse field back to a finer grid (trilinear in space, then linear in time).
//
// Sample positions: a halved spatial axis of length n keeps ceil(n/2) samples at fine positions 0, 2, 4, ...;
// a halved time axis keeps the even steps and always the last one (so the final time step is exact at every
// scale). U interpolates linearly between the kept positions and clamps beyond the last one.
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "ecnr/Field.h"
#include "ecnr/FieldSource.h"
#include "ecnr/Model.h"

namespace ecnr {

/// Dims of every scale, finest first (dims[0] is the input), and which axes each step halved.
struct PyramidPlan {
  std::vector<Dims4> dims;         ///< dims[i] for scale i, i = 0 finest
  std::vector<HalvedAxes> halved;  ///< halved[i]: axes halved going from scale i-1 to i (halved[0] all false)
};

/// A spatial axis is halved only while it stays >= minAxisLength after halving, a time axis while it stays
/// >= minAxisLength / 2; axes of length 1 never are.
/// The number of scales may end up smaller than requested when nothing can be halved any more.
PyramidPlan planPyramid(const Dims4& dims, int scales, int minAxisLength);

/// Length of an axis after halving (space: ceil(n/2); time: even steps plus the last).
int64_t halvedLength(int64_t n, bool isTime);
Dims4 downsampledDims(const Dims4& fine, const HalvedAxes& halved);

/// D: [1 2 1]/4 prefilter along each halved axis (edges clamped), then subsample.
Field downsample(const Field& fine, const HalvedAxes& halved);

/// Fine position p of a coarse axis maps to coarse samples (i0, i1) with weight w1 on i1.
struct AxisLerp {
  int64_t i0 = 0, i1 = 0;
  float w1 = 0.0f;
};
AxisLerp coarsePosition(int64_t finePos, int64_t fineLength, bool halved, bool isTime);

/// U: coarse field (dims = downsampledDims(fineDims, halved)) to fineDims.
Field upsample(const Field& coarse, const HalvedAxes& halved, const Dims4& fineDims);

/// D of a series read one step at a time, each step passed through `prepare` (e.g. normalized) first: equal to
/// downsample() of the prepared series to the bit, holding three smoothed fine steps, not the series.
Field downsample(const FieldSource& fine, const HalvedAxes& halved, const std::function<void(float*, int64_t)>& prepare);

/// U one fine time step at a time, equal to upsample() to the bit: the coarse steps a fine step interpolates are
/// upsampled in space once and kept while the next fine steps need them (two at a time).
class StepUpsampler {
public:
  /// The coarse field must outlive the upsampler.
  StepUpsampler(const Field& coarse, const HalvedAxes& halved, const Dims4& fineDims);
  /// Fine time step t into out (fineDims.voxelsPerStep() values).
  void step(int64_t t, float* out);

private:
  const std::vector<float>& spaced(int64_t coarseT);
  const Field& coarse_;
  HalvedAxes halved_;
  Dims4 fine_;
  std::map<int64_t, std::vector<float>> cache_;
};

/// U for one time step in space only: coarse step (3D) to a fine step of fineDims (t ignored).
void upsampleSpace(const float* coarse, const Dims4& coarseDims, const HalvedAxes& halved,
                   const Dims4& fineDims, float* fine);

}  // namespace ecnr
