// Decoder: rebuilds the field from a Model, coarsest scale first: V~_i = U(V~_{i+1}) + (MLP outputs of scale i).
// It can rebuild one time step without the others (only the coarse steps it depends on) and stop at any scale
// (a coarse preview). Pure C++: no LibTorch.
#pragma once

#include <array>
#include <map>
#include <utility>
#include <vector>

#include "ecnr/Field.h"
#include "ecnr/Model.h"
#include "ecnr/Progress.h"

namespace ecnr {

/// Inclusive voxel box x0, x1, y0, y1, z0, z1.
using Extent = std::array<int64_t, 6>;

/// Adds the (normalized-unit) outputs of every effective block of scale p (coarse-first position) at time tp
/// into `step`, a 3D array of that scale's dims. Shared by the decoder and the encoder's closed loop. With a box,
/// only blocks intersecting it are evaluated; returns the number of blocks evaluated. codes: the scale's
/// blockCodes, from a caller that adds many steps (computed here otherwise).
int64_t addBlockOutputs(const Model& model, int p, int64_t tp, float* step, const Extent* box = nullptr,
                        const std::vector<uint32_t>* codes = nullptr);

/// The latent code of each block record of scale p (codeSlots), or empty with a code per step (a record's own).
std::vector<uint32_t> blockCodes(const Model& model, int p);

/// Reconstruction of scale p in normalized units, all its time steps: U(coarser) + block outputs.
/// coarser is the reconstruction of scale p-1 (nullptr for p = 0).
Field reconstructScale(const Model& model, int p, const Field* coarser);

struct SeriesView;

/// Every step of an array's series (Series.h), decoded window by window (decodeAll of each, with its correction).
Field decodeSeries(const SeriesView& series);

class Decoder {
public:
  /// The model must outlive the decoder.
  explicit Decoder(const Model& model);

  /// `scales` = how many scales to use, counted from the coarsest (-1 or > count = all). When fullResolution is
  /// false the result has the grid of the last scale used; otherwise it is upsampled to the original grid.
  Field decodeAll(int scales = -1, bool fullResolution = true, const Progress* progress = nullptr);

  /// One time step t of the original time axis (result has t = 1). Touches only the coarse steps t depends on.
  Field decodeStep(int64_t t, int scales = -1, bool fullResolution = true);

  /// Time step t restricted to `extent` (inclusive, original grid); the result has the extent's size and t = 1.
  /// Only blocks whose footprint reaches the extent are evaluated, at every scale.
  Field decodeRegion(int64_t t, const Extent& extent, int scales = -1);

  /// Every decode first checks its memory estimate against MemAvailable and throws Error when it cannot fit.

  /// The boundary CNN (when the archive has one) corrects every full-resolution decode that uses all scales;
  /// on by default. A coarse preview never applies it.
  void setBoundaryCnn(bool on) { cnnEnabled_ = on; }
  bool appliesCnn(int scales) const;

  /// The error-bounded correction (Residual.h), when the archive has one, is added to every decode that uses all
  /// scales with the CNN as the encoder used it (it was computed against that decode; with
  /// the CNN switched off or at a coarse scale the bound does not hold and the correction is skipped). On by default.
  void setResidual(bool on) { residualEnabled_ = on; }
  bool appliesResidual(int scales) const;

  /// Number of block evaluations done by the last decodeStep / decodeRegion (random-access tests, benchmarks).
  int64_t lastBlockEvaluations() const { return blockEvaluations_; }

private:
  int usedScales(int scales) const;
  const std::vector<float>& stepAt(int p, int64_t tp);
  Field assembleStep(int64_t t, int used);
  uint64_t stepPeakBytes(int used) const;
  /// Per scale, the box that must be exact to produce the requested region (empty: everything).
  std::vector<Extent> regions_;
  Field toDataUnits(Field f) const;
  /// Adds the correction of time step t to `values` (data units): the whole step, or the voxels of `box`.
  void applyResidual(int64_t t, float* values, const Extent* box = nullptr) const;
  Field upsampleToFull(Field f, int p) const;

  const Model& model_;
  std::map<std::pair<int, int64_t>, std::vector<float>> cache_;
  std::vector<std::vector<uint32_t>> codes_;  // blockCodes of each scale, on the first step assembled
  int64_t blockEvaluations_ = 0;
  bool cnnEnabled_ = true;
  bool residualEnabled_ = true;
};

}  // namespace ecnr
