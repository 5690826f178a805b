// AssemblyScript source of the WebAssembly SIMD (128-bit, f32x4) flash-attention kernel used by
// src/backends/cpu/attention-wasm.ts. Built by `npm run build:wasm` (asc -O3 --enable simd) and embedded as
// base64 into src/backends/cpu/wasm/attention-wasm.generated.ts by scripts/embed-wasm.mjs.
//
// The module owns no data: the JS side copies a (batch, head)'s rows (or a batch's rows of all heads) into this
// module's memory and passes byte addresses and row strides (all float32, row-major):
//   packKV   raw K (keys rows of H, row stride kLd) → panels of NR keys [key / NR][H][NR]; raw V (keys rows of
//            HV, row stride vLd) → panels of NR columns [column / NR][keysPad][NR]; both zero padded. Returns
//            whether every value of V is finite.
//   attend   query rows (H floats, row stride qLd) against the packed keys and values → output rows (HV floats,
//            row stride outLd), f32 scores and accumulators (f64 for score + bias and the row sums): rows in groups
//            of GROUP, keys in blocks of KB with an online softmax (running max and sum per row), never more
//            than one MR×KB score tile at a time. Per 4-row tile and key block: scores Q·Kᵀ (MR×NR register
//            tile over the head dim), bias, masks (keys j >= keyEnd[row] get probability 0), the online-softmax
//            update with a SIMD polynomial exp, and P·V into the rows' accumulators (MR×NR register tile).
// Semantics follow the JS kernel (src/backends/cpu/attention-kernel.ts): NaN scores are ignored by the running
// max but propagate through exp; a row whose allowed keys all score -inf (or that has none) comes out as zeros;
// when some value is not finite, P·V skips zero probabilities so masked keys cannot leak NaN.
// Plain simd128 mul + add (no relaxed-simd in Node 20's V8 without a flag).
// No Mathf/Math calls: their lookup tables would be static data, and the JS side owns all of the memory.

/** Rows of the register tiles. */
const MR: i32 = 4;
/** Keys (scores) or value columns (P·V) of the register tiles: two f32x4 vectors. */
const NR: i32 = 8;
/** Keys per online-softmax block. */
const KB: i32 = 64;
/** Query rows sharing one key block while its packed K and V stay in cache (a multiple of MR). */
const GROUP: i32 = 32;

// expf: x = n·ln2 + r, |r| <= ln2/2, e^x = 2^n · p(r) (Cephes coefficients, a few ulp);
// below EXP_MIN → 0. No f32x4.nearest / trunc_sat: V8 lowers those to long sequences on x64.
const EXP_MIN: f32 = -87.0;
const ROUND: f32 = 12582912.0;
const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const P0: f32 = 1.9875691500e-4;
const P1: f32 = 1.3981999507e-3;
const P2: f32 = 8.3334519073e-3;
const P3: f32 = 4.1665795894e-2;
const P4: f32 = 1.6666665459e-1;
const P5: f32 = 5.0000001201e-1;

/** e^x lane-wise for x <= 0: exactly 0 below EXP_MIN (and for -inf); NaN stays NaN. */
// @ts-ignore: decorator
@inline
function expv(x: v128): v128 {
  // pmax(x, c) = x < c ? c : x keeps NaN (max would too, but costs more).
  const xc = f32x4.pmax(x, f32x4.splat(EXP_MIN));
  // n = round(x·log2 e) by the 1.5·2^23 trick: t's low mantissa bits hold n, so t's bits give 2^n below.
  const t = f32x4.add(f32x4.mul(xc, f32x4.splat(LOG2E)), f32x4.splat(ROUND));
  const n = f32x4.sub(t, f32x4.splat(ROUND));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(P0), r), f32x4.splat(P1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P5));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1));
  // (bits(t) + 127) << 23 = (n + 127) << 23: the bits of 0x4B400000 shift out.
  const pow2 = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  const e = f32x4.mul(p, pow2);
  return v128.bitselect(f32x4.splat(0), e, f32x4.lt(x, f32x4.splat(EXP_MIN)));
}

/** Lanes [0, n) of x, the others 0 (0 <= n <= 4). */
// @ts-ignore: decorator
@inline
function firstLanes(x: v128, n: i32): v128 {
  const lane = i32x4(0, 1, 2, 3);
  return v128.and(x, i32x4.lt_s(lane, i32x4.splat(n)));
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline
function hsum(x: v128): f32 {
  return (
    f32x4.extract_lane(x, 0) + f32x4.extract_lane(x, 1) + (f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3))
  );
}

/**
 * Packs raw K (keys rows of H floats at k, row stride kLd floats) into kPack and raw V (keys rows of HV floats at
 * v, row stride vLd) into vPack (column panels of keysPad keys, keysPad = keys rounded up to NR). Returns 1 when
 * every value of V is finite, else 0.
 */
export function packKV(
  keys: i32,
  H: i32,
  HV: i32,
  k: usize,
  kLd: i32,
  v: usize,
  vLd: i32,
  kPack: usize,
  vPack: usize,
): i32 {
  const keysPad = (keys + NR - 1) & ~(NR - 1);
  // K: panel p holds keys [p·NR, p·NR + NR) as H rows of NR values.
  for (let j0 = 0; j0 < keysPad; j0 += NR) {
    const d = kPack + <usize>j0 * <usize>H * 4;
    for (let t = 0; t < NR; t++) {
      const j = j0 + t;
      let dst = d + <usize>t * 4;
      if (j < keys) {
        let src = k + <usize>j * <usize>kLd * 4;
        for (let h = 0; h < H; h++) {
          store<f32>(dst, load<f32>(src));
          src += 4;
          dst += NR * 4;
        }
      } else {
        for (let h = 0; h < H; h++) {
          store<f32>(dst, 0);
          dst += NR * 4;
        }
      }
    }
  }
  // V: panel c holds columns [c·NR, c·NR + NR) of every key.
  let poison = f32x4.splat(0);
  const panelBytes = <usize>keysPad * NR * 4;
  for (let c0 = 0; c0 < HV; c0 += NR) {
    const width = min(NR, HV - c0);
    let d = vPack + (<usize>(c0 / NR)) * panelBytes;
    for (let j = 0; j < keysPad; j++) {
      if (j >= keys) {
        v128.store(d, f32x4.splat(0));
        v128.store(d, f32x4.splat(0), 16);
      } else {
        const src = v + (<usize>j * <usize>vLd + <usize>c0) * 4;
        if (width === NR) {
          const a = v128.load(src);
          const b = v128.load(src, 16);
          v128.store(d, a);
          v128.store(d, b, 16);
          poison = f32x4.add(poison, f32x4.add(f32x4.mul(a, f32x4.splat(0)), f32x4.mul(b, f32x4.splat(0))));
        } else {
          for (let t = 0; t < NR; t++) {
            let x: f32 = 0;
            if (t < width) x = load<f32>(src + <usize>t * 4);
            store<f32>(d + <usize>t * 4, x);
            poison = f32x4.add(poison, f32x4.splat(x * 0));
          }
        }
      }
      d += NR * 4;
    }
  }
  return hsum(poison) == 0 ? 1 : 0;
}

/**
 * Scores of one MR-row tile against nPanels key panels: s[r·KB + j] = Σ_h qp[h·MR + r] · kp[h·NR + j] (kp advances
 * H·NR floats per panel, s NR floats).
 */
function scoreTile(H: i32, qp: usize, kp: usize, nPanels: i32, s: usize): void {
  const qEnd = qp + <usize>H * MR * 4;
  for (let p = 0; p < nPanels; p++) {
    let c00 = f32x4.splat(0);
    let c01 = f32x4.splat(0);
    let c10 = f32x4.splat(0);
    let c11 = f32x4.splat(0);
    let c20 = f32x4.splat(0);
    let c21 = f32x4.splat(0);
    let c30 = f32x4.splat(0);
    let c31 = f32x4.splat(0);
    let a = qp;
    let b = kp;
    while (a < qEnd) {
      const b0 = v128.load(b);
      const b1 = v128.load(b, 16);
      let av = v128.load32_splat(a);
      c00 = f32x4.add(c00, f32x4.mul(av, b0));
      c01 = f32x4.add(c01, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 4);
      c10 = f32x4.add(c10, f32x4.mul(av, b0));
      c11 = f32x4.add(c11, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 8);
      c20 = f32x4.add(c20, f32x4.mul(av, b0));
      c21 = f32x4.add(c21, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 12);
      c30 = f32x4.add(c30, f32x4.mul(av, b0));
      c31 = f32x4.add(c31, f32x4.mul(av, b1));
      a += MR * 4;
      b += NR * 4;
    }
    const o = s + <usize>p * NR * 4;
    v128.store(o, c00);
    v128.store(o, c01, 16);
    v128.store(o, c10, KB * 4);
    v128.store(o, c11, KB * 4 + 16);
    v128.store(o, c20, 2 * KB * 4);
    v128.store(o, c21, 2 * KB * 4 + 16);
    v128.store(o, c30, 3 * KB * 4);
    v128.store(o, c31, 3 * KB * 4 + 16);
    kp = b;
  }
}

/**
 * acc[r·ld + c] += Σ_{j < nb} p[r·KB + j] · V(j, c) for the MR rows of a tile and every column panel
 * (vp: the block's first key in panel 0, panels panelBytes apart; ld = HV rounded up to NR).
 */
function pvTile(nb: i32, p: usize, vp: usize, panelBytes: usize, acc: usize, ld: i32): void {
  const ld4 = <usize>ld * 4;
  for (let c = 0; c < ld; c += NR) {
    const r0 = acc + <usize>c * 4;
    let c00 = v128.load(r0);
    let c01 = v128.load(r0, 16);
    let c10 = v128.load(r0 + ld4);
    let c11 = v128.load(r0 + ld4, 16);
    let c20 = v128.load(r0 + 2 * ld4);
    let c21 = v128.load(r0 + 2 * ld4, 16);
    let c30 = v128.load(r0 + 3 * ld4);
    let c31 = v128.load(r0 + 3 * ld4, 16);
    let a = p;
    let b = vp;
    const end = p + <usize>nb * 4;
    while (a < end) {
      const b0 = v128.load(b);
      const b1 = v128.load(b, 16);
      let av = v128.load32_splat(a);
      c00 = f32x4.add(c00, f32x4.mul(av, b0));
      c01 = f32x4.add(c01, f32x4.mul(av, b1));
      av = v128.load32_splat(a, KB * 4);
      c10 = f32x4.add(c10, f32x4.mul(av, b0));
      c11 = f32x4.add(c11, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 2 * KB * 4);
      c20 = f32x4.add(c20, f32x4.mul(av, b0));
      c21 = f32x4.add(c21, f32x4.mul(av, b1));
      av = v128.load32_splat(a, 3 * KB * 4);
      c30 = f32x4.add(c30, f32x4.mul(av, b0));
      c31 = f32x4.add(c31, f32x4.mul(av, b1));
      a += 4;
      b += NR * 4;
    }
    v128.store(r0, c00);
    v128.store(r0, c01, 16);
    v128.store(r0 + ld4, c10);
    v128.store(r0 + ld4, c11, 16);
    v128.store(r0 + 2 * ld4, c20);
    v128.store(r0 + 2 * ld4, c21, 16);
    v128.store(r0 + 3 * ld4, c30);
    v128.store(r0 + 3 * ld4, c31, 16);
    vp += panelBytes;
  }
}

/** P·V when some value is not finite: zero probabilities are skipped, so unread keys cannot leak NaN. */
function pvScalar(nb: i32, p: usize, vp: usize, panelBytes: usize, acc: usize, ld: i32, HV: i32): void {
  for (let r = 0; r < MR; r++) {
    const ar = acc + <usize>r * <usize>ld * 4;
    const pr = p + <usize>r * KB * 4;
    for (let j = 0; j < nb; j++) {
      const x = load<f32>(pr + <usize>j * 4);
      if (x == 0) continue;
      const vj = vp + <usize>j * NR * 4;
      for (let c = 0; c < HV; c++) {
        const at = ar + <usize>c * 4;
        const vv = load<f32>(vj + (<usize>(c >> 3)) * panelBytes + <usize>(c & 7) * 4);
        store<f32>(at, load<f32>(at) + x * vv);
      }
    }
  }
}

/**
 * Bias, masks and the online-softmax update of one row's scores s[0, nb) (keys j0.. of the block; the first
 * `limit` may be read). Turns s into probabilities (0 past limit, up to nb rounded up to NR), updates the running
 * max and sum at stat (f64, f64) and rescales the row's accumulator (acc, ld floats) when the max grows.
 * With a bias, score + bias and its difference to the max are taken in f64 (xd: KB f64 of room), as the JS
 * kernel does: in f32 a -10000 mask would eat the score's low bits (while finfo.min still absorbs them, as in
 * PyTorch and onnxruntime).
 */
function softmaxRow(s: usize, nb: i32, limit: i32, bias: usize, xd: usize, stat: usize, acc: usize, ld: i32): void {
  const nbPad = (nb + NR - 1) & ~(NR - 1);
  if (limit <= 0) {
    for (let j = 0; j < nbPad; j += 4) v128.store(s + <usize>j * 4, f32x4.splat(0));
    return;
  }
  const full = limit & ~3;
  const tail = limit - full;
  // Block max, ignoring NaN: pmax(m, x) = m < x ? x : m.
  let blockMax: f64 = -Infinity;
  if (bias) {
    let mv = f64x2.splat(-Infinity);
    for (let j = 0; j < full; j += 4) {
      const sv = v128.load(s + <usize>j * 4);
      const bv = v128.load(bias + <usize>j * 4);
      const lo = f64x2.add(f64x2.promote_low_f32x4(sv), f64x2.promote_low_f32x4(bv));
      const hi = f64x2.add(
        f64x2.promote_low_f32x4(f32x4.shuffle(sv, sv, 2, 3, 0, 1)),
        f64x2.promote_low_f32x4(f32x4.shuffle(bv, bv, 2, 3, 0, 1)),
      );
      const at = xd + <usize>j * 8;
      v128.store(at, lo);
      v128.store(at, hi, 16);
      mv = f64x2.pmax(f64x2.pmax(mv, lo), hi);
    }
    blockMax = max(f64x2.extract_lane(mv, 0), f64x2.extract_lane(mv, 1));
    for (let j = full; j < limit; j++) {
      const x = <f64>load<f32>(s + <usize>j * 4) + <f64>load<f32>(bias + <usize>j * 4);
      store<f64>(xd + <usize>j * 8, x);
      if (x > blockMax) blockMax = x;
    }
  } else {
    let mv = f32x4.splat(-Infinity);
    for (let j = 0; j < full; j += 4) mv = f32x4.pmax(mv, v128.load(s + <usize>j * 4));
    let m32 = max(
      max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)),
      max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)),
    );
    for (let j = full; j < limit; j++) {
      const x = load<f32>(s + <usize>j * 4);
      if (x > m32) m32 = x;
    }
    blockMax = m32;
  }
  if (blockMax == -Infinity) {
    // No allowed key scored above -inf in this block: probability 0 everywhere.
    for (let j = 0; j < nbPad; j += 4) v128.store(s + <usize>j * 4, f32x4.splat(0));
    return;
  }
  let m = load<f64>(stat);
  let sum = load<f64>(stat, 8);
  if (blockMax > m) {
    if (sum != 0) {
      const f = f32x4.extract_lane(expv(f32x4.splat(<f32>(m - blockMax))), 0);
      sum *= <f64>f;
      const fv = f32x4.splat(f);
      for (let c = 0; c < ld; c += 4) {
        const at = acc + <usize>c * 4;
        v128.store(at, f32x4.mul(v128.load(at), fv));
      }
    }
    m = blockMax;
    store<f64>(stat, m);
  }
  let sv = f32x4.splat(0);
  const chunks = full + (tail ? 4 : 0);
  if (bias) {
    // x - m in f64, then e^(x - m) in f32. The tail chunk reads past limit: those lanes are dropped.
    const md = f64x2.splat(m);
    for (let j = 0; j < chunks; j += 4) {
      const at = xd + <usize>j * 8;
      const lo = f32x4.demote_f64x2_zero(f64x2.sub(v128.load(at), md));
      const hi = f32x4.demote_f64x2_zero(f64x2.sub(v128.load(at, 16), md));
      let e = expv(f32x4.shuffle(lo, hi, 0, 1, 4, 5));
      if (j + 4 > limit) e = firstLanes(e, limit - j);
      v128.store(s + <usize>j * 4, e);
      sv = f32x4.add(sv, e);
    }
  } else {
    // m is one of the f32 scores, so x - m is exact when close to 0.
    const mv = f32x4.splat(<f32>m);
    for (let j = 0; j < chunks; j += 4) {
      const at = s + <usize>j * 4;
      let e = expv(f32x4.sub(v128.load(at), mv));
      if (j + 4 > limit) e = firstLanes(e, limit - j);
      v128.store(at, e);
      sv = f32x4.add(sv, e);
    }
  }
  for (let j = chunks; j < nbPad; j += 4) v128.store(s + <usize>j * 4, f32x4.splat(0));
  store<f64>(stat, sum + <f64>hsum(sv), 8);
}

/**
 * Attention of `rows` query rows (H floats each at q, row stride qLd floats) against the keys and values packKV
 * packed (panels of vPanelKeys keys): output rows (HV floats each at out, row stride outLd) =
 * softmax(scale·q·Kᵀ + bias) · V over each row's keys [0, keyEnd[row]).
 * bias (0 = none) is [rows][>= keys] with row stride biasLd floats (0: one row for all). keyEnd holds one i32
 * per row, rounded up to a multiple of MR with zeros. work needs attendWorkBytes(H, HV) bytes.
 */
export function attend(
  rows: i32,
  H: i32,
  HV: i32,
  scale: f32,
  q: usize,
  qLd: i32,
  kPack: usize,
  vPack: usize,
  vPanelKeys: i32,
  vFinite: i32,
  bias: usize,
  biasLd: i32,
  keyEnd: usize,
  out: usize,
  outLd: i32,
  work: usize,
): void {
  const ld = (HV + NR - 1) & ~(NR - 1);
  const panelBytes = <usize>vPanelKeys * NR * 4;
  // work: packed Q [GROUP / MR][H][MR] | score tile [MR][KB] | acc [GROUP][ld] | stats [GROUP] × (f64 max, f64 sum)
  // | f64 scores + bias of one row [KB]
  const qp = work;
  const sTile = qp + <usize>GROUP * <usize>H * 4;
  const acc = sTile + <usize>MR * KB * 4;
  const stats = acc + <usize>GROUP * <usize>ld * 4;
  const xd = stats + <usize>GROUP * 16;
  for (let g0 = 0; g0 < rows; g0 += GROUP) {
    const groupRows = min(GROUP, rows - g0);
    const tiles = (groupRows + MR - 1) / MR;
    let groupKeys = 0;
    for (let r = 0; r < tiles * MR; r++) {
      const e = load<i32>(keyEnd + <usize>(g0 + r) * 4);
      if (e > groupKeys) groupKeys = e;
      store<f64>(stats + <usize>r * 16, -Infinity);
      store<f64>(stats + <usize>r * 16, 0, 8);
    }
    // Scaled query rows, MR rows interleaved per tile; rows past the group are zeros.
    for (let t = 0; t < tiles; t++) {
      const d = qp + <usize>t * <usize>H * MR * 4;
      for (let r = 0; r < MR; r++) {
        const row = g0 + t * MR + r;
        let dst = d + <usize>r * 4;
        if (row < rows) {
          let src = q + <usize>row * <usize>qLd * 4;
          for (let h = 0; h < H; h++) {
            store<f32>(dst, load<f32>(src) * scale);
            src += 4;
            dst += MR * 4;
          }
        } else {
          for (let h = 0; h < H; h++) {
            store<f32>(dst, 0);
            dst += MR * 4;
          }
        }
      }
    }
    memory.fill(acc, 0, <usize>tiles * MR * <usize>ld * 4);

    for (let j0 = 0; j0 < groupKeys; j0 += KB) {
      for (let t = 0; t < tiles; t++) {
        const r0 = t * MR;
        const ke = keyEnd + <usize>(g0 + r0) * 4;
        const tileKeys = max(max(load<i32>(ke), load<i32>(ke, 4)), max(load<i32>(ke, 8), load<i32>(ke, 12)));
        if (tileKeys <= j0) continue;
        const j1 = min(tileKeys, j0 + KB);
        const nb = j1 - j0;
        const nPanels = (nb + NR - 1) / NR;
        scoreTile(H, qp + <usize>r0 * <usize>H * 4, kPack + <usize>j0 * <usize>H * 4, nPanels, sTile);
        const accT = acc + <usize>r0 * <usize>ld * 4;
        for (let r = 0; r < MR; r++) {
          const row = g0 + r0 + r;
          const limit = min(j1, load<i32>(ke + <usize>r * 4)) - j0;
          const b = bias ? bias + (<usize>row * <usize>biasLd + <usize>j0) * 4 : 0;
          softmaxRow(
            sTile + <usize>r * KB * 4,
            nb,
            limit,
            b,
            xd,
            stats + <usize>(r0 + r) * 16,
            accT + <usize>r * <usize>ld * 4,
            ld,
          );
        }
        const vp = vPack + <usize>j0 * NR * 4;
        if (vFinite) pvTile(nb, sTile, vp, panelBytes, accT, ld);
        else pvScalar(nb, sTile, vp, panelBytes, accT, ld, HV);
      }
    }

    for (let r = 0; r < groupRows; r++) {
      const o = out + <usize>(g0 + r) * <usize>outLd * 4;
      const sum = load<f64>(stats + <usize>r * 16, 8);
      if (sum == 0) {
        // No allowed key, or every one scored -inf: zeros (PyTorch SDPA's NaN→0 guard).
        memory.fill(o, 0, <usize>HV * 4);
        continue;
      }
      const inv = <f32>(1 / sum);
      const a = acc + <usize>r * <usize>ld * 4;
      for (let c = 0; c < HV; c++) store<f32>(o + <usize>c * 4, load<f32>(a + <usize>c * 4) * inv);
    }
  }
}

/** Bytes of the work area attend needs for head sizes H and HV. */
export function attendWorkBytes(H: i32, HV: i32): i32 {
  const ld = (HV + NR - 1) & ~(NR - 1);
  return (GROUP * H + MR * KB + GROUP * ld + GROUP * 4 + KB * 2) * 4;
}
