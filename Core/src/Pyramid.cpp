#include "ecnr/Pyramid.h"

#include <algorithm>

namespace ecnr {

int64_t halvedLength(int64_t n, bool isTime) {
  if (!isTime) return (n + 1) / 2;
  // Even steps 0, 2, ..., plus the last one when it is odd.
  return (n - 1) / 2 + 1 + ((n - 1) % 2 == 1 ? 1 : 0);
}

Dims4 downsampledDims(const Dims4& fine, const HalvedAxes& halved) {
  Dims4 d = fine;
  for (int a = 0; a < 4; ++a)
    if (halved[size_t(a)]) d[a] = halvedLength(fine[a], a == 3);
  return d;
}

PyramidPlan planPyramid(const Dims4& dims, int scales, int minAxisLength) {
  validateDims(dims);
  PyramidPlan plan;
  plan.dims.push_back(dims);
  plan.halved.push_back(HalvedAxes{});
  for (int s = 1; s < scales; ++s) {
    const Dims4& fine = plan.dims.back();
    HalvedAxes h{};
    bool any = false;
    for (int a = 0; a < 4; ++a) {
      // Never halve a flat axis, nor one that would get shorter than the minimum: minAxisLength in space, half of
      // it in time (a 12-step series still gains from two temporal levels: 12 -> 7 -> 4).
      const int64_t minimum = std::max(2, a == 3 ? minAxisLength / 2 : minAxisLength);
      h[size_t(a)] = fine[a] > 1 && halvedLength(fine[a], a == 3) >= minimum;
      any = any || h[size_t(a)];
    }
    if (!any) break;
    plan.dims.push_back(downsampledDims(fine, h));
    plan.halved.push_back(h);
  }
  return plan;
}

namespace {

// Position on the fine axis of coarse sample j.
int64_t keptPosition(int64_t j, int64_t fineLength, bool isTime) {
  const int64_t p = 2 * j;
  return isTime ? std::min(p, fineLength - 1) : p;
}

// [1 2 1]/4 along one axis of a 4D field, edges clamped. stride = distance between neighbours along the axis.
void smoothAxis(const Field& in, Field& out, int axis) {
  const Dims4 d = in.dims;
  const int64_t n = d[axis];
  int64_t stride = 1;
  for (int a = 0; a < axis; ++a) stride *= d[a];
  const int64_t total = d.count();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) {
    const int64_t pos = (i / stride) % n;
    const float c = in.values[size_t(i)];
    const float lo = pos > 0 ? in.values[size_t(i - stride)] : c;
    const float hi = pos + 1 < n ? in.values[size_t(i + stride)] : c;
    out.values[size_t(i)] = 0.25f * lo + 0.5f * c + 0.25f * hi;
  }
}

}  // namespace

AxisLerp coarsePosition(int64_t finePos, int64_t fineLength, bool halved, bool isTime) {
  AxisLerp l;
  if (!halved) {
    l.i0 = l.i1 = finePos;
    return l;
  }
  const int64_t coarseLength = halvedLength(fineLength, isTime);
  l.i0 = std::min(finePos / 2, coarseLength - 1);
  l.i1 = std::min(l.i0 + 1, coarseLength - 1);
  const int64_t p0 = keptPosition(l.i0, fineLength, isTime);
  const int64_t p1 = keptPosition(l.i1, fineLength, isTime);
  l.w1 = p1 > p0 ? float(std::min(finePos, p1) - p0) / float(p1 - p0) : 0.0f;
  return l;
}

Field downsample(const Field& fine, const HalvedAxes& halved) {
  return downsample(MemorySource(fine), halved, [](float*, int64_t) {});
}

Field downsample(const FieldSource& fine, const HalvedAxes& halved, const std::function<void(float*, int64_t)>& prepare) {
  const Dims4 fd = fine.dims();
  const Dims4 cd = downsampledDims(fd, halved);
  Dims4 sd = fd;
  sd.t = 1;
  // Fine step ft, prepared and smoothed along the halved spatial axes (smoothAxis on a one-step field computes
  // each voxel as it does on the whole series: spatial neighbours never cross a step).
  std::map<int64_t, Field> smoothed;
  Field tmp(sd);
  auto smoothStep = [&](int64_t ft) -> const Field& {
    auto it = smoothed.find(ft);
    if (it != smoothed.end()) return it->second;
    Field f(sd);
    fine.readStep(ft, f.values.data());
    prepare(f.values.data(), int64_t(f.values.size()));
    for (int a = 0; a < 3; ++a) {
      if (!halved[size_t(a)]) continue;
      smoothAxis(f, tmp, a);
      std::swap(f.values, tmp.values);
    }
    return smoothed.emplace(ft, std::move(f)).first->second;
  };
  Field coarse(cd);
  for (int64_t t = 0; t < cd.t; ++t) {
    const int64_t ft = halved[3] ? keptPosition(t, fd.t, true) : t;
    smoothed.erase(smoothed.begin(), smoothed.lower_bound(ft - 1));
    const Field& c = smoothStep(ft);
    const Field& lo = halved[3] && ft > 0 ? smoothStep(ft - 1) : c;
    const Field& hi = halved[3] && ft + 1 < fd.t ? smoothStep(ft + 1) : c;
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < cd.z; ++z) {
      const int64_t fz = halved[2] ? 2 * z : z;
      for (int64_t y = 0; y < cd.y; ++y) {
        const int64_t fy = halved[1] ? 2 * y : y;
        for (int64_t x = 0; x < cd.x; ++x) {
          const int64_t i = c.index(halved[0] ? 2 * x : x, fy, fz, 0);
          // The time smoothing of smoothAxis, at the kept voxels only.
          coarse.at(x, y, z, t) = halved[3] ? 0.25f * lo.values[size_t(i)] + 0.5f * c.values[size_t(i)] +
                                                  0.25f * hi.values[size_t(i)]
                                            : c.values[size_t(i)];
        }
      }
    }
  }
  return coarse;
}

void upsampleSpace(const float* coarse, const Dims4& coarseDims, const HalvedAxes& halved, const Dims4& fineDims,
                   float* fine) {
  // Precompute the per-axis interpolation for x; y and z are computed per row / plane.
  std::vector<AxisLerp> lx(size_t(fineDims.x));
  for (int64_t x = 0; x < fineDims.x; ++x) lx[size_t(x)] = coarsePosition(x, fineDims.x, halved[0], false);
  const int64_t cx = coarseDims.x, cxy = coarseDims.x * coarseDims.y;
#pragma omp parallel for schedule(static)
  for (int64_t z = 0; z < fineDims.z; ++z) {
    const AxisLerp lz = coarsePosition(z, fineDims.z, halved[2], false);
    for (int64_t y = 0; y < fineDims.y; ++y) {
      const AxisLerp ly = coarsePosition(y, fineDims.y, halved[1], false);
      const float* r00 = coarse + lz.i0 * cxy + ly.i0 * cx;
      const float* r01 = coarse + lz.i0 * cxy + ly.i1 * cx;
      const float* r10 = coarse + lz.i1 * cxy + ly.i0 * cx;
      const float* r11 = coarse + lz.i1 * cxy + ly.i1 * cx;
      float* out = fine + (z * fineDims.y + y) * fineDims.x;
      for (int64_t x = 0; x < fineDims.x; ++x) {
        const AxisLerp& l = lx[size_t(x)];
        auto lerpX = [&](const float* r) { return r[l.i0] + l.w1 * (r[l.i1] - r[l.i0]); };
        const float a = lerpX(r00) + ly.w1 * (lerpX(r01) - lerpX(r00));
        const float b = lerpX(r10) + ly.w1 * (lerpX(r11) - lerpX(r10));
        out[x] = a + lz.w1 * (b - a);
      }
    }
  }
}

Field upsample(const Field& coarse, const HalvedAxes& halved, const Dims4& fineDims) {
  if (downsampledDims(fineDims, halved) != coarse.dims)
    throw Error("upsample: coarse dims " + coarse.dims.str() + " do not match fine dims " + fineDims.str());
  // Space first, at the coarse time steps; then time.
  Dims4 mid = fineDims;
  mid.t = coarse.dims.t;
  Field spaced(mid);
  for (int64_t t = 0; t < coarse.dims.t; ++t) upsampleSpace(coarse.step(t), coarse.dims, halved, fineDims, spaced.step(t));
  if (!halved[3]) return spaced;
  Field out(fineDims);
  const int64_t n = fineDims.voxelsPerStep();
  for (int64_t t = 0; t < fineDims.t; ++t) {
    const AxisLerp lt = coarsePosition(t, fineDims.t, true, true);
    const float* a = spaced.step(lt.i0);
    const float* b = spaced.step(lt.i1);
    float* o = out.step(t);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] + lt.w1 * (b[i] - a[i]);
  }
  return out;
}

StepUpsampler::StepUpsampler(const Field& coarse, const HalvedAxes& halved, const Dims4& fineDims)
    : coarse_(coarse), halved_(halved), fine_(fineDims) {
  if (downsampledDims(fineDims, halved) != coarse.dims)
    throw Error("upsample: coarse dims " + coarse.dims.str() + " do not match fine dims " + fineDims.str());
}

const std::vector<float>& StepUpsampler::spaced(int64_t coarseT) {
  auto it = cache_.find(coarseT);
  if (it != cache_.end()) return it->second;
  std::vector<float> v(size_t(fine_.voxelsPerStep()));
  upsampleSpace(coarse_.step(coarseT), coarse_.dims, halved_, fine_, v.data());
  return cache_.emplace(coarseT, std::move(v)).first->second;
}

void StepUpsampler::step(int64_t t, float* out) {
  checkStepIndex(fine_, t);
  const int64_t n = fine_.voxelsPerStep();
  if (!halved_[3]) {
    cache_.clear();
    upsampleSpace(coarse_.step(t), coarse_.dims, halved_, fine_, out);
    return;
  }
  const AxisLerp lt = coarsePosition(t, fine_.t, true, true);
  // Keep only the two coarse steps this one needs (the next fine steps need the same or later ones).
  for (auto it = cache_.begin(); it != cache_.end();)
    it = it->first == lt.i0 || it->first == lt.i1 ? std::next(it) : cache_.erase(it);
  const float* a = spaced(lt.i0).data();
  const float* b = spaced(lt.i1).data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + lt.w1 * (b[i] - a[i]);
}

}  // namespace ecnr
