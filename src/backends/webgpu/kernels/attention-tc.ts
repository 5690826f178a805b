/**
 * STATUS: verified on the H200 after the fix below (bench/h200-tc-attention-probe.log, -diag.log, -tests.log);
 * the default attention of fp16 sessions where the device has tensor cores (MHAFUSE_TC_ATTENTION=0: SIMT f16).
 * History — the first run there (4 subgroups, Q fragments loaded straight from the storage buffer) was off by up to
 * 0.59. What is known: Tint's robustness transform (core/ir/transform/robustness.cc,
 * PredicateSubgroupMatrixCall) predicates every subgroupMatrixLoad/Store as a whole — when offset +
 * stride·(major − 1) + minor passes the array's end, the load returns a zero matrix (a store is dropped) — so
 * a Q fragment whose 16 rows reach past the buffer loses its valid rows too. This version stages Q, K and V
 * through workgroup memory, where every fragment is in bounds by construction (checked: offset +
 * 15·stride + 16 ≤ length for each), and runs one subgroup per workgroup unless per-subgroup offsets compile
 * (F16Support). On the card that version was still wrong (bench/h200-tc-attention-probe.log): the K and V
 * fragments read the staged rows two halves (4 bytes) early — output column c held column c − 2, columns 0–1
 * zero, scores Σ_h Q[i][h]·K[j][h − 2] (reproduced exactly by bench/tc-attention-probe.ts's model) — while the
 * index arithmetic is right (test/webgpu-attention-tc-emulated.test.ts runs this WGSL on lavapipe with
 * emulated fragments). The one thing this kernel had that the working GEMM and the single-fragment checks did
 * not: a 4-byte workgroup variable (`wgKvEnd: u32`), which can leave the f16 tiles laid out after it 4 bytes
 * off the 16-byte alignment that ldmatrix-style fragment loads assume. kvEnd is now computed in registers
 * (it is workgroup-uniform as it stands), so every workgroup variable is a multiple of 16 bytes.
 *
 * Tensor-core flash attention (f16 storage, f32 softmax and accumulation) on WebGPU subgroup matrices, for
 * the packed-QKV ops (lengths or cu_seqlens) and the general ones (strided Q/K/V views, GQA, Sq ≠ Skv, a causal
 * mask — a uniform offset or per batch — and an additive f32 score bias with broadcast strides), the same
 * rules as the SIMT kernels (attention-wgsl.ts): key j is allowed for row i iff j < the key length and, causal,
 * j <= i + offset; a row with no allowed key is zeros.
 *
 * One workgroup of 4 subgroups per (64 query rows, head, batch) where per-subgroup offsets compile (else one
 * subgroup, 16 rows); each subgroup owns 16 query rows (FlashAttention-2 style: no cross-subgroup reduction).
 * Its Q rows are H/16 left fragments, loaded once from Q staged in workgroup memory. Per tile of BC keys (64
 * with 4 subgroups, or TcAttentionVariant.keyTile; 32 with one), staged in workgroup memory (K and V,
 * zero-filled past the key length, the next tile's global loads in flight in registers meanwhile):
 *  1. S = Q·Kᵀ: BC/16 result fragments (Kᵀ is K's tile read column-major), stored to the subgroup's f32 scratch;
 *  2. online softmax in f32: lane → (row lane % 16, side lane / 16 of the keys); row max and the two halves
 *     combined with one subgroupShuffleXor; P written to workgroup memory as f16;
 *  3. O += P·V on result fragments (the default, TcAttentionVariant.lazy: result matrices cannot be scaled
 *     per row, so P is taken against a row maximum kept until a tile's exceeds it by LAZY_TAU, and only then
 *     are the O fragments rescaled, through the scratch) — or, eagerly, T = P·V into fresh fragments and
 *     O = O·α + T in lane registers after T goes through the scratch, every tile.
 * The output is O / l, written as f16, 8 halves per store. Keys past the length are never read from V/K
 * (zero-filled) and get p = 0; a row with no key is zeros.
 *
 * Workgroup memory is two arrays, f16 KVs and the f32 scratch Ss, both multiples of 16 bytes, every fragment
 * offset and stride a multiple of 8 halves / 4 floats (16 bytes: see the history above). KVs is [K tile |
 * V tile | P] (layout()): the Q staging lies at its start until the first K/V tile is written (a barrier
 * between every subgroup's Q fragment loads and that write), and with pInK (the default) P lies in the K
 * tile's memory — written after the barrier that follows every subgroup's Q·Kᵀ, read before the barrier that
 * precedes the next tile's stash. At H = 64 with 4 subgroups that is 35 856 bytes (45 072 with P in a region
 * of its own); the separate Q, K, V and P tiles of before needed 54 288, over the 48 KiB Dawn allows, so BERT
 * ran the one-subgroup kernel (16 TFLOP/s at [8, 12, 512, 64] on the H200).
 */
import { OpError } from "../../../errors.js";
import type { MatrixSyntax } from "../precision.js";
import { matrixLoad, matrixStore, matrixTypes, SUBGROUP_BUILTINS, TC_HEADER } from "../precision.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import { bindings, type StorageDecl } from "./common.js";

/**
 * Layout choices of the kernel, to time them against each other (bench/gpu-kernels.ts); every one is in the
 * pipeline key (tcAttentionKey).
 */
export interface TcAttentionVariant {
  /** Keys per tile with 4 subgroups: 64 (default) or 32 (half the K/V staging and score scratch at H <= 32,
   * twice the barriers per key). One subgroup always takes 32. */
  keyTile?: 32 | 64;
  /** P in the K tile's memory (default), or false: in a region of its own (NSG·16·(BC + 8) halves more). */
  pInK?: boolean;
  /**
   * The running output O as result fragments that P·V accumulates into, rescaled (through the score scratch)
   * only on tiles where some row's maximum grows by more than LAZY_TAU over the one its P is taken against
   * (FlashAttention-4's conditional rescaling), instead of T = P·V through the scratch and O = O·α + T in lane
   * registers on every tile. P ≤ e^LAZY_TAU then, well inside f16.
   */
  lazy?: boolean;
}

/** How far a row's maximum may grow before its output is rescaled (TcAttentionVariant.lazy): P ≤ e^8 ≈ 2981. */
export const LAZY_TAU = 8;

/** The variant flashAttention takes unless told otherwise (FlashAttentionArgs.tcVariant). */
/**
 * Lazy rescaling by default: on the H200 (two runs each, bench/h200-tc-attention-lazy-1129f.log) [8,12,512,64]
 * 0.119 vs 0.126 ms, [16,12,256,64] 0.069 vs 0.071, [32,12,128,64] 0.043 with 64-key tiles vs 0.049 for the
 * 32-key tiles the eager kernel took there; results within 6.3e-4 of float64 where every row's maximum grows
 * along the keys (test/webgpu-f16.test.ts).
 */
export const TC_ATTENTION_DEFAULT: Required<TcAttentionVariant> = { keyTile: 64, pInK: true, lazy: true };

/**
 * The other variants, besides the default, that bench/gpu-kernels.ts times and bench/tc-attention-diag.ts
 * checks on the card: P in a region of its own, 32-key tiles, one subgroup.
 */
export const TC_ATTENTION_VARIANTS: readonly TcAttentionChoice[] = [
  { keyTile: 64, pInK: false },
  { keyTile: 32, pInK: true },
  { keyTile: 32, pInK: false },
  { multi: false, pInK: true },
  { multi: false, pInK: false },
  { keyTile: 64, lazy: false },
  { keyTile: 32, lazy: false },
];

function variant(v: TcAttentionVariant): Required<TcAttentionVariant> {
  return {
    keyTile: v.keyTile ?? TC_ATTENTION_DEFAULT.keyTile,
    pInK: v.pInK ?? TC_ATTENTION_DEFAULT.pInK,
    lazy: v.lazy ?? TC_ATTENTION_DEFAULT.lazy,
  };
}

/** Subgroups per workgroup (16 query rows each) and keys per tile: 4 and keyTile, or 1 and 32 (see `multi`). */
function shape(multi: boolean, keyTile: 32 | 64) {
  const NSG = multi ? 4 : 1;
  return { NSG, BR: 16 * NSG, BC: multi ? keyTile : 32, T: 32 * NSG };
}

/** Offset, batch, head and sequence strides of the Q, K, V and output views (both attention kernels' uniforms). */
export const QKVO_LAYOUT_FIELDS: UniformFields = ["q", "k", "v", "o"].flatMap((p) =>
  ["Off", "BS", "HS", "SS"].map((f) => [`${p}${f}`, "u32"] as const),
);

export const TC_ATTENTION_FIELDS: UniformFields = [
  ["seqQ", "u32"],
  ["seqKV", "u32"],
  ["group", "u32"],
  ["scale", "f32"],
  ["causalOffset", "i32"],
  ...QKVO_LAYOUT_FIELDS,
  // The additive score bias's offset and batch, head, row and key strides (0 broadcasts that axis).
  ["bOff", "u32"],
  ["bBS", "u32"],
  ["bHS", "u32"],
  ["bRS", "u32"],
  ["bKS", "u32"],
  ["negInf", "f32"],
];

export interface TcAttentionConfig extends TcAttentionVariant {
  /** Four subgroups per workgroup (needs per-subgroup fragment offsets); else one. */
  multi: boolean;
  /** The subgroup index and lane from the builtins (F16Support.sgBuiltin): devices whose subgroups are not laid
   * out in invocation order, or where per-subgroup offsets from local_invocation_index do not compile. */
  sgBuiltin?: boolean;
  H: number;
  lengths: boolean;
  cu: boolean;
  /** Causal mask: key j allowed for row i iff j <= i + the causalOffset uniform (or, causalPerBatch, kLen − qLen). */
  causal?: boolean;
  /** The causal offset per batch: its key length minus the query rows (FlashAttentionArgs.causalPerBatch). */
  causalPerBatch?: boolean;
  /** An additive f32 score bias (binding after lengths / cu, strides in the uniforms). */
  bias?: boolean;
  /**
   * Probe only (bench/tc-attention-probe.ts): the first H200 version's 4-byte `var<workgroup> wgKvEnd: u32`
   * (made uniform through workgroupUniformLoad), to reproduce its error next to the fixed kernel.
   */
  kvEndVar?: boolean;
  /**
   * Probe only: two more storage bindings after O, `DbgH: array<f16>` and `Dbg: array<f32>`, where workgroup
   * (0, 0, 0) writes what the fragments actually held (TC_DEBUG_LAYOUT).
   */
  debug?: boolean;
  /**
   * Timing only (wrong results; bench/gpu-kernels.ts): drop a stage — the Q·Kᵀ products and their K fragment
   * loads ("qk": zero scores), the softmax's exp ("softmax"), P·V ("pv"), or the K/V tile loads after the first
   * tile ("loads"), as the SIMT kernels' FastConfig.ablate does.
   */
  ablate?: "softmax" | "pv" | "loads" | "qk";
}

/**
 * Where a debug kernel (TcAttentionConfig.debug) writes, per subgroup sg, in elements. DbgH (f16), at
 * sg · 2048: the Q fragment q0, the first K fragment (Kᵀ, right, column-major), the first V fragment and the
 * first P fragment, each stored row-major with stride 16 (256 apart); at 8192 + 384·a, workgroup-wide, the
 * first 384 halves of the Q staging (once staged), the K tile and the V tile (once the first is staged),
 * a = 0, 1, 2, read element by element. Dbg (f32), at sg · 512: the first score fragment S = Q·Kᵀ and the
 * first T = P·V fragment, row-major, stride 16. All from the first key tile.
 */
export const TC_DEBUG_LAYOUT = {
  halves: 8192 + 3 * 384,
  floats: 4 * 512,
  perSgHalves: 2048,
  perSgFloats: 512,
};

/**
 * Strides and the workgroup memory's layout, in elements. KVs (f16): the K tile at kOff, the V tile at vOff,
 * P at pOff (in the K tile's memory with pInK), the Q staging at 0 before the first K/V tile; Ss (f32): per
 * subgroup 16 rows of SW, the scores and then T = P·V. Every offset and stride is a multiple of 8 halves /
 * 4 floats (16 bytes).
 */
function layout(H: number, multi: boolean, v: TcAttentionVariant) {
  const { keyTile, pInK, lazy } = variant(v);
  const { NSG, BR, BC, T } = shape(multi, keyTile);
  const KS = H + 8; // halves per staged Q/K/V row (16-byte pad)
  const PS = BC + 8; // halves per P row
  // Output columns per pass through the scratch: all of them eagerly (T = P·V every tile), at most 64 lazily.
  const OC = lazy ? outputChunk(H) : H;
  const SW = Math.max(BC, OC) + 4; // floats per scratch row
  const tile = BC * KS;
  const pLen = NSG * 16 * PS;
  const kRegion = Math.max(tile, pInK ? pLen : 0);
  const kOff = 0;
  const vOff = kRegion;
  const pOff = pInK ? 0 : kRegion + tile;
  const halves = Math.max(BR * KS, kRegion + tile + (pInK ? 0 : pLen));
  const floats = NSG * 16 * SW;
  return { KS, PS, SW, OC, NSG, BR, BC, T, kOff, vOff, pOff, halves, floats, pInK };
}

/**
 * Output columns the lazy kernel moves through the scratch at a time (rescales, the final store): H up to 64,
 * else the widest multiple of 16 up to 64 that divides H (128 → 64, 96 → 48, 80 → 16) — so H = 128 needs
 * 17 KiB of score scratch with four subgroups, not 34.
 */
function outputChunk(H: number): number {
  if (H <= 64) return H;
  for (let oc = 64; oc >= 16; oc -= 16) if (H % oc === 0) return oc;
  return 16;
}

/** Query rows per workgroup. */
export function tcAttentionRows(multi: boolean): number {
  return shape(multi, 64).BR;
}

/**
 * Workgroup memory in bytes, 16 of them for a small variable (the lazy rescale's flag, or the probe's 4-byte
 * wgKvEnd). H = 16 / 32 / 64, default
 * variant: 4 subgroups 29 712 / 31 760 / 35 856, one subgroup 5 392 / 7 440 / 13 584; 4 subgroups with P
 * separate 32 784 / 36 880 / 45 072; keyTile 32 (P separate) 17 424 / 19 472 / 31 760.
 */
export function tcAttentionSharedBytes(H: number, multi = true, v: TcAttentionVariant = {}): number {
  const { halves, floats } = layout(H, multi, v);
  return 2 * halves + 4 * floats + 16;
}

/**
 * Whether the tensor-core kernel takes this problem (the caller falls back to the SIMT fp16 kernel): equal head
 * sizes, multiples of 16 up to 128 (over 64 only lazily), within workgroup memory. H200, causal GQA prefill
 * [1, 2048, 32/8, 128]: 0.52 ms (66 TFLOP/s of the causal half) against 5.23 for the SIMT f16 kernel
 * (bench/h200-tc-attention-h128-1129f.log).
 */
export function tcAttentionSupports(
  H: number,
  HV: number,
  limit: number,
  multi: boolean,
  v: TcAttentionVariant = {},
): boolean {
  // Heads over 64 only with the lazy rescale (the eager kernel sends whole rows of T through the scratch).
  const wide = H > 64 && !variant(v).lazy;
  return H === HV && H % 16 === 0 && H <= 128 && !wide && tcAttentionSharedBytes(H, multi, v) <= limit;
}

/** A variant as FlashAttentionArgs.tcVariant takes it: `multi: false` forces one subgroup. */
export type TcAttentionChoice = TcAttentionVariant & { multi?: boolean };

/**
 * Key counts up to this take 32-key tiles with the eager rescale (TcAttentionVariant.lazy false) unless the
 * choice names a key tile (tcAttentionChoiceFor); the lazy kernel takes 64-key tiles throughout.
 */
export const TC_SHORT_KEYS = 128;

/**
 * The variant flashAttention asks tcAttentionPlan for with `seqKV` keys: the caller's choice, with 32-key
 * tiles for short sequences where it names no key tile but asks for the eager rescale (lazy: false; the default
 * lazy kernel takes 64-key tiles). On the H200 (eager) three runs at [32,12,128,64] gave 32-key tiles
 * 0.073, 0.048 and 0.049 ms against 0.106, 0.051 and 0.044 for 64-key ones (bench/h200-tc-attention-4sg-1129d.log,
 * -256-1129d.log, h200-kernels-fp16-1129d.log): mixed, 32 kept for now; from 256 keys 64-key tiles win (0.071
 * vs 0.081 at [16,12,256,64], 0.125 vs 0.142 at [8,12,512,64]). The emulated test builds its kernels from the
 * same answer.
 */
export function tcAttentionChoiceFor(
  seqKV: number,
  choice: TcAttentionChoice = {},
  /** Where given: 32-key tiles too where four subgroups fit workgroup memory only with them (a 32 KiB device). */
  fit?: { H: number; limit: number },
): TcAttentionChoice {
  const fits64 = !fit || tcAttentionSupports(fit.H, fit.H, fit.limit, true, { ...choice, keyTile: 64 });
  const lazy = choice.lazy ?? TC_ATTENTION_DEFAULT.lazy;
  const keyTile =
    choice.keyTile ?? ((!lazy && seqKV <= TC_SHORT_KEYS) || !fits64 ? 32 : TC_ATTENTION_DEFAULT.keyTile);
  return { ...choice, keyTile };
}

/** What the tensor-core kernel runs as for a problem (tcAttentionPlan). */
export interface TcAttentionPlan extends Required<TcAttentionVariant> {
  multi: boolean;
  /** Keys per tile as run (32 with one subgroup). */
  BC: number;
  /** Workgroup memory (tcAttentionSharedBytes). */
  bytes: number;
}

/**
 * How flashAttention runs the tensor-core kernel for head size H: 4 subgroups where per-subgroup offsets
 * compile (`multiSubgroup`), the choice allows and the tiles fit `limit`, else one; undefined where the kernel
 * does not take H at all. Benchmarks label their rows with it.
 */
export function tcAttentionPlan(
  H: number,
  HV: number,
  limit: number,
  multiSubgroup: boolean,
  choice: TcAttentionChoice = {},
): TcAttentionPlan | undefined {
  const v = variant(choice);
  const multi = multiSubgroup && choice.multi !== false && tcAttentionSupports(H, HV, limit, true, v);
  if (!tcAttentionSupports(H, HV, limit, multi, v)) return undefined;
  return { ...v, multi, BC: layout(H, multi, v).BC, bytes: tcAttentionSharedBytes(H, multi, v) };
}

/** Whether a config rescales lazily: its variant's choice (default lazy); the probe's debug kernels are eager. */
function lazyRescale(c: TcAttentionConfig): boolean {
  return variant(c).lazy && !c.debug && !c.kvEndVar;
}

/** The pipeline-cache key of a (non-probe) config: everything tcAttentionSource bakes in. */
export function tcAttentionKey(syntax: MatrixSyntax, c: TcAttentionConfig): string {
  const { BC, pInK } = layout(c.H, c.multi, c);
  const lazy = lazyRescale(c) ? ":lazy" : "";
  const sgb = !!c.sgBuiltin;
  const causal = c.causal ? `:causal${c.causalPerBatch ? "pb" : ""}` : "";
  return `flash-tc:${syntax}:m${+c.multi}:sgb${+sgb}:H${c.H}:len${+c.lengths}:cu${+c.cu}:kt${BC}:pk${+pInK}${lazy}${causal}${c.bias ? ":bias" : ""}${c.ablate ? `:ablate-${c.ablate}` : ""}`;
}

export function tcAttentionSource(c: TcAttentionConfig, syntax: MatrixSyntax): string {
  const { H } = c;
  const lazy = lazyRescale(c);
  const { KS, PS, SW, NSG, BR, BC, T, kOff, vOff, pOff, halves, floats } = layout(H, c.multi, {
    ...c,
    lazy,
  });
  if (H > 64 && !lazy)
    throw new OpError("webgpu.Attention (fp16 tensor-core)", `head size ${H} > 64 needs the lazy rescale`);
  // Lazy: output columns per pass through the scratch, and this lane's half of such a chunk of its row.
  const OC = lazy ? outputChunk(H) : H;
  const OH = OC / 2;
  const HF = H / 16;
  const HH = H / 2;
  const ty = matrixTypes({ M: 16, N: 16, K: 16 });
  const decls: StorageDecl[] = [
    { name: "Q", type: "vec4<u32>" },
    { name: "K", type: "vec4<u32>" },
    { name: "V", type: "vec4<u32>" },
  ];
  if (c.lengths) decls.push({ name: "lengths", type: "i32" });
  if (c.cu) decls.push({ name: "cu", type: "i32" });
  if (c.bias) decls.push({ name: "bias" });
  decls.push({ name: "O", type: "vec4<u32>", write: true });
  if (c.debug)
    decls.push({ name: "DbgH", type: "f16", write: true }, { name: "Dbg", type: "f32", write: true });
  const dbg = (line: string) => (c.debug ? `\n  if (dbgOn) { ${line}; }` : "");
  const dbgLine = (line: string) => `    if (dbgOn) { ${line}; }`;

  // K/V tile loads: `chunks` vec4s (8 halves) of each per thread, the last one partial where BC·H/8 is not a
  // multiple of the threads (4 subgroups, 32-key tiles, H = 16 or 48).
  const vecs = (BC * H) / 8;
  const chunks = Math.ceil(vecs / T);
  const decl: string[] = [];
  const fetch: string[] = [];
  const stash: string[] = [];
  for (let e = 0; e < chunks; e++) {
    const partial = (e + 1) * T > vecs;
    decl.push(`  var rk${e} = vec4<u32>(0u); var rv${e} = vec4<u32>(0u);`);
    fetch.push(`    { let idx = ${e * T}u + tid; let row = idx / ${H / 8}u; let c = (idx % ${H / 8}u) * 8u;
      let key = t0 + row; let kk = seqStart + key;
      rk${e} = vec4<u32>(0u); rv${e} = vec4<u32>(0u);
      if (key < kvEnd${partial ? ` && idx < ${vecs}u` : ""}) { rk${e} = K[(kBase + kk * u.kSS + c) / 8u]; rv${e} = V[(vBase + kk * u.vSS + c) / 8u]; } }`);
    const put = (base: number, reg: string) =>
      [0, 1, 2, 3]
        .map(
          (w) =>
            `{ let h = bitcast<vec2<f16>>(${reg}[${w}]); KVs[o + ${base + 2 * w}u] = h.x; KVs[o + ${base + 2 * w + 1}u] = h.y; }`,
        )
        .join(" ");
    stash.push(`    { let idx = ${e * T}u + tid;${partial ? ` if (idx < ${vecs}u) {` : ""} let o = (idx / ${H / 8}u) * ${KS}u + (idx % ${H / 8}u) * 8u;
      ${put(kOff, `rk${e}`)}
      ${put(vOff, `rv${e}`)}${partial ? " }" : ""} }`);
  }

  const qLoads: string[] = [];
  for (let h = 0; h < HF; h++)
    qLoads.push(
      `  let q${h} = ${matrixLoad(syntax, ty.left, "&KVs", `sg * ${16 * KS}u + ${h * 16}u`, `${KS}u`)};`,
    );
  const scores: string[] = [];
  for (let j = 0; j < BC / 16; j++) {
    scores.push(`    { var s = ${ty.result}();`);
    for (let h = 0; h < HF && c.ablate !== "qk"; h++)
      scores.push(
        `      s = subgroupMatrixMultiplyAccumulate(q${h}, ${matrixLoad(syntax, ty.right, "&KVs", `${kOff + j * 16 * KS + h * 16}u`, `${KS}u`, true)}, s);`,
      );
    if (j === 0 && c.debug)
      scores.push(dbgLine(`if (k0 == 0u) { ${matrixStore(syntax, "&Dbg", "sg * 512u", "s", "16u")}; }`));
    scores.push(`      ${matrixStore(syntax, "&Ss", `sg * ${16 * SW}u + ${j * 16}u`, "s", `${SW}u`)}; }`);
  }
  const pv: string[] = [];
  for (let k = 0; k < BC / 16; k++)
    pv.push(
      `    let p${k} = ${matrixLoad(syntax, ty.left, "&KVs", `${pOff}u + sg * ${16 * PS}u + ${k * 16}u`, `${PS}u`)};`,
    );
  if (c.debug) {
    pv.push(
      dbgLine(
        `if (k0 == 0u) { ${matrixStore(syntax, "&DbgH", "sg * 2048u + 768u", "p0", "16u")}; ${matrixStore(syntax, "&DbgH", "sg * 2048u + 512u", matrixLoad(syntax, ty.right, "&KVs", `${vOff}u`, `${KS}u`), "16u")}; }`,
      ),
    );
  }
  for (let h = 0; h < HF && lazy; h++)
    for (let k = 0; k < BC / 16; k++)
      pv.push(
        `    of${h} = subgroupMatrixMultiplyAccumulate(p${k}, ${matrixLoad(syntax, ty.right, "&KVs", `${vOff + k * 16 * KS + h * 16}u`, `${KS}u`)}, of${h});`,
      );
  for (let h = 0; h < HF && !lazy; h++) {
    pv.push(`    { var t = ${ty.result}();`);
    for (let k = 0; k < BC / 16; k++)
      pv.push(
        `      t = subgroupMatrixMultiplyAccumulate(p${k}, ${matrixLoad(syntax, ty.right, "&KVs", `${vOff + k * 16 * KS + h * 16}u`, `${KS}u`)}, t);`,
      );
    if (h === 0 && c.debug)
      pv.push(dbgLine(`if (k0 == 0u) { ${matrixStore(syntax, "&Dbg", "sg * 512u + 256u", "t", "16u")}; }`));
    pv.push(`      ${matrixStore(syntax, "&Ss", `sg * ${16 * SW}u + ${h * 16}u`, "t", `${SW}u`)}; }`);
  }
  const oDecl: string[] = [];
  const oUpdate: string[] = [];
  for (let cc = 0; cc < HH && !lazy; cc++) {
    oDecl.push(`  var o${cc} = 0.0;`);
    oUpdate.push(`    o${cc} = o${cc} * alpha + Ss[rowT + ${cc}u];`);
  }
  for (let h = 0; h < HF && lazy; h++) oDecl.push(`  var of${h} = ${ty.result}();`);
  // Lazy: the O fragments of output columns [ch·OC, (ch + 1)·OC) through the subgroup's scratch rows.
  const fragsOf = (ch: number) => Array.from({ length: OC / 16 }, (_, f) => [ch * (OC / 16) + f, f * 16]);
  const ofToScratch = (ch: number, indent: string) =>
    fragsOf(ch)
      .map(
        ([h, col]) =>
          `${indent}${matrixStore(syntax, "&Ss", `sg * ${16 * SW}u + ${col}u`, `of${h}`, `${SW}u`)};`,
      )
      .join("\n");
  const ofFromScratch = (ch: number, indent: string) =>
    fragsOf(ch)
      .map(
        ([h, col]) =>
          `${indent}of${h} = ${matrixLoad(syntax, ty.result, "&Ss", `sg * ${16 * SW}u + ${col}u`, `${SW}u`)};`,
      )
      .join("\n");
  const chunksO = H / OC;
  // Lazy rescale: each chunk of O through the scratch, scaled by this lane's row factor, back.
  const rescaleO = Array.from(
    { length: lazy ? chunksO : 0 },
    (_, ch) => `${ofToScratch(ch, "      ")}
      workgroupBarrier();
      for (var cc = 0u; cc < ${OH}u; cc++) { Ss[rowT + cc] = Ss[rowT + cc] * alpha; }
      workgroupBarrier();
${ofFromScratch(ch, "      ")}${ch + 1 < chunksO ? "\n      workgroupBarrier();" : ""}`,
  ).join("\n");
  // Output column cc of this lane's half row (of chunk ch): a register, or (lazy) the scratch.
  const oAt = (cc: number) => (lazy ? `Ss[rowT + ${cc}u]` : `o${cc}`);
  const oStoreCols = (n: number, at: string) =>
    Array.from({ length: n / 8 }, (_, q) => {
      const pk = [0, 1, 2, 3].map(
        (w) => `pack2x16float(vec2<f32>(${oAt(8 * q + 2 * w)}, ${oAt(8 * q + 2 * w + 1)}) * inv)`,
      );
      return `    O[(${at} + ${8 * q}u) / 8u] = vec4<u32>(${pk.join(", ")});`;
    }).join("\n");
  // The final store: eagerly from the registers; lazily each chunk through the scratch, a barrier between.
  const finalStore = lazy
    ? Array.from(
        { length: chunksO },
        (_, ch) => `${ofToScratch(ch, "  ")}
  workgroupBarrier();
  if (i < qLen) {
    let inv = select(1.0 / l, 0.0, l == 0.0);
    let ob = oBase + (seqStart + i) * u.oSS + ${ch ? `${ch * OC}u + ` : ""}side * ${OH}u;
${oStoreCols(OH, "ob")}
  }${ch + 1 < chunksO ? "\n  workgroupBarrier();" : ""}`,
      ).join("\n")
    : `  if (i < qLen) {
    let inv = select(1.0 / l, 0.0, l == 0.0);
    let ob = oBase + (seqStart + i) * u.oSS + side * ${HH}u;
${oStoreCols(HH, "ob")}
  }`;
  // Four scores of this lane's row, from key c of its side on (c a multiple of 4, rowS too: 16-byte aligned).
  const s4raw = "vec4<f32>(Ss[rowS + c], Ss[rowS + c + 1u], Ss[rowS + c + 2u], Ss[rowS + c + 3u])";
  const s4 = `${s4raw} * u.scale`;
  const in4 = "vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(nk)";

  const keyLen = c.cu ? "seqLen" : c.lengths ? "u32(clamp(lengths[b], 0, i32(u.seqKV)))" : "u.seqKV";
  // The builtins wherever the device needs them (subgroups not in invocation order), one subgroup included: the
  // softmax's shuffle partner is lane ^ 16 of subgroup_invocation_id.
  const builtin = !!c.sgBuiltin;
  return `${TC_HEADER}enable subgroups;
${uniformStruct(TC_ATTENTION_FIELDS)}${bindings(decls)}
// [K tile | V tile | P] (P at ${pOff}, in the K tile with pInK); the Q staging at 0 before the first K/V tile.
var<workgroup> KVs: array<f16, ${halves}>;
var<workgroup> Ss: array<f32, ${floats}>;
${c.kvEndVar ? "var<workgroup> wgKvEnd: u32;\n" : ""}${lazy ? "// Set when some row's output needs rescaling this tile; 16 bytes, like every workgroup variable.\nvar<workgroup> rescale: array<atomic<u32>, 4>;\n" : ""}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32${builtin ? SUBGROUP_BUILTINS.params : ""}) {
  // Subgroups of 32 in invocation order (checked at detection), or the builtins.
  let sg = ${NSG === 1 ? "0u" : builtin ? "sgid" : "tid / 32u"}; let lane = ${builtin ? "sgLane" : "tid % 32u"}; let r = lane % 16u; let side = lane / 16u;
  let rowBase = wid.x * ${BR}u; let n = wid.y; let b = wid.z; let g = n / u.group;
  let NEG_INF = u.negInf;
  ${c.cu ? "let seqStart = u32(cu[b]); let seqLen = u32(cu[b + 1u]) - seqStart;" : "let seqStart = 0u;"}
  let qLen = ${c.cu ? "seqLen" : "u.seqQ"};
  let kLen = ${keyLen};
  let qBase = u.qOff + b * u.qBS + n * u.qHS;
  let kBase = u.kOff + b * u.kBS + g * u.kHS;
  let vBase = u.vOff + b * u.vBS + g * u.vHS;
  let oBase = u.oOff + b * u.oBS + n * u.oHS;
  ${
    c.kvEndVar
      ? `if (tid == 0u) { wgKvEnd = select(0u, kLen, rowBase < qLen); }
  var kvEnd = workgroupUniformLoad(&wgKvEnd);`
      : `// Workgroup-uniform as it stands (uniforms, read-only storage, workgroup_id): no workgroup scalar. The
  // first H200 version staged it through a 4-byte \`var<workgroup> wgKvEnd: u32\`, and there the K and V
  // fragments came out shifted by two halves (bench/h200-tc-attention-probe.log).
  var kvEnd = select(0u, kLen, rowBase < qLen);`
  }${
    c.causal
      ? `
  // Key j is allowed for row i iff j <= i + causalOff (a uniform, or per batch: bottom-right aligned to each
  // sequence's own keys); the workgroup reads keys up to what its last live row allows.
  let causalOff = ${c.causalPerBatch ? "i32(kLen) - i32(qLen)" : "u.causalOffset"};
  if (kvEnd > 0u) { kvEnd = u32(clamp(i32(min(rowBase + ${BR}u, qLen)) + causalOff, 0, i32(kvEnd))); }`
      : ""
  }${c.debug ? "\n  let dbgOn = wid.x == 0u && wid.y == 0u && wid.z == 0u;" : ""}
${decl.join("\n")}
  // The first K/V tile's loads in flight while Q is staged.
  {
    let t0 = 0u;
${fetch.join("\n")}
  }

  // Q rows staged through workgroup memory, zero past the sequence: a fragment load straight from the
  // storage buffer that reaches past its end is clamped as a whole by Dawn's robustness, corrupting valid rows.
  for (var e = tid; e < ${(BR * H) / 8}u; e += ${T}u) {
    let row = e / ${H / 8}u; let c = (e % ${H / 8}u) * 8u; let i = rowBase + row;
    // Loaded only inside the sequence: with Dawn's robustness off nothing clamps a row past the tensor (an empty
    // last sequence of a var-seqlen batch starts at T).
    var x = vec4<u32>(0u);
    if (i < qLen) { x = Q[(qBase + (seqStart + i) * u.qSS + c) / 8u]; }
    let o = row * ${KS}u + c;
    ${[0, 1, 2, 3].map((w) => `{ let h = bitcast<vec2<f16>>(x[${w}]); KVs[o + ${2 * w}u] = h.x; KVs[o + ${2 * w + 1}u] = h.y; }`).join(" ")}
  }
  workgroupBarrier();${dbg(`for (var e = tid; e < 384u; e += ${T}u) { DbgH[8192u + e] = KVs[e]; }`)}
${qLoads.join("\n")}${dbg(matrixStore(syntax, "&DbgH", "sg * 2048u", "q0", "16u"))}
  // Every subgroup's Q fragments are loaded: the K/V tiles may overwrite the Q staging.
  workgroupBarrier();
  {
${stash.join("\n")}
  }
  workgroupBarrier();${dbg(`${matrixStore(syntax, "&DbgH", "sg * 2048u + 256u", matrixLoad(syntax, ty.right, "&KVs", `${kOff}u`, `${KS}u`, true), "16u")};
    for (var e = tid; e < 384u; e += ${T}u) { DbgH[8576u + e] = KVs[${kOff}u + e]; DbgH[8960u + e] = KVs[${vOff}u + e]; }`)}
  var m = NEG_INF;
  var l = 0.0;
  // This lane's row: its keys end at rowEnd (a prefix of the workgroup's kvEnd keys).
  let i = rowBase + sg * 16u + r;
  // This lane's half of its row in the scratch (T = P·V, or the lazy O fragments).
  let rowT = sg * ${16 * SW}u + r * ${SW}u + side * ${lazy ? OH : HH}u;
  let rowEnd = ${c.causal ? "u32(clamp(i32(i) + causalOff + 1, 0, i32(kvEnd)))" : "kvEnd"};${c.bias ? "\n  let bRow = u.bOff + b * u.bBS + n * u.bHS + min(i, u.seqQ - 1u) * u.bRS;" : ""}
${oDecl.join("\n")}
  for (var k0 = 0u; k0 < kvEnd; k0 += ${BC}u) {
    let t0 = k0 + ${BC}u;
    let more = t0 < kvEnd${c.ablate === "loads" ? " && false" : ""};
    if (more) {
${fetch.join("\n")}
    }
${scores.join("\n")}
    // The scores are visible, and every subgroup is done with the K tile (P may overwrite it).
    workgroupBarrier();
    // Online softmax of row r over this lane's side of the tile's keys, the first nk of which exist.
    let rowS = sg * ${16 * SW}u + r * ${SW}u + side * ${BC / 2}u;
    let rowP = ${pOff}u + sg * ${16 * PS}u + r * ${PS}u + side * ${BC / 2}u;
    let keyBase = k0 + side * ${BC / 2}u;
    let nk = min(rowEnd - min(keyBase, rowEnd), ${BC / 2}u);
    var mx = NEG_INF;
    for (var c = 0u; c < ${BC / 2}u; c += 4u) {
      ${
        c.bias
          ? `var s = select(vec4<f32>(NEG_INF), ${s4}, ${in4});
      // The bias of the four keys, their indices clamped into the bias (key < seqKV; bRow's row < seqQ) so the
      // loads need no branch and issue together; masked keys drop theirs. [8,12,512,64] causal + bias on the
      // H200: 0.165 ms, against 0.62 with a guarded load each and 0.214 with the subgroup's lanes adding
      // coalesced bias rows into the scratch behind one more barrier
      // (bench/h200-tc-attention-general{,-guarded,-coop}-1129f.log). The biased scores go back to the scratch,
      // which the exp loop below reads as they are.
      let j4 = min(vec4<u32>(keyBase + c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.seqKV - 1u)) * u.bKS;
      let bv = vec4<f32>(bias[bRow + j4.x], bias[bRow + j4.y], bias[bRow + j4.z], bias[bRow + j4.w]);
      s = s + select(vec4<f32>(0.0), bv, ${in4});
      Ss[rowS + c] = s.x; Ss[rowS + c + 1u] = s.y; Ss[rowS + c + 2u] = s.z; Ss[rowS + c + 3u] = s.w;`
          : `let s = select(vec4<f32>(NEG_INF), ${s4}, ${in4});`
      }
      mx = max(mx, max(max(s.x, s.y), max(s.z, s.w)));
    }
    mx = max(mx, subgroupShuffleXor(mx, 16u));
${
  lazy
    ? `    // P is taken against mNew: the row's first finite maximum, kept until a tile's exceeds it by more than
    // LAZY_TAU (P ≤ e^${LAZY_TAU}); only then are l and O rescaled (O through the scratch, below).
    var mNew = m;
    var alpha = 1.0;
    if (m == NEG_INF) { mNew = mx; } else if (mx > m + ${LAZY_TAU.toFixed(1)}) {
      mNew = mx;
      alpha = exp(m - mx);
      atomicOr(&rescale[0], 1u);
    }`
    : `    let mNew = max(m, mx);
    var alpha = 1.0;
    if (mNew > m) { alpha = exp(m - mNew); }`
}
    let live = vec4<bool>(mNew > NEG_INF);
    var ps = 0.0;
    for (var c = 0u; c < ${BC / 2}u; c += 4u) {
      let p = select(vec4<f32>(0.0), ${c.ablate === "softmax" ? "" : "exp"}(${c.bias ? s4raw : s4} - mNew), (${in4}) & live);
      KVs[rowP + c] = f16(p.x); KVs[rowP + c + 1u] = f16(p.y); KVs[rowP + c + 2u] = f16(p.z); KVs[rowP + c + 3u] = f16(p.w);
      ps += p.x; ps += p.y; ps += p.z; ps += p.w;
    }
    l = l * alpha + ps;
    m = mNew;
${
  lazy
    ? `    // P is visible (workgroupUniformLoad is a barrier), and whether any row asked for a rescale, uniformly.
    if (workgroupUniformLoad(&rescale[0]) != 0u) {
${rescaleO}
    }
    {
${c.ablate === "pv" ? "" : pv.join("\n")}
    }
    // Every subgroup is done with the V tile and P (the next tile may overwrite them) and has read the flag.
    workgroupBarrier();
    if (tid == 0u) { atomicStore(&rescale[0], 0u); }`
    : `    workgroupBarrier();
    {
${c.ablate === "pv" ? "" : pv.join("\n")}
    }
    // T is visible, and every subgroup is done with the V tile and P (the next tile may overwrite them).
    workgroupBarrier();
${oUpdate.join("\n")}`
}
    if (more) {
${stash.join("\n")}
    }
    workgroupBarrier();
  }
  l = l + subgroupShuffleXor(l, 16u);
${finalStore}
}`;
}

export function tcAttentionUniforms(values: Record<string, number>): ArrayBuffer {
  return packUniforms(TC_ATTENTION_FIELDS, values);
}

/** The uniforms of one sequence and one head: packed [S, 3H] rows (Q | K | V), output [S, H] (probes, tests). */
export function singleHeadTcUniforms(S: number, H: number, scale: number): ArrayBuffer {
  const L = (p: string, offset: number) => ({
    [`${p}Off`]: offset,
    [`${p}BS`]: 3 * H,
    [`${p}HS`]: 3 * H,
    [`${p}SS`]: 3 * H,
  });
  return tcAttentionUniforms({
    seqQ: S,
    seqKV: S,
    group: 1,
    scale,
    causalOffset: 0,
    ...L("q", 0),
    ...L("k", H),
    ...L("v", 2 * H),
    oOff: 0,
    oBS: H,
    oHS: H,
    oSS: H,
    ...{ bOff: 0, bBS: 0, bHS: 0, bRS: 0, bKS: 0 },
    negInf: Number.NEGATIVE_INFINITY,
  });
}
