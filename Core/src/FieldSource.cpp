#include "ecnr/FieldSource.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace ecnr {

void checkStepIndex(const Dims4& dims, int64_t t) {
  if (t < 0 || t >= dims.t)
    throw Error("time step " + std::to_string(t) + " out of range [0, " + std::to_string(dims.t) + ")");
}

MemorySource::MemorySource(const Field& f) : field_(f) {
  validateDims(f.dims);
  if (int64_t(f.values.size()) != f.dims.count()) throw Error("field size does not match its dims");
}

void MemorySource::readStep(int64_t t, float* out) const {
  checkStepIndex(field_.dims, t);
  std::copy_n(field_.step(t), field_.dims.voxelsPerStep(), out);
}

WindowSource::WindowSource(const FieldSource& base, int64_t first, int64_t count) : base_(base), first_(first) {
  dims_ = base.dims();
  if (first < 0 || count < 1 || first + count > dims_.t)
    throw Error("window [" + std::to_string(first) + ", " + std::to_string(first + count) + ") outside the " +
                std::to_string(dims_.t) + " steps");
  dims_.t = count;
}

void WindowSource::readStep(int64_t t, float* out) const {
  checkStepIndex(dims_, t);
  base_.readStep(first_ + t, out);
}

Field readAll(const FieldSource& source) {
  if (const Field* f = source.field()) return *f;
  Field out(source.dims());
  for (int64_t t = 0; t < out.dims.t; ++t) source.readStep(t, out.step(t));
  return out;
}

std::pair<float, float> finiteRange(const FieldSource& source) {
  const Dims4 d = source.dims();
  const int64_t n = d.voxelsPerStep();
  std::vector<float> buf;
  float lo = HUGE_VALF, hi = -HUGE_VALF;
  for (int64_t t = 0; t < d.t; ++t) {
    const float* v = source.field() ? source.field()->step(t) : nullptr;
    if (!v) {
      buf.resize(size_t(n));
      source.readStep(t, buf.data());
      v = buf.data();
    }
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i])) {
        const int64_t X = d.x, Y = d.y;
        std::ostringstream s;
        s << "input has a non-finite value (" << v[i] << ") at x=" << i % X << " y=" << (i / X) % Y
          << " z=" << i / (X * Y) << " t=" << t << "; ECNR needs finite values";
        throw Error(s.str());
      }
      // The first smallest and the last largest, as std::minmax_element (the sign of a zero extreme is stored).
      if (v[i] < lo) lo = v[i];
      if (!(v[i] < hi)) hi = v[i];
    }
  }
  return {lo, hi};
}

}  // namespace ecnr
