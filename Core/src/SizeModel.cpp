#include "ecnr/SizeModel.h"

#include <algorithm>

#include "ecnr/Blocks.h"
#include "ecnr/Model.h"
#include "ecnr/Pyramid.h"
#include "ecnr/Quantization.h"

namespace ecnr {

namespace {
constexpr int64_t kBlockRecordBytes = 20;  // block, t, mlp, min, max
constexpr int64_t kFixedBytes = 400;       // file prefix, table of contents, header
}  // namespace

namespace {

MlpShape shapeOf(const ResolvedSettings& r) {
  MlpShape shape;
  shape.latentDim = r.s.latentDim;
  shape.latentGrid = r.s.latentGrid;
  shape.codeSteps = r.s.codeSteps;
  shape.hidden = r.s.hidden;
  shape.sineLayers = r.s.sineLayers;
  return shape;
}

// Bytes of one scale with n kept blocks fitted by ceil(n / b) MLPs. With deep compression each parameter costs
// its pruning-mask bit (for candidates) and, when kept, its index (2^quantBits shared values), each shrunk by the
// entropy coder by about 10 % (measured on the embedded series and ct_cranium); per block, the table costs about
// 3.5 bytes after entropy coding (MLP index, 16-bit min and span, kept bit) and the latent code latentBits each.
int64_t scaleBytes(const ResolvedSettings& r, int64_t n, int b) {
  const MlpShape shape = shapeOf(r);
  const double valueBytes = r.s.precision == WeightPrecision::Float16 ? 2 : 4;
  const int64_t m = (n + b - 1) / b;
  const double sparsity = r.pruneSparsity.empty() ? 0.0 : r.pruneSparsity.back();
  int64_t candidates = 0;
  for (int l = 0; l < shape.sineLayers; ++l) candidates += int64_t(shape.fanIn(l)) * shape.fanOut(l) + (l > 0 ? shape.fanOut(l) : 0);
  const double P = double(shape.paramsPerMlp()), kept = P - sparsity * double(candidates);
  const double maskBits = sparsity > 0 ? double(candidates) : 0.0;
  double perMlp, perBlock, fixed = 64;
  if (r.s.quantBits > 0) {
    perMlp = 0.9 * (maskBits + kept * r.s.quantBits) / 8.0;
    // Codebooks: up to 2^bits shared values per group, fewer when the group is smaller.
    for (int l = 0; l < shape.layerCount(); ++l)
      for (int bias = 0; bias < 2; ++bias) {
        const int64_t group = bias ? shape.fanOut(l) : int64_t(shape.fanIn(l)) * shape.fanOut(l);
        fixed += double(codebookSize(m * group, 1 << r.s.quantBits, bias == 1, r.s.valuesPerSharedWeight)) * valueBytes;
      }
    const double latentBytes = r.s.latentBits > 0 ? 0.9 * r.s.latentBits / 8.0 : valueBytes;
    perBlock = 3.5 + shape.latentsPerBlock() * latentBytes / shape.codeSteps;
  } else {
    perMlp = maskBits / 8.0 + kept * valueBytes;
    perBlock = kBlockRecordBytes + shape.latentsPerBlock() * valueBytes / shape.codeSteps;
  }
  return int64_t(fixed + double(m) * perMlp + double(n) * perBlock);
}

// The boundary CNN's section: 1 -> C -> C -> C -> C -> 1 convolutions of 3^3 at cnnBits per value.
int64_t cnnBytes(const ResolvedSettings& r) {
  if (!r.s.boundaryCnn) return 0;
  const int64_t C = r.s.cnnChannels;
  const int64_t params = 27 * C + 3 * 27 * C * C + 27 * C + 4 * C + 1;
  return 64 + (params * r.s.cnnBits + 7) / 8;
}

// Blocks of one time step of a residual (a 3D array of dims) whose mean square exceeds the threshold.
int64_t keptBlocks(const float* step, const Dims4& dims, const std::array<int, 3>& blockDims, float threshold) {
  const BlockGrid g = makeBlockGrid(dims, blockDims);
  const int64_t nb = g.blocksPerStep();
  int64_t kept = 0;
#pragma omp parallel for reduction(+ : kept) schedule(dynamic, 8)
  for (int64_t b = 0; b < nb; ++b) {
    const auto o = g.origin(b);
    const auto v = g.validDims(b);
    double sum = 0;
    for (int z = 0; z < v[2]; ++z)
      for (int y = 0; y < v[1]; ++y) {
        const float* row = step + ((o[2] + z) * g.dims.y + o[1] + y) * g.dims.x + o[0];
        for (int x = 0; x < v[0]; ++x) sum += double(row[x]) * row[x];
      }
    kept += sum / double(g.validVoxels(b)) > threshold ? 1 : 0;
  }
  return kept;
}

// Candidate block edges, geometric so the search stays cheap.
const int kEdges[] = {4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 96, 128};

std::array<int, 3> edgeDims(const Dims4& dims, int edge) {
  std::array<int, 3> bd;
  for (int a = 0; a < 3; ++a) bd[size_t(a)] = int(std::min<int64_t>(edge, dims[a]));
  return bd;
}

}  // namespace

namespace {

// The candidate block dims in the chooser's order, up to the first that covers the grid.
std::vector<std::array<int, 3>> candidateBlocks(const Dims4& dims) {
  std::vector<std::array<int, 3>> out;
  for (int edge : kEdges) {
    out.push_back(edgeDims(dims, edge));
    if (edge >= std::max({dims.x, dims.y, dims.z})) break;
  }
  return out;
}

// kept[c][i]: blocks of candidate c kept at scale i (finest first; the coarsest keeps all), every step of a scale
// read once for all candidates.
std::vector<std::vector<int64_t>> keptCounts(const ResidualSteps& res, const std::vector<std::array<int, 3>>& cands,
                                             float threshold) {
  const size_t S = res.dims.size();
  std::vector<std::vector<int64_t>> kept(cands.size(), std::vector<int64_t>(S, 0));
  std::vector<float> step;
  for (size_t i = 0; i < S; ++i) {
    const Dims4& d = res.dims[i];
    if (i + 1 == S) {
      for (size_t c = 0; c < cands.size(); ++c) kept[c][i] = makeBlockGrid(d, cands[c]).blocksPerStep() * d.t;
      continue;
    }
    step.resize(size_t(d.voxelsPerStep()));
    for (int64_t t = 0; t < d.t; ++t) {
      res.read(int(i), t, step.data());
      for (size_t c = 0; c < cands.size(); ++c) kept[c][i] += keptBlocks(step.data(), d, cands[c], threshold);
    }
  }
  return kept;
}

SizeEstimate estimateFromCounts(const Dims4& dims, const std::vector<int64_t>& kept, const ResolvedSettings& r) {
  const int S = int(kept.size());
  SizeEstimate e;
  e.bytes = kFixedBytes + cnnBytes(r);
  for (int i = 0; i < S; ++i) {
    const int64_t n = kept[size_t(i)];
    const int b = r.blocksPerMlp[size_t(S - 1 - i)];
    e.blocks += n;
    e.mlps += (n + b - 1) / b;
    e.bytes += scaleBytes(r, n, b);
  }
  e.ratio = double(dims.count()) * 4.0 / double(e.bytes);
  return e;
}

ResidualSteps stepsOf(const std::vector<Field>& residuals) {
  ResidualSteps res;
  for (const Field& f : residuals) res.dims.push_back(f.dims);
  res.read = [&residuals](int i, int64_t t, float* out) {
    const Field& f = residuals[size_t(i)];
    std::copy_n(f.step(t), f.dims.voxelsPerStep(), out);
  };
  return res;
}

}  // namespace

SizeEstimate estimateSize(const std::vector<Field>& residuals, const ResolvedSettings& r,
                          const std::array<int, 3>& blockDims) {
  const ResidualSteps res = stepsOf(residuals);
  return estimateFromCounts(res.dims.front(), keptCounts(res, {blockDims}, r.s.threshold).front(), r);
}

std::array<int, 3> chooseBlockDims(const ResidualSteps& res, const ResolvedSettings& r) {
  const Dims4& dims = res.dims.front();
  const std::vector<std::array<int, 3>> cands = candidateBlocks(dims);
  const std::vector<std::vector<int64_t>> kept = keptCounts(res, cands, r.s.threshold);
  for (size_t c = 0; c < cands.size(); ++c)
    if (estimateFromCounts(dims, kept[c], r).ratio >= r.s.targetRatio) return cands[c];
  return cands.back();
}

std::array<int, 3> chooseBlockDims(const std::vector<Field>& residuals, const ResolvedSettings& r) {
  return chooseBlockDims(stepsOf(residuals), r);
}

SizeEstimate estimateSize(const Dims4& dims, const ResolvedSettings& r, const std::array<int, 3>& blockDims) {
  const PyramidPlan plan = planPyramid(dims, r.s.scales, r.s.minAxisLength);
  const int scales = int(plan.dims.size());
  SizeEstimate e;
  e.bytes = kFixedBytes + cnnBytes(r);
  for (int i = 0; i < scales; ++i) {
    const Dims4& d = plan.dims[size_t(i)];
    int64_t n = d.t;
    for (int a = 0; a < 3; ++a) n *= (d[a] + blockDims[size_t(a)] - 1) / blockDims[size_t(a)];
    const int b = r.blocksPerMlp[size_t(scales - 1 - i)];  // blocksPerMlp is coarsest first
    e.blocks += n;
    e.mlps += (n + b - 1) / b;
    e.bytes += scaleBytes(r, n, b);
  }
  e.ratio = double(dims.count()) * 4.0 / double(e.bytes);
  return e;
}

std::array<int, 3> chooseBlockDims(const Dims4& dims, const ResolvedSettings& r) {
  std::array<int, 3> best = edgeDims(dims, 4);
  for (int edge : kEdges) {
    best = edgeDims(dims, edge);
    if (edge >= std::max({dims.x, dims.y, dims.z})) break;
    if (estimateSize(dims, r, best).ratio >= r.s.targetRatio) break;
  }
  return best;
}

}  // namespace ecnr
