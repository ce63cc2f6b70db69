#include "ecnr/Field.h"

#include "ecnr/FieldSource.h"

#include <cmath>
#include <limits>
#include <sstream>

namespace ecnr {

std::string Dims4::str() const {
  std::ostringstream s;
  s << x << " x " << y << " x " << z << " x " << t;
  return s.str();
}

Field::Field(const Dims4& d, float fill) : dims(d) {
  validateDims(d);
  values.assign(size_t(d.count()), fill);
}

void validateDims(const Dims4& d) {
  const int64_t limit = std::numeric_limits<int64_t>::max();
  int64_t product = 1;
  for (int a = 0; a < 4; ++a) {
    if (d[a] < 1) throw Error("invalid dims " + d.str() + ": every axis must be >= 1");
    if (product > limit / d[a]) throw Error("invalid dims " + d.str() + ": voxel count overflows 64 bits");
    product *= d[a];
  }
  // 4 bytes per voxel must also be addressable.
  if (product > limit / 4) throw Error("invalid dims " + d.str() + ": byte size overflows 64 bits");
}

void checkFinite(const Field& f) { finiteRange(MemorySource(f)); }

}  // namespace ecnr
