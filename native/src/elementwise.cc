// Row and elementwise kernels for one ISA (compiled per ISA, see vec.h). Semantics follow the JS references
// in src/ops (normalization.ts, softmax.ts, elementwise-util.ts): LayerNorm statistics in double precision,
// Softmax's maximum ignores NaN (a NaN still poisons its row through exp), GELU as geluErfFloat32.
#include "kernels.h"
#include "vec.h"

namespace mhf {
namespace MHF_NS {

typedef double vd __attribute__((vector_size(VL * 8)));

static inline vd widen(vf x) { return __builtin_convertvector(x, vd); }

// Mean and 1/sqrt(var + eps) of one row, accumulated in double as the reference does.
static void row_stats(const float* x, int d, float eps, double& mu, double& inv) {
  vd s = vd{};
  int j = 0;
  for (; j + VL <= d; j += VL) s += widen(load(x + j));
  double sum = 0;
  for (int l = 0; l < VL; l++) sum += s[l];
  for (; j < d; j++) sum += x[j];
  mu = sum / d;
  vd q = vd{};
  const vd m = vd{} + mu;
  j = 0;
  for (; j + VL <= d; j += VL) {
    const vd t = widen(load(x + j)) - m;
    q += t * t;
  }
  double sq = 0;
  for (int l = 0; l < VL; l++) sq += q[l];
  for (; j < d; j++) sq += (x[j] - mu) * (x[j] - mu);
  inv = 1.0 / __builtin_sqrt(sq / d + (double)eps);
}

static void normalize_row(const float* x, float* y, int d, double mu, double inv, const float* gamma,
                          const float* beta) {
  const vf m = splat((float)mu), s = splat((float)inv);
  int j = 0;
  for (; j + VL <= d; j += VL) {
    vf v = (load(x + j) - m) * s * load(gamma + j);
    if (beta) v += load(beta + j);
    store(y + j, v);
  }
  if (j < d) {
    const int w = d - j;
    vf v = (load_part(x + j, w) - m) * s * load_part(gamma + j, w);
    if (beta) v += load_part(beta + j, w);
    store_part(y + j, v, w);
  }
}

void layer_norm(const float* x, float* y, int64_t rows, int d, float eps, const float* gamma, const float* beta,
                float* mean, float* inv_std) {
  for (int64_t r = 0; r < rows; r++) {
    double mu, inv;
    row_stats(x + r * d, d, eps, mu, inv);
    normalize_row(x + r * d, y + r * d, d, mu, inv, gamma, beta);
    if (mean) mean[r] = (float)mu;
    if (inv_std) inv_std[r] = (float)inv;
  }
}

void skip_layer_norm(const float* x, const float* skip, int64_t skip_rows, const float* bias, const float* gamma,
                     const float* beta, float* y, float* sum_out, int64_t rows, int d, float eps, int64_t row0) {
  // The sum goes to sum_out when asked for, else to y, and is normalised in place from there.
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * d;
    const float* sr = skip + ((row0 + r) % skip_rows) * d;
    float* t = sum_out ? sum_out + r * d : y + r * d;
    int j = 0;
    for (; j + VL <= d; j += VL) {
      vf v = load(xr + j) + load(sr + j);
      if (bias) v += load(bias + j);
      store(t + j, v);
    }
    for (; j < d; j++) t[j] = bias ? xr[j] + sr[j] + bias[j] : xr[j] + sr[j];
    double mu, inv;
    row_stats(t, d, eps, mu, inv);
    normalize_row(t, y + r * d, d, mu, inv, gamma, beta);
  }
}

void softmax(const float* x, float* y, int64_t rows, int d) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    vf mv = splat(-__builtin_inff());
    int j = 0;
    for (; j + VL <= d; j += VL) mv = vmax_keep(mv, load(xr + j));
    float m = hmax_keep(mv, -__builtin_inff());
    for (; j < d; j++)
      if (xr[j] > m) m = xr[j];
    const vf mm = splat(m);
    vf sv = vf{};
    j = 0;
    for (; j + VL <= d; j += VL) {
      const vf e = vexp(load(xr + j) - mm);
      store(yr + j, e);
      sv += e;
    }
    float sum = hsum(sv);
    if (j < d) {
      const int w = d - j;
      const vf e = vexp(load_part(xr + j, w) - mm);
      store_part(yr + j, e, w);
      for (int l = 0; l < w; l++) sum += e[l];
    }
    const vf inv = splat(1.0f / sum);
    j = 0;
    for (; j + VL <= d; j += VL) store(yr + j, load(yr + j) * inv);
    for (; j < d; j++) yr[j] *= inv[0];
  }
}

static inline vf act_of(vf x, int act) {
  if (act == ACT_GELU_ERF) return vgelu_erf(x);
  if (act == ACT_GELU_TANH) return vgelu_tanh(x);
  if (act == ACT_RELU) return vrelu(x);
  if (act == ACT_SIGMOID) return vsigmoid(x);
  return x;
}

// Elements [i0, i0 + n) of y = act(x + bias[i % bias_len]); the pointers are already at element i0.
void activation(const float* x, float* y, int64_t n, const float* bias, int64_t bias_len, int64_t i0, int act) {
  int64_t i = 0;
  if (!bias) {
    for (; i + VL <= n; i += VL) store(y + i, act_of(load(x + i), act));
    if (i < n) store_part(y + i, act_of(load_part(x + i, n - i), act), n - i);
    return;
  }
  while (i < n) {
    // Runs that stay inside one repetition of the bias row.
    const int64_t bj = (i0 + i) % bias_len;
    const int64_t run = bias_len - bj < n - i ? bias_len - bj : n - i;
    int64_t j = 0;
    for (; j + VL <= run; j += VL) store(y + i + j, act_of(load(x + i + j) + load(bias + bj + j), act));
    if (j < run) {
      const int w = run - j;
      store_part(y + i + j, act_of(load_part(x + i + j, w) + load_part(bias + bj + j, w), act), w);
    }
    i += run;
  }
}

// Elements [i0, i0 + n) of y = a + b[i % b_len]; a and y already at element i0.
void add(const float* a, const float* b, float* y, int64_t n, int64_t b_len, int64_t i0) {
  int64_t i = 0;
  while (i < n) {
    const int64_t bj = (i0 + i) % b_len;
    const int64_t run = b_len - bj < n - i ? b_len - bj : n - i;
    int64_t j = 0;
    for (; j + VL <= run; j += VL) store(y + i + j, load(a + i + j) + load(b + bj + j));
    for (; j < run; j++) y[i + j] = a[i + j] + b[bj + j];
    i += run;
  }
}

// Whether x[0, n) is finite: the OR of "exponent all ones" over whole vectors, checked every 4096 elements so a
// hit stops early (the common answer, all finite, reads everything once at vector width).
bool all_finite(const float* x, int64_t n) {
  const vi mask = (vi){} + 0x7f800000;
  int64_t i = 0;
  while (i < n) {
    const int64_t e = n - i < 4096 ? n : i + 4096;
    vi bad = (vi){};
    for (; i + VL <= e; i += VL) {
      vi bits;
      std::memcpy(&bits, x + i, sizeof bits);
      bad |= (bits & mask) == mask;
    }
    for (; i < e; i++) {
      uint32_t b;
      std::memcpy(&b, x + i, 4);
      if ((b & 0x7f800000u) == 0x7f800000u) return false;
    }
    for (int l = 0; l < VL; l++)
      if (bad[l]) return false;
  }
  return true;
}

}  // namespace MHF_NS
}  // namespace mhf
