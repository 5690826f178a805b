// Flash-style attention rows for one ISA (compiled per ISA, see vec.h). The semantics are those of the JS
// kernel (src/backends/cpu/attention-kernel.ts, attentionRowsJs), block for block:
//  - query rows walk their allowed keys in blocks of 64 with a running maximum and sum (online softmax); no
//    [Sq, Skv] score matrix exists, only one 4-row × 64-key tile;
//  - a key block whose allowed scores are all -inf or NaN (NaN never wins the maximum) adds nothing, and a row
//    whose sum stays 0 is written as zeros (PyTorch SDPA's NaN guard); a NaN or +inf that does win poisons
//    the row through exp, as in the reference;
//  - rows >= the query length, and rows with no allowed key, are zeros; keys >= the key length or past the
//    causal limit are never read; when some value is not finite, zero probabilities skip their keys so masked
//    keys cannot leak NaN (0·inf).
// Work is register-blocked like a GEMM: K is packed transposed ([h][key]) and V row-padded once per call, so the
// score tile is RT rows × CW vectors of keys and the P·V tile RT rows × CW vectors of values, both FMA
// broadcasts into register accumulators.
#include <cstdlib>

#include "kernels.h"
#include "vec.h"

namespace mhf {
namespace MHF_NS {

constexpr int KB = 64;                 // keys per online-softmax block (as the JS kernel)
constexpr int RT = 4;                  // query rows per tile
constexpr int CW = VL == 16 ? 4 : 2;   // vectors per register tile row (fits 16 or 32 vector registers)

// Per-thread buffers, grown to the largest problem seen. Plain malloc, not std::vector: a std template
// instantiated in this AVX-512 object could be merged by the linker into the portable build's callers.
struct Buffer {
  float* p = nullptr;
  size_t n = 0;
  ~Buffer() { std::free(p); }
};
struct Scratch {
  Buffer kt, vp, qs, acc, sc;
};
static thread_local Scratch scratch;

static float* grow(Buffer& b, size_t n) {
  if (b.n < n) {
    std::free(b.p);
    b.p = static_cast<float*>(std::malloc(n * sizeof(float)));
    if (!b.p) std::abort();
    b.n = n;
  }
  return b.p;
}

// sc[r·KB + v·VL + l] = Σ_h qs[r·H + h] · kt[h·KP + v·VL + l] for NVC vectors of keys. Q rows stay row-major
// (a broadcast reads any address; the [h][row] layout cost a lane extract per element to build).
template <int NVC>
static void score_tile(int H, const float* qs, const float* kt, int64_t KP, float* sc) {
  vf s[RT][NVC];
  for (int r = 0; r < RT; r++)
    for (int v = 0; v < NVC; v++) s[r][v] = vf{};
  for (int h = 0; h < H; h++, qs++, kt += KP) {
    vf kv[NVC];
    for (int v = 0; v < NVC; v++) kv[v] = load(kt + v * VL);
    for (int r = 0; r < RT; r++) {
      const vf q = splat(qs[r * H]);
      for (int v = 0; v < NVC; v++) s[r][v] += q * kv[v];
    }
  }
  for (int r = 0; r < RT; r++)
    for (int v = 0; v < NVC; v++) store(sc + r * KB + v * VL, s[r][v]);
}

// acc[r·HVp + v·VL…] += Σ_j p[r·KB + j] · vp[j·HVp + v·VL…] over nb keys, NVC vectors of value columns.
template <int NVC>
static void pv_tile(int nb, const float* p, const float* vp, int64_t HVp, float* acc) {
  vf a[RT][NVC];
  for (int r = 0; r < RT; r++)
    for (int v = 0; v < NVC; v++) a[r][v] = load(acc + r * HVp + v * VL);
  for (int j = 0; j < nb; j++, vp += HVp) {
    vf x[NVC];
    for (int v = 0; v < NVC; v++) x[v] = load(vp + v * VL);
    for (int r = 0; r < RT; r++) {
      const vf pr = splat(p[r * KB + j]);
      for (int v = 0; v < NVC; v++) a[r][v] += pr * x[v];
    }
  }
  for (int r = 0; r < RT; r++)
    for (int v = 0; v < NVC; v++) store(acc + r * HVp + v * VL, a[r][v]);
}

template <template <int> class F, typename... A>
static void by_width(int nvc, A... args) {
  switch (nvc) {
    case 1: F<1>::run(args...); break;
    case 2: F<2>::run(args...); break;
    case 3: F<CW >= 3 ? 3 : 1>::run(args...); break;
    default: F<CW>::run(args...); break;
  }
}
template <int N> struct Score { static void run(int H, const float* q, const float* k, int64_t KP, float* s) { score_tile<N>(H, q, k, KP, s); } };
template <int N> struct PV { static void run(int nb, const float* p, const float* v, int64_t HVp, float* a) { pv_tile<N>(nb, p, v, HVp, a); } };

void attention_rows(const AttentionProblem& P, int b, int n, int r0, int r1) {
  const int g = n / (P.heads / P.kvHeads);
  int seqQ = P.seqQ, seqKV = P.seqKV;
  int64_t qb, kb, vb, ob;
  if (P.cuSeqlens) {
    const int64_t start = P.cuSeqlens[b];
    seqQ = seqKV = P.cuSeqlens[b + 1] - P.cuSeqlens[b];
    qb = P.ql.offset + start * P.ql.seq + n * P.ql.head;
    kb = P.kl.offset + start * P.kl.seq + g * P.kl.head;
    vb = P.vl.offset + start * P.vl.seq + g * P.vl.head;
    ob = P.ol.offset + start * P.ol.seq + n * P.ol.head;
  } else {
    qb = P.ql.offset + b * P.ql.batch + n * P.ql.head;
    kb = P.kl.offset + b * P.kl.batch + g * P.kl.head;
    vb = P.vl.offset + b * P.vl.batch + g * P.vl.head;
    ob = P.ol.offset + b * P.ol.batch + n * P.ol.head;
  }
  if (r1 > seqQ) r1 = seqQ;
  if (r0 >= r1) return;
  const int H = P.headSize, HV = P.vHeadSize;
  int keyLen = P.keyLengths ? P.keyLengths[b] : seqKV;
  keyLen = keyLen < 0 ? 0 : (keyLen > seqKV ? seqKV : keyLen);
  int queryLen = P.queryLengths ? P.queryLengths[b] : seqQ;
  if (queryLen > seqQ) queryLen = seqQ;
  auto key_end = [&](int i) {
    int e = i < queryLen ? keyLen : 0;
    if (P.causal && (int64_t)i + P.causalOffset + 1 < e) e = i + P.causalOffset + 1;
    return e < 0 ? 0 : e;
  };
  // The allowed key range only grows with the row, so the last live row reads the most keys.
  const int last = (r1 < queryLen ? r1 : queryLen) - 1;
  const int keys = last >= r0 ? key_end(last) : 0;
  if (keys == 0 || HV == 0) {
    for (int i = r0; i < r1; i++)
      for (int c = 0; c < HV; c++) P.out[ob + (int64_t)i * P.ol.seq + c] = 0;
    return;
  }

  Scratch& S = scratch;
  const int64_t KP = (keys + KB - 1) / KB * KB;
  const int64_t HVp = (HV + VL - 1) / VL * VL;
  float* kt = grow(S.kt, (size_t)H * KP);
  float* vp = grow(S.vp, (size_t)KP * HVp);
  float* qs = grow(S.qs, (size_t)H * RT);
  float* acc = grow(S.acc, (size_t)RT * HVp);
  float* sc = grow(S.sc, (size_t)RT * KB);

  // K transposed through 16 × 16 blocks: rows read and kt rows written contiguously. Storing key by key into kt
  // (a stride of KP floats, 512 bytes at 128 keys) stalled on 4K-aliased stores: a quarter of the kernel's time
  // at [8,12,128,64] (perf annotate).
  for (int j0 = 0; j0 < keys; j0 += 16) {
    const int jn = keys - j0 < 16 ? keys - j0 : 16;
    for (int h0 = 0; h0 < H; h0 += 16) {
      const int hn = H - h0 < 16 ? H - h0 : 16;
      float tile[16][16];
      // Whole blocks with constant trip counts (vector moves; a variable-length copy became `rep movs`).
      for (int j = 0; j < jn; j++) {
        const float* src = P.k + kb + (int64_t)(j0 + j) * P.kl.seq + h0;
        if (hn == 16)
          for (int h = 0; h < 16; h++) tile[j][h] = src[h];
        else
          for (int h = 0; h < hn; h++) tile[j][h] = src[h];
      }
      for (int h = 0; h < hn; h++) {
        float* dst = kt + (int64_t)(h0 + h) * KP + j0;
        if (jn == 16)
          for (int j = 0; j < 16; j++) dst[j] = tile[j][h];
        else
          for (int j = 0; j < jn; j++) dst[j] = tile[j][h];
      }
    }
  }
  for (int h = 0; h < H; h++)
    for (int64_t j = keys; j < KP; j++) kt[h * KP + j] = 0;
  vf poison = vf{};
  for (int j = 0; j < keys; j++) {
    const float* src = P.v + vb + (int64_t)j * P.vl.seq;
    float* dst = vp + j * HVp;
    int c = 0;
    for (; c + VL <= HV; c += VL) {
      const vf x = load(src + c);
      store(dst + c, x);
      poison += x * 0.0f;
    }
    if (c < HV) {
      const vf x = load_part(src + c, HV - c);
      store(dst + c, x);
      poison += x * 0.0f;
    }
  }
  for (int64_t j = keys; j < KP; j++)
    for (int64_t c = 0; c < HVp; c++) vp[j * HVp + c] = 0;
  bool finite = true;
  for (int l = 0; l < VL; l++) finite = finite && poison[l] == 0.0f;

  const float* bias = P.bias ? P.bias + b * P.biasBatch + n * P.biasHead : nullptr;
  const float ninf = -__builtin_inff();
  const int hvVecs = (int)(HVp / VL);

  for (int t0 = r0; t0 < r1; t0 += RT) {
    int end[RT];
    float rmax[RT], rsum[RT];
    int tileKeys = 0;
    for (int r = 0; r < RT; r++) {
      const int i = t0 + r;
      end[r] = i < r1 ? key_end(i) : 0;
      if (end[r] > tileKeys) tileKeys = end[r];
      rmax[r] = ninf;
      rsum[r] = 0;
      const float* q = P.q + qb + (int64_t)i * P.ql.seq;
      float* qr = qs + r * H;
      if (end[r] > 0)
        for (int h = 0; h < H; h++) qr[h] = q[h] * P.scale;
      else
        for (int h = 0; h < H; h++) qr[h] = 0.0f;
    }
    for (int64_t x = 0; x < RT * HVp; x++) acc[x] = 0;

    for (int j0 = 0; j0 < tileKeys; j0 += KB) {
      const int nb = tileKeys - j0 < KB ? tileKeys - j0 : KB;
      const int nvk = (nb + VL - 1) / VL;
      for (int v = 0; v < nvk; v += CW)
        by_width<Score>(nvk - v < CW ? nvk - v : CW, H, qs, kt + j0 + v * VL, KP, sc + v * VL);
      for (int r = 0; r < RT; r++) {
        float* s = sc + r * KB;
        const int limit = end[r] < j0 + nb ? end[r] : j0 + nb;
        const int cnt = limit - j0;
        float bmax = ninf;
        if (cnt > 0 && bias) {
          const float* br = bias + (int64_t)(t0 + r) * P.biasRow + j0;
          for (int j = 0; j < cnt; j++) s[j] += br[j];
        }
        // Row maximum a vector at a time (NaN lanes keep the running value, as `s[j] > bmax` did).
        {
          vf vm = splat(ninf);
          int j = 0;
          for (; j + VL <= cnt; j += VL) vm = vmax_keep(vm, load(s + j));
          bmax = hmax_keep(vm, ninf);
          for (; j < cnt; j++)
            if (s[j] > bmax) bmax = s[j];
        }
        if (bmax == ninf) {
          for (int j = 0; j < nb; j++) s[j] = 0;
          continue;
        }
        if (bmax > rmax[r]) {
          if (rsum[r] != 0) {
            const float f = vexp(splat(rmax[r] - bmax))[0];
            rsum[r] *= f;
            float* a = acc + r * HVp;
            for (int64_t c = 0; c < HVp; c++) a[c] *= f;
          }
          rmax[r] = bmax;
        }
        const vf m = splat(rmax[r]);
        vf sum = vf{};
        int j = 0;
        for (; j + VL <= cnt; j += VL) {
          const vf e = vexp(load(s + j) - m);
          store(s + j, e);
          sum += e;
        }
        if (j < cnt) {
          const vf e = vexp(load_part(s + j, cnt - j) - m);
          store_part(s + j, e, cnt - j);
          for (int l = 0; l < cnt - j; l++) sum[l] += e[l];
        }
        rsum[r] += hsum(sum);
        for (j = cnt; j < nb; j++) s[j] = 0;
      }
      if (finite) {
        for (int v = 0; v < hvVecs; v += CW)
          by_width<PV>(hvVecs - v < CW ? hvVecs - v : CW, nb, sc, vp + (int64_t)j0 * HVp + v * VL, HVp,
                       acc + v * VL);
      } else {
        for (int r = 0; r < RT; r++)
          for (int j = 0; j < nb; j++) {
            const float pr = sc[r * KB + j];
            if (pr == 0) continue;
            const float* vr = vp + (int64_t)(j0 + j) * HVp;
            for (int c = 0; c < HV; c++) acc[r * HVp + c] += pr * vr[c];
          }
      }
    }

    for (int r = 0; r < RT && t0 + r < r1; r++) {
      float* o = P.out + ob + (int64_t)(t0 + r) * P.ol.seq;
      if (rsum[r] == 0) {
        for (int c = 0; c < HV; c++) o[c] = 0;
        continue;
      }
      const float inv = 1.0f / rsum[r];
      for (int c = 0; c < HV; c++) o[c] = acc[r * HVp + c] * inv;
    }
  }
}

}  // namespace MHF_NS
}  // namespace mhf
