/**
 * Register-blocked, workgroup-tiled SGEMM: C[b] = A[b]·B[b] (+ bias) (→ GELU) (+ residual), float32.
 *
 * A workgroup computes a BM×BN tile of C, walking K in steps of BK: it stages the A tile (transposed, so rows
 * are contiguous) and the B tile in workgroup memory as vec4s, then each thread multiplies TM rows × TN columns
 * with its accumulators in registers — TM·TN/4 vec4 FMAs per 2·(TM + TN)/4 vec4 reads of workgroup memory.
 * A thread's rows and columns are 4-wide groups strided by the thread grid, so a subgroup reads consecutive
 * vec4s (no bank conflicts) and neighbouring threads store neighbouring columns. The inner loops are unrolled
 * here, in TypeScript, so the driver sees straight-line FMAs on named registers.
 *
 * Baked into the shader (the pipeline key): tile config, vec4 loads of A (K % 4 = 0) and B (N % 4 = 0), and
 * the epilogue. M, N, K, batch strides are uniforms. Two tile configs: 64×128 (8×4 per thread) when there are
 * enough tiles to fill the GPU, else 64×64 (4×4 per thread) so small-M layers (batch 1 BERT) still spread out.
 * GemmTile.subgroup selects the subgroup variant of any tile (gemm-subgroup.ts: A shared by shuffles instead of
 * workgroup memory), for timing against these; it is not picked by default.
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import type { F16Kernel, Precision } from "../precision.js";
import { requireF16 } from "../precision.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import {
  bindings,
  ERF_WGSL,
  expectCapacity,
  expectDims,
  type GpuTensor,
  type StorageDecl,
} from "./common.js";
import {
  type SubgroupGemmPlan,
  subgroupADecls,
  subgroupALoads,
  subgroupAValue,
  subgroupGemmPlan,
} from "./gemm-subgroup.js";
import { recordTcGemm, type TcTile } from "./gemm-tc.js";

export interface GemmTile {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
  /**
   * Timing only (wrong results; bench/gpu-kernels.ts --tiles): "loads" stages A and B only on the first K step,
   * "smem" reads the same workgroup-memory words at every k (the compiler may keep them in registers: the FMAs
   * alone).
   */
  ablate?: "loads" | "smem";
  /**
   * The subgroup variant (gemm-subgroup.ts): A from storage into registers, shared across a thread-grid row by
   * subgroup shuffles instead of workgroup memory. Needs subgroups in invocation order (subgroupGemmPlan says
   * why not); not picked by default.
   */
  subgroup?: boolean;
  /** Subgroup variant only: force the lane-group size (tests); default subgroupGemmPlan's. */
  sgLanes?: number;
}
/**
 * 64×128 with 8×4 per thread (256 threads). 64×128 beat 128×128 on the H200 (twice the workgroups, so the last
 * wave is less empty; bench/h200-simt-tiles.log); 8×4 per thread — half the accumulators, twice the threads —
 * then took 2–9% off each BERT GEMM at 4096 tokens (QKV 0.436 vs 0.477 ms, FFN2 0.587 vs 0.613) and 3–22% at
 * 1024 against 8×8, 2% slower at 4096³ (`bench/gpu-kernels.ts --tiles`, bench/h200-simt-tiles-1129c.log).
 */
export const TILE_LARGE: GemmTile = { BM: 64, BN: 128, BK: 16, TM: 8, TN: 4 };
export const TILE_SMALL: GemmTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
/**
 * Below this many large tiles the GPU is underfilled (an H200 has 132 SMs) and the small tile wins. 384 from
 * the H200 sweep over BERT's GEMMs at 4096 and 1024 tokens (`bench/gpu-kernels.ts --tiles
 * auto,64x128x16/8x8,64x64x16/4x4`, bench/h200-simt-tiles-1129b.log): at 384 large tiles (4096-token attention
 * output and FFN2, 1024-token FFN1) the large tile took 8–12% less GPU time, at 288 and fewer (1024-token QKV,
 * output, FFN2) 5–27% more. It was 512 when the large tile was 128×128.
 */
const LARGE_TILE_MIN_TILES = 384;

interface GemmFlags {
  /** f16 storage of A, B, bias, residual and C; f32 math (the SIMT fp16 kernel, where there are no tensor cores). */
  f16?: boolean;
  aVec4: boolean;
  bVec4: boolean;
  bias: boolean;
  gelu: boolean;
  residual: boolean;
  /**
   * Split-K: workgroup z computes K rows [z·kChunk, (z + 1)·kChunk) of one (unbatched) product into its own
   * [M, N] slice of a scratch buffer, no epilogue; gemmReduceSource sums the slices and applies it.
   */
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

/** `sg`: the subgroup variant's plan, required when t.subgroup (subgroupGemmPlan). */
export function gemmSource(t: GemmTile, f: GemmFlags, sg?: SubgroupGemmPlan): string {
  const { BM, BN, BK, TM, TN } = t;
  const TX = BN / TN;
  const TY = BM / TM;
  const T = TX * TY;
  const BM4 = BM / 4;
  const BN4 = BN / 4;
  const MI = TM / 4; // row groups of 4 per thread
  const NJ = TN / 4; // column vec4s per thread
  const h = !!f.f16;
  const s1 = h ? "f16" : "f32";
  const s4 = h ? "vec4<f16>" : "vec4<f32>";
  // Loads widen to f32 (a no-op call for fp32), stores narrow: storage type and math type are separate.
  const w1 = (x: string) => (h ? `f32(${x})` : x);
  const w4 = (x: string) => (h ? `vec4<f32>(${x})` : x);
  const decls: StorageDecl[] = [
    { name: "A", type: f.aVec4 ? s4 : s1 },
    { name: "B", type: f.bVec4 ? s4 : s1 },
  ];
  if (f.bias && !f.split) decls.push({ name: "bias", type: s1 });
  if (f.residual && !f.split) decls.push({ name: "R", type: s1 });
  decls.push({ name: "C", type: s1, write: true });
  if (t.subgroup && !sg)
    throw new OpError("webgpu.MatMul", "the subgroup SGEMM needs its plan (subgroupGemmPlan)");
  const sgA = sg && { BK, TM, TY, lanes: sg.lanes, aVec4: f.aVec4, w1, w4 };

  // Each thread stages a whole number of elements (vec4 loads may leave threads idle: they check idx).
  const staged: [string, number, boolean][] = [["B", BK * BN, f.bVec4]];
  if (!sg) staged.push(["A", BM * BK, f.aVec4]); // the subgroup variant stages no A
  for (const [what, n, vec] of staged) {
    const per = vec ? n / 4 / T : n / T;
    if (!(per < 1 && vec) && !Number.isInteger(per))
      throw new OpError(
        "webgpu.MatMul",
        `tile ${BM}×${BN}×${BK} (${TM}×${TN} per thread, ${T} threads) stages ${per} ${what} elements per thread`,
      );
  }
  // Tile loads: every thread moves a fixed number of elements (vec4s where aligned), bounds-checked.
  const aLoads: string[] = [];
  if (sgA) aLoads.push(subgroupALoads(sgA));
  else if (f.aVec4) {
    const per = (BM * BK) / 4 / T;
    for (let e = 0; e < Math.ceil(per); e++) {
      aLoads.push(`  {
    let idx = ${e * T}u + tid;
    let kv = idx % ${BK / 4}u; let mm = idx / ${BK / 4}u;
    let gm = m0 + mm; let gk = k0 + kv * 4u;
    var v = vec4<f32>(0.0);
    if (${per < 1 ? `idx < ${(BM * BK) / 4}u && ` : ""}gm < u.M && gk < kEnd) { v = ${w4("A[(aBase + gm * u.K + gk) / 4u]")}; }
    let s = (kv * 4u) * ${BM4}u + mm / 4u; let c = mm % 4u;
    As[s][c] = v.x; As[s + ${BM4}u][c] = v.y; As[s + ${2 * BM4}u][c] = v.z; As[s + ${3 * BM4}u][c] = v.w;
  }`);
    }
  } else {
    for (let e = 0; e < (BM * BK) / T; e++)
      aLoads.push(`  {
    let idx = ${e * T}u + tid;
    let kk = idx % ${BK}u; let mm = idx / ${BK}u;
    let gm = m0 + mm; let gk = k0 + kk;
    var v = 0.0;
    if (gm < u.M && gk < kEnd) { v = ${w1("A[aBase + gm * u.K + gk]")}; }
    As[kk * ${BM4}u + mm / 4u][mm % 4u] = v;
  }`);
  }
  const bLoads: string[] = [];
  if (f.bVec4) {
    const per = (BK * BN) / 4 / T;
    for (let e = 0; e < Math.ceil(per); e++)
      bLoads.push(`  {
    let idx = ${e * T}u + tid;
    let nv = idx % ${BN4}u; let kk = idx / ${BN4}u;
    let gk = k0 + kk; let gn = n0 + nv * 4u;
    var v = vec4<f32>(0.0);
    if (${per < 1 ? `idx < ${(BK * BN) / 4}u && ` : ""}gk < kEnd && gn < u.N) { v = ${w4("B[(bBase + gk * u.N + gn) / 4u]")}; }
    Bs[kk * ${BN4}u + nv] = v;
  }`);
  } else {
    for (let e = 0; e < (BK * BN) / T; e++)
      bLoads.push(`  {
    let idx = ${e * T}u + tid;
    let nn = idx % ${BN}u; let kk = idx / ${BN}u;
    let gk = k0 + kk; let gn = n0 + nn;
    var v = 0.0;
    if (gk < kEnd && gn < u.N) { v = ${w1("B[bBase + gk * u.N + gn]")}; }
    Bs[kk * ${BN4}u + nn / 4u][nn % 4u] = v;
  }`);
  }

  const accDecl: string[] = [];
  const fma: string[] = [];
  const comps = ["x", "y", "z", "w"];
  for (let i = 0; i < MI; i++)
    for (let r = 0; r < 4; r++)
      for (let j = 0; j < NJ; j++) accDecl.push(`  var c${i}_${r}_${j} = vec4<f32>(0.0);`);
  if (sgA && sg) {
    // Unrolled over k: every shuffle's owner lane and register are constants. The shuffles run in uniform
    // control flow (the K loop's bounds are uniform), as WGSL requires.
    for (let k = 0; k < BK; k++) {
      const kb = t.ablate === "smem" ? 0 : k;
      fma.push(
        k === 0 ? "    { // k = 0: A from the lanes that loaded it, B from workgroup memory" : "    {",
      );
      for (let j = 0; j < NJ; j++) fma.push(`      let b${j} = Bs[${kb * BN4}u + tx + ${j * TX}u];`);
      for (let q = 0; q < TM; q++) fma.push(`      let a${q} = ${subgroupAValue(sgA, sg, q, k)};`);
      for (let q = 0; q < TM; q++)
        for (let j = 0; j < NJ; j++) {
          const c = `c${Math.floor(q / 4)}_${q % 4}_${j}`;
          fma.push(`      ${c} = fma(vec4<f32>(a${q}), b${j}, ${c});`);
        }
      fma.push(`    }`);
    }
  } else {
    const kk = t.ablate === "smem" ? "0u" : "k";
    for (let i = 0; i < MI; i++) fma.push(`    let a${i} = As[${kk} * ${BM4}u + ty + ${i * TY}u];`);
    for (let j = 0; j < NJ; j++) fma.push(`    let b${j} = Bs[${kk} * ${BN4}u + tx + ${j * TX}u];`);
    for (let i = 0; i < MI; i++)
      for (let r = 0; r < 4; r++)
        for (let j = 0; j < NJ; j++)
          fma.push(`    c${i}_${r}_${j} = fma(vec4<f32>(a${i}.${comps[r]}), b${j}, c${i}_${r}_${j});`);
  }

  const stores: string[] = [];
  for (let i = 0; i < MI; i++)
    for (let r = 0; r < 4; r++) {
      stores.push(`  { let gm = m0 + (ty + ${i * TY}u) * 4u + ${r}u;\n    if (gm < u.M) {`);
      for (let j = 0; j < NJ; j++)
        stores.push(`      store4(gm, n0 + (tx + ${j * TX}u) * 4u, c${i}_${r}_${j}, cBase);`);
      stores.push("    }\n  }");
    }
  let epi = "v";
  if (f.split) epi = "v";
  else if (f.bias) epi = `${epi} + ${w1("bias[n]")}`;
  if (f.gelu && !f.split) epi = `gelu_f32(${epi})`;
  if (f.residual && !f.split) epi = `${epi} + ${w1("R[cBase + m * u.N + n]")}`;
  if (h) epi = `f16(${epi})`;

  // The subgroup variant's workgroup is one-dimensional: subgroupsInOrder (its lane groups) is probed so.
  const entry = sg
    ? `@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32${sg.broadcast ? "" : ", @builtin(subgroup_invocation_id) sgLane: u32"}) {
  let tx = tid % ${TX}u; let ty = tid / ${TX}u;`
    : `@compute @workgroup_size(${TX}, ${TY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x; let ty = lid.y; let tid = ty * ${TX}u + tx;`;
  const loop = sg
    ? fma.join("\n")
    : `    for (var k = 0u; k < ${BK}u; k++) {
${fma.join("\n")}
    }`;

  return `${h ? "enable f16;\n" : ""}${sg ? "enable subgroups;\n" : ""}${uniformStruct(FIELDS)}${bindings(decls)}${f.gelu && !f.split ? ERF_WGSL : ""}
${sg ? "" : `var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;\n`}var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;

fn store1(m: u32, n: u32, v: f32, cBase: u32) {
  if (n < u.N) { C[cBase + m * u.N + n] = ${epi}; }
}
fn store4(m: u32, n: u32, v: vec4<f32>, cBase: u32) {
  store1(m, n, v.x, cBase); store1(m, n + 1u, v.y, cBase); store1(m, n + 2u, v.z, cBase); store1(m, n + 3u, v.w, cBase);
}

${entry}
  let n0 = wid.x * ${BN}u; let m0 = wid.y * ${BM}u;
  ${
    f.split
      ? "let aBase = 0u; let bBase = 0u; let cBase = wid.z * u.M * u.N;\n  let kBegin = wid.z * u.kChunk; let kEnd = min(u.K, kBegin + u.kChunk);"
      : "let aBase = wid.z * u.strideA; let bBase = wid.z * u.strideB; let cBase = wid.z * u.strideC;\n  let kBegin = 0u; let kEnd = u.K;"
  }
${accDecl.join("\n")}${sgA && sg ? `\n${subgroupADecls(sgA, sg)}` : ""}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    if (${t.ablate === "loads" ? "k0 == kBegin" : "true"}) {
${aLoads.join("\n")}
${bLoads.join("\n")}
    }
    workgroupBarrier();
${loop}
    workgroupBarrier();
  }
${stores.join("\n")}
}`;
}

const REDUCE_FIELDS: UniformFields = [
  ["M", "u32"],
  ["N", "u32"],
  ["S", "u32"],
];

/**
 * Split-K's second pass: C = epilogue(Σ_z P[z]) over the S partial [M, N] float32 slices; with `f16` the bias,
 * residual and C are f16 (the tensor-core path), the sum and epilogue still f32.
 */
export function gemmReduceSource(
  f: Pick<GemmFlags, "bias" | "gelu" | "residual"> & { f16?: boolean },
): string {
  const s = f.f16 ? "f16" : "f32";
  const decls: StorageDecl[] = [{ name: "P", type: "f32" }];
  if (f.bias) decls.push({ name: "bias", type: s });
  if (f.residual) decls.push({ name: "R", type: s });
  decls.push({ name: "C", type: s, write: true });
  let epi = "v";
  if (f.bias) epi = `${epi} + f32(bias[idx % u.N])`;
  if (f.gelu) epi = `gelu_f32(${epi})`;
  if (f.residual) epi = `${epi} + f32(R[idx])`;
  if (f.f16) epi = `f16(${epi})`;
  return `${f.f16 ? "enable f16;\n" : ""}${uniformStruct(REDUCE_FIELDS)}${bindings(decls)}${f.gelu ? ERF_WGSL : ""}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x; let mn = u.M * u.N;
  if (idx >= mn) { return; }
  var v = 0.0;
  for (var z = 0u; z < u.S; z++) { v += P[z * mn + idx]; }
  C[idx] = ${epi};
}`;
}

/** 64×64 tiles below which an unbatched GEMM is split along K (an H200 has 132 SMs). */
const SPLIT_K_MAX_TILES = 96;

/**
 * K slices for a small-M product (batch-1 BERT: [128 × 3072]·[3072 × 768] is 24 tiles, a fifth of the GPU): enough
 * workgroups to fill it, each slice ≥ 256 rows of K, at most 8; 1 where splitting does not pay.
 */
export function splitKSlices(M: number, N: number, K: number): number {
  const tiles = Math.ceil(M / 64) * Math.ceil(N / 64);
  if (tiles >= SPLIT_K_MAX_TILES || K < 512) return 1;
  return Math.max(1, Math.min(8, Math.floor(K / 256), Math.ceil(192 / tiles)));
}

/** K rows per split-K slice (a multiple of the kernel's K step `bk`) and the slices that makes (≥ 1). */
function kSliceChunks(K: number, slices: number, bk: number): { kChunk: number; S: number } {
  const kChunk = Math.ceil(K / slices / bk) * bk;
  return { kChunk, S: Math.ceil(K / kChunk) };
}

export interface GemmArgs {
  /** [M, K] or [batch, M, K]. */
  a: GpuTensor;
  /** [K, N] (shared by every batch: weights) or [batch, K, N]. */
  b: GpuTensor;
  /** [M, N] or [batch, M, N]. */
  out: GpuTensor;
  /** [N], added to every row. */
  bias?: GpuTensor;
  /** GELU (erf) after the bias. */
  gelu?: boolean;
  /** Same shape as out, added last (the residual connection). */
  residual?: GpuTensor;
  /** Force a tile config (tests, benchmarks); default picks by the number of tiles. */
  tile?: GemmTile;
  /**
   * "fp32" (default): every tensor float32. "fp16": every tensor (A, B, bias, residual, out) IEEE f16, math in
   * f32 — on tensor cores where the context detected them, else the SIMT kernel. Needs shader-f16: resolve the
   * session's precision with ctx.resolvePrecision() first (it falls back to fp32 where f16 is missing).
   */
  precision?: Precision;
  /** fp16 only: force the kernel (tests, benchmarks); default tensor-core where available. */
  f16Kernel?: F16Kernel;
  /** fp16 tensor-core only: force the tile config. */
  tcTile?: TcTile;
  /** Force the number of split-K slices (tests, benchmarks; unbatched only); default by the tile count. */
  kSlices?: number;
}

export function gemmFlops(M: number, N: number, K: number, batch = 1): number {
  return 2 * M * N * K * batch;
}

/** Records C = A·B with the epilogue. Shapes are checked and errors name the input. */
export function gemm(ctx: WebGpuContext, rec: CommandRecorder, args: GemmArgs): void {
  const f16 = args.precision === "fp16";
  const op = f16 ? "webgpu.MatMul (fp16)" : "webgpu.MatMul";
  if (f16) requireF16(ctx.gpu, op);
  const bytes = f16 ? 2 : 4;
  const ad = args.a.dims;
  const bd = args.b.dims;
  if (ad.length < 2 || ad.length > 3)
    throw new OpError(op, `input A must be [M, K] or [batch, M, K], got [${ad}]`);
  if (bd.length < 2 || bd.length > 3)
    throw new OpError(op, `input B must be [K, N] or [batch, K, N], got [${bd}]`);
  const M = ad[ad.length - 2]!;
  const K = ad[ad.length - 1]!;
  const N = bd[bd.length - 1]!;
  if (bd[bd.length - 2] !== K)
    throw new OpError(
      op,
      `inner dimensions differ: A is [${ad}] (K = ${K}), B is [${bd}] (K = ${bd[bd.length - 2]})`,
    );
  const batch = ad.length === 3 ? ad[0]! : 1;
  const bBatch = bd.length === 3 ? bd[0]! : 1;
  if (bBatch !== 1 && bBatch !== batch)
    throw new OpError(op, `input B batch ${bBatch} must be 1 or A's batch ${batch}`);
  const outDims = ad.length === 3 ? [batch, M, N] : bBatch > 1 ? [bBatch, M, N] : [M, N];
  const nBatch = Math.max(batch, bBatch);
  expectDims(op, "output", args.out.dims, outDims);
  expectCapacity(op, "input A", args.a, undefined, bytes);
  expectCapacity(op, "input B", args.b, undefined, bytes);
  expectCapacity(op, "output", args.out, undefined, bytes);
  if (args.bias) expectCapacity(op, "bias", args.bias, N, bytes);
  if (args.residual) expectDims(op, "residual", args.residual.dims, outDims);
  if (f16) {
    const kernel = args.f16Kernel ?? (ctx.f16?.syntax ? "tensor-core" : "simt");
    if (kernel === "tensor-core") {
      const syntax = ctx.f16?.syntax;
      if (!syntax)
        throw new OpError(
          op,
          `no tensor cores on this device: ${ctx.f16?.reason ?? "f16 support was not detected"}`,
        );
      const shape = { M, N, K, batch, bBatch, nBatch };
      // Split-K as the fp32 path does (64×64 tiles, slices of a multiple of the 32-row K step).
      // A forced tile runs unsplit unless the slices are forced too.
      const slices =
        nBatch === 1 && (!args.tcTile || args.kSlices) ? (args.kSlices ?? splitKSlices(M, N, K)) : 1;
      const { kChunk, S } = kSliceChunks(K, slices, 32);
      const split = S > 1 ? { kChunk, slices: S, partial: rec.temp(S * M * N * 4) } : undefined;
      recordTcGemm(
        ctx,
        rec,
        { ...args, tile: args.tcTile },
        shape,
        syntax,
        op,
        ctx.f16?.multiSubgroup === true,
        ctx.f16?.sgBuiltin === true,
        split,
      );
      if (split)
        recordReduce(ctx, rec, args, { M, N, S }, { ...epilogueOf(args), f16: true }, op, split.partial);
      return;
    }
  }
  const f: GemmFlags = {
    f16,
    aVec4: K % 4 === 0,
    bVec4: N % 4 === 0,
    bias: !!args.bias,
    gelu: !!args.gelu,
    residual: !!args.residual,
  };
  const slices = !f16 && nBatch === 1 && !args.tile ? (args.kSlices ?? splitKSlices(M, N, K)) : 1;
  if (slices > 1) {
    recordSplitK(ctx, rec, args, { M, N, K, slices }, f, op);
    return;
  }
  const large = Math.ceil(M / TILE_LARGE.BM) * Math.ceil(N / TILE_LARGE.BN) * nBatch >= LARGE_TILE_MIN_TILES;
  const t = args.tile ?? (large ? TILE_LARGE : TILE_SMALL);
  let sg: SubgroupGemmPlan | undefined;
  if (t.subgroup) {
    const plan = subgroupGemmPlan(ctx.gpu.features, t, t.sgLanes);
    if (typeof plan === "string") throw new OpError(op, `subgroup SGEMM: ${plan}`);
    sg = plan;
  }
  const sgKey = sg ? `:sg${sg.lanes}${sg.broadcast ? "b" : "s"}` : "";
  const key = `gemm${f16 ? "-f16" : ""}:${t.BM}x${t.BN}x${t.BK}:${t.TM}x${t.TN}${sgKey}${t.ablate ? `:ablate-${t.ablate}` : ""}:a${+f.aVec4}b${+f.bVec4}:bias${+f.bias}:gelu${+f.gelu}:res${+f.residual}`;
  const k = ctx.pipelines.get(key, () => gemmSource(t, f, sg));
  const bufs = [args.a.buffer, args.b.buffer];
  if (args.bias) bufs.push(args.bias.buffer);
  if (args.residual) bufs.push(args.residual.buffer);
  bufs.push(args.out.buffer);
  const u = packUniforms(FIELDS, {
    M,
    N,
    K,
    strideA: batch > 1 ? M * K : 0,
    strideB: bBatch > 1 ? K * N : 0,
    strideC: M * N,
    kChunk: K,
  });
  rec.dispatch(k, bufs, u, [Math.ceil(N / t.BN), Math.ceil(M / t.BM), nBatch], op);
}

/** Split-K: the K slices into a scratch [S, M, N] (released after submit), then the reduction with the epilogue. */
function recordSplitK(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  args: GemmArgs,
  d: { M: number; N: number; K: number; slices: number },
  f: GemmFlags,
  op: string,
): void {
  const { M, N, K } = d;
  const t = TILE_SMALL;
  const { kChunk, S } = kSliceChunks(K, d.slices, t.BK);
  const partial = rec.temp(S * M * N * 4);
  const sf: GemmFlags = { ...f, split: true };
  const key = `gemm-splitk:${t.BM}x${t.BN}x${t.BK}:${t.TM}x${t.TN}:a${+f.aVec4}b${+f.bVec4}`;
  const k = ctx.pipelines.get(key, () => gemmSource(t, sf));
  const u = packUniforms(FIELDS, { M, N, K, strideA: 0, strideB: 0, strideC: M * N, kChunk });
  rec.dispatch(
    k,
    [args.a.buffer, args.b.buffer, partial],
    u,
    [Math.ceil(N / t.BN), Math.ceil(M / t.BM), S],
    op,
  );
  recordReduce(ctx, rec, args, { M, N, S }, f, op, partial);
}

function epilogueOf(args: GemmArgs): Pick<GemmFlags, "bias" | "gelu" | "residual"> {
  return { bias: !!args.bias, gelu: !!args.gelu, residual: !!args.residual };
}

/** Split-K's reduction of the S partial slices in `partial` into args.out, with the epilogue. */
function recordReduce(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  args: GemmArgs,
  d: { M: number; N: number; S: number },
  f: Pick<GemmFlags, "bias" | "gelu" | "residual"> & { f16?: boolean },
  op: string,
  partial: GPUBuffer,
): void {
  const { M, N, S } = d;
  const rkey = `gemm-splitk-reduce:f16${+!!f.f16}:bias${+f.bias}:gelu${+f.gelu}:res${+f.residual}`;
  const r = ctx.pipelines.get(rkey, () => gemmReduceSource(f));
  const bufs: GPUBuffer[] = [partial];
  if (args.bias) bufs.push(args.bias.buffer);
  if (args.residual) bufs.push(args.residual.buffer);
  bufs.push(args.out.buffer);
  const ru = packUniforms(REDUCE_FIELDS, { M, N, S });
  rec.dispatch(r, bufs, ru, [Math.ceil((M * N) / 256)], `${op} (split-K reduce)`);
}

/** Weights uploaded once (prepare time): B as [K, N] row-major, transposed on the host when given as [N, K]. */
export interface GemmWeights {
  b: GpuTensor;
  bias?: GpuTensor;
}

/**
 * Uploads a constant B (and bias) once. `transposed`: `w` is [N, K] (nn.Linear / Gemm transB = 1) and is
 * transposed here, so the kernel always reads [K, N] rows as vec4s. Release with releaseGemmWeights.
 */
export function uploadGemmWeights(
  ctx: WebGpuContext,
  w: Float32Array,
  K: number,
  N: number,
  options: { transposed?: boolean; bias?: Float32Array } = {},
): GemmWeights {
  const op = "webgpu.MatMul (weights)";
  if (w.length !== K * N)
    throw new OpError(op, `weights hold ${w.length} values, [${K}, ${N}] needs ${K * N}`);
  if (options.bias && options.bias.length !== N)
    throw new OpError(op, `bias holds ${options.bias.length} values, needs N = ${N}`);
  let data = w;
  if (options.transposed) {
    data = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) data[k * N + n] = w[n * K + k]!;
  }
  return {
    b: { buffer: ctx.pool.upload(data), dims: [K, N] },
    bias: options.bias ? { buffer: ctx.pool.upload(options.bias), dims: [N] } : undefined,
  };
}

export function releaseGemmWeights(ctx: WebGpuContext, w: GemmWeights): void {
  ctx.pool.release(w.b.buffer);
  if (w.bias) ctx.pool.release(w.bias.buffer);
}
