/**
 * Tensor-core GEMM on WebGPU subgroup matrices: C[b] = A[b]·B[b] (+ bias) (→ GELU) (+ residual), f16 storage,
 * f32 accumulation (f16→f32 16×16×16 fragments: NVIDIA tensor cores through Vulkan cooperative matrices; the
 * staged kernel also takes Apple's 8×8×8 config — it then moves halves one at a time since a lane holds 2 values
 * of a fragment row instead of 8 — and Intel's 8×16×16 on 16-wide subgroups, TcFrag; both tested on emulated
 * fragments only).
 *
 * A workgroup of WM×WN subgroups computes a BM×BN tile of C; each subgroup owns an (BM/WM)×(BN/WN) block as
 * FM×FN accumulator fragments, so every left fragment it loads is used FN times and every right one FM times.
 * The K loop is double-buffered through workgroup memory: while the fragments of step k are multiplied, the
 * global loads of step k+1 are already in flight into registers, stored into the other buffer afterwards —
 * one barrier per step. Tile rows are padded by 8 halves (16 bytes) so the rows a fragment load touches do not
 * start on the same bank, while keeping the 16-byte alignment cooperative-matrix loads want.
 *
 * The epilogue goes through a per-subgroup 16×16 f32 scratch: fragment → workgroup memory → each lane takes
 * 8 consecutive columns of one row, adds bias, applies GELU, adds the residual (all f32) and writes f16 once.
 * Edges (M, N, K not multiples of the tile) are zero-filled on load and bounds-checked on store; the "vec"
 * variant (K % 8 = 0, N % 8 = 0: every BERT and LLM layer) moves 8 halves per load and store.
 *
 * Split-K ("split"): workgroup z sums only K rows [z·kChunk, (z+1)·kChunk) and writes its f32 partial [M, N]
 * slice z of P, no epilogue; gemm() then runs the reduction that adds the slices and applies the epilogue. For
 * small M (batch-1 BERT: [128 × 3072]·[3072 × 768] is 24 tiles of 64×64 on an H200's 132 SMs).
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import {
  configLanes,
  type MatrixSyntax,
  matrixLoad,
  matrixStore,
  matrixTypes,
  SUBGROUP_BUILTINS,
  TC_HEADER,
} from "../precision.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import { bindings, ERF_WGSL, type StorageDecl } from "./common.js";

export interface TcTile {
  BM: number;
  BN: number;
  BK: number;
  /** Subgroups along M and N. */
  WM: number;
  WN: number;
  /**
   * Staged kernel: two register stages of prefetch instead of one (see tcGemmSource's deepLoop), with one
   * workgroup buffer or two. Not taken by tcTileFor: on the H200 it ran no faster than one stage on any BERT
   * shape or 4096³ (bench/h200-tc-tiles-deep-1129g.log) — the global loads' latency is not what limits the tile.
   */
  deep?: boolean;
  /**
   * Staged kernel: one workgroup buffer instead of two (see tcGemmSource's singleLoop) — two barriers per K step
   * but half the workgroup memory, which leaves room for a 64-deep step (more products per global-load latency).
   */
  single?: boolean;
  /**
   * No workgroup staging (tcGemmDirectSource): each subgroup loads its fragments straight from storage, the
   * reuse between subgroups left to the caches; BK is then ignored (the K step is one 16-deep fragment).
   */
  direct?: boolean;
}
export const TC_TILE_LARGE: TcTile = { BM: 128, BN: 128, BK: 32, WM: 2, WN: 4 };
/**
 * 128×128 with a 64-deep K step through one workgroup buffer (TcTile.single): twice the products per barrier
 * pair and per global-load latency. On the H200 it beat TC_TILE_LARGE where there are at least three waves of
 * tiles — 4096³ 153 vs 126 TFLOP/s, the 4096-token QKV 138 vs 125 and FFN1 138 vs 117 (576 and 768 tiles) —
 * and lost badly below two (the 4096-token FFN2, 192 tiles: 52 vs 91; the 1024-token shapes by 10–25%),
 * presumably one workgroup per SM instead of two (bench/h200-tc-tiles-single-1129d.log). Since TC_TILE_WIDE12
 * takes the grids this won, it runs where the device cannot run that one (256 invocations, under 45 KiB).
 */
export const TC_TILE_LARGE_K64: TcTile = { BM: 128, BN: 128, BK: 64, WM: 2, WN: 4, single: true };
/**
 * 128×192 through one buffer (subgroups of 64×48): for grids that one wave of them covers where 128×128 would
 * take one and a half — BERT's N = 768 layers at 4096 tokens are 128 such tiles on the H200's 132 SMs against
 * 192: the output projection 0.038 vs 0.050 ms, FFN2 0.143–0.145 vs 0.213 (bench/h200-tc-tiles-n768-1129d.log,
 * -n768b-1129d.log; the first timing after compiling it ran slower, 0.220). Since TC_TILE_WIDE12 takes such
 * grids, it runs where the device cannot run that one, and where 32 KiB of workgroup memory rule out the rest.
 */
export const TC_TILE_WIDE: TcTile = { BM: 128, BN: 192, BK: 32, WM: 2, WN: 4, single: true };
/**
 * 128×256 through one buffer, sixteen subgroups of 32×64 (512 invocations): for grids of at least three waves
 * of such tiles. On the H200 4096³ ran 173.6–174.9 TFLOP/s against 161–162 for the same tile as eight subgroups
 * of 64×64 and 150.8 for TC_TILE_LARGE_K64 in the same process, the 4096-token FFN1 (384 tiles) 0.143–0.144
 * against 0.149–0.152 ms; the 4096-token QKV (288 tiles) lost (0.121 vs 0.105) — bench/h200-tc-tiles-16sg-1129e.log
 * (eight subgroups: -64x64sg-1129e.log, -64x64sg-b-1129e.log, -auto-1129e.log).
 */
export const TC_TILE_HUGE: TcTile = { BM: 128, BN: 256, BK: 32, WM: 4, WN: 4, single: true };
/**
 * 128×192 as twelve subgroups of 64×32 (384 invocations) through one 48-deep buffer (45 824 bytes): for grids
 * of at least 96 such tiles below TC_TILE_HUGE's. On the H200 (bench/h200-tc-tiles-12sg-1129f.log, the
 * 4096-token BERT GEMMs each twice, against what was picked before): QKV 0.097/0.096 vs 0.105/0.106 ms
 * (128×128×64), output 0.037/0.036 vs 0.039 and FFN2 0.134 vs 0.149/0.150 (128×192 as 8 subgroups), and at 1024
 * tokens QKV 0.037 vs 0.050, FFN1 0.039 vs 0.042 (128×128); FFN1 at 4096 tokens 0.142/0.139 vs 0.143/0.144 for
 * TC_TILE_HUGE, which keeps it (4096³: 0.99 vs 0.79 ms). The same tile as twelve subgroups of 32×64 ran within
 * 1–4% of it; 64×192×48 (6 subgroups) and 128×96 (4) lost.
 */
export const TC_TILE_WIDE12: TcTile = { BM: 128, BN: 192, BK: 48, WM: 2, WN: 6, single: true };
/** Four subgroups of 64×64 each: more fragments per subgroup (16 accumulators), fewer threads. */
export const TC_TILE_LARGE_W4: TcTile = { BM: 128, BN: 128, BK: 32, WM: 2, WN: 2 };
export const TC_TILE_SMALL: TcTile = { BM: 64, BN: 64, BK: 32, WM: 2, WN: 2 };
/** One subgroup per workgroup (4×4 fragments), for compilers that need uniform fragment offsets. */
export const TC_TILE_SOLO: TcTile = { BM: 64, BN: 64, BK: 32, WM: 1, WN: 1 };
/** The direct kernel (tcGemmDirectSource): four subgroups of 64×64, fragments straight from storage. */
export const TC_TILE_DIRECT: TcTile = { BM: 128, BN: 128, BK: 16, WM: 2, WN: 2, direct: true };
/** The direct kernel with one subgroup (compilers that need uniform fragment offsets). */
export const TC_TILE_DIRECT_SOLO: TcTile = { BM: 64, BN: 64, BK: 16, WM: 1, WN: 1, direct: true };
/** 128×128 tensor-core tiles from this many up (see recordTcGemm). */
const TC_LARGE_MIN_TILES = 132;
/** TC_TILE_LARGE_K64 from this many 128×128 tiles up: three waves of an H200's 132 SMs. */
const TC_K64_MIN_TILES = 396;
/** TC_TILE_WIDE where its tiles make one nearly full wave of an H200's 132 SMs: this many up to 132. */
const TC_WIDE_MIN_TILES = 99;
/** TC_TILE_HUGE from this many 128×256 tiles up: about three waves of an H200's 132 SMs. */
const TC_HUGE_MIN_TILES = 384;
/**
 * TC_TILE_WIDE12 from this many 128×192 tiles up (below TC_TILE_HUGE's grids), where N is at least one such
 * tile wide (narrower products — per-head batched ones — would compute columns they do not have).
 */
const TC_WIDE12_MIN_TILES = 96;
const TC_WAVE = 132;
/** Fragment edge of the 16×16×16 config (the direct kernel takes only that one). */
const F = 16;
/**
 * A fragment shape: left M×K, right K×N, result M×N — the device's f16→f32 subgroup-matrix config
 * (F16Support.config): 16×16×16 on NVIDIA, 8×8×8 on Apple, 8×16×16 on Intel. The staged kernel takes each.
 * `lanes`: the subgroup size the config's fragments are spread over (32 unless given: Intel's run on 16).
 */
export interface TcFrag {
  M: number;
  N: number;
  K: number;
  lanes?: 16 | 32;
}
export const FRAG_16: TcFrag = { M: 16, N: 16, K: 16 };
const is16 = (fr: TcFrag) => fr.M === 16 && fr.N === 16 && fr.K === 16 && lanesOf(fr) === 32;
/** Invocations per subgroup the kernels lay their workgroups out for. */
export const lanesOf = (fr: TcFrag): number => fr.lanes ?? 32;
/** The fragment shape of a device's subgroup-matrix config (its subgroup width: precision.ts configLanes). */
export function tcFragOf(c: { M: number; N: number; K: number }): TcFrag {
  const lanes = configLanes(c);
  return lanes === 32 ? { M: c.M, N: c.N, K: c.K } : { M: c.M, N: c.N, K: c.K, lanes };
}
const PAD = 8;

export interface TcFlags {
  vec: boolean;
  bias: boolean;
  gelu: boolean;
  residual: boolean;
  /** Split-K partials: f32 output slices, no epilogue (bias, gelu, residual are then false). */
  split?: boolean;
}

const FIELDS: UniformFields = [
  ["M", "u32"],
  ["N", "u32"],
  ["K", "u32"],
  ["strideA", "u32"],
  ["strideB", "u32"],
  ["strideC", "u32"],
  ["kChunk", "u32"],
];

/** Workgroup memory of a tile config, in bytes (fragment shape `fr`: the epilogue's scratch per subgroup). */
export function tcSharedBytes(t: TcTile, fr: TcFrag = FRAG_16): number {
  if (t.direct) return 4 * t.WM * t.WN * F * F;
  const buffers = t.single ? 1 : 2;
  return buffers * 2 * (t.BM * (t.BK + PAD) + t.BK * (t.BN + PAD)) + 4 * t.WM * t.WN * fr.M * fr.N;
}

/**
 * `sgBuiltin`: the subgroup index and lane from the builtins (F16Support.sgBuiltin), not tid / 32. `fr`: the
 * fragment shape (the device's config).
 */
export function tcGemmSource(
  t: TcTile,
  f: TcFlags,
  syntax: MatrixSyntax,
  sgBuiltin = false,
  fr: TcFrag = FRAG_16,
): string {
  const { BM, BN, BK, WM, WN } = t;
  const SG = lanesOf(fr);
  const T = SG * WM * WN;
  const SMr = BM / WM;
  const SNc = BN / WN;
  if (SMr % fr.M || SNc % fr.N || BK % fr.K)
    throw new OpError(
      "webgpu.MatMul (fp16)",
      `tensor-core tile ${BM}×${BN}×${BK} (${WM}×${WN} subgroups) is not made of ${fr.M}×${fr.N}×${fr.K} fragments`,
    );
  const FM = SMr / fr.M;
  const FN = SNc / fr.N;
  // vec4<u32> epilogue stores are 8 halves, what a lane holds of a 16×16 fragment (tcFlagsFor).
  const lm = laneMap(fr);
  if (f.vec && lm.per !== 8)
    throw new OpError(
      "webgpu.MatMul (fp16)",
      `vec4 epilogue with ${fr.M}×${fr.N} fragments (${lm.per} values a lane)`,
    );
  const AS = BK + PAD; // halves per A-tile row
  const BS = BN + PAD; // halves per B-tile row
  const ASZ = BM * AS;
  const BSZ = BK * BS;
  const ty = matrixTypes(fr);
  const decls = epilogueDecls(f, f.vec ? "vec4<u32>" : "f16");

  // Global → registers (prefetch) and registers → workgroup memory, per thread, fully unrolled.
  const fetch: string[] = [];
  const stash: string[] = [];
  const decl: string[] = [];
  const per = f.vec ? [(BM * BK) / 8 / T, (BK * BN) / 8 / T] : [(BM * BK) / T, (BK * BN) / T];
  if (!per.every(Number.isInteger))
    throw new OpError(
      "webgpu.MatMul (fp16)",
      `tensor-core tile ${BM}×${BN}×${BK} with ${T} threads does not split its tiles evenly (${per.join(", ")} per thread)`,
    );
  if (f.vec) {
    const aChunks = (BM * BK) / 8 / T;
    const bChunks = (BK * BN) / 8 / T;
    for (let e = 0; e < aChunks; e++) {
      decl.push(`  var ra${e} = vec4<u32>(0u);`);
      fetch.push(`    { let idx = ${e * T}u + tid; let r = idx / ${BK / 8}u; let c = (idx % ${BK / 8}u) * 8u;
      let gm = m0 + r; let gk = k0 + c;
      ra${e} = select(vec4<u32>(0u), A[(aBase + min(gm, u.M - 1u) * u.K + min(gk, kHi - 8u)) / 8u], gm < u.M && gk < kHi); }`);
      stash.push(`    { let idx = ${e * T}u + tid; let o = dst * ${ASZ}u + (idx / ${BK / 8}u) * ${AS}u + (idx % ${BK / 8}u) * 8u;
      ${[0, 1, 2, 3].map((w) => `let h${w} = bitcast<vec2<f16>>(ra${e}[${w}]); As[o + ${2 * w}u] = h${w}.x; As[o + ${2 * w + 1}u] = h${w}.y;`).join(" ")} }`);
    }
    for (let e = 0; e < bChunks; e++) {
      decl.push(`  var rb${e} = vec4<u32>(0u);`);
      fetch.push(`    { let idx = ${e * T}u + tid; let r = idx / ${BN / 8}u; let c = (idx % ${BN / 8}u) * 8u;
      let gk = k0 + r; let gn = n0 + c;
      rb${e} = select(vec4<u32>(0u), B[(bBase + min(gk, kHi - 1u) * u.N + min(gn, u.N - 8u)) / 8u], gk < kHi && gn < u.N); }`);
      stash.push(`    { let idx = ${e * T}u + tid; let o = dst * ${BSZ}u + (idx / ${BN / 8}u) * ${BS}u + (idx % ${BN / 8}u) * 8u;
      ${[0, 1, 2, 3].map((w) => `let h${w} = bitcast<vec2<f16>>(rb${e}[${w}]); Bs[o + ${2 * w}u] = h${w}.x; Bs[o + ${2 * w + 1}u] = h${w}.y;`).join(" ")} }`);
    }
  } else {
    for (let e = 0; e < (BM * BK) / T; e++) {
      decl.push(`  var ra${e} = f16(0.0);`);
      fetch.push(`    { let idx = ${e * T}u + tid; let gm = m0 + idx / ${BK}u; let gk = k0 + idx % ${BK}u;
      ra${e} = select(f16(0.0), A[aBase + min(gm, u.M - 1u) * u.K + min(gk, kHi - 1u)], gm < u.M && gk < kHi); }`);
      stash.push(
        `    { let idx = ${e * T}u + tid; As[dst * ${ASZ}u + (idx / ${BK}u) * ${AS}u + idx % ${BK}u] = ra${e}; }`,
      );
    }
    for (let e = 0; e < (BK * BN) / T; e++) {
      decl.push(`  var rb${e} = f16(0.0);`);
      fetch.push(`    { let idx = ${e * T}u + tid; let gk = k0 + idx / ${BN}u; let gn = n0 + idx % ${BN}u;
      rb${e} = select(f16(0.0), B[bBase + min(gk, kHi - 1u) * u.N + min(gn, u.N - 1u)], gk < kHi && gn < u.N); }`);
      stash.push(
        `    { let idx = ${e * T}u + tid; Bs[dst * ${BSZ}u + (idx / ${BN}u) * ${BS}u + idx % ${BN}u] = rb${e}; }`,
      );
    }
  }

  const acc: string[] = [];
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) acc.push(`  var acc${i}_${j} = ${ty.result}();`);
  const mma: string[] = [];
  for (let ks = 0; ks < BK / fr.K; ks++) {
    mma.push("    {");
    for (let i = 0; i < FM; i++)
      mma.push(
        `      let a${i} = ${matrixLoad(syntax, ty.left, "&As", `cur * ${ASZ}u + (wm * ${SMr}u + ${i * fr.M}u) * ${AS}u + ${ks * fr.K}u`, `${AS}u`)};`,
      );
    for (let j = 0; j < FN; j++)
      mma.push(
        `      let b${j} = ${matrixLoad(syntax, ty.right, "&Bs", `cur * ${BSZ}u + ${ks * fr.K * BS}u + wn * ${SNc}u + ${j * fr.N}u`, `${BS}u`)};`,
      );
    for (let i = 0; i < FM; i++)
      for (let j = 0; j < FN; j++)
        mma.push(`      acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
    mma.push("    }");
  }

  const epi = epilogue(
    FM,
    FN,
    f,
    syntax,
    (i, j) => ({
      gm: `m0 + wm * ${SMr}u + ${i * fr.M}u + ${lm.row}`,
      gn: `n0 + wn * ${SNc}u + ${j * fr.N}u + ${lm.col}`,
      rowOk: "gm < u.M",
    }),
    fr,
  );

  // One register stage: the loads of tile kt + 1 are issued before tile kt's products and stored after them.
  const loop = `  workgroupBarrier();
  for (var kt = 0u; kt < steps; kt++) {
    let cur = kt & 1u; let dst = cur ^ 1u; let k0 = kLo + (kt + 1u) * ${BK}u;
    let more = kt + 1u < steps;
    if (more) {
${fetch.join("\n")}
    }
${mma.join("\n")}
    if (more) {
${stash.join("\n")}
    }
    workgroupBarrier();
  }`;
  // Two register stages (TcTile.deep): the K loop is unrolled by two so the register sets r* and q* alternate —
  // tile kt + 2 is fetched into one set while the other, fetched a whole step earlier, is stored for tile kt + 1.
  // A global load thus has two steps of products to land instead of one, and no set is copied into the other
  // (a copy at the end of a step would wait for the loads just issued, which is what one stage does). With one
  // workgroup buffer (TcTile.single) the stores wait behind a second barrier, as in singleLoop.
  const toQ = (line: string) => line.replace(/\br([ab])(\d+)\b/g, "q$1$2");
  const deepHalf = (use: "r" | "q", cur: number, ahead: string, next: string) => {
    const set = (lines: string[]) => (use === "r" ? lines : lines.map(toQ));
    const other = (lines: string[]) => (use === "r" ? lines.map(toQ) : lines);
    return `    {
      let cur = ${t.single ? 0 : cur}u; let dst = ${t.single ? 0 : 1 - cur}u;
      if (${ahead} < steps) {
        let k0 = kLo + (${ahead}) * ${BK}u;
${set(fetch).join("\n")}
      }
${mma.join("\n")}
${t.single ? "      workgroupBarrier();" : ""}
      if (${next} < steps) {
${other(stash).join("\n")}
      }
      workgroupBarrier();
    }`;
  };
  const deepLoop = `${decl.map(toQ).join("\n")}
  if (steps > 1u) {
    let k0 = kLo + ${BK}u;
${fetch.map(toQ).join("\n")}
  }
  workgroupBarrier();
  for (var kt = 0u; kt < steps; kt += 2u) {
${deepHalf("r", 0, "kt + 2u", "kt + 1u")}
    if (kt + 1u < steps) {
${deepHalf("q", 1, "kt + 3u", "kt + 2u")}
    }
  }`;

  // One workgroup buffer (TcTile.single): the next tile's loads fly during the products as in `loop`, but are
  // stored only after every subgroup has finished reading the buffer — a second barrier per step.
  const singleLoop = `  workgroupBarrier();
  for (var kt = 0u; kt < steps; kt++) {
    let cur = 0u; let dst = 0u; let k0 = kLo + (kt + 1u) * ${BK}u;
    let more = kt + 1u < steps;
    if (more) {
${fetch.join("\n")}
    }
${mma.join("\n")}
    workgroupBarrier();
    if (more) {
${stash.join("\n")}
    }
    workgroupBarrier();
  }`;
  const multi = WM * WN > 1;
  const builtin = multi && sgBuiltin;
  const buffers = t.single ? 1 : 2;
  return `${TC_HEADER}${builtin ? SUBGROUP_BUILTINS.enable : ""}${uniformStruct(FIELDS)}${bindings(decls)}${f.gelu ? GELU2_WGSL : ""}
var<workgroup> As: array<f16, ${buffers * ASZ}>;
var<workgroup> Bs: array<f16, ${buffers * BSZ}>;
var<workgroup> scratch: array<f32, ${WM * WN * fr.M * fr.N}>;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32${builtin ? SUBGROUP_BUILTINS.params : ""}) {
  // Subgroups of ${SG} (checked at detection) laid out in invocation order, as on NVIDIA, or the builtins.
  // One subgroup: a constant index keeps every fragment offset workgroup-uniform.
  let sg = ${!multi ? "0u" : builtin ? "sgid" : `tid / ${SG}u`}; let lane = ${builtin ? "sgLane" : `tid % ${SG}u`};
  let wm = sg / ${WN}u; let wn = sg % ${WN}u;
  let n0 = wid.x * ${BN}u; let m0 = wid.y * ${BM}u;
  let aBase = wid.z * u.strideA; let bBase = wid.z * u.strideB; let cBase = wid.z * u.strideC;
  // K rows of this workgroup: all of them, or slice wid.z of a split-K product.
  let kLo = ${f.split ? "wid.z * u.kChunk" : "0u"}; let kHi = ${f.split ? "min(u.K, kLo + u.kChunk)" : "u.K"};
  let steps = (kHi - kLo + ${BK - 1}u) / ${BK}u;
${decl.join("\n")}
${acc.join("\n")}
  // The first tile (none when K = 0: kHi - 8 would wrap and the clamps with it).
  if (steps > 0u) {
    let k0 = kLo; let dst = 0u;
${fetch.join("\n")}
${stash.join("\n")}
  }
${t.deep ? deepLoop : t.single ? singleLoop : loop}
${epi.join("\n")}
}`;
}

/**
 * Which part of an M×N result fragment a lane writes in the epilogue: `per` consecutive columns (M·N / 32 of
 * them) from column `col` of row `row` (WGSL expressions of `lane`). 16×16: lane / 2, (lane % 2) · 8, 8 each;
 * 8×8: lane / 4, (lane % 4) · 2, 2 each.
 */
function laneMap(fr: TcFrag): { row: string; col: string; per: number } {
  const per = (fr.M * fr.N) / lanesOf(fr);
  const lanesPerRow = fr.N / per;
  return { row: `lane / ${lanesPerRow}u`, col: `(lane % ${lanesPerRow}u) * ${per}u`, per };
}

/**
 * The epilogue of both kernels, one accumulator fragment at a time through the subgroup's M×N f32 scratch: each
 * lane takes `per` consecutive columns of one row (laneMap: 16×16 → row lane / 2, columns (lane % 2) · 8 .. + 7);
 * `at(i, j)` gives the fragment's global row `gm` and first column `gn` of the lane, and `rowOk` the rows this
 * fragment may write.
 */
function epilogue(
  FM: number,
  FN: number,
  f: TcFlags,
  syntax: MatrixSyntax,
  at: (i: number, j: number) => { gm: string; gn: string; rowOk: string },
  fr: TcFrag = FRAG_16,
): string[] {
  const lm = laneMap(fr);
  const frag = fr.M * fr.N;
  const epi: string[] = [];
  const value = (x: string) => {
    let v = x;
    if (f.bias) v = `${v} + bv`;
    if (f.gelu) v = `gelu_f32(${v})`;
    if (f.residual) v = `${v} + rv`;
    return v;
  };
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) {
      const { gm, gn, rowOk } = at(i, j);
      epi.push(`  ${matrixStore(syntax, "&scratch", `sg * ${frag}u`, `acc${i}_${j}`, `${fr.N}u`)};
  workgroupBarrier();
  {
    let gm = ${gm};
    let gn = ${gn};
    let s = sg * ${frag}u + (${lm.row}) * ${fr.N}u + ${lm.col};`);
      if (f.split) {
        epi.push(`    for (var c = 0u; c < ${lm.per}u; c++) {
      if (${rowOk} && gn + c < u.N) { C[wid.z * u.M * u.N + gm * u.N + gn + c] = scratch[s + c]; }
    }`);
      } else if (f.vec) {
        const parts = ["x", "y", "z", "w"].map((w, q) => {
          let p = `vec2<f32>(scratch[s + ${2 * q}u], scratch[s + ${2 * q + 1}u])`;
          if (f.bias) p = `${p} + unpack2x16float(bq.${w})`;
          if (f.gelu) p = `gelu2(${p})`;
          if (f.residual) p = `${p} + unpack2x16float(rq.${w})`;
          return `pack2x16float(${p})`;
        });
        epi.push(`    if (${rowOk} && gn < u.N) {
      let ci = (cBase + gm * u.N + gn) / 8u;
      ${f.bias ? "let bq = bias[gn / 8u];" : ""}
      ${f.residual ? "let rq = R[ci];" : ""}
      C[ci] = vec4<u32>(${parts.join(", ")});
    }`);
      } else {
        epi.push(`    for (var c = 0u; c < ${lm.per}u; c++) {
      let n = gn + c;
      if (${rowOk} && n < u.N) {
        ${f.bias ? "let bv = f32(bias[n]);" : ""}
        ${f.residual ? "let rv = f32(R[cBase + gm * u.N + n]);" : ""}
        C[cBase + gm * u.N + n] = f16(${value("scratch[s + c]")});
      }
    }`);
      }
      epi.push("  }\n  workgroupBarrier();");
    }
  return epi;
}

/** The epilogue's storage bindings: A and B, then bias, residual and C as the flags ask. */
function epilogueDecls(f: TcFlags, ab: "f16" | "vec4<u32>"): StorageDecl[] {
  const decls: StorageDecl[] = [
    { name: "A", type: ab },
    { name: "B", type: ab },
  ];
  if (f.bias) decls.push({ name: "bias", type: f.vec ? "vec4<u32>" : "f16" });
  if (f.residual) decls.push({ name: "R", type: f.vec ? "vec4<u32>" : "f16" });
  decls.push({ name: "C", type: f.split ? "f32" : f.vec ? "vec4<u32>" : "f16", write: true });
  return decls;
}

const GELU2_WGSL = `${ERF_WGSL}fn gelu2(p: vec2<f32>) -> vec2<f32> { return vec2<f32>(gelu_f32(p.x), gelu_f32(p.y)); }\n`;

/**
 * The direct kernel: no workgroup staging. Each subgroup owns FM×FN accumulator fragments and, every 16 rows
 * of K, loads its FM left and FN right fragments straight from storage (the tile's A rows and B columns are
 * shared between its subgroups and neighbouring workgroups through L1/L2). With Dawn's robustness transform
 * off this beats the staged kernel on the H200 (bench/tc-roofline.ts: fragments from a cached storage region
 * reach 260–360 TFLOP/s, from workgroup memory far less).
 *
 * Needs M ≥ 16, N % 16 = 0 and K % 16 = 0, K ≥ 16 (and kChunk % 16 = 0 when split): a fragment whose rows or columns
 * would pass the edge starts 16 before the edge instead, so no load leaves the tensor; the epilogue writes only
 * the rows and columns at or after the fragment's own origin.
 */
export function tcGemmDirectSource(t: TcTile, f: TcFlags, syntax: MatrixSyntax, sgBuiltin = false): string {
  const { BM, BN, WM, WN } = t;
  const SG = lanesOf(FRAG_16); // 16×16×16 fragments only (is16)
  const T = SG * WM * WN;
  const SMr = BM / WM;
  const SNc = BN / WN;
  const FM = SMr / F;
  const FN = SNc / F;
  const ty = matrixTypes({ M: F, N: F, K: F });
  const origins: string[] = [];
  for (let i = 0; i < FM; i++) origins.push(`  let ra${i} = min(r0 + ${i * F}u, u.M - ${F}u);`);
  for (let j = 0; j < FN; j++) origins.push(`  let cb${j} = min(c0 + ${j * F}u, u.N - ${F}u);`);
  const acc: string[] = [];
  const mma: string[] = [];
  // Register double buffering: the fragments of the next K step are loaded before this step's products.
  const load = (kk: string, pre: string) => [
    ...Array.from(
      { length: FM },
      (_, i) => `${pre}a${i} = ${matrixLoad(syntax, ty.left, "&A", `aBase + ra${i} * u.K + ${kk}`, "u.K")};`,
    ),
    ...Array.from(
      { length: FN },
      (_, j) => `${pre}b${j} = ${matrixLoad(syntax, ty.right, "&B", `bBase + ${kk} * u.N + cb${j}`, "u.N")};`,
    ),
  ];
  acc.push(...load("kLo", "  var "));
  mma.push("    let kn = min(k + 16u, kHi - 16u);", ...load("kn", "    let n"));
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) {
      acc.push(`  var acc${i}_${j} = ${ty.result}();`);
      mma.push(`    acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
    }
  for (let i = 0; i < FM; i++) mma.push(`    a${i} = na${i};`);
  for (let j = 0; j < FN; j++) mma.push(`    b${j} = nb${j};`);
  const epi = epilogue(FM, FN, f, syntax, (i, j) => ({
    gm: `ra${i} + lane / 2u`,
    gn: `cb${j} + (lane % 2u) * 8u`,
    rowOk: `gm >= r0 + ${i * F}u && gm < u.M && gn >= c0 + ${j * F}u`,
  }));
  const multi = WM * WN > 1;
  const builtin = multi && sgBuiltin;
  return `${TC_HEADER}${builtin ? SUBGROUP_BUILTINS.enable : ""}${uniformStruct(FIELDS)}${bindings(epilogueDecls(f, "f16"))}${f.gelu ? GELU2_WGSL : ""}
var<workgroup> scratch: array<f32, ${WM * WN * 256}>;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32${builtin ? SUBGROUP_BUILTINS.params : ""}) {
  let sg = ${!multi ? "0u" : builtin ? "sgid" : `tid / ${SG}u`}; let lane = ${builtin ? "sgLane" : `tid % ${SG}u`};
  let wm = sg / ${WN}u; let wn = sg % ${WN}u;
  let aBase = wid.z * u.strideA; let bBase = wid.z * u.strideB; let cBase = wid.z * u.strideC;
  let kLo = ${f.split ? "wid.z * u.kChunk" : "0u"}; let kHi = ${f.split ? "min(u.K, kLo + u.kChunk)" : "u.K"};
  // This subgroup's block: rows from r0, columns from c0; fragments clamped to the edges (see above).
  let r0 = wid.y * ${BM}u + wm * ${SMr}u; let c0 = wid.x * ${BN}u + wn * ${SNc}u;
${origins.join("\n")}
${acc.join("\n")}
  for (var k = kLo; k < kHi; k += ${F}u) {
${mma.join("\n")}
  }
${epi.join("\n")}
}`;
}

/** The pipeline-cache key of a tile config and its flags (everything baked into the WGSL). */
export function tcGemmKey(
  syntax: MatrixSyntax,
  t: TcTile,
  f: TcFlags,
  sgBuiltin: boolean,
  fr: TcFrag = FRAG_16,
): string {
  const frag = is16(fr) ? "" : `:fr${fr.M}x${fr.N}x${fr.K}${fr.lanes ? `l${fr.lanes}` : ""}`;
  return `gemm-tc:${syntax}:${t.BM}x${t.BN}x${t.BK}:${t.WM}x${t.WN}${t.direct ? "d" : ""}${t.deep ? "p" : ""}${t.single ? "s" : ""}:v${+f.vec}:bias${+f.bias}:gelu${+f.gelu}:res${+f.residual}:split${+!!f.split}:sgb${+sgBuiltin}${frag}`;
}

export interface TcGemmArgs {
  a: { buffer: GPUBuffer; dims: readonly number[] };
  b: { buffer: GPUBuffer; dims: readonly number[] };
  out: { buffer: GPUBuffer; dims: readonly number[] };
  bias?: { buffer: GPUBuffer; dims: readonly number[] };
  gelu?: boolean;
  residual?: { buffer: GPUBuffer; dims: readonly number[] };
  tile?: TcTile;
}

/**
 * The staged tile gemm() takes for an [M, ·] × [·, N] product (nBatch products): by the number of tiles it
 * makes on an H200's 132 SMs, and the first that fits `limit` bytes of workgroup memory along the way down
 * (a device with 32 KiB runs the 64×64 tiles rather than refuse the product).
 */
export function tcTileFor(p: {
  M: number;
  N: number;
  nBatch: number;
  split: boolean;
  multiSubgroup: boolean;
  /** Workgroup memory, bytes. */
  limit: number;
  /**
   * Invocations per (one-dimensional) workgroup the device allows: the smaller of its invocation and x-size
   * limits (256 by default in WebGPU; TC_TILE_HUGE needs 512, TC_TILE_WIDE12 384).
   */
  invocations: number;
  /** Invocations per subgroup (lanesOf the fragment; 32 unless given). */
  lanes?: number;
}): TcTile {
  const { M, N, nBatch, split, multiSubgroup } = p;
  // 128×128 tiles once there is one per SM (an H200 has 132); else 64×64. With the robustness transform off the
  // large tile won from 144 tiles up (the 1024-token QKV: 76 vs 72 TFLOP/s; 4096-token output and FFN2, 192
  // tiles: 101 vs 95 and 94 vs 79) and lost at 48 (44 vs 55) — bench/h200-tc-tiles-deep-1129c.log.
  const tiles128 = Math.ceil(M / 128) * Math.ceil(N / 128) * nBatch;
  // Split-K keeps the 64×64 tile: large tiles split 2–4 ways ran the 4096-token GEMMs slower than unsplit
  // (FFN2 0.230–0.256 vs 0.214 ms; bench/h200-tc-split-1129d.log).
  const large = !split && tiles128 >= TC_LARGE_MIN_TILES;
  const tiles192 = Math.ceil(M / 128) * Math.ceil(N / 192) * nBatch;
  const oneWideWave = tiles192 >= TC_WIDE_MIN_TILES && tiles192 <= TC_WAVE;
  const tiles256 = Math.ceil(M / 128) * Math.ceil(N / 256) * nBatch;
  // Below TC_TILE_WIDE12's grids (and where a device cannot run its 384 invocations or 45 KiB).
  const narrower =
    tiles128 >= TC_K64_MIN_TILES ? TC_TILE_LARGE_K64 : oneWideWave ? TC_TILE_WIDE : TC_TILE_LARGE;
  const staged = !multiSubgroup
    ? TC_TILE_SOLO
    : !large
      ? TC_TILE_SMALL
      : tiles256 >= TC_HUGE_MIN_TILES
        ? TC_TILE_HUGE
        : tiles192 >= TC_WIDE12_MIN_TILES && N >= 192
          ? TC_TILE_WIDE12
          : narrower;
  // Down the sizes until one fits (TC_TILE_SOLO, 20 KiB, is the last word: the error names it).
  const order = [
    staged,
    ...(staged === TC_TILE_WIDE12 ? [narrower] : []),
    TC_TILE_LARGE,
    TC_TILE_WIDE,
    TC_TILE_SMALL,
    TC_TILE_SOLO,
  ];
  const fits = (t: TcTile) => tcSharedBytes(t) <= p.limit && (p.lanes ?? 32) * t.WM * t.WN <= p.invocations;
  return order.find((t) => (multiSubgroup || t === TC_TILE_SOLO) && fits(t)) ?? staged;
}

/**
 * What a product bakes into the tensor-core kernel: vec4 loads and stores where rows are whole 8-half chunks
 * and the fragment gives each lane 8 values of a row (16×16), the epilogue unless split-K partials.
 */
export function tcFlagsFor(
  N: number,
  K: number,
  fr: TcFrag,
  epi: { bias: boolean; gelu: boolean; residual: boolean },
  split: boolean,
): TcFlags {
  return {
    vec: K % 8 === 0 && N % 8 === 0 && laneMap(fr).per === 8,
    bias: !split && epi.bias,
    gelu: !split && epi.gelu,
    residual: !split && epi.residual,
    split,
  };
}

/** Records the tensor-core GEMM; shapes were checked by gemm() (kernels/gemm.ts), which calls this. */
export function recordTcGemm(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  args: TcGemmArgs,
  shape: { M: number; N: number; K: number; batch: number; bBatch: number; nBatch: number },
  syntax: MatrixSyntax,
  op: string,
  multiSubgroup = true,
  sgBuiltin = false,
  /** Split-K: K rows per slice and the f32 [slices, M, N] partials buffer that replaces the output. */
  split?: { kChunk: number; slices: number; partial: GPUBuffer },
): void {
  const { M, N, K, batch, bBatch, nBatch } = shape;
  const fr = ctx.f16?.config ? tcFragOf(ctx.f16.config) : FRAG_16;
  const f = tcFlagsFor(
    N,
    K,
    fr,
    { bias: !!args.bias, gelu: !!args.gelu, residual: !!args.residual },
    !!split,
  );
  const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
  // A one-dimensional workgroup of T invocations needs both limits.
  const invocations = Math.min(
    ctx.gpu.limits.maxComputeInvocationsPerWorkgroup,
    ctx.gpu.limits.maxComputeWorkgroupSizeX,
  );
  const staged = tcTileFor({
    M,
    N,
    nBatch,
    split: !!split,
    multiSubgroup,
    limit,
    invocations,
    lanes: lanesOf(fr),
  });
  // A direct tile where its edge rule holds (tcGemmDirectSource, 16×16×16 fragments only), else the staged kernel.
  const directOk =
    is16(fr) && M >= F && N % F === 0 && K >= F && K % F === 0 && (!split || split.kChunk % F === 0);
  const t = args.tile && (!args.tile.direct || directOk) ? args.tile : staged;
  if (tcSharedBytes(t, fr) > limit)
    throw new OpError(
      op,
      `tensor-core tile ${t.BM}×${t.BN}×${t.BK} needs ${tcSharedBytes(t, fr)} B of workgroup memory, the device has ${limit}`,
    );
  const key = tcGemmKey(syntax, t, f, sgBuiltin, fr);
  const k = ctx.pipelines.get(key, () =>
    t.direct ? tcGemmDirectSource(t, f, syntax, sgBuiltin) : tcGemmSource(t, f, syntax, sgBuiltin, fr),
  );
  const bufs = [args.a.buffer, args.b.buffer];
  if (f.bias && args.bias) bufs.push(args.bias.buffer);
  if (f.residual && args.residual) bufs.push(args.residual.buffer);
  bufs.push(split ? split.partial : args.out.buffer);
  const u = packUniforms(FIELDS, {
    M,
    N,
    K,
    strideA: batch > 1 ? M * K : 0,
    strideB: bBatch > 1 ? K * N : 0,
    strideC: M * N,
    kChunk: split ? split.kChunk : K,
  });
  const z = split ? split.slices : nBatch;
  rec.dispatch(k, bufs, u, [Math.ceil(N / t.BN), Math.ceil(M / t.BM), z], op);
}
