// Comm: the ranks that share one encode or decode (issue 9). The ensemble is naturally parallel: each MLP trains
// on its own blocks, so the MLPs of a scale are split over ranks, and what ties them together (pruning's global
// ranking, the per-scale codebooks and their fine-tuning, the boundary CNN's gradient) goes through these
// collectives. The base class is one process alone (every call a no-op or a copy); MpiComm (Core/mpi, built with
// ECNR_WITH_MPI) is MPI_COMM_WORLD. Core itself never includes mpi.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ecnr {

class Comm {
public:
  virtual ~Comm() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  /// Element-wise sum over the ranks, in place; every rank gets the sum (MPI_Allreduce).
  virtual void sum(double* values, size_t n) const { (void)values, (void)n; }
  /// The same for floats, summed in double (the ranks' partial sums are added once, then rounded).
  virtual void sum(float* values, size_t n) const { (void)values, (void)n; }
  /// Integers: exact, whatever the order of the ranks.
  virtual void sum(int64_t* values, size_t n) const { (void)values, (void)n; }
  /// Every rank's `mine` concatenated in rank order, on every rank (MPI_Allgatherv).
  virtual std::vector<float> gather(const std::vector<float>& mine) const { return mine; }
  virtual std::vector<double> gather(const std::vector<double>& mine) const { return mine; }
  /// The same concatenation on rank 0 only (MPI_Gatherv); the other ranks get an empty vector.
  virtual std::vector<float> gatherAtRoot(const std::vector<float>& mine) const { return mine; }
  virtual void barrier() const {}

  bool parallel() const { return size() > 1; }
  double sum(double v) const {
    sum(&v, 1);
    return v;
  }
};

/// Fixed point for sums that must not depend on their order (a gradient summed over MLPs, threads and ranks:
/// integer sums are exact), in units of 2^-40: a resolution of 1e-12, sums up to 8e6. Terms are clamped far
/// beyond any gradient of our losses so that the int64 sum cannot overflow; a non-finite term counts 0.
constexpr double kFixedPointScale = 1099511627776.0;
inline int64_t toFixedPoint(double v) {
  const double x = std::clamp(v * kFixedPointScale, -9e15, 9e15);
  return std::isfinite(x) ? int64_t(std::llround(x)) : 0;
}
inline double fromFixedPoint(int64_t v) { return double(v) / kFixedPointScale; }

/// One process alone.
inline const Comm& aloneComm() {
  static const Comm alone;
  return alone;
}

/// Items [first, first + count) of `n` owned by `rank` of `ranks`: contiguous, sizes differing by at most one.
struct Share {
  int64_t first = 0, count = 0;
};
inline Share shareOf(int64_t n, int rank, int ranks) {
  const int64_t base = n / ranks, extra = n % ranks;
  Share s;
  s.first = rank * base + (rank < extra ? rank : extra);
  s.count = base + (rank < extra ? 1 : 0);
  return s;
}

}  // namespace ecnr
