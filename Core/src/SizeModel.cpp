#include "ecnr/SizeModel.h"

#include <algorithm>

#include "ecnr/Model.h"
#include "ecnr/Pyramid.h"

namespace ecnr {

namespace {
constexpr int64_t kBlockRecordBytes = 20;  // block, t, mlp, min, max
constexpr int64_t kFixedBytes = 400;       // file prefix, table of contents, header
}  // namespace

SizeEstimate estimateSize(const Dims4& dims, const ResolvedSettings& r, const std::array<int, 3>& blockDims) {
  const PyramidPlan plan = planPyramid(dims, r.s.scales, r.s.minAxisLength);
  MlpShape shape;
  shape.latentDim = r.s.latentDim;
  shape.hidden = r.s.hidden;
  shape.sineLayers = r.s.sineLayers;
  const int64_t valueBytes = r.s.precision == WeightPrecision::Float16 ? 2 : 4;
  const int scales = int(plan.dims.size());
  SizeEstimate e;
  e.bytes = kFixedBytes;
  for (int i = 0; i < scales; ++i) {
    const Dims4& d = plan.dims[size_t(i)];
    int64_t n = d.t;
    for (int a = 0; a < 3; ++a) n *= (d[a] + blockDims[size_t(a)] - 1) / blockDims[size_t(a)];
    const int b = r.blocksPerMlp[size_t(scales - 1 - i)];  // blocksPerMlp is coarsest first
    const int64_t m = (n + b - 1) / b;
    e.blocks += n;
    e.mlps += m;
    e.bytes += 64 + m * shape.paramsPerMlp() * valueBytes + n * (kBlockRecordBytes + shape.latentDim * valueBytes);
  }
  e.ratio = double(dims.count()) * 4.0 / double(e.bytes);
  return e;
}

std::array<int, 3> chooseBlockDims(const Dims4& dims, const ResolvedSettings& r) {
  std::array<int, 3> best{1, 1, 1};
  const int64_t longest = std::max({dims.x, dims.y, dims.z});
  for (int edge = 4; edge <= 128 && edge <= std::max<int64_t>(4, longest); ++edge) {
    std::array<int, 3> bd;
    for (int a = 0; a < 3; ++a) bd[size_t(a)] = int(std::min<int64_t>(edge, dims[a]));
    best = bd;
    if (estimateSize(dims, r, bd).ratio >= r.s.targetRatio) break;
  }
  return best;
}

}  // namespace ecnr
