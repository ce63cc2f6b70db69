// Series: an array's time series stored as consecutive windows (beyond the paper; the paper names the lack of
// per-timestep independence as a limitation). Each window is an independent Model (its own pyramid, networks and
// correction) holding steps [firstStep, firstStep + t) of the series, so a long series is encoded window by window
// in bounded memory, a window can be appended to an archive without touching the others, and decoding a time
// step evaluates only its window. An archive lists its parts (Archive.h: one Model per array and window).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ecnr/Model.h"

namespace ecnr {

/// The windows of one array, by firstStep; they tile [0, steps()) without gap or overlap.
struct SeriesView {
  std::string name;
  std::vector<const Model*> windows;

  int64_t steps() const;
  /// Spatial dims of the windows, t = steps().
  Dims4 dims() const;
  /// Every window's time values, concatenated (0, 1, 2, ... for windows that store none).
  std::vector<double> times() const;
  /// The window holding series step t, and t's index in it. Error when t is outside the series.
  std::pair<const Model*, int64_t> locate(int64_t t) const;
};

/// Groups an archive's parts by array name, in order of first appearance. Error when the windows of an array
/// overlap, leave a gap, or disagree on the spatial grid, or when arrays differ in the grid or step count.
std::vector<SeriesView> seriesOf(const std::vector<Model>& parts);

/// The series of the array named `name` (empty: the only array). Error naming the arrays when it is not found.
SeriesView seriesNamed(const std::vector<Model>& parts, const std::string& name);

/// One window of `field`: steps [first, first + count) with their time values (empty times stay empty).
std::pair<Field, GridMeta> sliceWindow(const Field& field, const GridMeta& meta, int64_t first, int64_t count);

}  // namespace ecnr
