// Paged decode attention on the CPU: one query token per row attends over its
// request's cached keys/values, read in place from the paged cache through the
// block table. No gathered copy, no padding: work is proportional to each row's
// own context length. Scores, softmax and the weighted sum run in float32.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

// One cached row -> float32. bfloat16 is the top half of a float32, so the
// conversion is a shift the compiler vectorizes (c10's operator float is not).
template <typename T>
inline void load_row(const T* src, float* dst, int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(src[d]);
}

template <>
inline void load_row<c10::BFloat16>(const c10::BFloat16* src, float* dst, int64_t dim) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
  for (int64_t d = 0; d < dim; ++d) dst[d] = __builtin_bit_cast(float, static_cast<uint32_t>(bits[d]) << 16);
}

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
void register_decode_stack(pybind11::module& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("paged_decode_attention", &paged_decode_attention);
  m.def("small_batch_linear", &small_batch_linear);
  m.def("rms_norm", &rms_norm);
  register_decode_stack(m);
}
