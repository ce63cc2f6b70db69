// SirenSimd: the vector type and the sine that the fused SIREN kernels are written against. Included by one
// translation unit per instruction set (SirenIsaAvx512.cpp, SirenIsaAvx2.cpp, SirenIsaGeneric.cpp), each compiled
// with its own -m flags; ECNR_KERNEL_ISA names the namespace so the three copies never merge at link time.
//
// The sine works on u = x / pi (the kernels fold omega0 / pi into the weights): k = nearest integer of u,
// f = u - k is exact in float, and sin(pi u) = (-1)^k sin(pi f) with f in [-1/2, 1/2]. The reduction costs three
// additions and no multiply; sin(pi f) is an odd minimax polynomial (coefficients fitted by a Remez exchange):
//   degree 7: |error| < 6e-7 (decoder), degree 9: < 1.3e-8 (training), cos(pi f) even degree 8: < 5e-8.
// On top comes the rounding of u itself (half an ulp of |x| / pi), the same order as the rounding of x.
#pragma once

#ifndef ECNR_KERNEL_ISA
#error "define ECNR_KERNEL_ISA (the namespace of this instruction set) before including SirenSimd.h"
#endif

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace ecnr {
namespace kernels {
namespace ECNR_KERNEL_ISA {

// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to the nearest integer, whose parity is the low bit.
constexpr float kRoundMagic = 12582912.0f;
// sin(pi f) ~ f (s1 + f^2 (s3 + f^2 (s5 + f^2 s7))) on [-1/2, 1/2]
constexpr float kS7[4] = {3.141582022e+00f, -5.167142796e+00f, 2.541899028e+00f, -5.546361975e-01f};
constexpr float kS9[5] = {3.141592651e+00f, -5.167711483e+00f, 2.550102054e+00f, -5.984234994e-01f,
                          7.787740581e-02f};
// cos(pi f) ~ c0 + f^2 (c2 + ...) on [-1/2, 1/2]
constexpr float kC8[5] = {9.999999535e-01f, -4.934792859e+00f, 4.058411914e+00f, -1.331880161e+00f,
                          2.196967987e-01f};

#if defined(__AVX512F__)

struct Vec {
  using R = __m512;
  static constexpr int W = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(R v) { return _mm512_reduce_add_ps(v); }
  /// out[p] = hsum(a[p]) for p < 16, by a transposing tree of shuffles and adds (about 3 instructions a sum).
  static void hsum16(const R* a, float* out) {
    R v[16], s[8], u[4], w[2];
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 4; ++k) v[4 * c + k] = a[4 * k + c];  // the tree leaves sum p in lane 4 (p % 4) + p / 4
    for (int p = 0; p < 8; ++p)
      s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                           _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
    for (int r = 0; r < 4; ++r)
      u[r] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * r], s[2 * r + 1], 0x88),
                           _mm512_shuffle_f32x4(s[2 * r], s[2 * r + 1], 0xDD));
    for (int t = 0; t < 2; ++t) {
      const __m512d a0 = _mm512_castps_pd(u[2 * t]), a1 = _mm512_castps_pd(u[2 * t + 1]);
      w[t] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a0, a1)), _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a1)));
    }
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD)));
  }
  /// Sign bit set where the rounded integer (t = u + magic) is odd.
  static R oddSign(R t) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 31)); }
  static R flip(R v, R sign) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_castps_si512(sign)));
  }
};

#elif defined(__AVX2__) && defined(__FMA__)

struct Vec {
  using R = __m256;
  static constexpr int W = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(float v) { return _mm256_set1_ps(v); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(R v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static R oddSign(R t) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 31)); }
  static R flip(R v, R sign) { return _mm256_xor_ps(v, sign); }
};

#else

// Portable fallback: 4 floats with GCC/Clang vector extensions (SSE2 on any x86-64, NEON on ARM, plain code elsewhere).
typedef float VecF4 __attribute__((vector_size(16)));
typedef int32_t VecI4 __attribute__((vector_size(16)));

struct Vec {
  using R = VecF4;
  static constexpr int W = 4;
  static R zero() { return R{0.0f, 0.0f, 0.0f, 0.0f}; }
  static R set1(float v) { return R{v, v, v, v}; }
  static R load(const float* p) {
    R v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(float* p, R v) { std::memcpy(p, &v, sizeof(v)); }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static float hsum(R v) { return (v[0] + v[1]) + (v[2] + v[3]); }
  static R oddSign(R t) { return (R)((VecI4)t << 31); }
  static R flip(R v, R sign) { return (R)((VecI4)v ^ (VecI4)sign); }
};

#endif

using R = Vec::R;

/// Splits u into f in [-1/2, 1/2] and the sign (-1)^round(u).
inline void reducePi(R u, R& f, R& sign) {
  const R magic = Vec::set1(kRoundMagic);
  const R t = Vec::add(u, magic);
  f = Vec::sub(u, Vec::sub(t, magic));
  sign = Vec::oddSign(t);
}

/// sin(pi u), degree-7 polynomial (|error| < 6e-7 + rounding of u): the decoder's sine.
inline R sinPiFast(R u) {
  R f, sign;
  reducePi(u, f, sign);
  f = Vec::flip(f, sign);
  const R f2 = Vec::mul(f, f);
  R p = Vec::fma(Vec::set1(kS7[3]), f2, Vec::set1(kS7[2]));
  p = Vec::fma(p, f2, Vec::set1(kS7[1]));
  p = Vec::fma(p, f2, Vec::set1(kS7[0]));
  return Vec::mul(p, f);
}

/// sin(pi u) and cos(pi u) with one reduction (|error| < 5e-8 + rounding of u): the trainer's activation.
inline void sinCosPi(R u, R& s, R& c) {
  R f, sign;
  reducePi(u, f, sign);
  const R f2 = Vec::mul(f, f);
  R p = Vec::fma(Vec::set1(kS9[4]), f2, Vec::set1(kS9[3]));
  p = Vec::fma(p, f2, Vec::set1(kS9[2]));
  p = Vec::fma(p, f2, Vec::set1(kS9[1]));
  p = Vec::fma(p, f2, Vec::set1(kS9[0]));
  R q = Vec::fma(Vec::set1(kC8[4]), f2, Vec::set1(kC8[3]));
  q = Vec::fma(q, f2, Vec::set1(kC8[2]));
  q = Vec::fma(q, f2, Vec::set1(kC8[1]));
  q = Vec::fma(q, f2, Vec::set1(kC8[0]));
  s = Vec::flip(Vec::mul(p, f), sign);
  c = Vec::flip(q, sign);
}

}  // namespace ECNR_KERNEL_ISA
}  // namespace kernels
}  // namespace ecnr
