// Metrics: data-level quality as the paper and SZ/ZFP users measure it.
#pragma once

#include "ecnr/Field.h"

namespace ecnr {

struct ErrorStats {
  double psnr = 0;       ///< 20 log10(range of the original) - 10 log10(MSE), over the whole field, dB
  double rmse = 0;
  double maxAbs = 0;
  double range = 0;      ///< max - min of the original
  double meanStepPsnr = 0;  ///< PSNR per time step averaged (the paper's figure)
  int64_t maxAbsIndex = -1; ///< linear index (Field::index order) of the first voxel with the largest error
};

/// Dims must match (Error otherwise). Computed in double; psnr is +inf for identical fields and -inf for a
/// constant original (range 0) that was not reproduced exactly. meanStepPsnr uses the GLOBAL range for every step
/// and caps lossless (+inf) steps at 200 dB so the average stays finite. A NaN in `decoded` makes psnr, rmse and
/// maxAbs NaN rather than hiding it.
ErrorStats compareFields(const Field& original, const Field& decoded);

}  // namespace ecnr
