// RMSNorm in one pass per row. torch runs it as a chain of elementwise kernels
// (cast, square, mean, add, rsqrt, scale, cast back, weight), each allocating its
// own output and, in bfloat16, converting every element in and out: 40-45 us for
// one row, where this takes 3. Rows are split across torch's threads; one row
// runs inline. The roundings are torch's: the normalized row is rounded to the
// input dtype before the weight multiplies it, as transformers' Llama RMSNorm does.
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
