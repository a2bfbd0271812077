// float32 <-> bfloat16 the way torch converts: bfloat16 is the top half of a
// float32, and rounding is to nearest even. Shared by the kernels that must keep
// torch's per-op roundings (a bf16 op computes in float32 and rounds its result),
// with the AVX-512 loads and exp they use.
#pragma once

#include <c10/util/BFloat16.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>

namespace pytgi {

inline float load(float value) { return value; }
inline float load(c10::BFloat16 value) { return __builtin_bit_cast(float, static_cast<uint32_t>(value.x) << 16); }

// `value` rounded to what an element of the destination type can hold (NaN stays NaN).
inline float round_to(float value, const c10::BFloat16*) {
  uint32_t bits = __builtin_bit_cast(uint32_t, value);
  if (std::isnan(value)) return value;
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return __builtin_bit_cast(float, bits & 0xFFFF0000u);
}
inline float round_to(float value, const float*) { return value; }

// Stores a value already rounded by round_to.
inline void store(float* out, float value) { *out = value; }
inline void store(c10::BFloat16* out, float value) {
  out->x = static_cast<uint16_t>(__builtin_bit_cast(uint32_t, value) >> 16);
}

#if defined(__AVX512F__)
// The first `left` of 16 lanes (all 16 when left >= 16).
inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1); }

// Up to 16 elements (`left` of them, the rest zero) as float32 lanes.
inline __m512 load16(const float* p, int64_t left) {
  return left >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(tail_mask(left), p);
}
inline __m512 load16(const c10::BFloat16* p, int64_t left) {
  const __m256i raw = left >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                                 : _mm256_maskz_loadu_epi16(tail_mask(left), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// e^x for x <= 0 (softmax inputs after the max is taken out), to ~2 ulp:
// x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-6 Taylor-like minimax
// polynomial (Cephes' expf coefficients), scaled by 2^n.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.f));  // e^-104 is 0 in float32 after scaling
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}
#endif

}  // namespace pytgi
