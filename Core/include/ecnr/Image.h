// Image: a PNG picture of one z-slice of one time step: original | decoded | |error|, side by side, for a
// quick look at what compression did. Uses libpng.
#pragma once

#include <string>

#include "ecnr/Field.h"

namespace ecnr {

/// Pixel geometry of the comparison picture: each panel is the x-y slice upscaled by an integer `scale`
/// (nearest neighbour) so the smaller side reaches ~256 px (a panel's larger side stays <= 4096 px unless scale is 1);
/// the three panels are separated by 4 px of grey. y = 0 is the bottom row, as in ParaView.
struct ComparisonPngLayout {
  int64_t scale = 1, width = 0, height = 0;
};
ComparisonPngLayout comparisonPngLayout(const Dims4& dims);

/// Grey levels map [min, max] of the original; the error panel maps [0, max |error|] with a heat ramp.
/// z < 0 means the middle slice. Writes atomically.
void writeComparisonPng(const Field& original, const Field& decoded, int64_t t, int64_t z, const std::string& path);

}  // namespace ecnr
