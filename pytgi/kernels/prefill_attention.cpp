// Prefill attention on the CPU for bfloat16: a prompt chunk's queries at
// positions start .. start + len - 1 attend causally over their request's keys
// 0 .. start + len - 1, read from the paged cache through its block table.
//
// torch's flash attention runs at ~95 GFLOP/s here for a chunk of 128 queries
// over 640 keys, a quarter of the machine's bf16 GEMM rate (docs/profile.md,
// seventh and ninth passes); on top, the stack gathered the context out of the
// cache and built an additive mask for it. This kernel multiplies with the
// AVX512-BF16 dot-product instruction (pairs of bf16 products summed into float32
// lanes), so both products take their right-hand side in pairs: each KV head's
// keys are first packed as [dim / 2][32 keys] pairs of channels, its values as
// [keys / 2][dim] pairs of keys. A task is one head's block of 32 queries; it
// walks the keys those queries see in steps of 128 with an online softmax (a
// running max and sum per query, the output sums rescaled when the max grows),
// and skips the keys past the block's last position, so a fresh prompt costs
// half its square. The roundings are flash attention's: scores and sums in
// float32, the softmax weights rounded to bf16 for the second product, the
// output rounded once at the end.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "bf16.h"

namespace {

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
constexpr bool kAvailable = true;

constexpr int64_t kKeys = 32;          // keys per packed block: two 16-lane vectors of scores
constexpr int64_t kStep = 128;         // keys per softmax step
constexpr int64_t kQueries = 32;       // queries per task
constexpr int64_t kScoreRows = 8;      // queries per score tile (16 accumulators)
constexpr int64_t kOutputRows = 4;     // queries per output tile of 64 channels (16 accumulators)

inline __m512bh as_pairs(__m512i v) { return (__m512bh)v; }

// The paged cache row of position `p` for KV head `h`.
inline const uint16_t* cache_row(const uint16_t* cache, const int64_t* table, int64_t block_size, int64_t token_stride,
                                 int64_t h, int64_t dim, int64_t p) {
  return cache + (table[p / block_size] * block_size + p % block_size) * token_stride + h * dim;
}

// Keys of positions block * 32 .. + 31 (zero past `context`) as [dim / 2][32]
// pairs of channels: a query's channel pair, broadcast, then meets 16 keys (one
// per lane) in one instruction.
void pack_keys(const uint16_t* cache, const int64_t* table, int64_t block_size, int64_t token_stride, int64_t h,
               int64_t dim, int64_t block, int64_t context, uint32_t* out) {
  const int64_t pairs = dim / 2;
  for (int64_t j = 0; j < kKeys; ++j) {
    const int64_t p = block * kKeys + j;
    if (p >= context) {
      for (int64_t c = 0; c < pairs; ++c) out[c * kKeys + j] = 0;
      continue;
    }
    const uint16_t* row = cache_row(cache, table, block_size, token_stride, h, dim, p);
    for (int64_t c = 0; c < pairs; ++c) std::memcpy(out + c * kKeys + j, row + 2 * c, sizeof(uint32_t));
  }
}

// permutex2var indices that interleave two rows of 32 channels: lane 2d takes
// the first row's channel d, lane 2d + 1 the second's (`low` for channels 0-15,
// `high` for 16-31).
struct InterleaveIndex {
  alignas(64) uint16_t low[32];
  alignas(64) uint16_t high[32];
};
constexpr InterleaveIndex make_interleave_index() {
  InterleaveIndex index{};
  for (uint16_t d = 0; d < 16; ++d) {
    index.low[2 * d] = d, index.low[2 * d + 1] = 32 + d;
    index.high[2 * d] = 16 + d, index.high[2 * d + 1] = 48 + d;
  }
  return index;
}
constexpr InterleaveIndex kInterleave = make_interleave_index();

// Values of the same positions as [16][dim] pairs of keys (2i, 2i + 1).
void pack_values(const uint16_t* cache, const int64_t* table, int64_t block_size, int64_t token_stride, int64_t h,
                 int64_t dim, int64_t block, int64_t context, uint32_t* out) {
  const __m512i index_low = _mm512_load_si512(kInterleave.low), index_high = _mm512_load_si512(kInterleave.high);
  for (int64_t i = 0; i < kKeys / 2; ++i, out += dim) {
    const int64_t p = block * kKeys + 2 * i;
    const uint16_t* first = p < context ? cache_row(cache, table, block_size, token_stride, h, dim, p) : nullptr;
    const uint16_t* second = p + 1 < context ? cache_row(cache, table, block_size, token_stride, h, dim, p + 1) : nullptr;
    for (int64_t d = 0; d < dim; d += 32) {
      const __m512i a = first ? _mm512_loadu_si512(first + d) : _mm512_setzero_si512();
      const __m512i b = second ? _mm512_loadu_si512(second + d) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + d, _mm512_permutex2var_epi16(a, index_low, b));
      _mm512_storeu_si512(out + d + 16, _mm512_permutex2var_epi16(a, index_high, b));
    }
  }
}

// scores[r][0 .. 32) = q_r . k for kScoreRows queries (rows of `queries`, dim
// channels as dim / 2 pairs) against one packed key block.
template <int64_t kDim>
inline void score_tile(const uint32_t* queries, const uint32_t* keys, float* scores, int64_t score_stride) {
  __m512 acc[kScoreRows][2];
  for (int64_t r = 0; r < kScoreRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < kDim / 2; ++c) {
    const __m512bh k0 = as_pairs(_mm512_loadu_si512(keys + c * kKeys));
    const __m512bh k1 = as_pairs(_mm512_loadu_si512(keys + c * kKeys + 16));
    for (int64_t r = 0; r < kScoreRows; ++r) {
      const __m512bh q = as_pairs(_mm512_set1_epi32(static_cast<int>(queries[r * (kDim / 2) + c])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], q, k0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], q, k1);
    }
  }
  for (int64_t r = 0; r < kScoreRows; ++r) {
    _mm512_storeu_ps(scores + r * score_stride, acc[r][0]);
    _mm512_storeu_ps(scores + r * score_stride + 16, acc[r][1]);
  }
}

// out[r][0 .. 64) += weights_r . values for kOutputRows queries: `weights` are
// bf16 rows (pairs of keys as uint32), `values` packed pairs of keys of width
// `dim` starting at channel 0 of this tile.
inline void output_tile(const uint32_t* weights, int64_t weight_stride, const uint32_t* values, int64_t dim,
                        int64_t pairs, float* out, int64_t out_stride) {
  __m512 acc[kOutputRows][4];
  for (int64_t r = 0; r < kOutputRows; ++r)
    for (int64_t v = 0; v < 4; ++v) acc[r][v] = _mm512_loadu_ps(out + r * out_stride + v * 16);
  for (int64_t i = 0; i < pairs; ++i) {
    __m512bh row[4];
    for (int64_t v = 0; v < 4; ++v) row[v] = as_pairs(_mm512_loadu_si512(values + i * dim + v * 16));
    for (int64_t r = 0; r < kOutputRows; ++r) {
      const __m512bh w = as_pairs(_mm512_set1_epi32(static_cast<int>(weights[r * weight_stride + i])));
      for (int64_t v = 0; v < 4; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], w, row[v]);
    }
  }
  for (int64_t r = 0; r < kOutputRows; ++r)
    for (int64_t v = 0; v < 4; ++v) _mm512_storeu_ps(out + r * out_stride + v * 16, acc[r][v]);
}

// One task's running softmax: per query the max score so far, the sum of its
// exps, and the unnormalized output sums [kQueries][dim].
struct Running {
  float max[kQueries], sum[kQueries];
  float* out;
};

// Turns scores[r][0 .. visible_r) (raw dot products) into bf16 weights exp(s * scale - max)
// (zero past visible_r and up to `width`), updating the running max and sum and
// rescaling the output sums when the max grows.
template <int64_t kDim>
void softmax_step(float* scores, uint32_t* weights, int64_t rows, int64_t width, const int64_t* visible, float scale,
                  Running& run) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * kStep;
    uint32_t* w = weights + r * kStep / 2;  // pairs of bf16
    const int64_t seen = std::min(visible[r], width);
    if (seen <= 0) {
      std::fill(w, w + width / 2, 0u);
      continue;
    }
    __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < seen; i += 16) {
      const __mmask16 k = pytgi::tail_mask(seen - i);
      top = _mm512_mask_max_ps(top, k, top, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), s));
    }
    const float new_max = std::max(run.max[r], _mm512_reduce_max_ps(top));
    const __m512 m = _mm512_set1_ps(new_max);
    __m512 total = _mm512_setzero_ps();
    for (int64_t i = 0; i < width; i += 16) {
      const __mmask16 k = i < seen ? pytgi::tail_mask(seen - i) : 0;
      const __m512 e = _mm512_maskz_mov_ps(
          k, pytgi::exp_nonpositive(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), s), m)));
      total = _mm512_add_ps(total, e);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + i / 2), (__m256i)_mm512_cvtneps_pbh(e));
    }
    const float step_sum = _mm512_reduce_add_ps(total);
    if (new_max > run.max[r] && run.sum[r] > 0.f) {
      const float alpha = std::exp(run.max[r] - new_max);
      run.sum[r] *= alpha;
      const __m512 a = _mm512_set1_ps(alpha);
      float* o = run.out + r * kDim;
      for (int64_t d = 0; d < kDim; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(o + d), a));
    }
    run.max[r] = new_max;
    run.sum[r] += step_sum;
  }
}

template <int64_t kDim>
void attend_chunk(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                  const at::Tensor& table, int64_t start, double scale, at::Tensor& out) {
  const int64_t len = query.size(0), heads = query.size(1);
  const int64_t block_size = key_cache.size(1), kv_heads = key_cache.size(2), group = heads / kv_heads;
  const int64_t token_stride = kv_heads * kDim, context = start + len;
  const int64_t key_blocks = (context + kKeys - 1) / kKeys;
  const int64_t block_words = kKeys * kDim / 2;  // uint32 (bf16 pairs) per packed block, keys or values
  std::unique_ptr<uint32_t[]> keys(new uint32_t[kv_heads * key_blocks * block_words]);
  std::unique_ptr<uint32_t[]> values(new uint32_t[kv_heads * key_blocks * block_words]);
  const auto* kc = reinterpret_cast<const uint16_t*>(key_cache.data_ptr<at::BFloat16>());
  const auto* vc = reinterpret_cast<const uint16_t*>(value_cache.data_ptr<at::BFloat16>());
  const int64_t* tab = table.data_ptr<int64_t>();
  at::parallel_for(0, kv_heads * key_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / key_blocks, b = item % key_blocks;
      const int64_t at = (h * key_blocks + b) * block_words;
      pack_keys(kc, tab, block_size, token_stride, h, kDim, b, context, keys.get() + at);
      pack_values(vc, tab, block_size, token_stride, h, kDim, b, context, values.get() + at);
    }
  });

  const auto* q = reinterpret_cast<const uint16_t*>(query.data_ptr<at::BFloat16>());
  auto* o = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const int64_t query_blocks = (len + kQueries - 1) / kQueries;
  const float fscale = static_cast<float>(scale);
  // Tasks run head by head, so each thread's share holds early (short) and late
  // (long) query blocks alike.
  at::parallel_for(0, heads * query_blocks, 1, [&](int64_t begin, int64_t end) {
    // bf16 pairs as uint32: the dot-product instruction's operands.
    alignas(64) uint32_t queries[kQueries * kDim / 2];
    alignas(64) float scores[kQueries * kStep];
    alignas(64) uint32_t weights[kQueries * kStep / 2];
    alignas(64) float sums[kQueries * kDim];
    int64_t visible[kQueries];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t head = item / query_blocks, first = (item % query_blocks) * kQueries;
      const int64_t rows = std::min(kQueries, len - first), kv = head / group;
      std::fill_n(queries + rows * kDim / 2, (kQueries - rows) * kDim / 2, 0u);
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(queries + r * kDim / 2, q + ((first + r) * heads + head) * kDim, kDim * sizeof(uint16_t));
      Running run{{}, {}, sums};
      std::fill_n(run.max, kQueries, -std::numeric_limits<float>::infinity());
      std::fill_n(run.sum, kQueries, 0.f);
      std::fill_n(sums, kQueries * kDim, 0.f);
      std::fill_n(weights, kQueries * kStep / 2, 0u);  // the output tiles' rows past `rows` stay zero
      const int64_t seen_by_last = start + first + rows;  // keys 0 .. this - 1
      const uint32_t* head_keys = keys.get() + kv * key_blocks * block_words;
      const uint32_t* head_values = values.get() + kv * key_blocks * block_words;
      for (int64_t step = 0; step < seen_by_last; step += kStep) {
        const int64_t blocks = (std::min(kStep, seen_by_last - step) + kKeys - 1) / kKeys, width = blocks * kKeys;
        for (int64_t r0 = 0; r0 < rows; r0 += kScoreRows)
          for (int64_t b = 0; b < blocks; ++b)
            score_tile<kDim>(queries + r0 * kDim / 2,
                             head_keys + (step / kKeys + b) * block_words, scores + r0 * kStep + b * kKeys,
                             kStep);
        for (int64_t r = 0; r < rows; ++r) visible[r] = start + first + r + 1 - step;
        softmax_step<kDim>(scores, weights, rows, width, visible, fscale, run);
        for (int64_t r0 = 0; r0 < rows; r0 += kOutputRows)
          for (int64_t c = 0; c < kDim; c += 64)
            output_tile(weights + r0 * kStep / 2, kStep / 2,
                        head_values + (step / kKeys) * block_words + c, kDim, width / 2, sums + r0 * kDim + c,
                        kDim);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const __m512 inv = _mm512_set1_ps(1.f / run.sum[r]);
        uint16_t* dst = o + ((first + r) * heads + head) * kDim;
        for (int64_t d = 0; d < kDim; d += 16)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + d),
                              (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(sums + r * kDim + d), inv)));
      }
    }
  });
}
#else
constexpr bool kAvailable = false;
#endif

}  // namespace

// Whether this build has the kernel (AVX512-BF16 at compile time, i.e. on this CPU).
bool prefill_attention_available() { return kAvailable; }

// query [len, heads, dim] (bf16, dim 64 or 128) at positions start .. start +
// len - 1, whose keys and values (this chunk's included) are in the paged caches
// [blocks, block_size, kv_heads, dim] at the blocks of `table` (int64); returns
// the attention output [len, heads, dim]. Causal, no window, no soft-cap.
at::Tensor prefill_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                             const at::Tensor& table, int64_t start, double scale) {
  TORCH_CHECK(kAvailable, "prefill_attention: this build has no AVX512-BF16");
  TORCH_CHECK(query.scalar_type() == at::kBFloat16 && key_cache.scalar_type() == at::kBFloat16 &&
                  value_cache.scalar_type() == at::kBFloat16,
              "prefill_attention: bfloat16 only");
  TORCH_CHECK(query.dim() == 3 && key_cache.dim() == 4 && value_cache.sizes() == key_cache.sizes() &&
                  query.size(2) == key_cache.size(3) && query.size(1) % key_cache.size(2) == 0,
              "prefill_attention: query [len, heads, dim], caches [blocks, block_size, kv_heads, dim]");
  TORCH_CHECK(query.is_contiguous() && key_cache.is_contiguous() && value_cache.is_contiguous(),
              "prefill_attention: tensors must be contiguous");
  const int64_t block_size = key_cache.size(1), context = start + query.size(0);
  TORCH_CHECK(table.scalar_type() == at::kLong && table.dim() == 1 && start >= 0 &&
                  table.size(0) * block_size >= context,
              "prefill_attention: the int64 block table must cover the context");
  auto blocks = table.contiguous();
  auto out = at::empty_like(query);
  if (query.size(0) == 0) return out;
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  switch (query.size(2)) {
    case 64: attend_chunk<64>(query, key_cache, value_cache, blocks, start, scale, out); break;
    case 128: attend_chunk<128>(query, key_cache, value_cache, blocks, start, scale, out); break;
    default: TORCH_CHECK(false, "prefill_attention: head size 64 or 128 only");
  }
#endif
  return out;
}
