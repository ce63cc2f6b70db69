#include "ecnr/Metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ecnr {
namespace {

/// Per-step partial results; steps are reduced in order afterwards so the totals do not depend on threads.
struct StepSums {
  double sse = 0;  ///< sum of squared errors
  double maxAbs = 0;
  int64_t maxAbsIndex = -1;  ///< within the step
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
};

/// Strictly larger keeps the first maximum; a NaN error beats any number so that a broken decode shows in maxAbs.
bool worse(double e, double current) { return e > current || (std::isnan(e) && !std::isnan(current)); }

StepSums sumStep(const float* a, const float* b, int64_t n) {
  StepSums s;
  for (int64_t i = 0; i < n; ++i) {
    const double o = a[i], e = std::fabs(double(b[i]) - o);
    s.sse += e * e;
    if (s.maxAbsIndex < 0 || worse(e, s.maxAbs)) {
      s.maxAbs = e;
      s.maxAbsIndex = i;
    }
    s.lo = std::min(s.lo, o);
    s.hi = std::max(s.hi, o);
  }
  return s;
}

/// 20 log10(range) - 10 log10(mse): +inf when mse == 0; -inf when range == 0 but mse > 0.
double psnrOf(double range, double mse) {
  if (mse == 0) return std::numeric_limits<double>::infinity();
  if (range == 0) return -std::numeric_limits<double>::infinity();
  return 20 * std::log10(range) - 10 * std::log10(mse);
}

}  // namespace

ErrorStats compareFields(const Field& original, const Field& decoded) {
  if (original.dims != decoded.dims)
    throw Error("cannot compare fields of different dims: " + original.dims.str() + " vs " + decoded.dims.str());
  if (original.values.size() != size_t(original.dims.count()) || decoded.values.size() != original.values.size())
    throw Error("cannot compare fields: values do not match dims " + original.dims.str());
  const int64_t T = original.dims.t, n = original.dims.voxelsPerStep();
  std::vector<StepSums> steps(static_cast<size_t>(T));
#pragma omp parallel for schedule(dynamic) if (original.dims.count() > (int64_t(1) << 20))
  for (int64_t t = 0; t < T; ++t) steps[size_t(t)] = sumStep(original.step(t), decoded.step(t), n);

  ErrorStats r;
  double sse = 0, lo = steps[0].lo, hi = steps[0].hi;
  for (int64_t t = 0; t < T; ++t) {
    const StepSums& s = steps[size_t(t)];
    sse += s.sse;
    lo = std::min(lo, s.lo);
    hi = std::max(hi, s.hi);
    if (t == 0 || worse(s.maxAbs, r.maxAbs)) {
      r.maxAbs = s.maxAbs;
      r.maxAbsIndex = t * n + s.maxAbsIndex;
    }
  }
  r.range = hi - lo;
  const double mse = sse / double(original.dims.count());
  r.rmse = std::sqrt(mse);
  r.psnr = psnrOf(r.range, mse);
  // The paper's per-step average uses the global range; a lossless step would be +inf, so cap it.
  double sum = 0;
  for (const StepSums& s : steps) sum += std::min(psnrOf(r.range, s.sse / double(n)), 200.0);
  r.meanStepPsnr = sum / double(T);
  return r;
}

}  // namespace ecnr
