// float32 <-> bfloat16 the way torch converts: bfloat16 is the top half of a
// float32, and rounding is to nearest even. Shared by the kernels that must keep
// torch's per-op roundings (a bf16 op computes in float32 and rounds its result).
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
// Up to 16 elements (`left` of them, the rest zero) as float32 lanes.
inline __m512 load16(const float* p, int64_t left) {
  return left >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1), p);
}
inline __m512 load16(const c10::BFloat16* p, int64_t left) {
  const __m256i raw = left >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                                 : _mm256_maskz_loadu_epi16((__mmask16)((1u << left) - 1), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
#endif

}  // namespace pytgi
