#include "ecnr/Decoder.h"

#include <algorithm>

#include "MlpView.h"
#include "ecnr/Blocks.h"
#include "ecnr/MemoryEstimate.h"
#include "ecnr/Pyramid.h"
#include "ecnr/Series.h"

namespace ecnr {

namespace {

// Block records of time step tp (the table is sorted by (t, block)).
std::pair<size_t, size_t> blocksOfStep(const ScaleModel& s, int64_t tp) {
  auto lo = std::lower_bound(s.blocks.begin(), s.blocks.end(), tp,
                             [](const BlockRecord& b, int64_t t) { return int64_t(b.t) < t; });
  auto hi = std::upper_bound(lo, s.blocks.end(), tp, [](int64_t t, const BlockRecord& b) { return t < int64_t(b.t); });
  return {size_t(lo - s.blocks.begin()), size_t(hi - s.blocks.begin())};
}

bool intersects(const BlockGrid& grid, int64_t block, const Extent& box) {
  const auto o = grid.origin(block);
  const auto v = grid.validDims(block);
  for (int a = 0; a < 3; ++a)
    if (o[size_t(a)] > box[size_t(2 * a + 1)] || o[size_t(a)] + v[size_t(a)] - 1 < box[size_t(2 * a)]) return false;
  return true;
}

}  // namespace

std::vector<uint32_t> blockCodes(const Model& model, int p) {
  int64_t count = 0;
  return model.shape.codeSteps > 1 ? codeSlots(model.scales[size_t(p)], model.shape.codeSteps, &count)
                                   : std::vector<uint32_t>{};
}

int64_t addBlockOutputs(const Model& model, int p, int64_t tp, float* step, const Extent* box,
                        const std::vector<uint32_t>* codes) {
  const ScaleModel& s = model.scales[size_t(p)];
  const auto [first, last] = blocksOfStep(s, tp);
  const BlockGrid grid = makeBlockGrid(s.dims, s.blockDims);
  std::vector<size_t> todo;
  for (size_t i = first; i < last; ++i)
    if (!box || intersects(grid, s.blocks[i].block, *box)) todo.push_back(i);
  if (todo.empty()) return 0;
  const int L = model.shape.latentsPerBlock(), W = model.shape.codeSteps;
  const std::vector<uint32_t> own = W > 1 && !codes ? blockCodes(model, p) : std::vector<uint32_t>{};
  const std::vector<uint32_t>& slot = codes ? *codes : own;
  // Blocks of one step are disjoint, so they can be added in parallel.
#pragma omp parallel
  {
    std::vector<float> out(size_t(grid.voxelsPerBlock()), 0.0f);
#pragma omp for schedule(dynamic, 4)
    for (int64_t k = 0; k < int64_t(todo.size()); ++k) {
      const size_t i = todo[size_t(k)];
      const BlockRecord& r = s.blocks[i];
      const auto valid = grid.validDims(r.block);
      const size_t code = W > 1 ? slot[i] : i;
      kernels::evalSirenBlock(mlpView(model.shape, s, r.mlp), s.latents.data() + code * size_t(L), s.blockDims.data(),
                              valid.data(), out.data(), codeTime(r.t, W));
      // The network fits the block min-max normalized to [-1, 1]; clip, then map back.
      const float half = 0.5f * (r.maxValue - r.minValue);
      for (float& v : out) v = r.minValue + (std::clamp(v, -1.0f, 1.0f) + 1.0f) * half;
      insertBlock(step, grid, r.block, out.data(), true);
    }
  }
  return int64_t(todo.size());
}

Field reconstructScale(const Model& model, int p, const Field* coarser) {
  const ScaleModel& s = model.scales[size_t(p)];
  Field out = p == 0 ? Field(s.dims) : upsample(*coarser, model.scales[size_t(p - 1)].halved, s.dims);
  const std::vector<uint32_t> codes = blockCodes(model, p);
  for (int64_t t = 0; t < s.dims.t; ++t) addBlockOutputs(model, p, t, out.step(t), nullptr, &codes);
  return out;
}

Decoder::Decoder(const Model& model) : model_(model) {
  if (model.scales.empty()) throw Error("archive has no scale to decode");
}

int Decoder::usedScales(int scales) const {
  return scales < 0 || scales > model_.scaleCount() ? model_.scaleCount() : std::max(1, scales);
}

Field Decoder::toDataUnits(Field f) const {
  for (float& v : f.values) v = model_.toData(v);
  return f;
}

Field Decoder::upsampleToFull(Field f, int p) const {
  // Space and time interpolation are separable and linear, so climbing scale by scale equals the decoder's path.
  for (int q = p + 1; q < model_.scaleCount(); ++q) {
    Dims4 target = model_.scales[size_t(q)].dims;
    HalvedAxes h = model_.scales[size_t(q - 1)].halved;
    if (f.dims.t == 1) {  // a single decoded step stays a single step: space only
      target.t = 1;
      h[3] = false;
    }
    f = upsample(f, h, target);
  }
  return f;
}

Field Decoder::decodeAll(int scales, bool fullResolution, const Progress* progress) {
  const int used = usedScales(scales);
  // A tiny archive may legitimately describe a huge grid: refuse before allocating it, not half-way.
  checkMemory(estimateDecoderPeakBytes(model_, scales, fullResolution), availableMemoryBytes(),
              "decoding every time step", "the available memory");
  Field recon;
  for (int p = 0; p < used; ++p) {
    if (progress) {
      progress->checkCancel();
      progress->report(double(p) / used, "decoding scale " + std::to_string(p + 1) + "/" + std::to_string(used));
    }
    recon = reconstructScale(model_, p, p == 0 ? nullptr : &recon);
  }
  if (fullResolution && used < model_.scaleCount()) recon = upsampleToFull(std::move(recon), used - 1);
  if (appliesCnn(scales)) {
    if (progress) progress->report(1.0, "boundary CNN");
    applyBoundaryCnn(model_.cnn, recon);
  }
  recon = toDataUnits(std::move(recon));
  if (appliesResidual(scales)) {
    if (progress) progress->report(1.0, "error-bounded correction");
    const Dims4 d = recon.dims;
    std::string failure;  // an exception must not leave an OpenMP region
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < d.t; ++t) {
      try {
        applyResidual(t, recon.step(t));
      } catch (const Error& e) {
#pragma omp critical
        failure = "time step " + std::to_string(t) + ": " + e.what();
      }
    }
    if (!failure.empty()) throw Error(failure);
  }
  if (progress) progress->report(1.0, "decoded");
  return recon;
}

const std::vector<float>& Decoder::stepAt(int p, int64_t tp) {
  const auto key = std::make_pair(p, tp);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  const ScaleModel& s = model_.scales[size_t(p)];
  std::vector<float> step(size_t(s.dims.voxelsPerStep()), 0.0f);
  if (p > 0) {
    const ScaleModel& c = model_.scales[size_t(p - 1)];
    const AxisLerp lt = coarsePosition(tp, s.dims.t, c.halved[3], true);
    std::vector<float> mix = stepAt(p - 1, lt.i0);
    if (lt.w1 != 0.0f) {
      const std::vector<float>& b = stepAt(p - 1, lt.i1);
      for (size_t i = 0; i < mix.size(); ++i) mix[i] += lt.w1 * (b[i] - mix[i]);
    }
    upsampleSpace(mix.data(), c.dims, c.halved, s.dims, step.data());
  }
  if (codes_.empty())
    for (int q = 0; q < model_.scaleCount(); ++q) codes_.push_back(blockCodes(model_, q));
  blockEvaluations_ += addBlockOutputs(model_, p, tp, step.data(), regions_.empty() ? nullptr : &regions_[size_t(p)],
                                       &codes_[size_t(p)]);
  return cache_.emplace(key, std::move(step)).first->second;
}

Field Decoder::decodeStep(int64_t t, int scales, bool fullResolution) {
  const int used = usedScales(scales);
  regions_.clear();
  Field out = assembleStep(t, used);
  if (fullResolution && used < model_.scaleCount()) out = upsampleToFull(std::move(out), used - 1);
  if (appliesCnn(scales)) applyBoundaryCnn(model_.cnn, out);
  out = toDataUnits(std::move(out));
  if (appliesResidual(scales)) applyResidual(t, out.values.data());
  return out;
}

Field Decoder::decodeRegion(int64_t t, const Extent& request, int scales) {
  for (int a = 0; a < 3; ++a)
    if (request[size_t(2 * a)] < 0 || request[size_t(2 * a)] > request[size_t(2 * a + 1)] ||
        request[size_t(2 * a + 1)] >= model_.dims[a])
      throw Error("extent outside the grid " + model_.dims.str());
  const int used = usedScales(scales);
  // The CNN reads (kernel / 2) voxels around each output per layer: decode that halo too, correct, then crop.
  const bool cnn = appliesCnn(scales);
  const int64_t halo = cnn ? int64_t(model_.cnn.layers) * (model_.cnn.kernel / 2) : 0;
  Extent extent = request;
  for (int a = 0; a < 3; ++a) {
    extent[size_t(2 * a)] = std::max<int64_t>(0, request[size_t(2 * a)] - halo);
    extent[size_t(2 * a + 1)] = std::min<int64_t>(model_.dims[a] - 1, request[size_t(2 * a + 1)] + halo);
  }
  // The box each scale must get right: the fine box widened to the coarse samples its interpolation reads.
  regions_.assign(size_t(model_.scaleCount()), extent);
  for (int p = model_.scaleCount() - 1; p > 0; --p) {
    const ScaleModel& fine = model_.scales[size_t(p)];
    const ScaleModel& coarse = model_.scales[size_t(p - 1)];
    Extent& c = regions_[size_t(p - 1)];
    for (int a = 0; a < 3; ++a) {
      c[size_t(2 * a)] = coarsePosition(regions_[size_t(p)][size_t(2 * a)], fine.dims[a], coarse.halved[size_t(a)], false).i0;
      c[size_t(2 * a + 1)] = coarsePosition(regions_[size_t(p)][size_t(2 * a + 1)], fine.dims[a], coarse.halved[size_t(a)], false).i1;
    }
  }
  Field step = assembleStep(t, used);
  regions_.clear();
  if (used < model_.scaleCount()) step = upsampleToFull(std::move(step), used - 1);
  Field out(Dims4{extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1, 1});
  for (int64_t z = 0; z < out.dims.z; ++z)
    for (int64_t y = 0; y < out.dims.y; ++y) {
      const float* src = step.values.data() + ((extent[4] + z) * model_.dims.y + extent[2] + y) * model_.dims.x + extent[0];
      std::copy(src, src + out.dims.x, out.values.data() + (z * out.dims.y + y) * out.dims.x);
    }
  // The correction covers the requested voxels of the step (its stream is read whole).
  const bool residual = appliesResidual(scales);
  if (!cnn) {
    out = toDataUnits(std::move(out));
    if (residual) applyResidual(t, out.values.data(), &request);
    return out;
  }
  applyBoundaryCnn(model_.cnn, out);
  Field crop(Dims4{request[1] - request[0] + 1, request[3] - request[2] + 1, request[5] - request[4] + 1, 1});
  for (int64_t z = 0; z < crop.dims.z; ++z)
    for (int64_t y = 0; y < crop.dims.y; ++y) {
      const float* src = out.values.data() +
                         ((request[4] - extent[4] + z) * out.dims.y + request[2] - extent[2] + y) * out.dims.x +
                         request[0] - extent[0];
      std::copy(src, src + crop.dims.x, crop.values.data() + (z * crop.dims.y + y) * crop.dims.x);
    }
  crop = toDataUnits(std::move(crop));
  if (residual) applyResidual(t, crop.values.data(), &request);
  return crop;
}

bool Decoder::appliesCnn(int scales) const {
  return cnnEnabled_ && model_.hasCnn() && usedScales(scales) == model_.scaleCount();
}

bool Decoder::appliesResidual(int scales) const {
  return residualEnabled_ && model_.residual.hasCorrection() && usedScales(scales) == model_.scaleCount() &&
         (cnnEnabled_ || !model_.hasCnn());
}

void Decoder::applyResidual(int64_t t, float* values, const Extent* box) const {
  const Dims4 step{model_.dims.x, model_.dims.y, model_.dims.z, 1};
  applyResidualStep(model_.residual.steps[size_t(t)], step, model_.residual.step, values, box);
}

uint64_t Decoder::stepPeakBytes(int used) const {
  // Up to four cached steps per scale (two interpolated coarse steps, each built from two coarser ones), plus the
  // result and its upsampled copy on the original grid. In double: the dims are validated but their products are not.
  double bytes = 0;
  for (int p = 0; p < used; ++p) bytes += 4.0 * 4.0 * double(model_.scales[size_t(p)].dims.voxelsPerStep());
  bytes += 2.0 * 4.0 * double(model_.dims.voxelsPerStep());
  return bytes >= 1.8e19 ? UINT64_MAX : uint64_t(bytes);
}

Field Decoder::assembleStep(int64_t t, int used) {
  if (t < 0 || t >= model_.dims.t)
    throw Error("time step " + std::to_string(t) + " out of range [0, " + std::to_string(model_.dims.t) + ")");
  const int q = used - 1;
  checkMemory(stepPeakBytes(used), availableMemoryBytes(), "decoding one time step", "the available memory");
  cache_.clear();
  blockEvaluations_ = 0;
  // Weights of scale q's time steps that make up original step t (time interpolation from the finest down).
  std::map<int64_t, float> weights{{t, 1.0f}};
  for (int p = model_.scaleCount() - 1; p > q; --p) {
    const ScaleModel& fine = model_.scales[size_t(p)];
    const ScaleModel& coarse = model_.scales[size_t(p - 1)];
    std::map<int64_t, float> next;
    for (const auto& [tp, w] : weights) {
      const AxisLerp l = coarsePosition(tp, fine.dims.t, coarse.halved[3], true);
      next[l.i0] += w * (1.0f - l.w1);
      if (l.w1 != 0.0f) next[l.i1] += w * l.w1;
    }
    weights = std::move(next);
  }
  Dims4 d = model_.scales[size_t(q)].dims;
  d.t = 1;
  Field out;
  out.dims = d;
  if (weights.size() == 1 && weights.begin()->second == 1.0f) {
    // The step itself (a step of the finest scale, or one kept by every coarser halving): taken, not copied, so
    // one decoded step costs one step of memory (the values are those of the weighted sum below: 0 + 1 x s).
    stepAt(q, weights.begin()->first);
    out.values = std::move(cache_.at({q, weights.begin()->first}));
  } else {
    out.values.assign(size_t(d.voxelsPerStep()), 0.0f);
    for (const auto& [tq, w] : weights) {
      const std::vector<float>& s = stepAt(q, tq);
      for (size_t i = 0; i < s.size(); ++i) out.values[i] += w * s[i];
    }
  }
  cache_.clear();
  return out;
}

Field decodeSeries(const SeriesView& series) {
  Field out(series.dims());
  for (const Model* w : series.windows) {
    const Field f = Decoder(*w).decodeAll();
    std::copy(f.values.begin(), f.values.end(), out.step(w->firstStep));
  }
  return out;
}

}  // namespace ecnr
