// Half: IEEE 754 binary16 conversion (round to nearest even), for weights and latents stored as float16.
#pragma once

#include <cstdint>

namespace ecnr {

uint16_t floatToHalf(float f);
float halfToFloat(uint16_t h);
/// Value a float takes after a round trip through float16.
inline float roundToHalf(float f) { return halfToFloat(floatToHalf(f)); }

}  // namespace ecnr
