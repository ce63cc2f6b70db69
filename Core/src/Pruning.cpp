#include "ecnr/Pruning.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ecnr {

bool prunableWeights(const MlpShape& shape, int layer) { return layer < shape.sineLayers; }

bool prunableBiases(const MlpShape& shape, int layer) { return layer > 0 && layer < shape.sineLayers; }

PruneMasks keepAll(const MlpShape& shape, int mlpCount) {
  PruneMasks m;
  for (int l = 0; l < shape.layerCount(); ++l) {
    m.weights.emplace_back(size_t(mlpCount) * size_t(shape.fanIn(l) * shape.fanOut(l)), uint8_t(1));
    m.biases.emplace_back(size_t(mlpCount) * size_t(shape.fanOut(l)), uint8_t(1));
  }
  return m;
}

namespace {

struct Candidate {
  float importance;
  uint32_t group;  // 2 * layer (+1 for biases)
  uint32_t index;
};

void checkShapes(const ScaleModel& params, const MlpShape& shape, const PruneMasks& m) {
  const size_t L = size_t(shape.layerCount());
  if (params.weights.size() != L || params.biases.size() != L || m.weights.size() != L || m.biases.size() != L)
    throw Error("pruning: layer count mismatch");
  for (size_t l = 0; l < L; ++l)
    if (params.weights[l].size() != m.weights[l].size() || params.biases[l].size() != m.biases[l].size())
      throw Error("pruning: mask size mismatch");
}

}  // namespace

PruneMasks blockGuidedPrune(const ScaleModel& params, const MlpShape& shape, const std::vector<double>& mlpLoss,
                            double sparsity, double lambda, const PruneMasks& current) {
  checkShapes(params, shape, current);
  const int m = params.mlpCount;
  if (int(mlpLoss.size()) != m) throw Error("pruning: one loss per MLP expected");
  // Normalizers of Eq. 2, over all candidates of the scale.
  float maxAbs = 0, minAbs = INFINITY;
  std::vector<const std::vector<float>*> values;
  for (int l = 0; l < shape.layerCount(); ++l) {
    values.push_back(&params.weights[size_t(l)]);
    values.push_back(&params.biases[size_t(l)]);
  }
  auto candidateGroup = [&](int g) {
    return g % 2 == 0 ? prunableWeights(shape, g / 2) : prunableBiases(shape, g / 2);
  };
  for (int g = 0; g < int(values.size()); ++g)
    if (candidateGroup(g))
      for (float v : *values[size_t(g)]) {
        maxAbs = std::max(maxAbs, std::fabs(v));
        minAbs = std::min(minAbs, std::fabs(v));
      }
  const auto [lossLo, lossHi] = std::minmax_element(mlpLoss.begin(), mlpLoss.end());
  const double lossRange = m > 0 ? *lossHi - *lossLo : 0;
  auto normLoss = [&](int q) { return lossRange > 0 ? float((mlpLoss[size_t(q)] - *lossLo) / lossRange) : 0.0f; };
  const float absRange = maxAbs > minAbs ? maxAbs - minAbs : 0;

  PruneMasks out = current;
  std::vector<Candidate> alive;
  int64_t total = 0, pruned = 0;
  for (int g = 0; g < int(values.size()); ++g) {
    if (!candidateGroup(g)) continue;
    const std::vector<float>& v = *values[size_t(g)];
    std::vector<uint8_t>& mask = g % 2 == 0 ? out.weights[size_t(g / 2)] : out.biases[size_t(g / 2)];
    const size_t perMlp = v.size() / size_t(std::max(1, m));
    total += int64_t(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!mask[i]) {
        ++pruned;
        continue;
      }
      const float a = absRange > 0 ? (std::fabs(v[i]) - minAbs) / absRange : 0.0f;
      alive.push_back({a + float(lambda) * normLoss(int(i / perMlp)), uint32_t(g), uint32_t(i)});
    }
  }
  const int64_t target = std::min<int64_t>(total, int64_t(std::llround(std::clamp(sparsity, 0.0, 1.0) * double(total))));
  const int64_t more = std::min<int64_t>(int64_t(alive.size()), std::max<int64_t>(0, target - pruned));
  // Ties broken by position, so the masks do not depend on the sort implementation.
  std::nth_element(alive.begin(), alive.begin() + more, alive.end(), [](const Candidate& a, const Candidate& b) {
    return a.importance != b.importance ? a.importance < b.importance
                                        : (a.group != b.group ? a.group < b.group : a.index < b.index);
  });
  for (int64_t k = 0; k < more; ++k) {
    const Candidate& c = alive[size_t(k)];
    (c.group % 2 == 0 ? out.weights : out.biases)[c.group / 2][c.index] = 0;
  }
  return out;
}

double candidateSparsity(const PruneMasks& masks, const MlpShape& shape) {
  int64_t total = 0, pruned = 0;
  for (int l = 0; l < shape.layerCount() && l < int(masks.weights.size()); ++l) {
    auto count = [&](const std::vector<uint8_t>& v) {
      total += int64_t(v.size());
      pruned += int64_t(std::count(v.begin(), v.end(), uint8_t(0)));
    };
    if (prunableWeights(shape, l)) count(masks.weights[size_t(l)]);
    if (prunableBiases(shape, l)) count(masks.biases[size_t(l)]);
  }
  return total > 0 ? double(pruned) / double(total) : 0.0;
}

}  // namespace ecnr
