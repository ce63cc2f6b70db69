#include "ecnr/Model.h"

#include <algorithm>

#include "ecnr/Half.h"

namespace ecnr {

int64_t MlpShape::paramsPerMlp() const {
  int64_t n = 0;
  for (int l = 0; l < layerCount(); ++l) n += int64_t(fanIn(l)) * fanOut(l) + fanOut(l);
  return n;
}

std::array<int64_t, 3> ScaleModel::blockGrid() const {
  return {(dims.x + blockDims[0] - 1) / blockDims[0], (dims.y + blockDims[1] - 1) / blockDims[1],
          (dims.z + blockDims[2] - 1) / blockDims[2]};
}

std::vector<uint32_t> codeSlots(const ScaleModel& s, int codeSteps, int64_t* count) {
  std::vector<uint32_t> slot(s.blocks.size());
  if (codeSteps <= 1) {
    for (size_t i = 0; i < slot.size(); ++i) slot[i] = uint32_t(i);
    *count = int64_t(slot.size());
    return slot;
  }
  const auto g = s.blockGrid();
  const uint64_t perStep = uint64_t(g[0] * g[1] * g[2]);
  std::vector<uint64_t> key(s.blocks.size());
  for (size_t i = 0; i < key.size(); ++i) key[i] = uint64_t(s.blocks[i].t / uint32_t(codeSteps)) * perStep + s.blocks[i].block;
  std::vector<uint64_t> keys = key;
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (size_t i = 0; i < key.size(); ++i)
    slot[i] = uint32_t(std::lower_bound(keys.begin(), keys.end(), key[i]) - keys.begin());
  *count = int64_t(keys.size());
  return slot;
}

float codeTime(uint32_t t, int codeSteps) {
  return codeSteps > 1 ? 2.0f * float(t % uint32_t(codeSteps)) / float(codeSteps - 1) - 1.0f : 0.0f;
}

// In double: a data range wider than FLT_MAX (values near both float limits) must not overflow.
float Model::toData(float normalized) const {
  return float(double(dataMin) + (double(normalized) + 1.0) * 0.5 * (double(dataMax) - double(dataMin)));
}

float Model::toNormalized(float value) const {
  const double range = double(dataMax) - double(dataMin);
  return range > 0 ? float(2.0 * (double(value) - dataMin) / range - 1.0) : 0.0f;
}

void applyStoragePrecision(ScaleModel& scale, const MlpShape&) {
  if (scale.precision != WeightPrecision::Float16) return;
  // Clamped to float16's largest finite value first: an overflow to infinity would decode to NaN voxels.
  auto round = [](std::vector<float>& v) {
    for (float& x : v) x = roundToHalf(std::clamp(x, -65504.0f, 65504.0f));
  };
  for (auto& w : scale.weights) round(w);
  for (auto& b : scale.biases) round(b);
  round(scale.latents);
}

}  // namespace ecnr
