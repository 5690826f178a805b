// Portable SIMD on GCC/Clang vector extensions. This header is compiled once per instruction set (the build
// passes -DMHF_ISA_AVX512 + -mavx512f…, -DMHF_ISA_AVX2 + -mavx2 -mfma, or nothing for the portable build):
// the same source then becomes 16-, 8- or 4-wide code, and dispatch.cc picks one at run time. Writing the
// kernels once keeps the three builds from drifting apart; only the GEMM micro-kernel tile differs per ISA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(MHF_ISA_AVX512)
#define MHF_NS avx512
constexpr int VL = 16;
#elif defined(MHF_ISA_AVX2)
#define MHF_NS avx2
constexpr int VL = 8;
#else
#define MHF_NS portable
constexpr int VL = 4;
#endif

namespace mhf {
namespace MHF_NS {

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));

static inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// Through the intrinsic: GCC 12 turns `vf{} + x` into an add (because of -0) and a lane-by-lane init into a
// ymm broadcast + insert; set1 becomes one vbroadcastss or an embedded {1toN} operand of the FMA using it.
static inline vf splat(float x) {
#if defined(MHF_ISA_AVX512)
  return (vf)_mm512_set1_ps(x);
#elif defined(MHF_ISA_AVX2)
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE__)
  return (vf)_mm_set1_ps(x);
#else
  vf v;
  for (int i = 0; i < VL; i++) v[i] = x;
  return v;
#endif
}

// First n < VL lanes from p, the others zero (tails of rows that are not a whole number of vectors).
static inline vf load_part(const float* p, int n) {
  float t[VL] = {};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return load(t);
}
static inline void store_part(float* p, vf v, int n) {
  float t[VL];
  store(t, v);
  for (int i = 0; i < n; i++) p[i] = t[i];
}

static inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < VL; i++) s += v[i];
  return s;
}
// Maximum ignoring NaN lanes (as JS `x > max` does): a NaN lane compares false and keeps m.
static inline vf vmax_keep(vf m, vf x) { return x > m ? x : m; }

// ReLU as the reference's Math.max(x, 0): NaN stays NaN (a plain max would give 0 for it).
static inline vf vrelu(vf x) { return ((x > 0.0f) | (x != x)) ? x : vf{}; }
static inline float hmax_keep(vf v, float m) {
  for (int i = 0; i < VL; i++)
    if (v[i] > m) m = v[i];
  return m;
}

// Whether any lane of a comparison mask (-1 / 0 per lane) is set: one movemask, not a loop over lanes.
static inline bool any_lane(vi m) {
#if defined(MHF_ISA_AVX512)
  return _mm512_movepi32_mask((__m512i)m) != 0;
#elif defined(MHF_ISA_AVX2)
  return _mm256_movemask_ps((__m256)m) != 0;
#elif defined(__SSE__)
  return _mm_movemask_ps((__m128)m) != 0;
#else
  for (int i = 0; i < VL; i++)
    if (m[i]) return true;
  return false;
#endif
}

// e^x in float32 (about 1 ulp): x = n·ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the
// exponent bits. x > 88.37 gives +inf, x < -87.33 gives 0 (no denormals), NaN stays NaN.
static inline vf vexp(vf x) {
  const vf xc = x < -87.33f ? splat(-87.33f) : (x > 88.37f ? splat(88.37f) : x);
  const vf magic = splat(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
  const vf n = (xc * 1.44269504088896341f + magic) - magic;
  vf r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  vf y = p * (vf)e;
  y = x < -87.33f ? splat(0.0f) : y;
  y = x > 88.37f ? splat(__builtin_inff()) : y;
  return x != x ? x : y;
}

// Sigmoid 1 / (1 + e^-x) with vexp (about 2 ulp): 0 below about -88 (the reference rounds to a denormal there),
// NaN stays NaN.
static inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// GELU (erf form) as the JS reference geluErfFloat32 computes it: erf by the same rational x·P(x²)/Q(x²) on
// the argument clamped to [-4, 4]; below z = x/√2 = -2, 0.5·x·erfc(-z) (x = -1e6 gives -0, -inf gives NaN).
static inline vf vgelu_erf(vf x) {
  const vf z0 = x * 0.70710678118654752f;
  const vf z = z0 < -4.0f ? splat(-4.0f) : (z0 > 4.0f ? splat(4.0f) : z0);
  const vf z2 = z * z;
  vf p = splat(-2.72614225801306e-10f);
  p = p * z2 + 2.77068142495902e-8f;
  p = p * z2 - 2.10102402082508e-6f;
  p = p * z2 - 5.69250639462346e-5f;
  p = p * z2 - 7.34990630326855e-4f;
  p = p * z2 - 2.95459980854025e-3f;
  p = p * z2 - 1.60960333262415e-2f;
  vf q = splat(-1.45660718464996e-5f);
  q = q * z2 - 2.13374055278905e-4f;
  q = q * z2 - 1.68282697438203e-3f;
  q = q * z2 - 7.37332916720468e-3f;
  q = q * z2 - 1.42647390514189e-2f;
  vf one_plus_erf = 1.0f + z * p / q;
  one_plus_erf = z0 <= -4.0f ? splat(-4.940696718414017e-8f) : one_plus_erf;
  one_plus_erf = z0 >= 4.0f ? splat(2.0f) : one_plus_erf;
  vf y = 0.5f * x * one_plus_erf;
  // For z < 0, 1 + erf(z) cancels: float32 arithmetic there is off by up to 3e-7 absolute, and the tail
  // (z < -2, erfc by the Laplace continued fraction) by several ulps. Those lanes — negative inputs, about half
  // of a GELU's — take the reference's float64 formulas: the rational on whole float64 vectors (half a float
  // vector each), merged by a lane select; the tail (x < -2.83: 0.02% of the FFN activations of bench/cpu.ts's
  // random-weight BERT, likely more in trained models) lane by lane.
  if (!any_lane(z0 < 0.0f)) return y;
  typedef float vfh __attribute__((vector_size(sizeof(vf) / 2)));
  typedef double vd __attribute__((vector_size(sizeof(vf))));
  vfh halves[2];
  std::memcpy(halves, &x, sizeof x);
  for (int h = 0; h < 2; h++) {
    const vd xd = __builtin_convertvector(halves[h], vd);
    const vd zd = xd * 0.70710678118654752;
    const vd z2d = zd * zd;
    vd pd = z2d * -2.72614225801306e-10 + 2.77068142495902e-8;
    pd = pd * z2d - 2.10102402082508e-6;
    pd = pd * z2d - 5.69250639462346e-5;
    pd = pd * z2d - 7.34990630326855e-4;
    pd = pd * z2d - 2.95459980854025e-3;
    pd = pd * z2d - 1.60960333262415e-2;
    vd qd = z2d * -1.45660718464996e-5 - 2.13374055278905e-4;
    qd = qd * z2d - 1.68282697438203e-3;
    qd = qd * z2d - 7.37332916720468e-3;
    qd = qd * z2d - 1.42647390514189e-2;
    halves[h] = __builtin_convertvector(0.5 * xd * (1.0 + zd * pd / qd), vfh);
  }
  vf r;
  std::memcpy(&r, halves, sizeof r);
  y = (z0 < 0.0f) & (z0 >= -2.0f) ? r : y;
  if (!any_lane(z0 < -2.0f)) return y;
  // The reference's erfcTail is a 48-term continued fraction (a chain of divisions, ~150 ns a lane); libm's
  // float64 erfc gives the same float32 result about 10x faster.
  for (int i = 0; i < VL; i++) {
    const double t = -(double)x[i] * 0.70710678118654752;
    if (!(t > 2.0)) continue;
    if (t > 3.0e18) {
      y[i] = 0.5f * x[i] * 0.0f;  // -0, or NaN for -inf as the reference
      continue;
    }
    y[i] = (float)(0.5 * (double)x[i] * std::erfc(t));
  }
  return y;
}

// tanh-approximated GELU (FastGelu) as x·sigmoid(2u) = 0.5·x·(1 + tanh(u)): the same function without the
// cancellation of 1 + tanh(u) for negative u, so it stays within a few float32 ulps of the float64 reference.
// u → -inf gives x/inf = -0 (NaN for x = -inf, as the reference), u → +inf gives x.
static inline vf vgelu_tanh(vf x) {
  const vf u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x / (1.0f + vexp(-2.0f * u));
}

}  // namespace MHF_NS
}  // namespace mhf
