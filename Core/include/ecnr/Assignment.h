// Assignment: which MLP fits which block. k-means on block contents, then the paper's cluster-size
// uniformization (Algorithm 1) so every MLP gets about the same number of blocks.
#pragma once

#include <cstdint>
#include <vector>

namespace ecnr {

struct KMeansResult {
  std::vector<int> labels;        ///< n labels in [0, k)
  std::vector<float> centroids;   ///< k * dim
};

/// Lloyd's k-means with k-means++ seeding; deterministic for a seed. points: n * dim, row-major.
KMeansResult kmeans(const std::vector<float>& points, int64_t n, int dim, int k, int iterations, uint64_t seed);

/// Algorithm 1: points ordered by (max - min) squared distance to the centroids, descending; each goes to its
/// nearest cluster with fewer than floor(n/k) members, else to its nearest with fewer than ceil(n/k).
/// Returns labels; every cluster size is <= ceil(n/k). Centroids are not recomputed.
std::vector<int> uniformizeClusters(const std::vector<float>& points, int64_t n, int dim,
                                    const std::vector<float>& centroids, int k);

/// Capacity where the error is (issue 10): Algorithm 1 with a weight per point (n values >= 0) instead of a count.
/// Each cluster takes points up to a load of sum(weights) / k, so heavy (hard) points share a cluster with fewer
/// others; a point that fits nowhere goes to its nearest cluster with load below that plus the largest weight.
/// Every cluster gets at least one point (an empty one takes the point nearest to its centroid from a cluster of
/// several). Empty weights: uniformizeClusters.
std::vector<int> uniformizeClustersByWeight(const std::vector<float>& points, int64_t n, int dim,
                                            const std::vector<float>& centroids, int k, const std::vector<float>& weights);

namespace detail {
/// uniformizeClusters with its memory cap exposed (the public one stores the n x k distance matrix only up to
/// 1e8 entries and recomputes rows beyond that), so tests can drive the recomputing path on small inputs.
std::vector<int> uniformizeClusters(const std::vector<float>& points, int64_t n, int dim,
                                    const std::vector<float>& centroids, int k, int64_t maxStoredDistances,
                                    const std::vector<float>& weights = {});
}  // namespace detail

/// The whole step: k = ceil(n / blocksPerMlp) MLPs, k-means then uniformization. Returns one MLP index per block.
std::vector<int> assignBlocks(const std::vector<float>& features, int64_t n, int dim, int blocksPerMlp,
                              uint64_t seed, int* mlpCount);

/// The same with the MLP count given (clamped to [1, n]); cluster sizes then differ by at most one. A large
/// problem (largeAssignment) is clustered in two levels, about sqrt(k) equal groups first, each split into its
/// share of the MLPs (sizes then differ by at most a few blocks).
std::vector<int> assignBlocksToMlps(const std::vector<float>& features, int64_t n, int dim, int64_t mlps,
                                    uint64_t seed, int* mlpCount);
/// The same with a weight per block (uniformizeClustersByWeight; the two-level split shares the MLPs out by the
/// groups' weights). Empty weights: assignBlocksToMlps.
std::vector<int> assignBlocksByWeight(const std::vector<float>& features, int64_t n, int dim, int64_t mlps,
                                      uint64_t seed, const std::vector<float>& weights, int* mlpCount);

/// blocks x MLPs above 5e7: one level of k-means would cost minutes to hours (n k distances of up to 512 values
/// per iteration, 25 iterations); the encoder then also pools the block features harder (64 values, not 512).
/// Every dataset of the benchmarks (at most 256^3 x 1 or 64^3 x 16) stays below it.
bool largeAssignment(int64_t blocks, int64_t mlps);

}  // namespace ecnr
