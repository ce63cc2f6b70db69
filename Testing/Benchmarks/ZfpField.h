// ZfpField: a Field seen by ZFP as one array with its singleton axes dropped (a z = 1 series is x, y, t), so ZFP's
// 4^d blocks are never padded along an axis of length 1. Shared by ecnr_bench_rd and ecnr_bench_modes.
#pragma once

#include <zfp.h>

#include <vector>

#include "ecnr/Field.h"

namespace ecnr {
namespace bench {

inline std::vector<size_t> zfpDims(const Dims4& d) {
  std::vector<size_t> dims;
  for (int a = 0; a < 4; ++a)
    if (d[a] > 1) dims.push_back(size_t(d[a]));
  if (dims.empty()) dims.push_back(1);
  return dims;
}

inline zfp_field* zfpField(float* values, const std::vector<size_t>& n) {
  switch (n.size()) {
    case 1: return zfp_field_1d(values, zfp_type_float, n[0]);
    case 2: return zfp_field_2d(values, zfp_type_float, n[0], n[1]);
    case 3: return zfp_field_3d(values, zfp_type_float, n[0], n[1], n[2]);
    default: return zfp_field_4d(values, zfp_type_float, n[0], n[1], n[2], n[3]);
  }
}

}  // namespace bench
}  // namespace ecnr
