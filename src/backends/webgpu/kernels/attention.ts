/**
 * Flash attention in WGSL (float32 math): one workgroup per (row tile of Br queries, head, batch). Two SIMT
 * kernels: where the adapter has subgroups of ≥ 8 invocations, attention-fast.ts (8-row register blocks, the
 * softmax in registers with subgroup reductions); elsewhere the workgroup-memory kernel described here. Both
 * are built from attention-wgsl.ts's prologue and store, so their masks and lengths are the same code.
 *
 * The workgroup-memory kernel: the scaled Q tile stays in workgroup memory; K and V tiles of BC keys stream
 * through one shared buffer (K for the scores, then V for P·V); scores and probabilities go through a padded
 * P tile. No [B, N, Sq, Skv] tensor exists.
 *
 * Per key tile: all threads compute the Br×BC score tile Q·Kᵀ (each a 4×4 block: 16 dot products of vec4s per
 * 8 vec4 reads); Br "row threads" then each own one query row — bias, masks and the online-softmax update
 * (running max m and sum l in registers, rescale factor to the others through workgroup memory) — while all
 * threads load V; finally each thread adds P·V into its 4 rows × 4·NV output columns held in registers.
 * Rows of workgroup-shared tiles are padded by one vec4 so a subgroup reading a column of rows hits distinct banks.
 *
 * Semantics are the CPU kernel's (src/backends/cpu/attention-kernel.ts): key j of query row i is read iff
 * j < keyLen (per batch: lengths, or cu_seqlens, clamped to [0, Skv]) and, when causal, j <= i + causalOffset;
 * keys past the allowed range are never loaded (their K/V may hold anything, NaN included). A block whose
 * allowed scores are all -inf or NaN contributes nothing; a NaN score among finite ones makes the row NaN; a
 * row with no allowed key (length 0) or only -inf scores is zeros. Padded query rows (i >= length, packed
 * form) are computed as TensorRT does: a softmax over the valid keys. Rows past a var-seqlen sequence's
 * length do not exist and are not written. Known difference: where V holds NaN/Inf at a key that some rows of
 * a tile may read and others may not (the causal diagonal, or a -inf bias), the masked rows get 0·NaN; the CPU
 * kernel skips such keys.
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import type { CachedPipeline } from "../pipeline-cache.js";
import { type F16Kernel, type Precision, requireF16 } from "../precision.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms } from "../uniforms.js";
import {
  type FastConfig,
  fastAttentionKey,
  fastAttentionSharedBytes,
  fastAttentionSource,
} from "./attention-fast.js";
import {
  type TcAttentionChoice,
  tcAttentionChoiceFor,
  tcAttentionKey,
  tcAttentionPlan,
  tcAttentionRows,
  tcAttentionSource,
  tcAttentionUniforms,
} from "./attention-tc.js";
import {
  ATTENTION_FIELDS,
  type AttentionIo,
  attentionHead,
  attentionPrologue,
  BC,
  biasRead,
  round4,
  storeRow,
  TX,
  tileLoader,
} from "./attention-wgsl.js";
import { type GpuTensor, sizeOf } from "./common.js";

/** Where one tensor's (batch, head, seq) rows live, in elements; the feature axis is contiguous. */
export interface AttentionLayout {
  offset: number;
  batchStride: number;
  headStride: number;
  seqStride: number;
}

/** Additive score bias indexed [batch, head, query row, key]; a stride of 0 broadcasts that axis. */
export interface AttentionBiasArg {
  buffer: GPUBuffer;
  offset: number;
  batchStride: number;
  headStride: number;
  rowStride: number;
  keyStride: number;
}

export interface FlashAttentionArgs {
  batch: number;
  numHeads: number;
  /** GQA: query head n reads kv head floor(n / (numHeads / kvNumHeads)). */
  kvNumHeads: number;
  /** Query rows per sequence (the maximum sequence length with cuSeqlens). */
  seqQ: number;
  /** Keys per sequence (the maximum sequence length with cuSeqlens). */
  seqKV: number;
  headSize: number;
  vHeadSize: number;
  scale: number;
  q: GPUBuffer;
  qLayout: AttentionLayout;
  k: GPUBuffer;
  kLayout: AttentionLayout;
  v: GPUBuffer;
  vLayout: AttentionLayout;
  out: GPUBuffer;
  outLayout: AttentionLayout;
  /** int32 [batch]: keys j >= len are ignored (clamped to [0, seqKV]); every query row is computed. */
  keyLengths?: GPUBuffer;
  /**
   * int32 [batch + 1]: sequence b is tokens cu[b]..cu[b+1]-1 for queries and keys alike (var-seqlen);
   * its row i lives at seq index cu[b] + i of every layout. Excludes keyLengths.
   */
  cuSeqlens?: GPUBuffer;
  /** Causal: key j is allowed iff j <= i + causalOffset (0 = top-left aligned, Skv - Sq = bottom-right). */
  causalOffset?: number;
  /**
   * Causal with each batch's offset its key length minus seqQ (keyLengths required; causalOffset ignored):
   * decoding over a KV cache whose past length differs per sequence (GroupQueryAttention's seqlens_k).
   */
  causalPerBatch?: boolean;
  bias?: AttentionBiasArg;
  /**
   * Benchmarking only — the results are wrong: leave out one stage to see what it costs (the "time variants
   * that leave a stage out" method; WebGPU has no per-instruction counters). "softmax": the per-row online
   * softmax phase; "pv": the V load and the P·V product; subgroup kernel only: "loads" the K/V tile loads
   * after the first tile, "qk" the Q·Kᵀ products.
   */
  ablate?: "softmax" | "pv" | "loads" | "qk";
  /**
   * Query rows per workgroup (default: 64 where workgroup memory allows, else 32): a multiple of 4, and of
   * rowsPerThread for the subgroup kernel.
   */
  rowTile?: number;
  /** Subgroup kernel only: query rows per thread (default 4, attention.ts FAST_DEFAULT) — tests, benchmarks. */
  rowsPerThread?: number;
  /**
   * Subgroup kernel only: P·V takes P from the row group's lanes by subgroupShuffle (no P tile), or false (the
   * default): through a P tile in workgroup memory (in the K tile's, pInK, where it fits).
   */
  shuffleP?: boolean;
  /**
   * Subgroup kernel only: K/V tiles through registers, the next tile's loads in flight while this one is used
   * (default true where rows are vec4s); false loads each tile right before its use — tests, benchmarks.
   */
  prefetchKV?: boolean;
  /**
   * Subgroup kernel only: keys per tile, 32 or 64 (FastConfig.keyTile). This and the layout fields below
   * default to the first of attention.ts FAST_LAYOUTS whose tiles fit; a field given wins — tests, benchmarks.
   */
  keyTile?: 32 | 64;
  /** Subgroup kernel only: the products' loops written out (FastConfig.unroll) — tests, benchmarks. */
  unroll?: boolean;
  /** Subgroup kernel only: swizzled Q/K tiles, no key-range word (FastConfig.pack) — tests, benchmarks. */
  pack?: boolean;
  /** Subgroup kernel only: K and V prefetched in turn, one tile of registers (FastConfig.interleaveKV). */
  interleaveKV?: boolean;
  /** Subgroup kernel only: P in the K tile's memory where it fits (FastConfig.pInK). */
  pInK?: boolean;
  /**
   * "fp32" (default): Q, K, V, O float32. "fp16": Q, K, V, O IEEE f16 (bias stays f32), scores, softmax and
   * accumulation in f32 — on tensor cores where the context detected them and the problem fits (equal head
   * sizes 16..128 in steps of 16, 8-aligned layouts), else the SIMT kernel with f16 loads/stores.
   */
  precision?: Precision;
  /** fp16 only: force the kernel (tests, benchmarks), or with `f16KernelPreferred` the session's choice. */
  f16Kernel?: F16Kernel;
  /**
   * `f16Kernel` is a preference (a session's kernel choice), not a demand: a problem the tensor-core kernel
   * does not take (head size outside 16..128, say) runs on the SIMT kernel instead of raising an OpError.
   */
  f16KernelPreferred?: boolean;
  /**
   * Tensor-core kernel only: its layout (default TC_ATTENTION_DEFAULT), and `multi: false` one subgroup per
   * workgroup even where four would run — tests, benchmarks. A variant whose four-subgroup tiles do not fit
   * workgroup memory runs with one subgroup.
   */
  tcVariant?: TcAttentionChoice;
  /**
   * The subgroup kernel (attention-fast.ts) where the device has subgroups of at least 8 invocations
   * (default), or false: the workgroup-memory kernel, the portable fallback (tests, benchmarks).
   */
  subgroups?: boolean;
}

/** The subgroup kernel's tile and layout choices a caller may force (tests, benchmarks); unset: the defaults. */
export type FastTuning = Pick<
  FlashAttentionArgs,
  | "rowTile"
  | "rowsPerThread"
  | "shuffleP"
  | "prefetchKV"
  | "keyTile"
  | "unroll"
  | "pack"
  | "interleaveKV"
  | "pInK"
>;
const FAST_TUNING_KEYS = [
  "rowTile",
  "rowsPerThread",
  "shuffleP",
  "prefetchKV",
  "keyTile",
  "unroll",
  "pack",
  "interleaveKV",
  "pInK",
] as const satisfies readonly (keyof FastTuning)[];

/** The FastTuning fields `a` sets (the ops' arguments pass them on to flashAttention as they are). */
function fastTuningOf(a: FastTuning): FastTuning {
  const t: FastTuning = {};
  for (const k of FAST_TUNING_KEYS) if (a[k] !== undefined) (t as Record<string, unknown>)[k] = a[k];
  return t;
}

/**
 * Whether the subgroup kernel can run here: subgroups of at least TX invocations, laid out in invocation order
 * (its row groups are TX consecutive invocations; WebGpuFeatures.subgroupsInOrder).
 */
export function attentionSubgroups(ctx: WebGpuContext): boolean {
  const f = ctx.gpu.features;
  return f.subgroups && f.subgroupsInOrder && f.subgroupMinSize >= TX;
}

/** The workgroup-memory kernel's config. */
interface Config extends AttentionIo {
  Br: number;
  ablate?: "softmax" | "pv";
}

function dims(c: Pick<Config, "H" | "HV" | "Br">) {
  const HP = round4(c.H);
  const HVP = round4(c.HV);
  const QS = HP / 4 + 1; // vec4s per Q/K row in workgroup memory (one of padding)
  const VS = HVP / 4; // vec4s per V row
  const PS = BC / 4 + 1; // vec4s per P row
  const NV = Math.ceil(VS / TX); // output vec4s per thread and row
  const TY = c.Br / 4;
  return { HP, HVP, QS, VS, PS, NV, TY, T: TY * TX };
}

/** Workgroup memory of the workgroup-memory kernel, in bytes. */
export function attentionSharedBytes(c: Pick<Config, "H" | "HV" | "Br">): number {
  const { QS, VS, PS } = dims(c);
  return 16 * (c.Br * QS + BC * Math.max(QS, VS) + c.Br * PS) + 4 * c.Br + 16;
}

/** The workgroup-memory kernel (no subgroups): see the file header. */
export function attentionSource(c: Config): string {
  const { Br } = c;
  const { HP, QS, VS, PS, NV, TY, T } = dims(c);
  const loadRows = tileLoader(c, T);

  const comps = ["x", "y", "z", "w"];
  // Scores: rows 4ty + r, keys 4tx + k; s_r is a vec4 over the thread's 4 keys.
  const score: string[] = [];
  for (let r = 0; r < 4; r++) score.push(`    var s${r} = vec4<f32>(0.0);`);
  score.push(`    for (var dv = 0u; dv < ${HP / 4}u; dv++) {`);
  for (let r = 0; r < 4; r++) score.push(`      let q${r} = Qs[(ty * 4u + ${r}u) * ${QS}u + dv];`);
  for (let k = 0; k < 4; k++) score.push(`      let k${k} = KV[(tx * 4u + ${k}u) * ${QS}u + dv];`);
  for (let r = 0; r < 4; r++)
    score.push(`      s${r} += vec4<f32>(dot(q${r}, k0), dot(q${r}, k1), dot(q${r}, k2), dot(q${r}, k3));`);
  score.push("    }");
  for (let r = 0; r < 4; r++) score.push(`    Ps[(ty * 4u + ${r}u) * ${PS}u + tx] = s${r};`);

  // Output accumulators o{r}_{j}: row 4ty + r, columns 4(tx + TX·j)..+3.
  const accDecl: string[] = [];
  const rescale: string[] = [];
  const pv: string[] = [];
  for (let r = 0; r < 4; r++) {
    rescale.push(`    let f${r} = alpha[ty * 4u + ${r}u];`);
    for (let j = 0; j < NV; j++) {
      accDecl.push(`  var o${r}_${j} = vec4<f32>(0.0);`);
      rescale.push(`    o${r}_${j} *= f${r};`);
    }
  }
  pv.push(`    for (var jv = 0u; jv < ${BC / 4}u; jv++) {`);
  for (let r = 0; r < 4; r++) pv.push(`      let p${r} = Ps[(ty * 4u + ${r}u) * ${PS}u + jv];`);
  for (let e = 0; e < 4; e++)
    for (let j = 0; j < NV; j++) {
      const col = `tx + ${j * TX}u`;
      const guard = (j + 1) * TX > VS;
      pv.push(
        `      { let vv = ${guard ? `select(vec4<f32>(0.0), KV[(jv * 4u + ${e}u) * ${VS}u + min(${col}, ${VS - 1}u)], ${col} < ${VS}u)` : `KV[(jv * 4u + ${e}u) * ${VS}u + ${col}]`};`,
      );
      for (let r = 0; r < 4; r++)
        pv.push(`        o${r}_${j} = fma(vec4<f32>(p${r}.${comps[e]}), vv, o${r}_${j});`);
      pv.push("      }");
    }
  pv.push("    }");

  // Final store of 4 rows × NV vec4 columns, scaled by 1 / l (zeros where l = 0).
  const store = Array.from({ length: 4 }, (_, r) =>
    storeRow(c, `ty * 4u + ${r}u`, "alpha[row]", (j) => `o${r}_${j}`, NV),
  );

  return `${attentionHead(c, false)}
var<workgroup> Qs: array<vec4<f32>, ${Br * QS}>;
var<workgroup> KV: array<vec4<f32>, ${BC * Math.max(QS, VS)}>;
var<workgroup> Ps: array<vec4<f32>, ${Br * PS}>;
var<workgroup> alpha: array<f32, ${Br}>;
var<workgroup> wgKvEnd: u32;

@compute @workgroup_size(${TX}, ${TY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
${attentionPrologue(c, Br, T, QS)}
${accDecl.join("\n")}

  // The row this thread owns in the softmax phase (threads tid < Br), its allowed keys and running state.
  let myRow = min(tid, ${Br - 1}u);
  let myI = rowBase + myRow;
  var myEnd = select(0u, kLen, myI < qLen);
  ${c.causal ? "myEnd = u32(clamp(i32(myI) + causalOff + 1, 0, i32(myEnd)));" : ""}
  var m = NEG_INF;
  var l = 0.0;

  for (var k0 = 0u; k0 < kvEnd; k0 += ${BC}u) {
    {
      let base = k0;
${loadRows("KV", "K", BC, c.H, QS, "base + r < kvEnd", "kBase", "u.kSS", "")}
    }
    workgroupBarrier();
    {
${score.join("\n")}
    }
    workgroupBarrier();
    if (tid < ${Br}u${c.ablate === "softmax" ? " && false" : ""}) {
      // Bias, masks and the online-softmax update of row myRow over this tile's keys.
      let i = myI;
      let limit = min(myEnd, k0 + ${BC}u);
      var blockMax = NEG_INF;
      for (var jv = 0u; jv < ${BC / 4}u; jv++) {
        var s = Ps[myRow * ${PS}u + jv];
        for (var e = 0u; e < 4u; e++) {
          let j = k0 + jv * 4u + e;
          if (j < limit) {
            var x = s[e];
            ${biasRead(c)}
            s[e] = x;
            // NaN never compares greater, so like the CPU kernel it does not set the maximum.
            if (x > blockMax) { blockMax = x; }
          }
        }
        Ps[myRow * ${PS}u + jv] = s;
      }
      var f = 1.0;
      if (blockMax > NEG_INF) {
        if (blockMax > m) {
          if (l != 0.0) { f = exp(m - blockMax); l = l * f; }
          m = blockMax;
        }
        for (var jv = 0u; jv < ${BC / 4}u; jv++) {
          let s = Ps[myRow * ${PS}u + jv];
          var p = vec4<f32>(0.0);
          for (var e = 0u; e < 4u; e++) {
            if (k0 + jv * 4u + e < limit) { p[e] = exp(s[e] - m); }
          }
          l = l + p.x + p.y + p.z + p.w;
          Ps[myRow * ${PS}u + jv] = p;
        }
      } else {
        for (var jv = 0u; jv < ${BC / 4}u; jv++) { Ps[myRow * ${PS}u + jv] = vec4<f32>(0.0); }
      }
      alpha[myRow] = f;
    }
    ${c.ablate === "softmax" ? `if (tid < ${Br}u) { alpha[myRow] = 1.0; l = 1.0; }` : ""}
    if (${c.ablate === "pv" ? "false" : "true"}) {
      let base = k0;
${loadRows("KV", "V", BC, c.HV, VS, "base + r < kvEnd", "vBase", "u.vSS", "")}
    }
    workgroupBarrier();
    {
${rescale.join("\n")}
${c.ablate === "pv" ? "" : pv.join("\n")}
    }
    workgroupBarrier();
  }
  if (tid < ${Br}u) { alpha[myRow] = l; }
  workgroupBarrier();
${store.join("\n")}
}`;
}

/** Multiply-adds ×2 of the unmasked problem: 2·B·N·Sq·Skv·(H + Hv). */
export function attentionFlops(
  a: Pick<FlashAttentionArgs, "batch" | "numHeads" | "seqQ" | "seqKV" | "headSize" | "vHeadSize">,
): number {
  return 2 * a.batch * a.numHeads * a.seqQ * a.seqKV * (a.headSize + a.vHeadSize);
}

const OP = "webgpu.Attention";

function aligned(l: AttentionLayout): boolean {
  return l.offset % 4 === 0 && l.batchStride % 4 === 0 && l.headStride % 4 === 0 && l.seqStride % 4 === 0;
}

/**
 * The subgroup kernel's default tile: 64 rows, 4 per thread (128 threads). History (H200, `bench/gpu-kernels.ts
 * --attention`): 32-key tiles with P through a padded workgroup tile, 9.3 TFLOP/s at [8, 12, 512, 64] before the
 * K/V prefetch (bench/h200-attention-fp32.log), 16.9 with it; P by shuffle within 1%; 8 rows per thread
 * spill. Since 2026-11-29 (bench/RESULTS.md, bench/h200-attention-sweep*-1129g.log): 64-key tiles (8 keys a
 * lane), Q and K tiles unpadded and swizzled so the three tiles fill exactly 48 KiB (pack), P through the K
 * tile's memory (pInK), K and V prefetched in turn (interleaveKV: equal at 512 keys, 7% faster at 128) —
 * 0.324–0.328 ms = 19.6–19.9 TFLOP/s at [8, 12, 512, 64] and 0.105 ms = 15.3 at [32, 12, 128, 64]; where
 * those tiles do not fit (less workgroup memory, wider heads) the 32-key layout (FAST_LAYOUTS).
 */
const FAST_DEFAULT = { rowTile: 64, rowsPerThread: 4 } as const;

/** Layout options the source bakes in, in order of preference; a field the caller gives wins over all of them. */
type FastLayout = Required<
  Pick<FastConfig, "keyTile" | "pack" | "pInK" | "shuffleP" | "interleaveKV" | "unroll">
>;
const FAST_LAYOUTS: readonly FastLayout[] = [
  { keyTile: 64, pack: true, pInK: true, shuffleP: false, interleaveKV: true, unroll: false },
  { keyTile: 32, pack: false, pInK: false, shuffleP: false, interleaveKV: false, unroll: false },
  // Wider heads, where neither of the above fits (H = 80–128 with 48 KiB): 32-key tiles in the packed layout
  // put H = 80 and 96 at 64 rows and H = 112 and 128 at 32 rows, where before they ran 32 rows of the padded
  // layout (H = 80, 96) or the workgroup-memory kernel (H = 112, 128). K and V load together (in turn was 7–23%
  // slower here). H200, `bench/attention-fp32-sweep.ts --heads 32 --head-size 80|96|112|128 --shapes
  // 8x512,1x2048` (bench/h200-attention-wide-heads-1129g.log), at [8,32,512,H]: H = 80 2.27 → 1.22 ms, 96 2.53 →
  // 1.31, 112 3.34 → 1.96, 128 5.69 → 2.09 (with 2 rows a thread, fastConfig).
  { keyTile: 32, pack: true, pInK: true, shuffleP: false, interleaveKV: false, unroll: false },
];

/**
 * The subgroup kernel's tile: rowsPerThread rows per thread (default 4; 2 where the value head is wider than
 * 96, to bound the accumulators' registers), rowTile rows (default 64, else 32 where workgroup memory is short —
 * lavapipe's 32 KiB at head size 64), the first of FAST_LAYOUTS (with the caller's fields) whose tiles fit at
 * 64 rows, else at 32; undefined where none does.
 */
function fastConfig(a: FlashAttentionArgs, io: AttentionIo, limit: number): FastConfig | undefined {
  // 2 rows a thread past 96 output columns: 4 rows' accumulators (4 × 32 at 128) spill (2.4× slower at H = 128).
  const RT = a.rowsPerThread ?? (round4(io.HV) <= 96 ? FAST_DEFAULT.rowsPerThread : 2);
  if (a.rowTile !== undefined && !(a.rowTile > 0 && a.rowTile % RT === 0 && a.rowTile % 4 === 0))
    throw new OpError(OP, `rowTile ${a.rowTile} must be a positive multiple of 4 and of rowsPerThread ${RT}`);
  if (a.keyTile !== undefined && a.keyTile !== 32 && a.keyTile !== 64)
    throw new OpError(OP, `keyTile ${a.keyTile} must be 32 or 64`);
  const given: Partial<FastLayout> = {};
  for (const k of ["keyTile", "pack", "pInK", "shuffleP", "interleaveKV", "unroll"] as const)
    if (a[k] !== undefined) (given as Record<string, unknown>)[k] = a[k];
  // pack carries the key count through workgroup memory as an f32: exact below 2^24 keys.
  if (a.seqKV >= 2 ** 24) given.pack = false;
  // Rows outermost: 64 rows of the 32-key layout beat 32 rows of the 64-key one (0.380 vs 0.547 ms at
  // [8,12,512,64] on the H200, bench/h200-attention-sweep1-1129g.log), so a head size whose 64-key tiles do not
  // fit at 64 rows keeps the kernel it had before them.
  for (const Br of a.rowTile ? [a.rowTile] : [FAST_DEFAULT.rowTile, 32])
    for (const layout of FAST_LAYOUTS) {
      const c: FastConfig = {
        ...io,
        ...layout,
        ...given,
        RT,
        TY: Br / RT,
        ablate: a.ablate,
        prefetchKV: a.prefetchKV,
      };
      if (fastAttentionSharedBytes(c) <= limit) return c;
    }
  return undefined;
}

/** The score bias's offset and strides as both kernels' uniforms (zeros without a bias). */
function biasUniforms(bias: AttentionBiasArg | undefined): Record<string, number> {
  return {
    bOff: bias?.offset ?? 0,
    bBS: bias?.batchStride ?? 0,
    bHS: bias?.headStride ?? 0,
    bRS: bias?.rowStride ?? 0,
    bKS: bias?.keyStride ?? 0,
  };
}

/** Records one flash-attention dispatch over every (row tile, head, batch). */
export function flashAttention(ctx: WebGpuContext, rec: CommandRecorder, a: FlashAttentionArgs): void {
  const { batch, numHeads, kvNumHeads, headSize: H, vHeadSize: HV } = a;
  if (!(numHeads > 0 && kvNumHeads > 0 && numHeads % kvNumHeads === 0))
    throw new OpError(OP, `numHeads ${numHeads} must be a positive multiple of kvNumHeads ${kvNumHeads}`);
  if (!(H > 0 && HV > 0)) throw new OpError(OP, `head sizes must be positive, got ${H} and ${HV}`);
  if (a.keyLengths && a.cuSeqlens) throw new OpError(OP, "give keyLengths or cuSeqlens, not both");
  if (a.causalPerBatch && !a.keyLengths) throw new OpError(OP, "causalPerBatch needs keyLengths");
  if (a.q === a.out || a.k === a.out || a.v === a.out)
    throw new OpError(OP, "the output must not alias Q, K or V (rows are read by other workgroups)");
  if (batch === 0 || a.seqQ === 0) return;
  const f16 = a.precision === "fp16";
  if (f16) requireF16(ctx.gpu, OP);
  const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
  // The tensor-core kernel where the session chose it (fp16 sessions on devices with tensor cores).
  if (f16 && a.f16Kernel === "tensor-core") {
    const syntax = ctx.f16?.syntax;
    const aligned8 = [a.qLayout, a.kLayout, a.vLayout, a.outLayout].every(
      (l) => l.offset % 8 === 0 && l.batchStride % 8 === 0 && l.headStride % 8 === 0 && l.seqStride % 8 === 0,
    );
    // Four subgroups where per-subgroup offsets compile and the tiles fit workgroup memory (at H = 64: 35 KiB
    // with the default variant, 44 KiB with P in its own region), else one.
    const choice = tcAttentionChoiceFor(a.seqKV, a.tcVariant, { H, limit });
    const plan = tcAttentionPlan(H, HV, limit, ctx.f16?.multiSubgroup === true, choice);
    // The kernel is written for 16×16×16 fragments (rows of 16 per subgroup, H / 16 of them).
    const c = ctx.f16?.config;
    const frag16 = c !== undefined && c.M === 16 && c.N === 16 && c.K === 16;
    const fits = plan !== undefined && frag16 && aligned8;
    if (!(syntax && fits) && !a.f16KernelPreferred)
      throw new OpError(
        OP,
        syntax
          ? `the tensor-core kernel takes 16×16×16 fragments, equal head sizes 16..128 (multiples of 16) and 8-aligned layouts; got H ${H}/${HV}`
          : `no tensor cores on this device: ${ctx.f16?.reason ?? "f16 support was not detected"}`,
      );
    if (syntax && fits) {
      const { multi, keyTile, pInK, lazy } = plan;
      const sgBuiltin = ctx.f16?.sgBuiltin === true;
      const tc = {
        multi,
        keyTile,
        pInK,
        lazy,
        sgBuiltin,
        H,
        lengths: !!a.keyLengths,
        cu: !!a.cuSeqlens,
        causal: a.causalOffset !== undefined || !!a.causalPerBatch,
        causalPerBatch: !!a.causalPerBatch,
        bias: !!a.bias,
        ...(a.ablate ? { ablate: a.ablate } : {}),
      };
      // flash-tc:… — everything the source bakes in (test/webgpu-attention-tc-emulated.test.ts fills it).
      const k = ctx.pipelines.get(tcAttentionKey(syntax, tc), () => tcAttentionSource(tc, syntax));
      const bufs = [a.q, a.k, a.v];
      if (a.keyLengths) bufs.push(a.keyLengths);
      if (a.cuSeqlens) bufs.push(a.cuSeqlens);
      if (a.bias) bufs.push(a.bias.buffer);
      bufs.push(a.out);
      const L = (p: string, l: AttentionLayout) => ({
        [`${p}Off`]: l.offset,
        [`${p}BS`]: l.batchStride,
        [`${p}HS`]: l.headStride,
        [`${p}SS`]: l.seqStride,
      });
      const u = tcAttentionUniforms({
        seqQ: a.seqQ,
        seqKV: a.seqKV,
        group: numHeads / kvNumHeads,
        scale: a.scale,
        causalOffset: a.causalOffset ?? 0,
        ...L("q", a.qLayout),
        ...L("k", a.kLayout),
        ...L("v", a.vLayout),
        ...L("o", a.outLayout),
        ...biasUniforms(a.bias),
        negInf: Number.NEGATIVE_INFINITY,
      });
      rec.dispatch(
        k,
        bufs,
        u,
        [Math.ceil(a.seqQ / tcAttentionRows(multi)), numHeads, batch],
        `${OP} (fp16 tensor-core)`,
      );
      return;
    }
  }
  const io: AttentionIo = {
    f16,
    H,
    HV,
    vec4: H % 4 === 0 && HV % 4 === 0 && [a.qLayout, a.kLayout, a.vLayout, a.outLayout].every(aligned),
    lengths: !!a.keyLengths,
    cu: !!a.cuSeqlens,
    causal: a.causalOffset !== undefined || !!a.causalPerBatch,
    causalPerBatch: !!a.causalPerBatch,
    bias: !!a.bias,
  };
  const flags = `H${H}:HV${HV}:v${+io.vec4}:len${+io.lengths}:cu${+io.cu}:causal${+io.causal}${io.causalPerBatch ? "pb" : ""}:bias${+io.bias}${a.ablate ? `:ablate-${a.ablate}` : ""}`;
  const name = `flash${f16 ? "-f16" : ""}`;
  // The subgroup kernel where the adapter has subgroups and its tiles fit; else the workgroup-memory one.
  const fast = a.subgroups !== false && attentionSubgroups(ctx) ? fastConfig(a, io, limit) : undefined;
  let k: CachedPipeline;
  let Br: number;
  if (fast) {
    Br = fast.RT * fast.TY;
    k = ctx.pipelines.get(`${name}:${flags}:${fastAttentionKey(fast)}`, () => fastAttentionSource(fast));
  } else {
    if (a.rowTile !== undefined && !(a.rowTile > 0 && a.rowTile % 4 === 0))
      throw new OpError(OP, `rowTile ${a.rowTile} must be a positive multiple of 4`);
    Br = a.rowTile ?? 64;
    if (attentionSharedBytes({ H, HV, Br }) > limit) Br = 32;
    if (attentionSharedBytes({ H, HV, Br }) > limit)
      throw new OpError(
        OP,
        `head size ${H}/${HV} needs ${attentionSharedBytes({ H, HV, Br })} bytes of workgroup memory, the device has ${limit}`,
      );
    const c: Config = {
      ...io,
      Br,
      ablate: a.ablate === "softmax" || a.ablate === "pv" ? a.ablate : undefined,
    };
    k = ctx.pipelines.get(`${name}:${flags}:Br${Br}:sg0`, () => attentionSource(c));
  }
  const bufs = [a.q, a.k, a.v];
  if (a.keyLengths) bufs.push(a.keyLengths);
  if (a.cuSeqlens) bufs.push(a.cuSeqlens);
  if (a.bias) bufs.push(a.bias.buffer);
  bufs.push(a.out);
  const L = (p: string, l: AttentionLayout) => ({
    [`${p}Off`]: l.offset,
    [`${p}BS`]: l.batchStride,
    [`${p}HS`]: l.headStride,
    [`${p}SS`]: l.seqStride,
  });
  const bias = a.bias;
  const u = packUniforms(ATTENTION_FIELDS, {
    seqQ: a.seqQ,
    seqKV: a.seqKV,
    group: numHeads / kvNumHeads,
    scale: a.scale,
    causalOffset: a.causalOffset ?? 0,
    ...L("q", a.qLayout),
    ...L("k", a.kLayout),
    ...L("v", a.vLayout),
    ...L("o", a.outLayout),
    ...biasUniforms(bias),
    negInf: Number.NEGATIVE_INFINITY,
  });
  rec.dispatch(k, bufs, u, [Math.ceil(a.seqQ / Br), numHeads, batch], OP);
}

/** E and H of a packed row of 3E values, per token [N heads, 3 (q, k, v), H]; an OpError where 3E ≠ 3·N·H. */
function packedHeads(op: string, E3: number, N: number): { E: number; H: number } {
  if (E3 % (3 * N) !== 0) throw new OpError(op, `qkv's last axis ${E3} is not 3 · numHeads (${N}) · H`);
  return { E: E3 / 3, H: E3 / 3 / N };
}

/** The Q, K and V views of one packed buffer: token rows `seqStride` apart, sequences `batchStride` apart. */
function packedViews(
  qkv: GPUBuffer,
  H: number,
  batchStride: number,
  seqStride: number,
): Pick<FlashAttentionArgs, "q" | "qLayout" | "k" | "kLayout" | "v" | "vLayout"> {
  const row = (t: number): AttentionLayout => ({ offset: t * H, batchStride, headStride: 3 * H, seqStride });
  return { q: qkv, qLayout: row(0), k: qkv, kLayout: row(1), v: qkv, vLayout: row(2) };
}

/**
 * TensorRT bertQKVToContext, fixed length: qkv [S, B, 3E] (trailing 1, 1 allowed), per token [N, 3, H];
 * `lengths` int32 [B] valid tokens per sequence (all S when absent). Output [S, B, E]; with `batchFirst` qkv is
 * [B, S, 3E] and the output [B, S, E]. Padded query rows are computed over the valid keys (TensorRT); a length
 * of 0 gives zero rows.
 */
export function packedQkvAttention(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  args: {
    qkv: GpuTensor;
    numHeads: number;
    lengths?: GPUBuffer;
    out: GpuTensor;
    /** qkv [B, S, 3E] and out [B, S, E] (mhafuse.QKVToContext batch_first = 1). */
    batchFirst?: boolean;
    scale?: number;
    ablate?: FlashAttentionArgs["ablate"];
    /** "fp16": qkv and out are f16 (see FlashAttentionArgs.precision). */
    precision?: Precision;
    f16Kernel?: F16Kernel;
    f16KernelPreferred?: boolean;
    tcVariant?: FlashAttentionArgs["tcVariant"];
    subgroups?: boolean;
  } & FastTuning,
): void {
  const op = "mhafuse.QKVToContext (webgpu)";
  const d = args.qkv.dims;
  const form = args.batchFirst ? "[B, S, 3E]" : "[S, B, 3E]";
  if (d.length < 3 || d.slice(3).some((x) => x !== 1))
    throw new OpError(op, `qkv must be ${form} (trailing 1, 1 allowed), got [${d}]`);
  const [d0, d1, E3] = d as [number, number, number];
  const [S, B] = args.batchFirst ? [d1, d0] : [d0, d1];
  const N = args.numHeads;
  const { E, H } = packedHeads(op, E3, N);
  if (sizeOf(args.out.dims) !== S * B * E)
    throw new OpError(
      op,
      `output must hold ${form.replace("3E", "E")} = ${S * B * E} values, got [${args.out.dims}]`,
    );
  // Token (s, b): row s·B + b of [S, B, …], row b·S + s batch-first.
  const [batchRows, seqRows] = args.batchFirst ? [S, 1] : [1, B];
  flashAttention(ctx, rec, {
    batch: B,
    numHeads: N,
    kvNumHeads: N,
    seqQ: S,
    seqKV: S,
    headSize: H,
    vHeadSize: H,
    scale: args.scale ?? 1 / Math.sqrt(H),
    ...packedViews(args.qkv.buffer, H, batchRows * 3 * E, seqRows * 3 * E),
    out: args.out.buffer,
    outLayout: { offset: 0, batchStride: batchRows * E, headStride: H, seqStride: seqRows * E },
    keyLengths: args.lengths,
    ablate: args.ablate,
    ...fastTuningOf(args),
    precision: args.precision,
    f16Kernel: args.f16Kernel,
    f16KernelPreferred: args.f16KernelPreferred,
    tcVariant: args.tcVariant,
    subgroups: args.subgroups,
  });
}

/**
 * TensorRT bertQKVToContext, variable length: qkv [T, 3E] (trailing 1, 1 allowed) with `cuSeqlens` int32
 * [B + 1] on the GPU and `maxSeqlen` >= every sequence's length (the host knows it from the op's max_seqlen
 * input). Output [T, E].
 */
export function varSeqlenQkvAttention(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  args: {
    qkv: GpuTensor;
    numHeads: number;
    cuSeqlens: GPUBuffer;
    batch: number;
    maxSeqlen: number;
    out: GpuTensor;
    scale?: number;
    precision?: Precision;
    f16Kernel?: F16Kernel;
    f16KernelPreferred?: boolean;
    tcVariant?: FlashAttentionArgs["tcVariant"];
  },
): void {
  const op = "mhafuse.QKVToContext var_seqlen (webgpu)";
  const d = args.qkv.dims;
  if (d.length < 2 || d.slice(2).some((x) => x !== 1))
    throw new OpError(op, `qkv must be [T, 3E] or [T, 3E, 1, 1], got [${d}]`);
  const [T, E3] = d as [number, number];
  const N = args.numHeads;
  const { E, H } = packedHeads(op, E3, N);
  if (sizeOf(args.out.dims) !== T * E)
    throw new OpError(op, `output must hold [T, E] = [${T}, ${E}], got [${args.out.dims}]`);
  if (args.cuSeqlens.size < (args.batch + 1) * 4)
    throw new OpError(op, `cu_seqlens must hold batch + 1 = ${args.batch + 1} int32 values`);
  flashAttention(ctx, rec, {
    batch: args.batch,
    numHeads: N,
    kvNumHeads: N,
    seqQ: args.maxSeqlen,
    seqKV: args.maxSeqlen,
    headSize: H,
    vHeadSize: H,
    scale: args.scale ?? 1 / Math.sqrt(H),
    ...packedViews(args.qkv.buffer, H, 0, 3 * E),
    out: args.out.buffer,
    outLayout: { offset: 0, batchStride: 0, headStride: H, seqStride: E },
    cuSeqlens: args.cuSeqlens,
    precision: args.precision,
    f16Kernel: args.f16Kernel,
    f16KernelPreferred: args.f16KernelPreferred,
    tcVariant: args.tcVariant,
  });
}

export type HeadLayout = "BSNH" | "BNSH";

function layoutOf(l: HeadLayout, S: number, N: number, H: number): AttentionLayout {
  return l === "BSNH"
    ? { offset: 0, batchStride: S * N * H, headStride: H, seqStride: N * H }
    : { offset: 0, batchStride: N * S * H, headStride: S * H, seqStride: H };
}

export interface GeneralAttentionArgs extends FastTuning {
  /** [B, Sq, N, H] (BSNH) or [B, N, Sq, H] (BNSH). */
  q: GpuTensor;
  /** [B, Skv, Nkv, H] or [B, Nkv, Skv, H]. */
  k: GpuTensor;
  /** [B, Skv, Nkv, Hv] or [B, Nkv, Skv, Hv]. */
  v: GpuTensor;
  layout: HeadLayout;
  /** Same layout as q: [B, Sq, N, Hv] or [B, N, Sq, Hv]. */
  out: GpuTensor;
  /** Default 1/√H. */
  scale?: number;
  /** Causal with j <= i + causalOffset; 0 is top-left, Skv - Sq bottom-right (decoding with a KV cache). */
  causalOffset?: number;
  /** Additive, broadcastable to [B, N, Sq, Skv] (rank <= 4). */
  bias?: GpuTensor;
  /** int32 [B] key lengths. */
  keyLengths?: GPUBuffer;
  /** "fp16": q, k, v, out f16 (bias f32); see FlashAttentionArgs.precision. */
  precision?: Precision;
  f16Kernel?: F16Kernel;
  /** See FlashAttentionArgs (tests, benchmarks). */
  subgroups?: boolean;
}

/** A dense bias tensor of rank <= 4 read as [B, N, Sq, Skv] (numpy broadcast: stride 0 on its size-1 axes). */
export function broadcastBiasArg(
  op: string,
  t: GpuTensor,
  target: readonly [number, number, number, number],
): AttentionBiasArg {
  const bd = t.dims;
  if (bd.length > 4) throw new OpError(op, `bias must broadcast to [B, N, Sq, Skv], got rank ${bd.length}`);
  const full = [...Array(4 - bd.length).fill(1), ...bd] as number[];
  full.forEach((x, i) => {
    if (x !== 1 && x !== target[i])
      throw new OpError(op, `bias [${bd}] does not broadcast to [B, N, Sq, Skv] = [${target}]`);
  });
  const strides = [0, 0, 0, 0];
  let s = 1;
  for (let i = 3; i >= 0; i--) {
    strides[i] = full[i] === 1 ? 0 : s;
    s *= full[i]!;
  }
  return {
    buffer: t.buffer,
    offset: 0,
    batchStride: strides[0]!,
    headStride: strides[1]!,
    rowStride: strides[2]!,
    keyStride: strides[3]!,
  };
}

/** The general op (mhafuse.Attention): separate Q/K/V, BSNH or BNSH, causal, bias, GQA, Sq ≠ Skv. */
export function generalAttention(ctx: WebGpuContext, rec: CommandRecorder, a: GeneralAttentionArgs): void {
  const op = "mhafuse.Attention (webgpu)";
  for (const [name, t] of [
    ["q", a.q],
    ["k", a.k],
    ["v", a.v],
    ["output", a.out],
  ] as const)
    if (t.dims.length !== 4) throw new OpError(op, `${name} must be rank 4 (${a.layout}), got [${t.dims}]`);
  const pick = (t: GpuTensor) =>
    a.layout === "BSNH"
      ? { B: t.dims[0]!, S: t.dims[1]!, N: t.dims[2]!, H: t.dims[3]! }
      : { B: t.dims[0]!, N: t.dims[1]!, S: t.dims[2]!, H: t.dims[3]! };
  const q = pick(a.q);
  const k = pick(a.k);
  const v = pick(a.v);
  const o = pick(a.out);
  if (k.B !== q.B || v.B !== q.B) throw new OpError(op, `batch sizes differ: q ${q.B}, k ${k.B}, v ${v.B}`);
  if (k.H !== q.H) throw new OpError(op, `k head size ${k.H} differs from q's ${q.H}`);
  if (v.S !== k.S || v.N !== k.N) throw new OpError(op, `v [${a.v.dims}] does not match k [${a.k.dims}]`);
  if (o.B !== q.B || o.S !== q.S || o.N !== q.N || o.H !== v.H)
    throw new OpError(op, `output must be ${a.layout} with B, Sq, N of q and Hv of v, got [${a.out.dims}]`);
  const bias = a.bias ? broadcastBiasArg(op, a.bias, [q.B, q.N, q.S, k.S]) : undefined;
  flashAttention(ctx, rec, {
    batch: q.B,
    numHeads: q.N,
    kvNumHeads: k.N,
    seqQ: q.S,
    seqKV: k.S,
    headSize: q.H,
    vHeadSize: v.H,
    scale: a.scale ?? 1 / Math.sqrt(q.H),
    q: a.q.buffer,
    qLayout: layoutOf(a.layout, q.S, q.N, q.H),
    k: a.k.buffer,
    kLayout: layoutOf(a.layout, k.S, k.N, k.H),
    v: a.v.buffer,
    vLayout: layoutOf(a.layout, v.S, v.N, v.H),
    out: a.out.buffer,
    outLayout: layoutOf(a.layout, o.S, o.N, o.H),
    causalOffset: a.causalOffset,
    bias,
    keyLengths: a.keyLengths,
    precision: a.precision,
    f16Kernel: a.f16Kernel,
    subgroups: a.subgroups,
    ...fastTuningOf(a),
  });
}
