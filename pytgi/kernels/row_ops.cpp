// Row-wise ops a layer runs between its matmuls, each one pass over memory.
//
// RMSNorm in one pass per row. torch runs it as a chain of elementwise kernels
// (cast, square, mean, add, rsqrt, scale, cast back, weight), each allocating its
// own output and, in bfloat16, converting every element in and out: 40-45 us for
// one row, where this takes 3. Rows are split across torch's threads; one row
// runs inline. The roundings are torch's: the normalized row is rounded to the
// input dtype before the weight multiplies it, as transformers' Llama RMSNorm does.
//
// SiLU-and-multiply of a fused gate-up projection: torch's silu then mul_ read
// and write the [rows, intermediate] halves twice; this reads each once. The
// roundings are torch's: silu(gate) rounded to the dtype, then its product.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "bf16.h"

namespace {

using pytgi::load;
using pytgi::round_to;
using pytgi::store;

// Rows per task: enough work per thread that a 1-row call runs inline.
constexpr int64_t kGrainElements = 16384;

inline int64_t grain_rows(int64_t width) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(width, 1)); }

template <typename T>
void rms_norm_rows(const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps) {
  at::parallel_for(0, rows, grain_rows(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * dim;
      float sum = 0.f;
      for (int64_t d = 0; d < dim; ++d) {
        const float v = load(row[d]);
        sum += v * v;
      }
      const float scale = 1.f / std::sqrt(sum / static_cast<float>(dim) + eps);
      T* dst = out + r * dim;
      for (int64_t d = 0; d < dim; ++d) {
        const float normed = round_to(load(row[d]) * scale, dst);
        store(dst + d, round_to(load(weight[d]) * normed, dst));
      }
    }
  });
}

#if defined(__AVX512F__)
// Lanes rounded to what the destination type holds, as round_to does one value.
inline __m512 round16(__m512 v, const float*) { return v; }
inline __m512 round16(__m512 v, const c10::BFloat16*) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_and_si512(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))),
                                           _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(_mm512_castsi512_ps(rounded), nan, v);
}

// Stores `left` (at most 16) lanes already rounded by round16.
inline void store16(float* p, __m512 v, int64_t left) {
  _mm512_mask_storeu_ps(p, pytgi::tail_mask(left), v);
}
inline void store16(c10::BFloat16* p, __m512 v, int64_t left) {
  const __m256i top = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16));
  _mm256_mask_storeu_epi16(p, pytgi::tail_mask(left), top);
}
#endif

// silu(gate) * up over one row's `width` channels: gate = row[0 .. width),
// up = row[width .. 2 width); out holds `width`.
template <typename T>
void silu_and_mul_row(const T* row, T* out, int64_t width) {
  int64_t d = 0;
#if defined(__AVX512F__)
  for (; d < width; d += 16) {
    const int64_t left = width - d;
    const __m512 gate = pytgi::load16(row + d, left), up = pytgi::load16(row + width + d, left);
    // silu(g) = g / (1 + e^-g), computed from e = e^-|g| so the exp never overflows.
    const __m512 e = pytgi::exp_nonpositive(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(gate)));
    const __mmask16 negative = _mm512_cmp_ps_mask(gate, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 numerator = _mm512_mask_mul_ps(gate, negative, gate, e);
    const __m512 silu = round16(_mm512_div_ps(numerator, _mm512_add_ps(_mm512_set1_ps(1.f), e)), out);
    store16(out + d, round16(_mm512_mul_ps(silu, up), out), left);
  }
#endif
  for (; d < width; ++d) {
    const float gate = load(row[d]);
    const float silu = round_to(gate / (1.f + std::exp(-gate)), out);
    store(out + d, round_to(silu * load(row[width + d]), out));
  }
}

void check_rows(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 2 && t.is_contiguous(), name, " must be a contiguous [rows, width] tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16,
              name, " must be float32 or bfloat16");
}

}  // namespace

// x [rows, dim], weight [dim] of x's dtype -> weight * (x / rms(x)), statistics in float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rows(x, "x");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(1) && weight.is_contiguous() &&
                  weight.scalar_type() == x.scalar_type(),
              "weight must be a contiguous [dim] tensor of x's dtype");
  auto out = torch::empty_like(x);
  if (x.scalar_type() == torch::kFloat) {
    rms_norm_rows(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1),
                  static_cast<float>(eps));
  } else {
    rms_norm_rows(x.data_ptr<c10::BFloat16>(), weight.data_ptr<c10::BFloat16>(), out.data_ptr<c10::BFloat16>(),
                  x.size(0), x.size(1), static_cast<float>(eps));
  }
  return out;
}

// gate_up [rows, 2 * width] (gate channels first) -> silu(gate) * up [rows, width].
at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  check_rows(gate_up, "gate_up");
  TORCH_CHECK(gate_up.size(1) % 2 == 0, "gate_up must have an even width (gate, then up)");
  const int64_t rows = gate_up.size(0), width = gate_up.size(1) / 2;
  auto out = torch::empty({rows, width}, gate_up.options());
  auto run = [&](auto* in, auto* dst) {
    at::parallel_for(0, rows, grain_rows(2 * width), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) silu_and_mul_row(in + r * 2 * width, dst + r * width, width);
    });
  };
  if (gate_up.scalar_type() == torch::kFloat) {
    run(gate_up.data_ptr<float>(), out.data_ptr<float>());
  } else {
    run(gate_up.data_ptr<c10::BFloat16>(), out.data_ptr<c10::BFloat16>());
  }
  return out;
}
