#include "ecnr/Half.h"

#include <cstring>

namespace ecnr {
namespace {

uint32_t floatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

float bitsToFloat(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// Drops the low `shift` bits of `value`, rounding to nearest with ties to even. A carry out of the
// mantissa lands in the exponent field, which is exactly the next representable half.
uint32_t shiftRoundEven(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  return (rest > halfway || (rest == halfway && (kept & 1u))) ? kept + 1u : kept;
}

}  // namespace

uint16_t floatToHalf(float f) {
  const uint32_t bits = floatBits(f);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;

  if (magnitude >= 0x7F800000u) {  // inf or NaN
    if (magnitude == 0x7F800000u) return sign | 0x7C00u;
    // Keep the top payload bits and force the quiet bit so a NaN never turns into inf.
    return uint16_t(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  // 65520 = 65504 + half an ulp: from here on, round-to-nearest gives inf.
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;

  const int exponent = int(magnitude >> 23);  // biased by 127
  if (exponent >= 113) {                      // >= 2^-14: a normal half; rebias 127 -> 15
    return uint16_t(sign | shiftRoundEven(magnitude - (112u << 23), 13));
  }
  // Below 2^-25 everything rounds to zero (2^-25 itself is a tie and goes to the even zero).
  if (exponent < 102) return sign;
  // Subnormal half: count units of 2^-24. The float is m * 2^(exponent - 150) with the implicit bit in m.
  const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
  return uint16_t(sign | shiftRoundEven(mantissa, 126 - exponent));
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;

  if (exponent == 0x1Fu) return bitsToFloat(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  if (exponent != 0) return bitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return bitsToFloat(sign);  // signed zero
  // Subnormal half: normalize it, since every half subnormal is a normal float.
  int shift = 0;
  while (!(mantissa & 0x400u)) {
    mantissa <<= 1;
    ++shift;
  }
  return bitsToFloat(sign | (uint32_t(113 - shift) << 23) | ((mantissa & 0x3FFu) << 13));
}

}  // namespace ecnr
