#include "ecnr/Quantization.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ecnr/Half.h"

namespace ecnr {

std::vector<float> kmeans1d(std::vector<float> values, int k, int iterations) {
  if (values.empty() || k < 1) return {};
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + values[i];
  const double lo = values.front(), hi = values.back();
  std::vector<double> c;
  for (int j = 0; j < k; ++j) c.push_back(k == 1 ? 0.5 * (lo + hi) : lo + (hi - lo) * double(j) / double(k - 1));
  // Lloyd on sorted values: the cluster of centroid j is the run between the midpoints to its neighbours, so each
  // iteration is k binary searches and prefix-sum means. Empty clusters are dropped.
  // An empty cluster keeps its centroid (it may win values back); centroids still empty at the end are dropped.
  auto clusterEnd = [&](size_t j, size_t begin) {
    return j + 1 == c.size() ? n
                             : size_t(std::upper_bound(values.begin() + std::ptrdiff_t(begin), values.end(),
                                                       float(0.5 * (c[j] + c[j + 1]))) - values.begin());
  };
  for (int it = 0; it < iterations; ++it) {
    std::vector<double> next = c;
    size_t begin = 0;
    for (size_t j = 0; j < c.size(); ++j) {
      const size_t end = clusterEnd(j, begin);
      if (end > begin) next[j] = (prefix[end] - prefix[begin]) / double(end - begin);
      begin = end;
    }
    const bool same = next == c;
    c = std::move(next);
    if (same) break;
  }
  std::vector<float> out;
  size_t begin = 0;
  for (size_t j = 0; j < c.size(); ++j) {
    const size_t end = clusterEnd(j, begin);
    if (end > begin) out.push_back(float(c[j]));
    begin = end;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

int codebookSize(int64_t values, int maxEntries, bool biases, int valuesPerEntry) {
  // Biases are few and sit inside sin(omega0 (Wx + b)): an error of d shifts the phase by omega0 d, so a small
  // bias group keeps every value. Weights: at least 64 entries, at most one per valuesPerEntry values.
  if (biases) return int(std::min<int64_t>(maxEntries, std::max<int64_t>(1, values)));
  return int(std::min<int64_t>(maxEntries, std::max<int64_t>(64, values / std::max(1, valuesPerEntry))));
}

int32_t nearestIndex(const std::vector<float>& codebook, float v) {
  const auto it = std::lower_bound(codebook.begin(), codebook.end(), v);
  if (it == codebook.begin()) return 0;
  if (it == codebook.end()) return int32_t(codebook.size() - 1);
  const int32_t hi = int32_t(it - codebook.begin());
  return (v - codebook[size_t(hi - 1)] <= codebook[size_t(hi)] - v) ? hi - 1 : hi;
}

namespace {

float storageRound(float v, WeightPrecision p) {
  return p == WeightPrecision::Float16 ? roundToHalf(std::clamp(v, -65504.0f, 65504.0f)) : v;
}

// Codebook of `values` (nonzero only when `skipZeros`: pruned values stay 0), rounded to the storage precision,
// sorted and free of duplicates, so a value's index in it is unique. `entries` > 0 fixes its size (the rate-aware
// choice), else codebookSize decides.
std::vector<float> buildCodebook(const float* v, size_t n, int k, bool skipZeros, bool biases, WeightPrecision p,
                                 int valuesPerEntry, int entries) {
  std::vector<float> vals;
  for (size_t i = 0; i < n; ++i)
    if (!skipZeros || v[i] != 0.0f) vals.push_back(v[i]);
  const int used = entries > 0 ? std::min(entries, k) : codebookSize(int64_t(vals.size()), k, biases, valuesPerEntry);
  std::vector<float> cb = kmeans1d(std::move(vals), used);
  for (float& x : cb) x = storageRound(x, p);
  std::sort(cb.begin(), cb.end());
  cb.erase(std::unique(cb.begin(), cb.end()), cb.end());
  return cb;
}

// Quantizes one group: codebooks (one, or one per MLP for local), ids into the shared table, values replaced.
void quantizeGroup(std::vector<float>& v, int mlps, bool local, int k, bool skipZeros, bool biases, WeightPrecision p,
                   int valuesPerEntry, int entries, SharedTable& t, std::vector<int32_t>& ids,
                   std::vector<float>& codebookOut) {
  const int parts = local ? std::max(1, mlps) : 1;
  const size_t per = v.size() / size_t(parts);
  std::vector<std::vector<float>> books;
  size_t size = 0;
  for (int q = 0; q < parts; ++q) {
    books.push_back(buildCodebook(v.data() + size_t(q) * per, per, k, skipZeros, biases, p, valuesPerEntry, entries));
    size = std::max(size, books.back().size());
  }
  // Local codebooks share one size so the archive can store them back to back; short ones repeat their last value.
  const int64_t offset = int64_t(t.values.size());
  codebookOut.clear();
  for (auto& b : books) {
    if (b.empty()) b.push_back(0.0f);
    b.resize(std::max<size_t>(size, 1), b.back());
    codebookOut.insert(codebookOut.end(), b.begin(), b.end());
  }
  size = std::max<size_t>(size, 1);
  t.offset.push_back(offset);
  t.size.push_back(int64_t(size));
  t.values.insert(t.values.end(), codebookOut.begin(), codebookOut.end());
  ids.assign(v.size(), -1);
  for (size_t i = 0; i < v.size(); ++i) {
    if (skipZeros && v[i] == 0.0f) continue;
    const size_t q = i / per;
    const std::vector<float>& b = books[q];
    const int32_t j = nearestIndex(b, v[i]);
    ids[i] = int32_t(offset + int64_t(q * size) + j);
    v[i] = b[size_t(j)];
  }
}

// The biases' codebook limit: 2^biasBits, or 2^bits when biasBits is 0.
int biasLimit(const QuantizationOptions& o) { return 1 << (o.biasBits > 0 ? o.biasBits : o.bits); }

// Bits a codebook entry costs in the archive: float16 codebooks are stored as coded differences (~0.6 of a half).
constexpr double kCodebookEntryBits = 10.0;

int entriesOf(const QuantizationOptions& o, int group) {
  return size_t(group) < o.groupEntries.size() ? o.groupEntries[size_t(group)] : 0;
}

}  // namespace

SharedTable quantizeScale(ScaleModel& s, const MlpShape& shape, const QuantizationOptions& o) {
  if (o.bits < 1 || o.bits > 16 || o.latentBits < 0 || o.latentBits > 16 || o.biasBits < 0 || o.biasBits > 16)
    throw Error("quantization bits must be in [1, 16]");
  SharedTable t;
  t.local = o.local;
  s.codebooks = ScaleCodebooks{};
  s.codebooks.local = o.local;
  const int L = shape.layerCount();
  t.weightId.resize(size_t(L));
  t.biasId.resize(size_t(L));
  s.codebooks.weights.resize(size_t(L));
  s.codebooks.biases.resize(size_t(L));
  for (int l = 0; l < L; ++l) {
    quantizeGroup(s.weights[size_t(l)], s.mlpCount, o.local, 1 << o.bits, true, false, s.precision,
                  o.valuesPerEntry, entriesOf(o, 2 * l), t, t.weightId[size_t(l)], s.codebooks.weights[size_t(l)]);
    quantizeGroup(s.biases[size_t(l)], s.mlpCount, o.local, biasLimit(o), true, true, s.precision, o.valuesPerEntry,
                  entriesOf(o, 2 * l + 1), t, t.biasId[size_t(l)], s.codebooks.biases[size_t(l)]);
  }
  // Latents: one codebook for the scale (they are per block, not per MLP), zeros included.
  if (o.latentBits > 0 && !s.latents.empty())
    quantizeGroup(s.latents, 1, false, 1 << o.latentBits, false, false, s.precision, 2, entriesOf(o, 2 * L), t,
                  t.latentId, s.codebooks.latents);
  return t;
}

double quantizedBits(const SharedTable& t) {
  std::vector<int64_t> count(t.values.size(), 0);
  auto tally = [&](const std::vector<int32_t>& ids) {
    for (int32_t i : ids)
      if (i >= 0) ++count[size_t(i)];
  };
  for (const auto& ids : t.weightId) tally(ids);
  for (const auto& ids : t.biasId) tally(ids);
  tally(t.latentId);
  // A group's entries run to the next group's (local codebooks: all of its MLPs' books, coded as one stream).
  double bits = 0;
  for (size_t g = 0; g < t.offset.size(); ++g) {
    const auto begin = count.begin() + t.offset[g];
    const auto end = g + 1 < t.offset.size() ? count.begin() + t.offset[g + 1] : count.end();
    int64_t n = 0;
    for (auto it = begin; it != end; ++it) n += *it;
    for (auto it = begin; it != end; ++it)
      if (*it > 0) bits -= double(*it) * std::log2(double(*it) / double(n));
    bits += kCodebookEntryBits * double(end - begin);
  }
  return bits;
}

std::vector<int> rateAwareEntries(const ScaleModel& trained, const MlpShape& shape, const QuantizationOptions& o,
                                  const std::function<double(const ScaleModel&)>& loss, double slope, int groups) {
  if (o.local) return {};
  const int L = shape.layerCount();
  const bool latents = o.latentBits > 0 && !trained.latents.empty();
  // The sizes codebookSize gives (what the groups start from), and which groups may shrink.
  std::vector<int> entries(static_cast<size_t>(2 * L + 1), 0);
  std::vector<bool> free(entries.size(), false);
  auto kept = [](const std::vector<float>& v) {
    return int64_t(std::count_if(v.begin(), v.end(), [](float x) { return x != 0.0f; }));
  };
  for (int l = 0; l < L; ++l) {
    entries[size_t(2 * l)] = codebookSize(kept(trained.weights[size_t(l)]), 1 << o.bits, false, o.valuesPerEntry);
    entries[size_t(2 * l + 1)] = codebookSize(kept(trained.biases[size_t(l)]), biasLimit(o), true);
    free[size_t(2 * l)] = (groups & kRateWeights) != 0;
    free[size_t(2 * l + 1)] = (groups & kRateBiases) != 0;
  }
  entries[size_t(2 * L)] = latents ? 1 << o.latentBits : 0;
  free[size_t(2 * L)] = latents && (groups & kRateLatents) != 0;
  auto evaluate = [&](const std::vector<int>& e, double& bits) {
    ScaleModel m = trained;
    QuantizationOptions q = o;
    q.groupEntries = e;
    bits = quantizedBits(quantizeScale(m, shape, q));
    return loss(m);
  };
  double bits = 0;
  double base = evaluate(entries, bits);
  for (size_t g = 0; g < entries.size(); ++g) {
    if (!free[g]) continue;
    // The objective, linearized at the current choice: relative loss increase minus slope x relative bits saved.
    double best = 0, bestLoss = base, bestBits = bits;
    int bestSize = entries[g];
    for (int k : {128, 64}) {
      if (k >= entries[g]) continue;
      std::vector<int> trial = entries;
      trial[g] = k;
      double b = 0;
      const double lk = evaluate(trial, b);
      const double dLoss = base > 0 ? (lk - base) / base : (lk > base ? std::numeric_limits<double>::infinity() : 0);
      const double j = dLoss - slope * (bits - b) / std::max(bits, 1.0);
      if (j < best) best = j, bestLoss = lk, bestBits = b, bestSize = k;
    }
    entries[g] = bestSize;
    base = bestLoss;
    bits = bestBits;
  }
  return entries;
}

void applySharedValues(ScaleModel& s, const MlpShape& shape, const SharedTable& t, std::vector<float> values) {
  if (values.size() != t.values.size()) throw Error("quantization: shared value count mismatch");
  for (float& v : values) v = storageRound(v, s.precision);
  auto apply = [&](std::vector<float>& v, const std::vector<int32_t>& ids) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = ids[i] >= 0 ? values[size_t(ids[i])] : 0.0f;
  };
  auto book = [&](size_t g) {
    return std::vector<float>(values.begin() + t.offset[g],
                              values.begin() + t.offset[g] + t.size[g] * (t.local && g < 2 * size_t(shape.layerCount()) ? s.mlpCount : 1));
  };
  for (int l = 0; l < shape.layerCount(); ++l) {
    apply(s.weights[size_t(l)], t.weightId[size_t(l)]);
    apply(s.biases[size_t(l)], t.biasId[size_t(l)]);
    s.codebooks.weights[size_t(l)] = book(size_t(2 * l));
    s.codebooks.biases[size_t(l)] = book(size_t(2 * l + 1));
  }
  if (!t.latentId.empty()) {
    apply(s.latents, t.latentId);
    s.codebooks.latents = book(size_t(2 * shape.layerCount()));
  }
}

}  // namespace ecnr
