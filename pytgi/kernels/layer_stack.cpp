// A step (decode rows, prefill chunks, or both) through every layer of a
// Llama-family model in one call.
//
// At batch 1 a layer is four weight-streaming matrix-vector products and about
// 25 small ops between them (norms, RoPE, the KV write, residual adds, SwiGLU).
// Called from Python each small op costs 4-15 us of dispatch and interpreter
// time: ~15 ms a step over 30 layers, against a 25-30 ms floor for streaming
// the weights (docs/profile.md). Here a layer is a handful of direct calls: the
// one-pass RMSNorm, the small-batch linear kernel (torch's GEMM above its rows),
// RoPE fused with the KV write, the paged decode kernel for the decode rows,
// for each prefill chunk the bf16 prefill kernel (prefill_attention.cpp) or
// torch's SDPA as the module path calls it, the one-pass SiLU-and-multiply.
//
// The layer is the one models/llama.py runs: pre-norm blocks, grouped-query
// attention with NeoX-style RoPE on the first rotary_dim channels of each head,
// SwiGLU, optional biases, per-layer sliding windows. The roundings are the
// Python path's: a bf16 op computes in float32 and rounds its result.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "bf16.h"

at::Tensor small_batch_linear(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor silu_and_mul(const at::Tensor& gate_up);
at::Tensor paged_decode_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale,
                                  int64_t window, double softcap);
bool prefill_attention_available();
at::Tensor prefill_attention(const at::Tensor& query, const at::Tensor& key_cache, const at::Tensor& value_cache,
                             const at::Tensor& table, int64_t start, double scale);

namespace {

using pytgi::load;
using pytgi::round_to;
using pytgi::store;

// One layer's parameters and KV cache, in the order Python passes them. The
// `*Packed` slots are oneDNN's prepacked copies of the four weights, or None
// (layers/linear.py's `packed_weight`).
enum Slot : size_t {
  kInputNorm, kQkv, kQkvBias, kO, kOBias, kPostNorm, kGateUp, kGateUpBias, kDown, kDownBias, kKeyCache,
  kValueCache, kQkvPacked, kOPacked, kGateUpPacked, kDownPacked, kNumSlots
};

// A weight as the linear layers take it: the plain [out, in] tensor (for the
// small-batch kernel and torch's GEMM) and, where there is one, its prepacked copy.
struct Weight {
  at::Tensor plain;
  c10::optional<at::Tensor> packed;
};

struct Layer {
  at::Tensor input_norm;
  Weight qkv, o;
  at::Tensor post_norm;
  Weight gate_up, down;
  at::Tensor key_cache, value_cache;
  c10::optional<at::Tensor> qkv_bias, o_bias, gate_up_bias, down_bias;
  int64_t window;  // 0: full causal attention
};

// y = x W^T + b through oneDNN's prepacked weight: torch's F.linear on a bf16
// weight reorders the weight into oneDNN's layout on every call, which at tens
// of rows costs about as much as the product itself (docs/profile.md, seventh pass).
at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& bias) {
  static const c10::OperatorHandle op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  torch::jit::Stack stack{c10::IValue(x.contiguous()), c10::IValue(packed), c10::IValue(bias),
                          c10::IValue(std::string("none")), c10::IValue(c10::List<c10::optional<at::Scalar>>()),
                          c10::IValue(std::string(""))};
  op.callBoxed(&stack);
  return stack[0].toTensor();
}

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

class LayerStack {
 public:
  // layers: per layer, the tensors in `Slot` order (biases may be None).
  // small_batch_rows: up to how many rows the linear layers take pytgi's
  // small-batch kernel (0: always torch's), the rule of layers/linear.py.
  // prefill_kernel: whether bf16 prompt chunks of layers without a window may
  // take prefill_attention.cpp (where this build and the head size allow it).
  LayerStack(const std::vector<std::vector<c10::optional<at::Tensor>>>& layers, const std::vector<int64_t>& windows,
              int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t rotary_dim, double eps, double scale,
              int64_t small_batch_rows, bool prefill_kernel)
      : heads_(heads), kv_heads_(kv_heads), dim_(head_dim), half_(rotary_dim / 2), eps_(eps), scale_(scale),
        small_batch_rows_(small_batch_rows),
        prefill_kernel_(prefill_kernel && prefill_attention_available() && (head_dim == 64 || head_dim == 128)) {
    TORCH_CHECK(layers.size() == windows.size(), "LayerStack: one window per layer");
    TORCH_CHECK(rotary_dim % 2 == 0 && rotary_dim <= head_dim, "LayerStack: rotary_dim must be even, <= head_dim");
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& t = layers[i];
      TORCH_CHECK(t.size() == kNumSlots, "LayerStack: each layer takes ", static_cast<int64_t>(kNumSlots),
                  " tensors");
      auto required = [&](Slot slot) {
        TORCH_CHECK(t[slot].has_value() && t[slot]->defined(), "LayerStack: layer ", i, " lacks tensor ",
                    static_cast<int64_t>(slot));
        TORCH_CHECK(t[slot]->is_contiguous() && t[slot]->device().is_cpu(), "LayerStack: layer ", i,
                    " tensor ", static_cast<int64_t>(slot), " must be contiguous, on the CPU");
        return *t[slot];
      };
      auto weight = [&](Slot plain, Slot packed) { return Weight{required(plain), t[packed]}; };
      layers_.push_back(Layer{required(kInputNorm), weight(kQkv, kQkvPacked), weight(kO, kOPacked),
                              required(kPostNorm), weight(kGateUp, kGateUpPacked), weight(kDown, kDownPacked),
                              required(kKeyCache), required(kValueCache), t[kQkvBias], t[kOBias], t[kGateUpBias],
                              t[kDownBias], windows[i]});
      TORCH_CHECK(layers_.back().qkv.plain.size(0) == (heads + 2 * kv_heads) * head_dim,
                  "LayerStack: the fused QKV weight does not match the heads");
    }
  }

  // hidden [rows, hidden]: the step's embedded tokens, decode rows and prefill
  // chunks in the flat order of the step; cos, sin [rows, rotary_dim / 2] in
  // hidden's dtype; slots [rows] (int64). The decode rows are rows
  // `decode_rows` (int64 [num_decode]) with block_tables [num_decode,
  // max_blocks] and context_lens [num_decode] (this step's token included);
  // each prefill chunk is a row (query_start, query_len, start_position) of
  // `chunks` (int64 [num_chunks, 3]) with its block table in `chunk_tables`.
  // Returns the last layer's output, before the final norm.
  at::Tensor forward(at::Tensor hidden, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& slots,
                     const at::Tensor& decode_rows, const at::Tensor& block_tables, const at::Tensor& context_lens,
                     const at::Tensor& chunks, const at::Tensor& chunk_tables) const {
    const int64_t rows = hidden.size(0);
    TORCH_CHECK(hidden.dim() == 2 && hidden.is_contiguous(), "LayerStack: hidden must be contiguous [rows, hidden]");
    TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous() && cos.size(0) == rows && cos.size(1) == half_ &&
                    sin.sizes() == cos.sizes() && cos.scalar_type() == hidden.scalar_type() &&
                    sin.scalar_type() == hidden.scalar_type(),
                "LayerStack: cos and sin must be contiguous [rows, rotary_dim / 2] of hidden's dtype");
    TORCH_CHECK(slots.scalar_type() == at::kLong && slots.is_contiguous() && slots.size(0) == rows,
                "LayerStack: slots must be contiguous int64 [rows]");
    const int64_t num_decode = decode_rows.size(0);
    TORCH_CHECK(decode_rows.scalar_type() == at::kLong && block_tables.size(0) == num_decode &&
                    context_lens.size(0) == num_decode,
                "LayerStack: one int64 row index, block table and context length per decode row");
    TORCH_CHECK(chunks.scalar_type() == at::kLong && chunks.is_contiguous() && chunks.dim() == 2 &&
                    chunks.size(1) == 3 && chunk_tables.size(0) == chunks.size(0),
                "LayerStack: chunks must be contiguous int64 [num_chunks, 3], one block table each");
    const bool kernel = prefill_kernel_ && hidden.scalar_type() == at::kBFloat16;
    const Step step{cos, sin, slots, decode_rows, block_tables, context_lens, chunks, chunk_tables,
                    num_decode == rows && chunks.size(0) == 0, kernel,
                    kernel ? std::vector<at::Tensor>(chunks.size(0)) : causal_masks(chunks, hidden.options())};
    for (const Layer& layer : layers_) {
      auto attention = attend(layer, rms_norm(hidden, layer.input_norm, eps_), step);
      hidden = hidden + linear(attention, layer.o, layer.o_bias);
      auto gate_up = linear(rms_norm(hidden, layer.post_norm, eps_), layer.gate_up, layer.gate_up_bias);
      hidden = hidden + linear(silu_and_mul(gate_up), layer.down, layer.down_bias);
    }
    return hidden;
  }

 private:
  at::Tensor linear(const at::Tensor& x, const Weight& weight, const c10::optional<at::Tensor>& bias) const {
    if (x.size(0) <= small_batch_rows_) return small_batch_linear(x, weight.plain, bias);
    if (weight.packed.has_value()) return packed_linear(x, *weight.packed, bias);
    return at::linear(x, weight.plain, bias);
  }

  // One step's layout, shared by every layer (see forward).
  struct Step {
    const at::Tensor &cos, &sin, &slots, &decode_rows, &block_tables, &context_lens, &chunks, &chunk_tables;
    bool decode_only;  // every row a decode row, in order
    bool prefill_kernel;  // chunks of layers without a window take prefill_attention (no causal masks then)
    std::vector<at::Tensor> causal_masks;  // per chunk (see causal_masks)
  };

  // Per prefill chunk that continues cached positions, the additive causal mask
  // [len, start + len] (0 where a query sees a key, -inf where not) that torch's
  // SDPA would make from a boolean one; built once a step rather than once a
  // layer (docs/profile.md, sixth pass). Undefined for a chunk from position 0,
  // which takes SDPA's built-in causal mask.
  static std::vector<at::Tensor> causal_masks(const at::Tensor& chunks, const at::TensorOptions& options) {
    std::vector<at::Tensor> masks;
    const int64_t* chunk = chunks.data_ptr<int64_t>();
    for (int64_t c = 0; c < chunks.size(0); ++c, chunk += 3) {
      const int64_t len = chunk[1], start = chunk[2];
      if (start == 0) {
        masks.emplace_back();
        continue;
      }
      const auto key_positions = at::arange(start + len, options.dtype(at::kLong)).unsqueeze(0);
      const auto positions = at::arange(start, start + len, options.dtype(at::kLong)).unsqueeze(1);
      masks.push_back(at::zeros({len, start + len}, options).masked_fill_(key_positions > positions,
                                                                          -std::numeric_limits<float>::infinity()));
    }
    return masks;
  }

  // Normed rows -> attention output [rows, heads * dim], this step's K/V written.
  at::Tensor attend(const Layer& layer, const at::Tensor& normed, const Step& step) const {
    const int64_t rows = normed.size(0);
    auto qkv = linear(normed, layer.qkv, layer.qkv_bias).contiguous();
    auto query = at::empty({rows, heads_, dim_}, normed.options());
    if (qkv.scalar_type() == at::kBFloat16) {
      rope_and_cache<c10::BFloat16>(qkv, step.cos, step.sin, step.slots, query, layer.key_cache, layer.value_cache,
                                    heads_, kv_heads_, dim_, half_);
    } else {
      TORCH_CHECK(qkv.scalar_type() == at::kFloat, "LayerStack: float32 or bfloat16 only");
      rope_and_cache<float>(qkv, step.cos, step.sin, step.slots, query, layer.key_cache, layer.value_cache, heads_,
                            kv_heads_, dim_, half_);
    }
    if (step.decode_only) return decode_attention(layer, query, step).view({rows, heads_ * dim_});
    auto out = at::empty_like(query);
    const int64_t* chunk = step.chunks.data_ptr<int64_t>();
    for (int64_t c = 0; c < step.chunks.size(0); ++c, chunk += 3) {
      out.narrow(0, chunk[0], chunk[1]).copy_(
          chunk_attention(layer, query.narrow(0, chunk[0], chunk[1]), chunk[2], step.chunk_tables[c],
                          step.causal_masks[c], step.prefill_kernel));
    }
    if (step.decode_rows.size(0) > 0) {
      out.index_copy_(0, step.decode_rows, decode_attention(layer, query.index_select(0, step.decode_rows), step));
    }
    return out.view({rows, heads_ * dim_});
  }

  at::Tensor decode_attention(const Layer& layer, const at::Tensor& query, const Step& step) const {
    return paged_decode_attention(query, layer.key_cache, layer.value_cache, step.block_tables, step.context_lens,
                                  scale_, layer.window, 0.0);
  }

  // A prefill chunk's queries [len, heads, dim] at positions start .. start +
  // len - 1, over its request's keys 0 .. start + len - 1 (this step's
  // included). Without a window, where `kernel` says so, the prefill kernel
  // reads them in place. Otherwise they are gathered from the cache for torch's
  // SDPA as the module path calls it: the built-in causal mask when nothing is
  // cached and there is no window, else the mask it would build (the step's
  // `causal` one without a window).
  at::Tensor chunk_attention(const Layer& layer, const at::Tensor& query, int64_t start, const at::Tensor& table,
                             const at::Tensor& causal, bool kernel) const {
    if (kernel && layer.window == 0) {
      return prefill_attention(query, layer.key_cache, layer.value_cache, table, start, scale_);
    }
    const int64_t len = query.size(0), context = start + len, block_size = layer.key_cache.size(1);
    const auto blocks = table.narrow(0, 0, (context + block_size - 1) / block_size);
    auto gather = [&](const at::Tensor& cache) {
      return cache.index_select(0, blocks).flatten(0, 1).narrow(0, 0, context).transpose(0, 1).unsqueeze(0);
    };
    c10::optional<at::Tensor> mask;
    if (layer.window > 0) {
      const auto key_positions = at::arange(context, table.options()).unsqueeze(0);
      const auto positions = at::arange(start, context, table.options()).unsqueeze(1);
      mask = (key_positions <= positions).logical_and_(key_positions > positions - layer.window);
    } else if (start > 0) {
      mask = causal;
    }
    auto out = at::scaled_dot_product_attention(query.transpose(0, 1).unsqueeze(0), gather(layer.key_cache),
                                                gather(layer.value_cache), mask, 0.0, !mask.has_value(), scale_,
                                                /*enable_gqa=*/true);
    return out[0].transpose(0, 1);
  }

  std::vector<Layer> layers_;
  int64_t heads_, kv_heads_, dim_, half_;
  double eps_, scale_;
  int64_t small_batch_rows_;
  bool prefill_kernel_;
};

void register_layer_stack(pybind11::module& m) {
  // The GIL is released for the whole step: the server's threads keep running.
  pybind11::class_<LayerStack>(m, "LayerStack")
      .def(pybind11::init<const std::vector<std::vector<c10::optional<at::Tensor>>>&, const std::vector<int64_t>&,
                          int64_t, int64_t, int64_t, int64_t, double, double, int64_t, bool>())
      .def("forward", &LayerStack::forward, pybind11::call_guard<pybind11::gil_scoped_release>());
}
