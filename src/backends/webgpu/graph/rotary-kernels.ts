/**
 * com.microsoft.RotaryEmbedding on the webgpu backend, on the rotary generator GroupQueryAttention's
 * do_rotary uses (../kernels/rotary.ts): X 3-D [B, S, N·H] (num_heads) or 4-D [B, N, S, H], rotate-half or
 * interleaved pairs, partial rotary (rotary_embedding_dim: the head's tail is copied), caches
 * [positions, ≥ rotary_dim/2]. position_ids — a one-element offset (what the fusion pass emits for cos/sin
 * with one row per token) or [1 | B, S] (its stacked per-sequence rows) — are read on the host, checked
 * against the cache by the op's contract (`cacheRowLookup`, the reference's errors) and uploaded as one
 * int32 cache row per token.
 *
 * Precision fp16: `f32Storage` — X and the caches arrive as f32 and the output is stored f32 (the fused
 * attention op that reads it is an f32-storage kernel too).
 */
import type { Node } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import { checkMsRotaryAttrs, msRotaryPositions } from "../../../ops/contrib-decoder.js";
import { cacheRowLookup, rotaryGeometry } from "../../../ops/rotary.js";
import { rotary } from "../kernels/rotary.js";
import type { GpuKernelDef } from "./kernel-context.js";
import { asShapeTensor, type RunValue } from "./values.js";

const isF32 = (v: RunValue | undefined) => v !== undefined && v.type === "float32";

/**
 * Whether each sequence has its own cache rows: position_ids [1, S] share theirs across the batch, [B, S] (and
 * one offset, which msRotaryPositions spreads to [B, S]) do not when B > 1. From dims alone.
 */
const rowsPerSequence = (positionIds: Tensor, B: number): boolean =>
  (positionIds.size === 1 ? B : positionIds.dims[0]) === B && B > 1;

/** The int32 cache row of every token (per sequence when `rowsPerSequence`), checked by the contract. */
function cacheRows(node: Node, inputs: readonly (RunValue | undefined)[]): Int32Array {
  const [x, positionIds, cos, sin] = inputs;
  const g = rotaryGeometry(node, asShapeTensor(x)!);
  const { batch: B, seq: S } = g;
  const positions = msRotaryPositions(asShapeTensor(x)!, positionIds as Tensor);
  const cosShape = asShapeTensor(cos)!;
  const row = cacheRowLookup(node, cosShape, asShapeTensor(sin)!, positions, B, S, g.half);
  const width = cosShape.dims.at(-1)!;
  const perBatch = positions.dims[0] === B && B > 1;
  const rows = new Int32Array((perBatch ? B : 1) * S);
  for (let b = 0; b < (perBatch ? B : 1); b++)
    for (let s = 0; s < S; s++) rows[b * S + s] = row(b, s) / width;
  return rows;
}

export const msRotaryEmbeddingDef: GpuKernelDef = {
  opType: "RotaryEmbedding",
  domain: "com.microsoft",
  types: ["float32"],
  f32Storage: true,
  hostInputs: [1],
  accepts(node, _o, inputs) {
    const [x, positions, cos, sin] = inputs;
    if (!x || !positions || !cos || !sin) return "missing input, position_ids or a cache";
    if (![x, cos, sin].every(isF32)) return "a non-float32 input or cache";
    // The contract's own validation, on dims: a malformed node throws the CPU reference's error.
    checkMsRotaryAttrs(node);
    rotaryGeometry(node, asShapeTensor(x)!);
    return undefined;
  },
  // position_ids only become cache-row bytes: a replay rewrites them instead of keying its plan on them.
  hostData: { 1: cacheRows },
  run(kc, inputs) {
    const node = kc.node;
    const [x, positionIds, cos, sin] = inputs;
    const g = rotaryGeometry(node, asShapeTensor(x)!);
    const { batch: B, seq: S } = g;
    const perBatch = rowsPerSequence(positionIds as Tensor, B);
    const width = asShapeTensor(cos)!.dims.at(-1)!;
    // Checked and computed even when nothing is dispatched, as the reference checks them.
    const rows = kc.uploadHostData(1, inputs);
    const X = kc.device(x!);
    const out = kc.alloc(X.dims);
    if ((perBatch ? B : 1) * S === 0 || g.numHeads * g.headSize === 0) return [out];
    const strides = { batchStride: g.bStride, seqStride: g.sStride, headStride: g.hStride };
    rotary(kc.gpu, kc.rec, {
      x: X.buffer,
      layout: { offset: 0, ...strides },
      B,
      S,
      heads: g.numHeads,
      H: g.headSize,
      cos: kc.device(cos!).buffer,
      sin: kc.device(sin!).buffer,
      half: g.half,
      cacheStride: width,
      positions: rows,
      perToken: { batchStride: perBatch ? S : 0 },
      interleaved: g.interleaved,
      outLayout: strides,
      out: out.buffer,
    });
    return [out];
  },
};
