// A pure decode step through every layer of a Llama-family model in one call.
//
// At batch 1 a layer is four weight-streaming matrix-vector products and about
// 25 small ops between them (norms, RoPE, the KV write, residual adds, SwiGLU).
// Called from Python each small op costs 4-15 us of dispatch and interpreter
// time: ~15 ms a step over 30 layers, against a 25-30 ms floor for streaming
// the weights (docs/profile.md). Here a layer is a handful of direct calls: the
// one-pass RMSNorm, the small-batch linear kernel (torch's GEMM above its rows),
// RoPE fused with the KV write, the paged decode kernel, torch's silu.
//
// The layer is the one models/llama.py runs: pre-norm blocks, grouped-query
// attention with NeoX-style RoPE on the first rotary_dim channels of each head,
// SwiGLU, optional biases, per-layer sliding windows. The roundings are the
// Python path's: a bf16 op computes in float32 and rounds its result.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bf16.h"

at::Tensor small_batch_linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor paged_decode_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                                  int64_t window, double softcap);

namespace {

using pytgi::load;
using pytgi::round_to;
using pytgi::store;

// One layer's parameters and KV cache, in the order Python passes them.
enum Slot : size_t {
  kInputNorm, kQkv, kQkvBias, kO, kOBias, kPostNorm, kGateUp, kGateUpBias, kDown, kDownBias, kKeyCache,
  kValueCache, kNumSlots
};

struct Layer {
  at::Tensor input_norm, qkv, o, post_norm, gate_up, down, key_cache, value_cache;
  c10::optional<at::Tensor> qkv_bias, o_bias, gate_up_bias, down_bias;
  int64_t window;  // 0: full causal attention
};

// out = x rotated by (cos, sin) on its first 2 * half channels, the two halves
// being the real and imaginary parts; later channels are copied. Each product,
// then their sum or difference, is rounded as torch rounds it.
template <typename T>
inline void rotate_head(const T* x, const T* cos, const T* sin, T* out, int64_t half, int64_t dim) {
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = load(x[i]), x2 = load(x[i + half]), c = load(cos[i]), s = load(sin[i]);
    const float x1c = round_to(x1 * c, out), x2s = round_to(x2 * s, out);
    const float x2c = round_to(x2 * c, out), x1s = round_to(x1 * s, out);
    store(out + i, round_to(x1c - x2s, out));
    store(out + i + half, round_to(x2c + x1s, out));
  }
  std::copy(x + 2 * half, x + dim, out + 2 * half);
}

// The fused QKV rows [rows, (heads + 2 * kv_heads) * dim] -> rotated queries in
// `query` [rows, heads * dim]; rotated keys and the values go to each row's slot
// of the paged cache ([blocks, block_size, kv_heads, dim]).
template <typename T>
void rope_and_cache(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slots,
                    at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache, int64_t heads,
                    int64_t kv_heads, int64_t dim, int64_t half) {
  const int64_t rows = qkv.size(0), width = qkv.size(1), kv_width = kv_heads * dim;
  const T* src = qkv.data_ptr<T>();
  const T* cos_rows = cos.data_ptr<T>();
  const T* sin_rows = sin.data_ptr<T>();
  const int64_t* slot = slots.data_ptr<int64_t>();
  T* q = query.data_ptr<T>();
  T* keys = key_cache.data_ptr<T>();
  T* values = value_cache.data_ptr<T>();
  at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = src + r * width;
      const T* c = cos_rows + r * half;
      const T* s = sin_rows + r * half;
      for (int64_t h = 0; h < heads; ++h) rotate_head(row + h * dim, c, s, q + (r * heads + h) * dim, half, dim);
      T* key = keys + slot[r] * kv_width;
      for (int64_t h = 0; h < kv_heads; ++h) rotate_head(row + (heads + h) * dim, c, s, key + h * dim, half, dim);
      const T* value = row + (heads + kv_heads) * dim;
      std::copy(value, value + kv_width, values + slot[r] * kv_width);
    }
  });
}

}  // namespace

class DecodeStack {
 public:
  // layers: per layer, the tensors in `Slot` order (biases may be None).
  // small_batch_rows: up to how many rows the linear layers take pytgi's
  // small-batch kernel (0: always torch's), the rule of layers/linear.py.
  DecodeStack(const std::vector<std::vector<c10::optional<at::Tensor>>>& layers, const std::vector<int64_t>& windows,
              int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t rotary_dim, double eps, double scale,
              int64_t small_batch_rows)
      : heads_(heads), kv_heads_(kv_heads), dim_(head_dim), half_(rotary_dim / 2), eps_(eps), scale_(scale),
        small_batch_rows_(small_batch_rows) {
    TORCH_CHECK(layers.size() == windows.size(), "DecodeStack: one window per layer");
    TORCH_CHECK(rotary_dim % 2 == 0 && rotary_dim <= head_dim, "DecodeStack: rotary_dim must be even, <= head_dim");
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& t = layers[i];
      TORCH_CHECK(t.size() == kNumSlots, "DecodeStack: each layer takes ", static_cast<int64_t>(kNumSlots),
                  " tensors");
      auto required = [&](Slot slot) {
        TORCH_CHECK(t[slot].has_value() && t[slot]->defined(), "DecodeStack: layer ", i, " lacks tensor ",
                    static_cast<int64_t>(slot));
        TORCH_CHECK(t[slot]->is_contiguous() && t[slot]->device().is_cpu(), "DecodeStack: layer ", i,
                    " tensor ", static_cast<int64_t>(slot), " must be contiguous, on the CPU");
        return *t[slot];
      };
      layers_.push_back(Layer{required(kInputNorm), required(kQkv), required(kO), required(kPostNorm),
                              required(kGateUp), required(kDown), required(kKeyCache), required(kValueCache),
                              t[kQkvBias], t[kOBias], t[kGateUpBias], t[kDownBias], windows[i]});
      TORCH_CHECK(layers_.back().qkv.size(0) == (heads + 2 * kv_heads) * head_dim,
                  "DecodeStack: the fused QKV weight does not match the heads");
    }
  }

  // hidden [rows, hidden] (the embedded tokens, one per decode row); cos, sin
  // [rows, rotary_dim / 2] in hidden's dtype; slots [rows], block_tables
  // [rows, max_blocks], context_lens [rows] (int64, this step's token included).
  // Returns the last layer's output, before the final norm.
  at::Tensor forward(at::Tensor hidden, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slots,
                     const at::Tensor& block_tables, const at::Tensor& context_lens) const {
    const int64_t rows = hidden.size(0);
    TORCH_CHECK(hidden.dim() == 2 && hidden.is_contiguous(), "DecodeStack: hidden must be contiguous [rows, hidden]");
    TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous() && cos.size(0) == rows && cos.size(1) == half_ &&
                    sin.sizes() == cos.sizes() && cos.scalar_type() == hidden.scalar_type() &&
                    sin.scalar_type() == hidden.scalar_type(),
                "DecodeStack: cos and sin must be contiguous [rows, rotary_dim / 2] of hidden's dtype");
    TORCH_CHECK(slots.scalar_type() == at::kLong && slots.is_contiguous() && slots.size(0) == rows,
                "DecodeStack: slots must be contiguous int64 [rows]");
    TORCH_CHECK(block_tables.size(0) == rows && context_lens.size(0) == rows,
                "DecodeStack: one block table and one context length per row");
    for (const Layer& layer : layers_) {
      auto attention = attend(layer, rms_norm(hidden, layer.input_norm, eps_), cos, sin, slots, block_tables,
                              context_lens);
      hidden = hidden + linear(attention, layer.o, layer.o_bias);
      auto gate_up = linear(rms_norm(hidden, layer.post_norm, eps_), layer.gate_up, layer.gate_up_bias);
      const int64_t inter = gate_up.size(1) / 2;
      auto act = at::silu(gate_up.narrow(1, 0, inter));
      act.mul_(gate_up.narrow(1, inter, inter));
      hidden = hidden + linear(act, layer.down, layer.down_bias);
    }
    return hidden;
  }

 private:
  at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) const {
    if (x.size(0) <= small_batch_rows_) return small_batch_linear(x, weight, bias);
    return at::linear(x, weight, bias);
  }

  // Normed rows -> attention output [rows, heads * dim], this step's K/V written.
  at::Tensor attend(const Layer& layer, const at::Tensor& normed, const at::Tensor& cos, const at::Tensor& sin,
                    const at::Tensor& slots, const at::Tensor& block_tables, const at::Tensor& context_lens) const {
    const int64_t rows = normed.size(0);
    auto qkv = linear(normed, layer.qkv, layer.qkv_bias).contiguous();
    auto query = at::empty({rows, heads_, dim_}, normed.options());
    if (qkv.scalar_type() == at::kBFloat16) {
      rope_and_cache<c10::BFloat16>(qkv, cos, sin, slots, query, layer.key_cache, layer.value_cache, heads_,
                                    kv_heads_, dim_, half_);
    } else {
      TORCH_CHECK(qkv.scalar_type() == at::kFloat, "DecodeStack: float32 or bfloat16 only");
      rope_and_cache<float>(qkv, cos, sin, slots, query, layer.key_cache, layer.value_cache, heads_, kv_heads_, dim_,
                            half_);
    }
    auto out = paged_decode_attention(query, layer.key_cache, layer.value_cache, block_tables, context_lens, scale_,
                                      layer.window, 0.0);
    return out.view({rows, heads_ * dim_});
  }

  std::vector<Layer> layers_;
  int64_t heads_, kv_heads_, dim_, half_;
  double eps_, scale_;
  int64_t small_batch_rows_;
};

void register_decode_stack(pybind11::module& m) {
  // The GIL is released for the whole step: the server's threads keep running.
  pybind11::class_<DecodeStack>(m, "DecodeStack")
      .def(pybind11::init<const std::vector<std::vector<c10::optional<at::Tensor>>>&, const std::vector<int64_t>&,
                          int64_t, int64_t, int64_t, int64_t, double, double, int64_t>())
      .def("forward", &DecodeStack::forward, pybind11::call_guard<pybind11::gil_scoped_release>());
}
