#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "ecnr/Assignment.h"
#include "ecnr/Field.h"

using namespace ecnr;

namespace {

/// Gaussian blobs around centers drawn in [-50, 50]^dim: far apart compared to their spread.
struct Blobs {
  std::vector<float> points;
  std::vector<int> truth;  ///< blob of each point
  int64_t n = 0;
  int dim = 0;
};

Blobs makeBlobs(const std::vector<int>& sizes, int dim, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> center(-50.0f, 50.0f);
  std::normal_distribution<float> noise(0.0f, sigma);
  Blobs b;
  b.dim = dim;
  for (int blob = 0; blob < int(sizes.size()); ++blob) {
    std::vector<float> c(static_cast<size_t>(dim));
    for (float& v : c) v = center(rng);
    for (int p = 0; p < sizes[size_t(blob)]; ++p) {
      for (int d = 0; d < dim; ++d) b.points.push_back(c[size_t(d)] + noise(rng));
      b.truth.push_back(blob);
    }
  }
  // Interleave the blobs so that no test passes merely because points arrive grouped.
  const int64_t n = int64_t(b.truth.size());
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  Blobs shuffled{{}, {}, n, dim};
  for (int64_t i : perm) {
    shuffled.points.insert(shuffled.points.end(), b.points.begin() + i * dim, b.points.begin() + (i + 1) * dim);
    shuffled.truth.push_back(b.truth[size_t(i)]);
  }
  return shuffled;
}

std::vector<int64_t> clusterSizes(const std::vector<int>& labels, int k) {
  std::vector<int64_t> sizes(size_t(k), 0);
  for (int l : labels) {
    EXPECT_GE(l, 0);
    EXPECT_LT(l, k);
    if (l >= 0 && l < k) ++sizes[size_t(l)];
  }
  return sizes;
}

/// True when the two labelings are the same partition (equal up to renaming the clusters).
bool samePartition(const std::vector<int>& a, const std::vector<int>& b) {
  if (a.size() != b.size()) return false;
  std::map<int, int> ab, ba;
  for (size_t i = 0; i < a.size(); ++i) {
    // emplace keeps the first pairing seen; any later disagreement breaks the bijection.
    if (ab.emplace(a[i], b[i]).first->second != b[i]) return false;
    if (ba.emplace(b[i], a[i]).first->second != a[i]) return false;
  }
  return true;
}

double fractionKept(const std::vector<int>& before, const std::vector<int>& after) {
  size_t same = 0;
  for (size_t i = 0; i < before.size(); ++i) same += before[i] == after[i];
  return double(same) / double(before.size());
}

void expectUniformSizes(const std::vector<int>& labels, int64_t n, int k) {
  ASSERT_EQ(int64_t(labels.size()), n);
  const std::vector<int64_t> sizes = clusterSizes(labels, k);
  int64_t total = 0;
  for (int64_t s : sizes) {
    EXPECT_GE(s, n / k);
    EXPECT_LE(s, (n + k - 1) / k);
    total += s;
  }
  EXPECT_EQ(total, n);
}

/// Algorithm 1 written out directly (direct double distances, full matrix), to check the optimized version.
std::vector<int> referenceAlgorithm1(const std::vector<float>& x, int64_t n, int dim, const std::vector<float>& c,
                                     int k) {
  std::vector<std::vector<double>> D(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(k)));
  std::vector<double> delta(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < k; ++j)
      for (int d = 0; d < dim; ++d) {
        const double t = double(x[size_t(i * dim + d)]) - double(c[size_t(j * dim + d)]);
        D[size_t(i)][size_t(j)] += t * t;
      }
    const auto& row = D[size_t(i)];
    delta[size_t(i)] = *std::max_element(row.begin(), row.end()) - *std::min_element(row.begin(), row.end());
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return delta[size_t(a)] > delta[size_t(b)]; });
  std::vector<int64_t> sizes(static_cast<size_t>(k), 0);
  std::vector<int> labels(static_cast<size_t>(n), -1);
  for (int64_t i : order) {
    for (int64_t limit : {n / k, (n + k - 1) / k}) {
      int best = -1;
      for (int j = 0; j < k; ++j)
        if (sizes[size_t(j)] < limit && (best < 0 || D[size_t(i)][size_t(j)] < D[size_t(i)][size_t(best)])) best = j;
      if (best >= 0) {
        labels[size_t(i)] = best;
        ++sizes[size_t(best)];
        break;
      }
    }
  }
  return labels;
}

}  // namespace

TEST(KMeans, RecoversSeparatedBlobsOfUnequalSize) {
  const Blobs b = makeBlobs({10, 20, 40, 80, 150}, 16, 1);
  const KMeansResult r = kmeans(b.points, b.n, b.dim, 5, 25, 42);
  ASSERT_EQ(r.labels.size(), size_t(b.n));
  ASSERT_EQ(r.centroids.size(), size_t(5 * b.dim));
  EXPECT_TRUE(samePartition(r.labels, b.truth));
}

TEST(KMeans, CentroidsAreMeansOfTheirMembers) {
  const Blobs b = makeBlobs({30, 30, 30}, 8, 2);
  const KMeansResult r = kmeans(b.points, b.n, b.dim, 3, 25, 1);
  for (int j = 0; j < 3; ++j)
    for (int d = 0; d < b.dim; ++d) {
      double sum = 0;
      int count = 0;
      for (int64_t i = 0; i < b.n; ++i)
        if (r.labels[size_t(i)] == j) sum += b.points[size_t(i * b.dim + d)], ++count;
      ASSERT_GT(count, 0);
      EXPECT_NEAR(r.centroids[size_t(j * b.dim + d)], sum / count, 1e-4);
    }
}

TEST(KMeans, SameSeedSameResult) {
  const Blobs b = makeBlobs({50, 70, 90, 40}, 12, 3);
  const KMeansResult a = kmeans(b.points, b.n, b.dim, 9, 25, 7);
  const KMeansResult c = kmeans(b.points, b.n, b.dim, 9, 25, 7);
  EXPECT_EQ(a.labels, c.labels);
  EXPECT_EQ(a.centroids, c.centroids);
}

TEST(KMeans, MoreClustersThanPointsGivesEachPointItsOwn) {
  const Blobs b = makeBlobs({2, 3}, 4, 4);
  const int k = 8;
  const KMeansResult r = kmeans(b.points, b.n, b.dim, k, 25, 1);
  ASSERT_EQ(r.labels.size(), size_t(b.n));
  ASSERT_EQ(r.centroids.size(), size_t(k * b.dim));
  for (int64_t i = 0; i < b.n; ++i) EXPECT_EQ(r.labels[size_t(i)], int(i));
  for (int j = 0; j < k; ++j)  // the spare clusters repeat real points
    for (int d = 0; d < b.dim; ++d)
      EXPECT_EQ(r.centroids[size_t(j * b.dim + d)], b.points[size_t((j % b.n) * b.dim + d)]);
}

TEST(KMeans, SingleClusterIsTheMean) {
  const Blobs b = makeBlobs({25, 25}, 3, 5);
  const KMeansResult r = kmeans(b.points, b.n, b.dim, 1, 25, 1);
  EXPECT_EQ(r.labels, std::vector<int>(size_t(b.n), 0));
  for (int d = 0; d < b.dim; ++d) {
    double sum = 0;
    for (int64_t i = 0; i < b.n; ++i) sum += b.points[size_t(i * b.dim + d)];
    EXPECT_NEAR(r.centroids[size_t(d)], sum / double(b.n), 1e-4);
  }
}

TEST(KMeans, NoPointsGiveAnEmptyResult) {
  const KMeansResult r = kmeans({}, 0, 4, 3, 25, 1);
  EXPECT_TRUE(r.labels.empty());
}

TEST(KMeans, IdenticalPointsStillFillEveryCluster) {
  const std::vector<float> points(size_t(20 * 3), 1.5f);
  const KMeansResult r = kmeans(points, 20, 3, 4, 10, 1);
  for (int64_t s : clusterSizes(r.labels, 4)) EXPECT_GT(s, 0);
}

TEST(KMeans, RejectsBadArguments) {
  const std::vector<float> points(12, 0.0f);
  EXPECT_THROW(kmeans(points, 3, 0, 2, 10, 1), Error);   // dim 0
  EXPECT_THROW(kmeans(points, 3, 4, 0, 10, 1), Error);   // k 0
  EXPECT_THROW(kmeans(points, 4, 4, 2, 10, 1), Error);   // too few values
  EXPECT_THROW(kmeans(points, -1, 4, 2, 10, 1), Error);  // negative n
  EXPECT_THROW(kmeans(points, 3, 4, 2, -1, 1), Error);   // negative iterations
}

TEST(AssignmentUniformize, SizesWithinFloorAndCeil) {
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int64_t n = 1000;
  const int dim = 10, k = 37;
  std::vector<float> points(size_t(n * dim));
  for (float& v : points) v = noise(rng);
  const KMeansResult km = kmeans(points, n, dim, k, 25, 3);
  expectUniformSizes(uniformizeClusters(points, n, dim, km.centroids, k), n, k);
}

TEST(AssignmentUniformize, KeepsBalancedBlobsInTheirKMeansCluster) {
  const int k = 8;
  // Tight blobs: with sigma 1, k-means++ puts two seeds in one blob a few percent of the time (each covered
  // blob keeps some of the D^2 mass), and this test is about uniformization, not about that.
  const Blobs b = makeBlobs(std::vector<int>(size_t(k), 40), 16, 6, 0.1f);
  const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 1);
  ASSERT_TRUE(samePartition(km.labels, b.truth));
  const std::vector<int> u = uniformizeClusters(b.points, b.n, b.dim, km.centroids, k);
  expectUniformSizes(u, b.n, k);
  EXPECT_GT(fractionKept(km.labels, u), 0.95);
}

TEST(AssignmentUniformize, KeepsWhatCapacityAllowsOfUnbalancedBlobs) {
  const int k = 5;
  const Blobs b = makeBlobs({10, 20, 40, 80, 150}, 16, 1);
  const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 42);
  const std::vector<int> u = uniformizeClusters(b.points, b.n, b.dim, km.centroids, k);
  expectUniformSizes(u, b.n, k);
  // No cluster can keep more than ceil(n/k) of its k-means members.
  int64_t possible = 0;
  for (int64_t s : clusterSizes(km.labels, k)) possible += std::min(s, (b.n + k - 1) / k);
  const double maxKept = double(possible) / double(b.n), kept = fractionKept(km.labels, u);
  RecordProperty("kept_percent", int(kept * 100 + 0.5));
  RecordProperty("max_kept_percent", int(maxKept * 100 + 0.5));
  std::printf("unbalanced blobs: kept %.1f %% of labels, at most %.1f %% possible\n", kept * 100, maxKept * 100);
  EXPECT_GE(kept, 0.6 * maxKept);
}

TEST(AssignmentUniformize, RecomputedRowsMatchTheStoredMatrix) {
  const Blobs b = makeBlobs({90, 30, 200, 17}, 20, 8);
  const int k = 11;
  const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 5);
  const std::vector<int> stored = uniformizeClusters(b.points, b.n, b.dim, km.centroids, k);
  const std::vector<int> streamed = detail::uniformizeClusters(b.points, b.n, b.dim, km.centroids, k, 0);
  EXPECT_EQ(stored, streamed);
  expectUniformSizes(streamed, b.n, k);
}

TEST(AssignmentUniformize, MatchesAStraightforwardAlgorithm1) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const int64_t n = 301;
  const int dim = 7, k = 13;
  std::vector<float> points(static_cast<size_t>(n * dim));
  for (float& v : points) v = value(rng);
  const KMeansResult km = kmeans(points, n, dim, k, 25, 2);
  EXPECT_EQ(uniformizeClusters(points, n, dim, km.centroids, k), referenceAlgorithm1(points, n, dim, km.centroids, k));
}

TEST(AssignmentUniformize, RecomputedRowsComeInSeveralBatches) {
  // So many centroids that a recomputed batch holds a single 64-point tile: 200 points take four batches.
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const int64_t n = 200;
  const int dim = 2, k = 40000;
  std::vector<float> points(static_cast<size_t>(n * dim)), centroids(static_cast<size_t>(k) * dim);
  for (float& v : points) v = value(rng);
  for (float& v : centroids) v = value(rng);
  const std::vector<int> streamed = detail::uniformizeClusters(points, n, dim, centroids, k, 0);
  EXPECT_EQ(streamed, uniformizeClusters(points, n, dim, centroids, k));
  EXPECT_EQ(std::set<int>(streamed.begin(), streamed.end()).size(), size_t(n));  // ceil(n/k) = 1
}

TEST(AssignmentUniformize, MoreClustersThanPointsUsesEachAtMostOnce) {
  const Blobs b = makeBlobs({3, 2}, 4, 9);
  const int k = 8;
  const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 1);
  const std::vector<int> u = uniformizeClusters(b.points, b.n, b.dim, km.centroids, k);
  for (int64_t s : clusterSizes(u, k)) EXPECT_LE(s, 1);
  EXPECT_EQ(std::set<int>(u.begin(), u.end()).size(), size_t(b.n));
}

TEST(AssignmentUniformize, EmptyAndInvalidInput) {
  EXPECT_TRUE(uniformizeClusters({}, 0, 3, std::vector<float>(6, 0.0f), 2).empty());
  const std::vector<float> points(12, 0.0f);
  EXPECT_THROW(uniformizeClusters(points, 3, 4, std::vector<float>(4, 0.0f), 2), Error);  // too few centroids
  EXPECT_THROW(uniformizeClusters(points, 3, 0, std::vector<float>(8, 0.0f), 2), Error);
}

TEST(AssignmentBlocks, OneMlpPerBlocksPerMlpBlocks) {
  std::mt19937 rng(12);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int64_t n = 1000;
  const int dim = 8, blocksPerMlp = 64;
  std::vector<float> features(size_t(n * dim));
  for (float& v : features) v = noise(rng);
  int mlps = -1;
  const std::vector<int> labels = assignBlocks(features, n, dim, blocksPerMlp, 1, &mlps);
  ASSERT_EQ(mlps, 16);  // ceil(1000 / 64)
  expectUniformSizes(labels, n, mlps);
  for (int64_t s : clusterSizes(labels, mlps)) EXPECT_LE(s, blocksPerMlp);
  int again = -1;
  EXPECT_EQ(assignBlocks(features, n, dim, blocksPerMlp, 1, &again), labels);
}

TEST(AssignmentBlocks, AGivenMlpCountSplitsTheBlocksWithinOne) {
  // The ratio and PSNR modes size the finest scale by its MLP count (Settings.h finestMlps): 1000 blocks over 37
  // MLPs is 27 or 28 blocks each, every MLP used; a count above the blocks is one block per MLP.
  std::mt19937 rng(13);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int64_t n = 1000;
  const int dim = 8;
  std::vector<float> features(size_t(n * dim));
  for (float& v : features) v = noise(rng);
  int mlps = -1;
  const std::vector<int> labels = assignBlocksToMlps(features, n, dim, 37, 5, &mlps);
  ASSERT_EQ(mlps, 37);
  for (int64_t s : clusterSizes(labels, mlps)) {
    EXPECT_GE(s, 27);
    EXPECT_LE(s, 28);
  }
  EXPECT_EQ(assignBlocksToMlps(features, 10, dim, 50, 5, &mlps).size(), 10u);
  EXPECT_EQ(mlps, 10);
}

TEST(AssignmentBlocks, ALargeProblemIsClusteredInTwoLevelsIntoEveryMlp) {
  // 20000 blocks x 13000 MLPs is past largeAssignment's threshold: groups first, then MLPs within them. Every
  // MLP gets blocks, none more than a few, and the result is reproducible.
  const int64_t n = 20000, k = 13000;
  ASSERT_TRUE(largeAssignment(n, k));
  ASSERT_FALSE(largeAssignment(n, 1000));
  std::mt19937 rng(21);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int dim = 8;
  std::vector<float> features(size_t(n * dim));
  for (float& v : features) v = noise(rng);
  int mlps = -1;
  const std::vector<int> labels = assignBlocksToMlps(features, n, dim, k, 3, &mlps);
  ASSERT_EQ(mlps, k);
  ASSERT_EQ(int64_t(labels.size()), n);
  const std::vector<int64_t> sizes = clusterSizes(labels, mlps);
  for (int64_t size : sizes) {
    EXPECT_GE(size, 1);
    EXPECT_LE(size, 3);
  }
  int again = -1;
  EXPECT_EQ(assignBlocksToMlps(features, n, dim, k, 3, &again), labels);
}

TEST(AssignmentBlocks, EdgeCases) {
  int mlps = -1;
  EXPECT_TRUE(assignBlocks({}, 0, 4, 8, 1, &mlps).empty());
  EXPECT_EQ(mlps, 0);

  const Blobs b = makeBlobs({6, 4}, 4, 10);
  EXPECT_EQ(assignBlocks(b.points, b.n, b.dim, 100, 1, &mlps), std::vector<int>(size_t(b.n), 0));
  EXPECT_EQ(mlps, 1);
  const std::vector<int> own = assignBlocks(b.points, b.n, b.dim, 1, 1, &mlps);
  EXPECT_EQ(mlps, int(b.n));
  EXPECT_EQ(std::set<int>(own.begin(), own.end()).size(), size_t(b.n));

  EXPECT_THROW(assignBlocks(b.points, b.n, b.dim, 0, 1, &mlps), Error);
}

// Capacity where the error is (issue 10): with equal weights the weighted uniformization is Algorithm 1 itself.
TEST(AssignmentByWeight, EqualWeightsGiveAlgorithm1) {
  for (int k : {3, 7, 10}) {
    const Blobs b = makeBlobs({20, 31, 19}, 5, 40 + uint32_t(k));
    const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 3);
    EXPECT_EQ(uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, std::vector<float>(size_t(b.n), 2.5f)),
              uniformizeClusters(b.points, b.n, b.dim, km.centroids, k))
        << "k " << k;
  }
}

// Heavy points share their cluster with fewer others; every cluster is used and none is loaded past its share
// plus the largest weight; weights that are not one per point, negative or not finite are refused.
TEST(AssignmentByWeight, HeavyPointsShareClustersWithFewer) {
  const Blobs b = makeBlobs({50, 50, 50, 50}, 4, 11, 20.0f);  // blobs that overlap: clusters mix heavy and light
  std::vector<float> w(size_t(b.n), 1.0f);
  for (int64_t i = 0; i < b.n; i += 10) w[size_t(i)] = 10.0f;  // 20 heavy points
  const int k = 20;
  const KMeansResult km = kmeans(b.points, b.n, b.dim, k, 25, 5);
  const std::vector<int> labels = uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, w);
  const std::vector<int64_t> sizes = clusterSizes(labels, k);
  std::vector<double> load(size_t(k), 0.0);
  std::vector<bool> heavy(size_t(k), false);
  for (int64_t i = 0; i < b.n; ++i) {
    load[size_t(labels[size_t(i)])] += w[size_t(i)];
    if (w[size_t(i)] > 1) heavy[size_t(labels[size_t(i)])] = true;
  }
  const double capacity = (180.0 + 200.0) / k;
  double heavySize = 0, lightSize = 0;
  int heavyCount = 0, lightCount = 0;
  for (int j = 0; j < k; ++j) {
    EXPECT_GE(sizes[size_t(j)], 1) << "cluster " << j;
    EXPECT_LE(load[size_t(j)], capacity + 10.0) << "cluster " << j;
    (heavy[size_t(j)] ? heavySize : lightSize) += double(sizes[size_t(j)]);
    ++(heavy[size_t(j)] ? heavyCount : lightCount);
  }
  ASSERT_GT(heavyCount, 0);
  ASSERT_GT(lightCount, 0);
  EXPECT_LT(heavySize / heavyCount, lightSize / lightCount - 3.0);
  EXPECT_EQ(uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, w), labels);

  std::vector<float> bad = w;
  bad[3] = -1.0f;
  EXPECT_THROW(uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, bad), Error);
  bad[3] = std::nanf("");
  EXPECT_THROW(uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, bad), Error);
  bad.pop_back();
  EXPECT_THROW(uniformizeClustersByWeight(b.points, b.n, b.dim, km.centroids, k, bad), Error);
}

// The two-level path shares the MLPs out by weight: the heavy half of the blocks gets more of them.
TEST(AssignmentByWeight, ALargeProblemGivesTheHeavyBlocksMoreMlps) {
  const int64_t n = 20000, k = 13000;
  ASSERT_TRUE(largeAssignment(n, k));
  std::mt19937 rng(22);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int dim = 8;
  std::vector<float> features(static_cast<size_t>(n * dim)), w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const bool heavy = i % 2 == 0;
    for (int d = 0; d < dim; ++d) features[size_t(i * dim + d)] = noise(rng) + (heavy ? 6.0f : -6.0f) * (d == 0);
    w[size_t(i)] = heavy ? 4.0f : 1.0f;
  }
  int mlps = -1;
  const std::vector<int> labels = assignBlocksByWeight(features, n, dim, k, 3, w, &mlps);
  ASSERT_EQ(mlps, k);
  const std::vector<int64_t> sizes = clusterSizes(labels, mlps);
  std::set<int> heavyMlps;
  for (int64_t i = 0; i < n; i += 2) heavyMlps.insert(labels[size_t(i)]);
  for (int64_t size : sizes) EXPECT_GE(size, 1);
  EXPECT_GT(double(heavyMlps.size()), 0.6 * double(k));
  int again = -1;
  EXPECT_EQ(assignBlocksByWeight(features, n, dim, k, 3, w, &again), labels);
}
