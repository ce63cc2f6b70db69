// Field: the 4D scalar field (x fastest, then y, z, t) that ECNR compresses, and the grid
// metadata (spacing, origin, time values) that the ParaView side needs back after decoding.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ecnr {

/// Thrown for every user-facing failure (bad input, corrupt archive, I/O). The message names the cause.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Extent of a 4D grid. All counts are >= 1; a static volume has t = 1, a 2D image z = 1.
struct Dims4 {
  int64_t x = 1, y = 1, z = 1, t = 1;

  int64_t operator[](int axis) const { return axis == 0 ? x : axis == 1 ? y : axis == 2 ? z : t; }
  int64_t& operator[](int axis) { return axis == 0 ? x : axis == 1 ? y : axis == 2 ? z : t; }
  int64_t voxelsPerStep() const { return x * y * z; }
  int64_t count() const { return x * y * z * t; }
  bool operator==(const Dims4& o) const { return x == o.x && y == o.y && z == o.z && t == o.t; }
  bool operator!=(const Dims4& o) const { return !(*this == o); }
  std::string str() const;
};

/// A dense float32 4D field. values.size() == dims.count(); index = x + X*(y + Y*(z + Z*t)).
struct Field {
  Dims4 dims;
  std::vector<float> values;

  Field() = default;
  explicit Field(const Dims4& d, float fill = 0.0f);

  int64_t index(int64_t x, int64_t y, int64_t z, int64_t t) const {
    return x + dims.x * (y + dims.y * (z + dims.z * t));
  }
  float& at(int64_t x, int64_t y, int64_t z, int64_t t) { return values[size_t(index(x, y, z, t))]; }
  float at(int64_t x, int64_t y, int64_t z, int64_t t) const { return values[size_t(index(x, y, z, t))]; }
  /// Pointer to the first voxel of time step t.
  float* step(int64_t t) { return values.data() + t * dims.voxelsPerStep(); }
  const float* step(int64_t t) const { return values.data() + t * dims.voxelsPerStep(); }
};

/// Where the grid sits in space and time; carried through the archive untouched.
struct GridMeta {
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::vector<double> times;  ///< one value per time step (empty means 0, 1, 2, ...)
  std::string arrayName = "scalars";
};

/// Checks dims are positive and that the product cannot overflow 64-bit indexing.
void validateDims(const Dims4& d);

/// Refuses NaN/Inf with an error naming the first bad voxel.
void checkFinite(const Field& f);

}  // namespace ecnr
