// Row-parallel drivers of the row and elementwise kernels and of attention, on the process thread pool.
#pragma once
#include <cstdint>

#include "kernels.h"

namespace mhf {

void layer_norm(const Kernels& k, const float* x, float* y, int64_t rows, int d, float eps, const float* gamma,
                const float* beta, float* mean, float* inv_std);
void skip_layer_norm(const Kernels& k, const float* x, const float* skip, int64_t skip_rows, const float* bias,
                     const float* gamma, const float* beta, float* y, float* sum_out, int64_t rows, int d,
                     float eps);
void softmax(const Kernels& k, const float* x, float* y, int64_t rows, int d);
void activation(const Kernels& k, const float* x, float* y, int64_t n, const float* bias, int64_t bias_len,
                int act);
void add(const Kernels& k, const float* a, const float* b, float* y, int64_t n, int64_t b_len);
void attention(const Kernels& k, const AttentionProblem& p);
// memcpy on the pool: one thread reads mapped GPU memory (a readback's staging buffer) at a fraction of the
// memory bandwidth; several together come closer to it.
void copy_bytes(void* dst, const void* src, int64_t n);
// Whether x[0, n) is finite, the scan split over the pool (the attention path checks its whole packed QKV: 9.4 MB
// at [8,128], 2.2 ms on one thread at SSE2 width).
bool all_finite(const Kernels& k, const float* x, int64_t n);

}  // namespace mhf
