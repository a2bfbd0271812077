// Paged decode attention on the CPU: one query token per row attends over its
// request's cached keys/values, read in place from the paged cache through the
// block table. No gathered copy, no padding: work is proportional to each row's
// own context length. Scores, softmax and the weighted sum run in float32.
//
// With AVX-512, head sizes 64 and 128 and no soft-cap (the common case) take
// `attend_registers`: the queries of a few heads, then their output sums, stay
// in registers while the keys and values stream past, and the softmax's exp is
// vectorized. The generic loop handles the rest.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "bf16.h"

namespace {

// One cached row -> float32. bfloat16 is the top half of a float32, so the
// conversion is a shift the compiler vectorizes (c10's operator float is not).
template <typename T>
inline void load_row(const T* src, float* dst, int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(src[d]);
}

template <>
inline void load_row<c10::BFloat16>(const c10::BFloat16* src, float* dst, int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) dst[d] = pytgi::load(src[d]);
}

#if defined(__AVX512F__)
using pytgi::exp_nonpositive;
using pytgi::load16;
using pytgi::tail_mask;

// scores[0 .. span) <- softmax(scores), in place.
inline void softmax_in_place(float* scores, int64_t span) {
  __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < span; i += 16)
    top = _mm512_max_ps(top, _mm512_mask_loadu_ps(top, tail_mask(span - i), scores + i));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 total = _mm512_setzero_ps();
  for (int64_t i = 0; i < span; i += 16) {
    const __mmask16 k = tail_mask(span - i);
    const __m512 e = _mm512_maskz_mov_ps(k, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, scores + i), m)));
    _mm512_mask_storeu_ps(scores + i, k, e);
    total = _mm512_add_ps(total, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(total));
  for (int64_t i = 0; i < span; i += 16) {
    const __mmask16 k = tail_mask(span - i);
    _mm512_mask_storeu_ps(scores + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, scores + i), inv));
  }
}

// Calls visit(p, offset of position p's row in the cache) for p = first .. len - 1,
// one block at a time: no division per position.
template <typename Visit>
inline void for_each_position(const int64_t* table, int64_t block_size, int64_t token_stride, int64_t first,
                              int64_t len, Visit&& visit) {
  int64_t p = first;
  while (p < len) {
    const int64_t block = p / block_size, in_block = p % block_size;
    const int64_t count = std::min(block_size - in_block, len - p);
    const int64_t base = (table[block] * block_size + in_block) * token_stride;
    for (int64_t i = 0; i < count; ++i) visit(p + i, base + i * token_stride);
    p += count;
  }
}

// One row's query heads q [group, kDim] (one KV head's group) over positions
// first .. len - 1, into out [group, kDim]. kChunk heads at a time: a head's
// scaled query (kDim / 16 registers) while its scores are computed, then the
// chunk's output sums (kChunk * kDim / 16 registers) while the values stream
// past. `scores` holds group * span floats.
template <typename T, int64_t kDim>
void attend_registers(const T* q, const T* kc, const T* vc, const int64_t* table, int64_t block_size,
                      int64_t token_stride, int64_t h, int64_t first, int64_t len, int64_t group, float scale,
                      float* scores, T* out) {
  constexpr int64_t kVectors = kDim / 16;
  constexpr int64_t kChunk = 16 / kVectors;
  const int64_t span = len - first;
  const T* keys = kc + h * kDim;
  const T* values = vc + h * kDim;
  for (int64_t g0 = 0; g0 < group; g0 += kChunk) {
    const int64_t heads = std::min(kChunk, group - g0);
    for (int64_t g = 0; g < heads; ++g) {
      __m512 qv[kVectors];
      for (int64_t v = 0; v < kVectors; ++v)
        qv[v] = _mm512_mul_ps(load16(q + (g0 + g) * kDim + v * 16, 16), _mm512_set1_ps(scale));
      float* sg = scores + g * span - first;
      for_each_position(table, block_size, token_stride, first, len, [&](int64_t p, int64_t at) {
        const T* kp = keys + at;
        __m512 dot = _mm512_mul_ps(qv[0], load16(kp, 16));
        for (int64_t v = 1; v < kVectors; ++v) dot = _mm512_fmadd_ps(qv[v], load16(kp + v * 16, 16), dot);
        sg[p] = _mm512_reduce_add_ps(dot);
      });
      softmax_in_place(sg + first, span);
    }
    __m512 acc[kChunk][kVectors];
    for (int64_t g = 0; g < kChunk; ++g)
      for (int64_t v = 0; v < kVectors; ++v) acc[g][v] = _mm512_setzero_ps();
    for_each_position(table, block_size, token_stride, first, len, [&](int64_t p, int64_t at) {
      const T* vp = values + at;
      __m512 row[kVectors];
      for (int64_t v = 0; v < kVectors; ++v) row[v] = load16(vp + v * 16, 16);
      for (int64_t g = 0; g < kChunk; ++g) {
        if (g >= heads) break;
        const __m512 w = _mm512_set1_ps(scores[g * span + (p - first)]);
        for (int64_t v = 0; v < kVectors; ++v) acc[g][v] = _mm512_fmadd_ps(w, row[v], acc[g][v]);
      }
    });
    for (int64_t g = 0; g < heads; ++g) {
      T* o = out + (g0 + g) * kDim;
      alignas(64) float sums[kDim];
      for (int64_t v = 0; v < kVectors; ++v) _mm512_store_ps(sums + v * 16, acc[g][v]);
      for (int64_t d = 0; d < kDim; ++d) o[d] = static_cast<T>(sums[d]);
    }
  }
}
#endif

template <typename T, int64_t kDim>
void decode_rows(const at::Tensor& query,         // [rows, heads, dim]
                 const at::Tensor& key_cache,     // [blocks, block_size, kv_heads, dim]
                 const at::Tensor& value_cache,   // same
                 const at::Tensor& block_tables,  // [rows, max_blocks] int64
                 const at::Tensor& context_lens,  // [rows] int64
                 at::Tensor& out,                 // [rows, heads, dim]
                 double scale, int64_t window, double softcap) {
  const int64_t rows = query.size(0), heads = query.size(1);
  const int64_t dim = kDim > 0 ? kDim : query.size(2);
  const int64_t block_size = key_cache.size(1), kv_heads = key_cache.size(2);
  const int64_t group = heads / kv_heads, max_blocks = block_tables.size(1);
  const T* q = query.data_ptr<T>();
  const T* kc = key_cache.data_ptr<T>();
  const T* vc = value_cache.data_ptr<T>();
  const int64_t* tables = block_tables.data_ptr<int64_t>();
  const int64_t* lens = context_lens.data_ptr<int64_t>();
  T* o = out.data_ptr<T>();
  const int64_t token_stride = kv_heads * dim;  // between rows of a block
  const float fscale = static_cast<float>(scale), cap = static_cast<float>(softcap);

  at::parallel_for(0, rows * kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(group * dim), acc(group * dim), row(dim), scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / kv_heads, h = item % kv_heads;
      const int64_t len = lens[r];
      const int64_t first = window > 0 ? std::max<int64_t>(0, len - window) : 0;
      const int64_t span = len - first;
      if (span <= 0) {
        for (int64_t j = 0; j < group * dim; ++j) o[(r * heads + h * group) * dim + j] = T(0);
        continue;
      }
      scores.assign(group * span, 0.f);
#if defined(__AVX512F__)
      if constexpr ((kDim == 64 || kDim == 128) && (std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>)) {
        if (cap == 0.f) {
          attend_registers<T, kDim>(q + (r * heads + h * group) * dim, kc, vc, tables + r * max_blocks, block_size,
                                    token_stride, h, first, len, group, fscale, scores.data(),
                                    o + (r * heads + h * group) * dim);
          continue;
        }
      }
#endif
      for (int64_t j = 0; j < group * dim; ++j)
        qf[j] = static_cast<float>(q[(r * heads + h * group) * dim + j]) * fscale;
      const int64_t* table = tables + r * max_blocks;
      for (int64_t p = first; p < len; ++p) {
        const T* kp = kc + ((table[p / block_size] * block_size + p % block_size) * token_stride + h * dim);
        load_row(kp, row.data(), dim);
        for (int64_t g = 0; g < group; ++g) {
          const float* qg = qf.data() + g * dim;
          float s = 0.f;
          for (int64_t d = 0; d < dim; ++d) s += qg[d] * row[d];
          if (cap > 0.f) s = cap * std::tanh(s / cap);
          scores[g * span + (p - first)] = s;
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        float* sg = scores.data() + g * span;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < span; ++i) m = std::max(m, sg[i]);
        float total = 0.f;
        for (int64_t i = 0; i < span; ++i) {
          sg[i] = std::exp(sg[i] - m);
          total += sg[i];
        }
        const float inv = 1.f / total;
        for (int64_t i = 0; i < span; ++i) sg[i] *= inv;
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t p = first; p < len; ++p) {
        const T* vp = vc + ((table[p / block_size] * block_size + p % block_size) * token_stride + h * dim);
        load_row(vp, row.data(), dim);
        for (int64_t g = 0; g < group; ++g) {
          const float w = scores[g * span + (p - first)];
          float* ag = acc.data() + g * dim;
          for (int64_t d = 0; d < dim; ++d) ag[d] += w * row[d];
        }
      }
      for (int64_t j = 0; j < group * dim; ++j) o[(r * heads + h * group) * dim + j] = static_cast<T>(acc[j]);
    }
  });
}

}  // namespace

at::Tensor paged_decode_attention(const at::Tensor& query, const at::Tensor& key_cache,
                                  const at::Tensor& value_cache, const at::Tensor& block_tables,
                                  const at::Tensor& context_lens, double scale, int64_t window,
                                  double softcap) {
  TORCH_CHECK(query.is_contiguous() && key_cache.is_contiguous() && value_cache.is_contiguous(),
              "paged_decode_attention: tensors must be contiguous");
  TORCH_CHECK(block_tables.scalar_type() == at::kLong && context_lens.scalar_type() == at::kLong,
              "paged_decode_attention: block tables and lengths must be int64");
  auto tables = block_tables.contiguous();
  auto lens = context_lens.contiguous();
  auto out = at::empty_like(query);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, query.scalar_type(), "paged_decode_attention", [&] {
    switch (query.size(2)) {
      case 64: decode_rows<scalar_t, 64>(query, key_cache, value_cache, tables, lens, out, scale, window, softcap); break;
      case 128: decode_rows<scalar_t, 128>(query, key_cache, value_cache, tables, lens, out, scale, window, softcap); break;
      default: decode_rows<scalar_t, 0>(query, key_cache, value_cache, tables, lens, out, scale, window, softcap);
    }
  });
  return out;
}

at::Tensor small_batch_linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor silu_and_mul(const at::Tensor& gate_up);
void register_layer_stack(pybind11::module& m);
bool prefill_attention_available();
at::Tensor prefill_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                             const at::Tensor& table, int64_t start, double scale);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("paged_decode_attention", &paged_decode_attention);
  m.def("small_batch_linear", &small_batch_linear);
  m.def("rms_norm", &rms_norm);
  m.def("silu_and_mul", &silu_and_mul);
  m.def("prefill_attention_available", &prefill_attention_available);
  m.def("prefill_attention", &prefill_attention);
  register_layer_stack(m);
}
