/**
 * ONNX `Attention` (opset 23, and 24's `nonpad_kv_seqlen`), mapped onto the shared attention core.
 *
 * Q/K/V are all 3-D ([B, S, hidden], heads from q_num_heads / kv_num_heads) or all 4-D ([B, N, S, H]).
 * past_key / past_value ([B, Nkv, P, H]) are concatenated in front of K / V and returned as present_*.
 * attn_mask is boolean (True = attend) or additive, broadcastable to [B, Nq, Sq, P+Skv]; a mask shorter
 * than P+Skv along keys is padded with False / -inf, as the spec's reference does. is_causal allows key j
 * for query i iff j <= i + P: top-left aligned without a past, offset by the past length with one. A row
 * with every key masked gives zeros. softcap caps scores before the mask is added.
 */
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import {
  type AttentionProblem,
  addDims,
  appendToCache,
  bnshLayout,
  broadcastBias,
  bsnhLayout,
  divDim,
  FLOAT_TYPES,
  floatData,
  floatTensor,
  type HeadView,
  keyLengthsOf,
  pastLength,
  positiveIntAttr,
  scaleAttr,
  solveAttention,
  toBnsh,
} from "./attention.js";
import type { AttentionDims, StridedLayout } from "./attention-args.js";
import { attrFloat, attrInt, type OpContext, type OpDef, registerOps, type TypeContext } from "./registry.js";

/** Attention-23's sizes and Q/K/V row layouts from dims alone (device kernels use them too). */
export interface Heads23Geometry extends AttentionDims {
  q: StridedLayout;
  k: StridedLayout;
  v: StridedLayout;
  threeD: boolean;
}

interface Heads extends AttentionDims {
  q: HeadView;
  k: HeadView;
  v: HeadView;
  threeD: boolean;
}

type Shape = Pick<Tensor, "type" | "dims" | "rank">;

export function attention23Geometry(node: Node, q: Shape, k: Shape, v: Shape): Heads23Geometry {
  for (const [t, what] of [
    [q, "Q"],
    [k, "K"],
    [v, "V"],
  ] as const) {
    if (!FLOAT_TYPES.includes(t.type))
      throw new OpError(node, `${what} must be float32 or float16, got ${t.type}`);
    if (t.type !== q.type) throw new OpError(node, `${what} must be ${q.type} like Q, got ${t.type}`);
  }
  if (q.rank !== k.rank || q.rank !== v.rank || (q.rank !== 3 && q.rank !== 4)) {
    throw new OpError(
      node,
      `Q, K and V must all be 3-D or all 4-D, got ranks ${q.rank}, ${k.rank}, ${v.rank}`,
    );
  }
  const batch = q.dims[0]!;
  if (k.dims[0] !== batch || v.dims[0] !== batch) {
    throw new OpError(node, `batch sizes differ: Q ${batch}, K ${k.dims[0]}, V ${v.dims[0]}`);
  }
  let h: AttentionDims;
  if (q.rank === 3) {
    const numHeads = positiveIntAttr(node, "q_num_heads");
    const kvNumHeads = positiveIntAttr(node, "kv_num_heads");
    const [qh, kh, vh] = [q.dims[2]!, k.dims[2]!, v.dims[2]!];
    if (qh % numHeads !== 0 || kh % kvNumHeads !== 0 || vh % kvNumHeads !== 0) {
      throw new OpError(
        node,
        `hidden sizes Q ${qh}, K ${kh}, V ${vh} must be divisible by q_num_heads ${numHeads} / kv_num_heads ${kvNumHeads}`,
      );
    }
    h = {
      batch,
      numHeads,
      kvNumHeads,
      seqQ: q.dims[1]!,
      seqKV: k.dims[1]!,
      headSize: qh / numHeads,
      vHeadSize: vh / kvNumHeads,
    };
    if (kh / kvNumHeads !== h.headSize) {
      throw new OpError(node, `K head size ${kh / kvNumHeads} differs from Q head size ${h.headSize}`);
    }
    if (v.dims[1] !== h.seqKV)
      throw new OpError(node, `K and V sequence lengths differ: ${h.seqKV} vs ${v.dims[1]}`);
  } else {
    h = {
      batch,
      numHeads: q.dims[1]!,
      kvNumHeads: k.dims[1]!,
      seqQ: q.dims[2]!,
      seqKV: k.dims[2]!,
      headSize: q.dims[3]!,
      vHeadSize: v.dims[3]!,
    };
    if (k.dims[3] !== h.headSize)
      throw new OpError(node, `K head size ${k.dims[3]} differs from Q's ${h.headSize}`);
    if (v.dims[1] !== h.kvNumHeads || v.dims[2] !== h.seqKV) {
      throw new OpError(
        node,
        `V [${v.dims}] must be [B, ${h.kvNumHeads}, ${h.seqKV}, Hv] to match K [${k.dims}]`,
      );
    }
  }
  if (h.numHeads % h.kvNumHeads !== 0) {
    throw new OpError(node, `q heads ${h.numHeads} must be a multiple of kv heads ${h.kvNumHeads}`);
  }
  const threeD = q.rank === 3;
  const layout = (heads: number, seq: number, size: number) =>
    threeD ? bsnhLayout(seq, heads * size, size) : bnshLayout(heads, seq, size);
  return {
    ...h,
    threeD,
    q: layout(h.numHeads, h.seqQ, h.headSize),
    k: layout(h.kvNumHeads, h.seqKV, h.headSize),
    v: layout(h.kvNumHeads, h.seqKV, h.vHeadSize),
  };
}

function readHeads(node: Node, q: Tensor, k: Tensor, v: Tensor): Heads {
  const g = attention23Geometry(node, q, k, v);
  return {
    ...g,
    q: { data: floatData(node, q, "Q"), layout: g.q },
    k: { data: floatData(node, k, "K"), layout: g.k },
    v: { data: floatData(node, v, "V"), layout: g.v },
  };
}

/** past ++ current along the sequence axis, as a dense [B, Nkv, P+S, size] view. */
function concatPast(
  node: Node,
  h: Heads,
  past: Tensor,
  view: HeadView,
  size: number,
  what: string,
): HeadView {
  const p = pastLength(node, past, h.batch, h.kvNumHeads, size, past.type, what);
  const data = appendToCache(floatData(node, past, what), p, view, h.batch, h.kvNumHeads, h.seqKV, size);
  return { data, layout: bnshLayout(h.kvNumHeads, p + h.seqKV, size) };
}

/** attn_mask as additive float32 data, padded with -inf along keys up to `total`. */
export function additiveMask(
  node: Node,
  mask: Tensor,
  total: number,
): { data: Float32Array; dims: number[] } {
  if (mask.rank < 1 || mask.rank > 4) {
    throw new OpError(node, `attn_mask must have rank 1 to 4, got [${mask.dims}]`);
  }
  let values: Float32Array;
  if (mask.type === "bool") {
    values = Float32Array.from(mask.data as Uint8Array, (m) => (m ? 0 : Number.NEGATIVE_INFINITY));
  } else if (FLOAT_TYPES.includes(mask.type)) {
    values = floatData(node, mask, "attn_mask");
  } else {
    throw new OpError(node, `attn_mask must be bool or float, got ${mask.type}`);
  }
  const keys = mask.dims.at(-1)!;
  if (keys > total) {
    throw new OpError(node, `attn_mask covers ${keys} keys but there are only ${total} (past + current)`);
  }
  if (keys === total) return { data: values, dims: [...mask.dims] };
  const rows = values.length / Math.max(keys, 1);
  const padded = new Float32Array(rows * total).fill(Number.NEGATIVE_INFINITY);
  for (let r = 0; r < rows; r++) padded.set(values.subarray(r * keys, (r + 1) * keys), r * total);
  return { data: padded, dims: [...mask.dims.slice(0, -1), total] };
}

function runAttention23(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const { node, opset } = ctx;
  const [q, k, v, mask, pastKey, pastValue, nonpadKvSeqlen] = inputs;
  if (!q || !k || !v) throw new OpError(node, "inputs Q, K and V are required");
  const mode = attrInt(node, "qk_matmul_output_mode", 0);
  if (mode !== 0) throw new OpError(node, `qk_matmul_output_mode ${mode} is not supported (only 0)`);
  if (node.outputs[3]) throw new OpError(node, "output 'qk_matmul_output' is not supported");
  if (!pastKey !== !pastValue) throw new OpError(node, "past_key and past_value must be given together");
  const h = readHeads(node, q, k, v);
  if (pastKey && pastValue) {
    h.k = concatPast(node, h, pastKey, h.k, h.headSize, "past_key");
    h.v = concatPast(node, h, pastValue, h.v, h.vHeadSize, "past_value");
  }
  const past = pastKey ? pastKey.dims[2]! : 0;
  const total = past + h.seqKV;
  const causal = attrInt(node, "is_causal", 0) !== 0;
  const problem: AttentionProblem = {
    ...h,
    seqKV: total,
    scale: scaleAttr(node, h.headSize),
    causalOffset: causal ? past : undefined,
    softcap: attrFloat(node, "softcap", 0) || undefined,
  };
  if (mask) {
    const m = additiveMask(node, mask, total);
    problem.bias = broadcastBias(node, m.data, m.dims, [h.batch, h.numHeads, h.seqQ, total], "attn_mask");
  }
  if (nonpadKvSeqlen && opset >= 24) {
    if (causal && !pastKey) {
      throw new OpError(
        node,
        "is_causal with nonpad_kv_seqlen and no past (per-batch causal offsets) is not supported",
      );
    }
    problem.keyLengths = keyLengthsOf(node, nonpadKvSeqlen, h.batch, total, "nonpad_kv_seqlen");
  }
  const outLayout = h.threeD
    ? bsnhLayout(h.seqQ, h.numHeads * h.vHeadSize, h.vHeadSize)
    : bnshLayout(h.numHeads, h.seqQ, h.vHeadSize);
  const out = solveAttention(problem, outLayout, ctx.compute);
  const yDims = h.threeD
    ? [h.batch, h.seqQ, h.numHeads * h.vHeadSize]
    : [h.batch, h.numHeads, h.seqQ, h.vHeadSize];
  const results = [floatTensor(q.type, out, yDims)];
  if (node.outputs[1] || node.outputs[2]) {
    const present = (view: HeadView, size: number) =>
      floatTensor(q.type, toBnsh(view, h.batch, h.kvNumHeads, total, size), [
        h.batch,
        h.kvNumHeads,
        total,
        size,
      ]);
    results.push(present(h.k, h.headSize), present(h.v, h.vHeadSize));
  }
  return results;
}

function inferAttention23(ctx: TypeContext): ValueType[] {
  const [q, k, v, , pastKey] = ctx.inputs;
  if (!q) throw new OpError(ctx.node, "input Q is required");
  const dtype = q.dtype;
  const threeD = q.shape?.length === 3;
  let y: Dim[] | undefined;
  let kvHeads: Dim = null;
  let headSize: Dim = null;
  let vHeadSize: Dim = null;
  let seqKV: Dim = null;
  if (threeD) {
    const qHeads = positiveIntAttr(ctx.node, "q_num_heads");
    const kvNum = positiveIntAttr(ctx.node, "kv_num_heads");
    kvHeads = kvNum;
    headSize = divDim(q.shape?.[2], qHeads);
    vHeadSize = divDim(v?.shape?.[2], kvNum);
    seqKV = k?.shape?.[1] ?? null;
    y = [q.shape![0]!, q.shape![1]!, typeof vHeadSize === "number" ? vHeadSize * qHeads : null];
  } else if (q.shape) {
    kvHeads = k?.shape?.[1] ?? null;
    headSize = q.shape[3] ?? null;
    vHeadSize = v?.shape?.[3] ?? null;
    seqKV = k?.shape?.[2] ?? null;
    y = [q.shape[0]!, q.shape[1]!, q.shape[2]!, vHeadSize];
  }
  const total = pastKey ? addDims(pastKey.shape?.[2], seqKV) : seqKV;
  const batch = q.shape?.[0] ?? null;
  return [
    { dtype, shape: y },
    { dtype, shape: [batch, kvHeads, total, headSize] },
    { dtype, shape: [batch, kvHeads, total, vHeadSize] },
  ].slice(0, Math.max(1, Math.min(3, ctx.node.outputs.length)));
}

export const attention23Op: OpDef = {
  opType: "Attention",
  inferTypes: inferAttention23,
  run: runAttention23,
};

registerOps([attention23Op]);
