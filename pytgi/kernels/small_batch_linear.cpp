// y = x W^T (+ b) for a few rows of x on the CPU. Decode at batch 1 is a
// matrix-vector product bound by how fast the weights stream from memory;
// torch's bf16 and fp32 GEMV paths reach a third to a half of this machine's
// bandwidth. Here each thread streams its own slice of W's rows once and
// reuses every row, converted to float32 in registers, for all rows of x.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bf16.h"

namespace {

// float32 and bfloat16 -> float32 (bfloat16: a shift the compiler vectorizes).
using pytgi::load;

// Four rows of W at a time: four independent accumulator chains per row of x.
constexpr int64_t kBlock = 4;

#if defined(__AVX512F__)
using pytgi::load16;

template <typename T>
inline void dot_block(const T* w, const float* x, int64_t in, float* out) {
  __m512 acc[kBlock];
  for (int64_t r = 0; r < kBlock; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t d = 0; d < in; d += 16) {
    const __m512 xv = load16(x + d, in - d);
    for (int64_t r = 0; r < kBlock; ++r) acc[r] = _mm512_fmadd_ps(load16(w + r * in + d, in - d), xv, acc[r]);
  }
  for (int64_t r = 0; r < kBlock; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}
#endif

#if defined(__AVX512BF16__)
inline __m512i load32(const c10::BFloat16* p, int64_t left) {
  return left >= 32 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16((__mmask32)((1ull << left) - 1), p);
}

// bfloat16 rows against a bfloat16 x: the CPU's bf16 dot product instruction
// multiplies 32 pairs and accumulates in float32, with no conversion step.
inline void dot_block_bf16(const c10::BFloat16* w, const c10::BFloat16* x, int64_t in, float* out) {
  __m512 acc[kBlock];
  for (int64_t r = 0; r < kBlock; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t d = 0; d < in; d += 32) {
    const __m512bh xv = (__m512bh)load32(x + d, in - d);
    for (int64_t r = 0; r < kBlock; ++r) acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)load32(w + r * in + d, in - d), xv);
  }
  for (int64_t r = 0; r < kBlock; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}
#endif

#if !defined(__AVX512F__)
template <typename T>
inline void dot_block(const T* w, const float* x, int64_t in, float* out) {
  for (int64_t r = 0; r < kBlock; ++r) {
    float s = 0.f;
    for (int64_t d = 0; d < in; ++d) s += load(w[r * in + d]) * x[d];
    out[r] = s;
  }
}
#endif

#if defined(__AVX512BF16__)
inline void dot_block(const c10::BFloat16* w, const c10::BFloat16* x, int64_t in, float* out) {
  dot_block_bf16(w, x, in, out);
}
#endif

// X: the element type of x as the dot product reads it (bfloat16 where the CPU
// multiplies bf16 pairs natively, float32 otherwise).
template <typename T, typename X>
void linear_rows(int64_t rows, const X* x, const T* w, const T* bias, T* y, int64_t in, int64_t out) {
  const int64_t blocks = out / kBlock;
  // Each thread streams a contiguous slice of W once (grain: 16 blocks = 64 rows).
  at::parallel_for(0, blocks + 1, 16, [&](int64_t begin, int64_t end) {
    float part[kBlock];
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t first = blk * kBlock;
      const int64_t count = std::min<int64_t>(kBlock, out - first);
      if (count <= 0) continue;
      for (int64_t m = 0; m < rows; ++m) {
        if (count == kBlock) {
          dot_block(w + first * in, x + m * in, in, part);
        } else {  // the last, partial block
          for (int64_t r = 0; r < count; ++r) {
            float s = 0.f;
            for (int64_t d = 0; d < in; ++d) s += load(w[(first + r) * in + d]) * load(x[m * in + d]);
            part[r] = s;
          }
        }
        for (int64_t r = 0; r < count; ++r) {
          const float b = bias != nullptr ? load(bias[first + r]) : 0.f;
          y[m * out + first + r] = static_cast<T>(part[r] + b);
        }
      }
    }
  });
}

}  // namespace

at::Tensor small_batch_linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "small_batch_linear: x [rows, in] and weight [out, in]");
  TORCH_CHECK(weight.is_contiguous(), "small_batch_linear: weight must be contiguous");
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "small_batch_linear: x and weight dtypes differ");
  const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
  TORCH_CHECK(rows <= 8, "small_batch_linear: at most 8 rows, got ", rows);
  auto y = at::empty({rows, out}, x.options());
  at::Tensor b;
  if (bias.has_value() && bias->defined()) b = bias->contiguous();
  if (x.scalar_type() == at::kFloat) {
    auto xc = x.contiguous();
    linear_rows<float, float>(rows, xc.data_ptr<float>(), weight.data_ptr<float>(),
                              b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), in, out);
  } else if (x.scalar_type() == at::kBFloat16) {
    using bf16 = c10::BFloat16;
    const bf16* bp = b.defined() ? b.data_ptr<bf16>() : nullptr;
#if defined(__AVX512BF16__)
    auto xc = x.contiguous();
    linear_rows<bf16, bf16>(rows, xc.data_ptr<bf16>(), weight.data_ptr<bf16>(), bp, y.data_ptr<bf16>(), in, out);
#else
    auto xf = x.to(at::kFloat).contiguous();
    linear_rows<bf16, float>(rows, xf.data_ptr<float>(), weight.data_ptr<bf16>(), bp, y.data_ptr<bf16>(), in, out);
#endif
  } else {
    TORCH_CHECK(false, "small_batch_linear: float32 or bfloat16 only, got ", x.scalar_type());
  }
  return y;
}
