// SizeModel: what an archive will weigh before anything is trained. Used to choose block dims for a target
// ratio, and (later) by the ParaView writer's size estimate and the target-ratio mode.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "ecnr/Field.h"
#include "ecnr/Settings.h"

namespace ecnr {

struct SizeEstimate {
  int64_t blocks = 0;      ///< block instances over all scales (upper bound: all effective)
  int64_t mlps = 0;
  int64_t bytes = 0;       ///< archive bytes if every block were effective
  double ratio = 0;        ///< raw float32 bytes / bytes
};

/// Upper bound on the archive size: assumes every block at every scale is effective.
SizeEstimate estimateSize(const Dims4& dims, const ResolvedSettings& r, const std::array<int, 3>& blockDims);

/// Smallest near-cubic block (flat axes stay 1) whose estimate reaches r.s.targetRatio.
std::array<int, 3> chooseBlockDims(const Dims4& dims, const ResolvedSettings& r);

/// Data-aware estimate: counts the blocks each scale would keep, judged on the open-loop residuals of the
/// pyramid (residuals[i] = V_i - U(V_{i+1}), finest first; the last entry is the coarsest level itself, all kept).
/// The encoder's closed-loop residuals are a little larger, so the real archive can be slightly bigger.
SizeEstimate estimateSize(const std::vector<Field>& residuals, const ResolvedSettings& r,
                          const std::array<int, 3>& blockDims);

/// Smallest near-cubic block whose data-aware estimate reaches r.s.targetRatio.
std::array<int, 3> chooseBlockDims(const std::vector<Field>& residuals, const ResolvedSettings& r);

/// The same residuals read one time step at a time (the encoder computes the finest, the size of the input, step
/// by step and never holds it): dims per scale, finest first, and read(scale, t, out).
struct ResidualSteps {
  std::vector<Dims4> dims;
  std::function<void(int scale, int64_t t, float* out)> read;
};
/// Every scale's steps are read once, for all candidate blocks at once.
std::array<int, 3> chooseBlockDims(const ResidualSteps& residuals, const ResolvedSettings& r);

}  // namespace ecnr
