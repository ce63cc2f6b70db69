// Block assignment (paper Section 3.3): k-means on block contents, then Algorithm 1, which reassigns every
// block so that no MLP gets more than ceil(n/k) of them.
#include "ecnr/Assignment.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <random>
#include <string>

#include "ecnr/Field.h"

namespace ecnr {
namespace {

/// Above this many n*k entries (100 MB), uniformization recomputes distance rows instead of storing the matrix.
constexpr int64_t kMaxStoredDistances = 25'000'000;
/// Points per tile of the distance kernel: big enough to amortize streaming the centroids, small enough
/// that a tile's distance rows stay in cache.
constexpr int kPointTile = 64;
/// Above this many blocks x MLPs, the assignment clusters in two levels (largeAssignment).
constexpr double kMaxFlatPairs = 5e7;
/// Centroids per tile: 64 rows of a few hundred floats stay in L2 while every point quad of a tile passes.
constexpr int kCentroidTile = 64;
constexpr int kQuad = 4;
/// Multiply-adds below which a parallel region costs more than it saves (and, on a loaded machine, a
/// descheduled thread can stall every barrier of a small problem).
constexpr int64_t kMinParallelWork = int64_t(1) << 18;

bool worthThreads(int64_t points, int64_t k, int dim) { return points * k * dim >= kMinParallelWork; }

void checkShape(const std::vector<float>& points, int64_t n, int dim, int k, const char* who) {
  const std::string fn(who);
  if (n < 0) throw Error(fn + ": negative point count " + std::to_string(n));
  if (dim <= 0) throw Error(fn + ": dimension must be positive, got " + std::to_string(dim));
  if (k <= 0) throw Error(fn + ": cluster count must be positive, got " + std::to_string(k));
  if (n > 0 && int64_t(points.size()) / n < dim)
    throw Error(fn + ": " + std::to_string(points.size()) + " values cannot hold " + std::to_string(n) +
                " points of dimension " + std::to_string(dim));
}

float squaredNorm(const float* x, int dim) {
  double s = 0.0;  // double: the expansion below subtracts norms, so their own rounding should stay small
#pragma omp simd reduction(+ : s)
  for (int d = 0; d < dim; ++d) s += double(x[d]) * double(x[d]);
  return float(s);
}

float squaredDistance(const float* a, const float* b, int dim) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int d = 0; d < dim; ++d) {
    const float t = a[d] - b[d];
    s += t * t;
  }
  return s;
}

/// Dot products of 4 points with 4 centroids at once: each loaded value feeds four multiply-adds, which is
/// what makes the expanded distance compute-bound instead of load-bound.
void dot4x4(const float* const* p, const float* const* c, int dim, float out[kQuad][kQuad]) {
  const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
  const float *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];
  float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
  for (int d = 0; d < dim; ++d) {
    const float a0 = p0[d], a1 = p1[d], a2 = p2[d], a3 = p3[d];
    const float b0 = c0[d], b1 = c1[d], b2 = c2[d], b3 = c3[d];
    s00 += a0 * b0, s01 += a0 * b1, s02 += a0 * b2, s03 += a0 * b3;
    s10 += a1 * b0, s11 += a1 * b1, s12 += a1 * b2, s13 += a1 * b3;
    s20 += a2 * b0, s21 += a2 * b1, s22 += a2 * b2, s23 += a2 * b3;
    s30 += a3 * b0, s31 += a3 * b1, s32 += a3 * b2, s33 += a3 * b3;
  }
  const float s[kQuad][kQuad] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23},
                                 {s30, s31, s32, s33}};
  std::copy(&s[0][0], &s[0][0] + kQuad * kQuad, &out[0][0]);
}

/// Squared distances from points to a fixed set of centroids, as ||x||^2 - 2 x.c + ||c||^2 so the bulk of
/// the work is the blocked dot-product kernel above.
class DistanceKernel {
public:
  DistanceKernel(const float* centroids, int k, int dim) : c_(centroids), k_(k), dim_(dim), cNorm_(size_t(k)) {
    for (int j = 0; j < k; ++j) cNorm_[size_t(j)] = squaredNorm(row(j), dim);
  }

  int k() const { return k_; }

  /// out (count x k, row-major) = squared distances of the points at rows[0..count) to every centroid.
  void distances(const float* const* rows, int count, float* out) const {
    for (int j0 = 0; j0 < k_; j0 += kCentroidTile) {
      const int j1 = std::min(k_, j0 + kCentroidTile);
      for (int r = 0; r < count; r += kQuad) tileRow(rows, count, r, j0, j1, out);
    }
    for (int r = 0; r < count; ++r) {
      const float xx = squaredNorm(rows[r], dim_);
      float* o = out + int64_t(r) * k_;
      // Clamp: cancellation can push a tiny true distance below zero.
      for (int j = 0; j < k_; ++j) o[j] = std::max(0.0f, xx + cNorm_[size_t(j)] - 2.0f * o[j]);
    }
  }

private:
  const float* row(int j) const { return c_ + int64_t(j) * dim_; }

  /// Dot products of points [r, r+4) with centroids [j0, j1); short quads repeat their last member.
  void tileRow(const float* const* rows, int count, int r, int j0, int j1, float* out) const {
    const float* p[kQuad];
    for (int a = 0; a < kQuad; ++a) p[a] = rows[std::min(r + a, count - 1)];
    for (int j = j0; j < j1; j += kQuad) {
      const float* c[kQuad];
      for (int b = 0; b < kQuad; ++b) c[b] = row(std::min(j + b, j1 - 1));
      float dots[kQuad][kQuad];
      dot4x4(p, c, dim_, dots);
      for (int a = 0; a < kQuad && r + a < count; ++a)
        for (int b = 0; b < kQuad && j + b < j1; ++b) out[int64_t(r + a) * k_ + j + b] = dots[a][b];
    }
  }

  const float* c_;
  int k_, dim_;
  std::vector<float> cNorm_;
};

/// Row pointers for points [first, first+count) of a row-major set.
void contiguousRows(const float* points, int dim, int64_t first, int count, const float** rows) {
  for (int r = 0; r < count; ++r) rows[r] = points + (first + r) * dim;
}

int argmin(const float* v, int k) { return int(std::min_element(v, v + k) - v); }

/// Nearest centroid of every point (ties to the lower index). Returns how many labels changed.
int64_t assignNearest(const float* points, int64_t n, int dim, const DistanceKernel& kernel,
                      std::vector<int>& labels, std::vector<float>& dist) {
  const int k = kernel.k();
  const int64_t tiles = (n + kPointTile - 1) / kPointTile;
  int64_t changed = 0;
#pragma omp parallel reduction(+ : changed) if (worthThreads(n, k, dim))
  {
    std::vector<float> buffer(size_t(kPointTile) * size_t(k));
    const float* rows[kPointTile];
    // Dynamic: a tile is about a millisecond of work, and a thread that loses its core gets no fixed share.
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t first = t * kPointTile;
      const int count = int(std::min<int64_t>(kPointTile, n - first));
      contiguousRows(points, dim, first, count, rows);
      kernel.distances(rows, count, buffer.data());
      for (int r = 0; r < count; ++r) {
        const float* d = buffer.data() + int64_t(r) * k;
        const int best = argmin(d, k);
        const size_t i = size_t(first + r);
        changed += labels[i] != best;
        labels[i] = best;
        dist[i] = d[best];
      }
    }
  }
  return changed;
}

/// Uniform double in [0, 1) from the top 53 bits, so the draw is the same wherever mt19937_64 is.
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

/// k-means++: each next seed drawn with probability proportional to its squared distance to the nearest
/// seed so far. Returns k * dim seed coordinates.
std::vector<float> seedPlusPlus(const float* points, int64_t n, int dim, int k, std::mt19937_64& rng) {
  std::vector<float> seeds(size_t(k) * size_t(dim));
  std::vector<float> minDist(size_t(n), INFINITY);
  int64_t pick = int64_t(rng() % uint64_t(n));
  for (int j = 0; j < k; ++j) {
    const float* s = points + pick * dim;
    std::copy(s, s + dim, seeds.begin() + int64_t(j) * dim);
    if (j + 1 == k) break;
#pragma omp parallel for schedule(static) if (worthThreads(n, 1, dim))
    for (int64_t i = 0; i < n; ++i)
      minDist[size_t(i)] = std::min(minDist[size_t(i)], squaredDistance(points + i * dim, s, dim));
    // The sum and the walk stay serial: a threaded sum would round differently per thread count.
    double total = 0.0;
    for (float d : minDist) total += d;
    if (total <= 0.0) {  // every point coincides with a seed: any point is as good as another
      pick = (pick + 1) % n;
      continue;
    }
    const double target = uniform01(rng) * total;
    double cumulative = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (minDist[size_t(i)] <= 0.0f) continue;
      pick = i;  // the last positive one, should rounding carry the target past the end
      cumulative += minDist[size_t(i)];
      if (cumulative > target) break;
    }
  }
  return seeds;
}

/// Gives every empty cluster the point farthest from its centroid, taken from a cluster that keeps at least
/// one member. Returns the number of points moved.
int64_t refillEmptyClusters(int k, std::vector<int>& labels, const std::vector<float>& dist) {
  std::vector<int64_t> sizes(size_t(k), 0);
  for (int l : labels) ++sizes[size_t(l)];
  if (std::find(sizes.begin(), sizes.end(), 0) == sizes.end()) return 0;

  std::vector<int64_t> order(labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return dist[size_t(a)] > dist[size_t(b)]; });
  int64_t moved = 0;
  size_t next = 0;
  for (int j = 0; j < k; ++j) {
    if (sizes[size_t(j)] != 0) continue;
    while (sizes[size_t(labels[size_t(order[next])])] <= 1) ++next;  // k < n, so a donor always exists
    const size_t i = size_t(order[next++]);
    --sizes[size_t(labels[i])];
    labels[i] = j;
    sizes[size_t(j)] = 1;
    ++moved;
  }
  return moved;
}

/// Centroids as the means of their members, summed in double so large clusters do not lose precision.
void updateCentroids(const float* points, int64_t n, int dim, int k, const std::vector<int>& labels,
                     std::vector<float>& centroids) {
  std::vector<double> sums(size_t(k) * size_t(dim), 0.0);
  std::vector<int64_t> sizes(size_t(k), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int l = labels[size_t(i)];
    ++sizes[size_t(l)];
    double* s = sums.data() + int64_t(l) * dim;
    const float* x = points + i * dim;
    for (int d = 0; d < dim; ++d) s[d] += x[d];
  }
  for (int j = 0; j < k; ++j) {
    if (sizes[size_t(j)] == 0) continue;  // cannot happen after refillEmptyClusters; keep the old centroid
    const double inv = 1.0 / double(sizes[size_t(j)]);
    for (int d = 0; d < dim; ++d)
      centroids[size_t(j) * size_t(dim) + size_t(d)] = float(sums[size_t(j) * size_t(dim) + size_t(d)] * inv);
  }
}

/// k >= n: every point is its own cluster; the spare clusters repeat points so every centroid is real data.
KMeansResult onePointPerCluster(const float* points, int64_t n, int dim, int k) {
  KMeansResult result;
  result.labels.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) result.labels[size_t(i)] = int(i);
  result.centroids.resize(size_t(k) * size_t(dim));
  for (int j = 0; j < k; ++j) {
    const float* x = points + (j % n) * dim;
    std::copy(x, x + dim, result.centroids.begin() + int64_t(j) * dim);
  }
  return result;
}

/// Calls visit(i, row) for every point i of `order`, in that order, with its distance row to every centroid.
/// Rows are computed in threaded batches; visit itself runs serially, so it may carry state from point to point.
template <class Visit>
void visitDistanceRows(const DistanceKernel& kernel, const float* points, int dim, const std::vector<int64_t>& order,
                       Visit visit) {
  const int k = kernel.k();
  const int64_t n = int64_t(order.size());
  // About 16 MB of rows per batch, and at least one tile, whatever k is.
  const int64_t batch = std::max<int64_t>(kPointTile, ((int64_t(1) << 22) / k) / kPointTile * kPointTile);
  std::vector<float> rows(size_t(std::min(batch, n)) * size_t(k));
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    const int64_t tiles = (count + kPointTile - 1) / kPointTile;
#pragma omp parallel for schedule(dynamic) if (worthThreads(count, k, dim))
    for (int64_t t = 0; t < tiles; ++t) {
      const int tileCount = int(std::min<int64_t>(kPointTile, count - t * kPointTile));
      const float* tile[kPointTile];
      for (int r = 0; r < tileCount; ++r) tile[r] = points + order[size_t(first + t * kPointTile + r)] * dim;
      kernel.distances(tile, tileCount, rows.data() + t * kPointTile * k);
    }
    for (int64_t r = 0; r < count; ++r) visit(order[size_t(first + r)], rows.data() + r * k);
  }
}

/// Algorithm 1, lines 11-15: the nearest cluster still below floor(n/k), else the nearest below ceil(n/k).
int pickCluster(const float* d, const std::vector<int64_t>& sizes, int64_t floorSize, int64_t ceilSize) {
  for (int64_t limit : {floorSize, ceilSize}) {
    int best = -1;
    for (int j = 0; j < int(sizes.size()); ++j)
      if (sizes[size_t(j)] < limit && (best < 0 || d[j] < d[best])) best = j;
    if (best >= 0) return best;
  }
  throw Error("uniformizeClusters: no cluster has room left");  // unreachable: k * ceil(n/k) >= n
}

/// The weighted lines 11-15: the nearest cluster the point fits in (load + w <= capacity), else the nearest whose
/// load is below capacity + maxWeight - w (one always is: the loads placed so far sum to less than k capacity).
int pickClusterByWeight(const float* d, const std::vector<double>& loads, double w, double capacity, double maxWeight) {
  for (double limit : {capacity - w, capacity + maxWeight - w}) {
    int best = -1;
    for (int j = 0; j < int(loads.size()); ++j)
      if (loads[size_t(j)] <= limit && (best < 0 || d[j] < d[best])) best = j;
    if (best >= 0) return best;
  }
  throw Error("uniformizeClustersByWeight: no cluster has room left");  // unreachable, see above
}

/// Gives every empty cluster the point nearest to its centroid among the clusters of two or more points.
void fillEmptyClusters(const float* points, int64_t n, int dim, const std::vector<float>& centroids, int k,
                       std::vector<int>& labels) {
  std::vector<int64_t> sizes(size_t(k), 0);
  for (int l : labels) ++sizes[size_t(l)];
  for (int j = 0; j < k; ++j) {
    if (sizes[size_t(j)] > 0) continue;
    int64_t best = -1;
    float bestD = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (sizes[size_t(labels[size_t(i)])] < 2) continue;
      const float dd = squaredDistance(points + i * dim, centroids.data() + int64_t(j) * dim, dim);
      if (best < 0 || dd < bestD) best = i, bestD = dd;
    }
    if (best < 0) throw Error("uniformizeClustersByWeight: fewer points than clusters");
    --sizes[size_t(labels[size_t(best)])];
    labels[size_t(best)] = j;
    sizes[size_t(j)] = 1;
  }
}

/// Algorithm 1, lines 7-10: max_j D[i][j] - min_j D[i][j] for one distance row.
float gain(const float* d, int k) {
  const auto mm = std::minmax_element(d, d + k);
  return *mm.second - *mm.first;
}

}  // namespace

KMeansResult kmeans(const std::vector<float>& points, int64_t n, int dim, int k, int iterations, uint64_t seed) {
  checkShape(points, n, dim, k, "kmeans");
  if (iterations < 0) throw Error("kmeans: negative iteration count " + std::to_string(iterations));
  if (n == 0) return {};
  if (k >= n) return onePointPerCluster(points.data(), n, dim, k);

  std::mt19937_64 rng(seed);
  KMeansResult result;
  result.centroids = seedPlusPlus(points.data(), n, dim, k, rng);
  result.labels.assign(size_t(n), -1);
  std::vector<float> dist(static_cast<size_t>(n));
  // At least one pass, so the labels always belong to the returned centroids' clusters.
  for (int it = 0; it < std::max(1, iterations); ++it) {
    const DistanceKernel kernel(result.centroids.data(), k, dim);
    int64_t changed = assignNearest(points.data(), n, dim, kernel, result.labels, dist);
    changed += refillEmptyClusters(k, result.labels, dist);
    updateCentroids(points.data(), n, dim, k, result.labels, result.centroids);
    if (changed == 0) break;
  }
  return result;
}

namespace detail {

std::vector<int> uniformizeClusters(const std::vector<float>& points, int64_t n, int dim,
                                    const std::vector<float>& centroids, int k, int64_t maxStoredDistances,
                                    const std::vector<float>& weights) {
  checkShape(points, n, dim, k, "uniformizeClusters");
  if (!weights.empty() && int64_t(weights.size()) != n)
    throw Error("uniformizeClustersByWeight: " + std::to_string(weights.size()) + " weights for " + std::to_string(n) + " points");
  for (float w : weights)
    if (!(w >= 0 && std::isfinite(w))) throw Error("uniformizeClustersByWeight: a weight is negative or not finite");
  if (int64_t(centroids.size()) / k < dim)
    throw Error("uniformizeClusters: " + std::to_string(centroids.size()) + " values cannot hold " +
                std::to_string(k) + " centroids of dimension " + std::to_string(dim));
  if (n == 0) return {};

  const DistanceKernel kernel(centroids.data(), k, dim);
  const bool store = n * int64_t(k) <= maxStoredDistances;
  std::vector<float> matrix(store ? size_t(n) * size_t(k) : 0);  // Algorithm 1's D, when it fits

  // Lines 2-9: each point's gain; the rows are kept only when the whole matrix fits.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::vector<float> delta(static_cast<size_t>(n));
  visitDistanceRows(kernel, points.data(), dim, order, [&](int64_t i, const float* d) {
    delta[size_t(i)] = gain(d, k);
    if (store) std::copy(d, d + k, matrix.begin() + i * k);
  });

  // Line 10: highest gain first; the stable sort breaks ties by point index.
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return delta[size_t(a)] > delta[size_t(b)]; });

  // Lines 11-15, starting from empty clusters since every point is (re)assigned.
  const int64_t floorSize = n / k, ceilSize = (n + k - 1) / k;
  std::vector<int64_t> sizes(size_t(k), 0);
  std::vector<double> loads(size_t(k), 0.0);
  double total = 0, maxWeight = 0;
  for (float w : weights) total += w, maxWeight = std::max(maxWeight, double(w));
  const double capacity = total / double(k);
  std::vector<int> labels(static_cast<size_t>(n));
  const auto place = [&](int64_t i, const float* d) {
    const int j = weights.empty() ? pickCluster(d, sizes, floorSize, ceilSize)
                                  : pickClusterByWeight(d, loads, weights[size_t(i)], capacity, maxWeight);
    labels[size_t(i)] = j;
    ++sizes[size_t(j)];
    if (!weights.empty()) loads[size_t(j)] += weights[size_t(i)];
  };
  if (store) {
    for (int64_t i : order) place(i, matrix.data() + i * k);
  } else {
    visitDistanceRows(kernel, points.data(), dim, order, place);
  }
  if (!weights.empty()) fillEmptyClusters(points.data(), n, dim, centroids, k, labels);
  return labels;
}

}  // namespace detail

std::vector<int> uniformizeClusters(const std::vector<float>& points, int64_t n, int dim,
                                    const std::vector<float>& centroids, int k) {
  return detail::uniformizeClusters(points, n, dim, centroids, k, kMaxStoredDistances);
}

std::vector<int> uniformizeClustersByWeight(const std::vector<float>& points, int64_t n, int dim,
                                            const std::vector<float>& centroids, int k, const std::vector<float>& weights) {
  return detail::uniformizeClusters(points, n, dim, centroids, k, kMaxStoredDistances, weights);
}

std::vector<int> assignBlocks(const std::vector<float>& features, int64_t n, int dim, int blocksPerMlp,
                              uint64_t seed, int* mlpCount) {
  if (blocksPerMlp < 1) throw Error("assignBlocks: blocks per MLP must be >= 1, got " + std::to_string(blocksPerMlp));
  if (n < 0) throw Error("assignBlocks: negative block count " + std::to_string(n));
  return assignBlocksToMlps(features, n, dim, (n + blocksPerMlp - 1) / blocksPerMlp, seed, mlpCount);
}

std::vector<int> assignBlocksToMlps(const std::vector<float>& features, int64_t n, int dim, int64_t mlps,
                                    uint64_t seed, int* mlpCount) {
  return assignBlocksByWeight(features, n, dim, mlps, seed, {}, mlpCount);
}

std::vector<int> assignBlocksByWeight(const std::vector<float>& features, int64_t n, int dim, int64_t mlps,
                                      uint64_t seed, const std::vector<float>& weights, int* mlpCount) {
  if (n < 0) throw Error("assignBlocks: negative block count " + std::to_string(n));
  if (mlpCount) *mlpCount = 0;
  if (n == 0) return {};
  int64_t k = std::clamp<int64_t>(mlps, 1, n);
  if (k > INT_MAX) throw Error("assignBlocks: " + std::to_string(k) + " MLPs exceed the supported count");

  constexpr int kIterations = 25;
  std::vector<int> labels;
  if (!largeAssignment(n, k)) {
    const KMeansResult km = kmeans(features, n, dim, int(k), kIterations, seed);
    labels = uniformizeClustersByWeight(features, n, dim, km.centroids, int(k), weights);
  } else {
    // Two levels: about sqrt(k) groups of equal size (k-means + Algorithm 1), then each group's blocks clustered
    // into its share of the MLPs the same way. The cost per iteration is n (k1 + k / k1) distances instead of
    // n k: on a 2 GB series of 8^3 blocks (a million blocks, 65 k MLPs), minutes instead of hours.
    const int k1 = int(std::clamp<int64_t>(std::llround(std::sqrt(double(k))), 2, k));
    const KMeansResult top = kmeans(features, n, dim, k1, kIterations, seed);
    const std::vector<int> group = uniformizeClusters(features, n, dim, top.centroids, k1);
    std::vector<std::vector<int64_t>> members(static_cast<size_t>(k1));
    for (int64_t i = 0; i < n; ++i) members[size_t(group[size_t(i)])].push_back(i);
    // MLPs per group in proportion to its blocks (or weights; largest remainders), at least one, never more than
    // its blocks.
    std::vector<double> groupWeight(static_cast<size_t>(k1), 0.0);
    double allWeight = 0;
    for (int g = 0; g < k1; ++g) {
      for (int64_t i : members[size_t(g)]) groupWeight[size_t(g)] += weights.empty() ? 1.0 : double(weights[size_t(i)]);
      allWeight += groupWeight[size_t(g)];
    }
    std::vector<int64_t> share(static_cast<size_t>(k1));
    std::vector<std::pair<double, int>> remainder;
    int64_t given = 0;
    for (int g = 0; g < k1; ++g) {
      const double exact = allWeight > 0 ? double(k) * groupWeight[size_t(g)] / allWeight
                                         : double(k) * double(members[size_t(g)].size()) / double(n);
      share[size_t(g)] = std::clamp<int64_t>(int64_t(exact), 1, int64_t(members[size_t(g)].size()));
      given += share[size_t(g)];
      remainder.push_back({exact - double(share[size_t(g)]), g});
    }
    std::stable_sort(remainder.begin(), remainder.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    // Round after round (a weighted share can exceed a group's blocks, and what it could not take goes to the
    // others); the groups hold n >= k blocks, so this ends.
    for (size_t r = 0; given < k; r = (r + 1) % remainder.size()) {
      const int g = remainder[r].second;
      if (share[size_t(g)] < int64_t(members[size_t(g)].size())) ++share[size_t(g)], ++given;
    }
    labels.assign(size_t(n), 0);
    int64_t offset = 0;
    std::vector<float> sub;
    for (int g = 0; g < k1; ++g) {
      const std::vector<int64_t>& m = members[size_t(g)];
      sub.resize(m.size() * size_t(dim));
      for (size_t i = 0; i < m.size(); ++i)
        std::copy_n(features.data() + m[i] * dim, dim, sub.data() + i * size_t(dim));
      const int kg = int(share[size_t(g)]);
      const KMeansResult km = kmeans(sub, int64_t(m.size()), dim, kg, kIterations, seed + uint64_t(g) + 1);
      std::vector<float> subWeights;
      if (!weights.empty())
        for (int64_t i : m) subWeights.push_back(weights[size_t(i)]);
      const std::vector<int> local = uniformizeClustersByWeight(sub, int64_t(m.size()), dim, km.centroids, kg, subWeights);
      for (size_t i = 0; i < m.size(); ++i) labels[size_t(m[i])] = int(offset) + local[i];
      offset += kg;
    }
    k = offset;
  }
  if (mlpCount) *mlpCount = int(k);
  return labels;
}

bool largeAssignment(int64_t blocks, int64_t mlps) { return double(blocks) * double(mlps) > kMaxFlatPairs; }

}  // namespace ecnr
