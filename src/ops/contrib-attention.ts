/**
 * onnxruntime's fused attention ops, imported so models that onnxruntime's optimizer already fused run here:
 * `com.microsoft` Attention (input projection + attention) and MultiHeadAttention (attention on projected
 * Q/K/V). Both reduce to the shared attention core.
 *
 * Mask semantics follow onnxruntime's CPU kernels exactly: `mask_index` / `key_padding_mask` become an
 * *additive* bias of `mask_filter_value` (default -10000) on masked keys — not a hard exclusion — so a row
 * whose keys are all masked is the softmax of (score − 10000) over every key, i.e. the unmasked result.
 * `unidirectional` is a hard exclusion (onnxruntime adds the lowest float). KV caches (past inputs) are not
 * supported and are rejected with a clear error.
 */
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import {
  type AttentionProblem,
  broadcastBias,
  bsnhLayout,
  type DenseBias,
  divDim,
  FLOAT_TYPES,
  floatData,
  floatTensor,
  type HeadView,
  positiveIntAttr,
  requireRank,
  scaleAttr,
  solveAttention,
  sumBiases,
  toBnsh,
} from "./attention.js";
import type { AttentionDims, StridedLayout } from "./attention-args.js";
import {
  attrFloat,
  attrInt,
  attrInts,
  hasAttr,
  type OpContext,
  type OpDef,
  registerOps,
  type TypeContext,
} from "./registry.js";

const DEFAULT_MASK_FILTER_VALUE = -10000;

export function maskFilterValue(node: Node): number {
  return attrFloat(node, "mask_filter_value", DEFAULT_MASK_FILTER_VALUE);
}

/**
 * onnxruntime's mask_index / key_padding_mask forms as an additive bias [B, 1, S or 1, T]:
 * [B] right-padding lengths, [2B] end and start positions, [B, T] raw 0/1 key mask, [B, S, T] 0/1 mask.
 */
export function maskBias(
  node: Node,
  mask: Tensor,
  batch: number,
  seqQ: number,
  total: number,
  filter: number,
  what: string,
): DenseBias {
  if (mask.type !== "int32" && mask.type !== "int64") {
    throw new OpError(node, `${what} must be int32, got ${mask.type}`);
  }
  const values = mask.toNumbers();
  const dims = mask.dims;
  if (dims.length === 1 && (dims[0] === batch || dims[0] === 2 * batch)) {
    const data = new Float32Array(batch * total);
    for (let b = 0; b < batch; b++) {
      const end = values[b]!;
      if (!(end >= 0 && end <= total)) {
        throw new OpError(node, `${what}[${b}] = ${end} is outside [0, ${total}] (the key sequence length)`);
      }
      data.fill(filter, b * total + end, (b + 1) * total);
      if (dims[0] === 2 * batch) {
        const start = values[b + batch]!;
        if (start < 0) throw new OpError(node, `${what} start position ${start} of batch ${b} is negative`);
        data.fill(filter, b * total, b * total + Math.min(start, total));
      }
    }
    return { data, dims: [batch, 1, 1, total] };
  }
  const rawDims: Record<number, number[]> = { 2: [batch, total], 3: [batch, seqQ, total] };
  const expected = rawDims[dims.length];
  if (expected && dims.every((d, i) => d === expected[i])) {
    const data = Float32Array.from(values, (m) => (m > 0 ? 0 : filter));
    return { data, dims: [batch, 1, dims.length === 3 ? seqQ : 1, total] };
  }
  if (dims.length === 4) {
    throw new OpError(node, `4-D ${what} (Megatron style) is not supported, as in onnxruntime's CPU kernel`);
  }
  throw new OpError(
    node,
    `${what} of shape [${dims.join(",")}] is not one of [B]=[${batch}], [2B]=[${2 * batch}], ` +
      `[B,T]=[${batch},${total}] or [B,S,T]=[${batch},${seqQ},${total}]`,
  );
}

/** attention_bias / relative_position_bias: [B or 1, N or 1, S, T] (dims only: device kernels check it too). */
export function checkAttentionBias(
  node: Node,
  t: Pick<Tensor, "dims" | "rank">,
  target: [number, number, number, number],
): void {
  requireRank(node, t, [4], "attention_bias");
  const ok = t.dims.every((d, i) => d === target[i] || (i < 2 && d === 1));
  if (!ok) {
    throw new OpError(
      node,
      `attention_bias must have shape [B or 1, N or 1, S, T] = [${target[0]} or 1, ${target[1]} or 1, ${target[2]}, ${target[3]}], got [${t.dims.join(",")}]`,
    );
  }
}

function attentionBiasInput(node: Node, t: Tensor, target: [number, number, number, number]): DenseBias {
  checkAttentionBias(node, t, target);
  return { data: floatData(node, t, "attention_bias"), dims: [...t.dims] as DenseBias["dims"] };
}

function rejectPast(node: Node, inputs: (Tensor | undefined)[], indices: number[], names: string): void {
  if (indices.some((i) => inputs[i])) {
    throw new OpError(
      node,
      `${names} (KV cache) is not supported; run without past state, or let mhafuse fuse the unfused model instead`,
    );
  }
}

function rejectOutput(node: Node, index: number, what: string): void {
  if (node.outputs[index]) throw new OpError(node, `output '${what}' is not supported`);
}

/** Adds masks and attention_bias, then hands the combined bias to the problem. */
function applyBiases(node: Node, p: AttentionProblem, parts: DenseBias[]): void {
  const total = sumBiases(node, parts);
  if (total) {
    p.bias = broadcastBias(
      node,
      total.data,
      total.dims,
      [p.batch, p.numHeads, p.seqQ, p.seqKV],
      "attention bias",
    );
  }
}

// ---- com.microsoft Attention ------------------------------------------------------------------------

/** input [B,S,Din] × weights [Din, Dt] + bias [Dt] → [B·S, Dt] in float32. */
function project(node: Node, input: Tensor, weights: Tensor, bias: Tensor | undefined): Float32Array {
  const x = floatData(node, input, "input");
  const w = floatData(node, weights, "weights");
  const [rows, inner, cols] = [input.dims[0]! * input.dims[1]!, weights.dims[0]!, weights.dims[1]!];
  const out = new Float32Array(rows * cols);
  if (bias) {
    const b = floatData(node, bias, "bias");
    for (let r = 0; r < rows; r++) out.set(b, r * cols);
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let i = 0; i < inner; i++) {
      const a = x[r * inner + i]!;
      if (a === 0) continue;
      const wRow = i * cols;
      for (let c = 0; c < cols; c++) out[o + c]! += a * w[wRow + c]!;
    }
  }
  return out;
}

/** [Dq, Dk, Dv] from qkv_hidden_sizes, or three equal thirds of the weight columns. */
function hiddenSizes(node: Node, columns: number): [number, number, number] {
  if (hasAttr(node, "qkv_hidden_sizes")) {
    const s = attrInts(node, "qkv_hidden_sizes");
    if (s.length !== 3 || s.some((d) => !(d > 0))) {
      throw new OpError(node, `qkv_hidden_sizes must be three positive sizes, got [${s}]`);
    }
    return s as [number, number, number];
  }
  if (columns % 3 !== 0) {
    throw new OpError(node, `weights have ${columns} columns, not divisible into Q, K and V thirds`);
  }
  return [columns / 3, columns / 3, columns / 3];
}

/** com.microsoft Attention's sizes from its inputs' dims (the projection's columns split into Q | K | V). */
export interface ContribAttentionGeometry {
  batch: number;
  seq: number;
  inHidden: number;
  width: number;
  dq: number;
  dk: number;
  dv: number;
  numHeads: number;
  headSize: number;
  vHeadSize: number;
}

export function contribAttentionGeometry(
  node: Node,
  input: Pick<Tensor, "type" | "dims" | "rank">,
  weights: Pick<Tensor, "dims" | "rank">,
  bias: Pick<Tensor, "dims" | "rank"> | undefined,
): ContribAttentionGeometry {
  requireRank(node, input, [3], "input");
  requireRank(node, weights, [2], "weights");
  if (!FLOAT_TYPES.includes(input.type)) {
    throw new OpError(node, `input must be float32 or float16, got ${input.type}`);
  }
  const [batch, seq, inHidden] = input.dims as [number, number, number];
  if (weights.dims[0] !== inHidden) {
    throw new OpError(
      node,
      `weights must have ${inHidden} rows (the input hidden size), got [${weights.dims}]`,
    );
  }
  const width = weights.dims[1]!;
  const [dq, dk, dv] = hiddenSizes(node, width);
  if (dq + dk + dv !== width) {
    throw new OpError(node, `qkv_hidden_sizes [${dq},${dk},${dv}] must sum to the weight columns ${width}`);
  }
  if (bias && (bias.rank !== 1 || bias.dims[0] !== width)) {
    throw new OpError(node, `bias must have shape [${width}], got [${bias.dims.join(",")}]`);
  }
  const numHeads = positiveIntAttr(node, "num_heads");
  if (dq !== dk) throw new OpError(node, `Q and K hidden sizes must be equal, got ${dq} and ${dk}`);
  if (dq % numHeads !== 0 || dv % numHeads !== 0) {
    throw new OpError(
      node,
      `hidden sizes ${dq} (Q/K) and ${dv} (V) must be divisible by num_heads ${numHeads}`,
    );
  }
  return {
    batch,
    seq,
    inHidden,
    width,
    dq,
    dk,
    dv,
    numHeads,
    headSize: dq / numHeads,
    vHeadSize: dv / numHeads,
  };
}

function runContribAttention(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const node = ctx.node;
  const [input, weights, bias, maskIndex, , attentionBias] = inputs;
  if (!input || !weights) throw new OpError(node, "inputs 'input' and 'weights' are required");
  rejectPast(node, inputs, [4, 6], "past");
  rejectOutput(node, 1, "present");
  if (attrInt(node, "do_rotary", 0) !== 0) throw new OpError(node, "do_rotary=1 is not supported");
  const { batch, seq, width, dq, dk, dv, numHeads, headSize, vHeadSize } = contribAttentionGeometry(
    node,
    input,
    weights,
    bias,
  );
  const qkv = project(node, input, weights, bias);
  // The projection is [B, S, Q|K|V]: three strided views of one buffer, no copies.
  const problem: AttentionProblem = {
    batch,
    numHeads,
    kvNumHeads: numHeads,
    seqQ: seq,
    seqKV: seq,
    headSize,
    vHeadSize,
    scale: scaleAttr(node, headSize),
    q: { data: qkv, layout: bsnhLayout(seq, width, headSize, 0) },
    k: { data: qkv, layout: bsnhLayout(seq, width, headSize, dq) },
    v: { data: qkv, layout: bsnhLayout(seq, width, vHeadSize, dq + dk) },
    causalOffset: attrInt(node, "unidirectional", 0) ? 0 : undefined,
  };
  const parts: DenseBias[] = [];
  if (maskIndex) parts.push(maskBias(node, maskIndex, batch, seq, seq, maskFilterValue(node), "mask_index"));
  if (attentionBias) parts.push(attentionBiasInput(node, attentionBias, [batch, numHeads, seq, seq]));
  applyBiases(node, problem, parts);
  const out = solveAttention(problem, bsnhLayout(seq, dv, vHeadSize), ctx.compute);
  return [floatTensor(input.type, out, [batch, seq, dv])];
}

function inferContribAttention(ctx: TypeContext): ValueType[] {
  const [input, weights] = ctx.inputs;
  if (!input) throw new OpError(ctx.node, "input 'input' is required");
  let dv: Dim = null;
  if (hasAttr(ctx.node, "qkv_hidden_sizes")) dv = attrInts(ctx.node, "qkv_hidden_sizes")[2] ?? null;
  else dv = divDim(weights?.shape?.[1], 3);
  return [{ dtype: input.dtype, shape: [input.shape?.[0] ?? null, input.shape?.[1] ?? null, dv] }];
}

// ---- com.microsoft MultiHeadAttention -----------------------------------------------------------------

/** A tensor's dtype and dims: what the geometry of an attention op reads (never its data). */
type Shape = Pick<Tensor, "type" | "dims" | "rank">;

/** Where one of Q, K, V lives: which of the op's inputs holds it, and the strided layout of its rows. */
export interface HeadSource {
  input: number;
  layout: StridedLayout;
}

/** MHA's problem from its inputs' dims: sizes, where Q/K/V live. Shared by the CPU reference and device kernels. */
export interface MhaGeometry extends Omit<AttentionDims, "kvNumHeads"> {
  q: HeadSource;
  k: HeadSource;
  v: HeadSource;
  /** K and V came in as [B, N, L, H]: onnxruntime then applies the bias to Q only. */
  kvBnsh: boolean;
}

/** MHA has as many K/V heads as query heads. */
interface MhaViews extends Omit<MhaGeometry, "q" | "k" | "v"> {
  q: HeadView;
  k: HeadView;
  v: HeadView;
}

/**
 * Reads MHA's input forms from dims: separate [B,S,D] Q/K/V, BNSH K/V, packed KV [B,L,N,2,H], packed QKV
 * [B,S,N,3,H].
 */
export function mhaGeometry(
  node: Node,
  query: Shape,
  key: Shape | undefined,
  value: Shape | undefined,
): MhaGeometry {
  const numHeads = positiveIntAttr(node, "num_heads");
  for (const [t, what] of [
    [query, "query"],
    [key, "key"],
    [value, "value"],
  ] as const) {
    if (t && t.type !== query.type)
      throw new OpError(node, `${what} must be ${query.type} like query, got ${t.type}`);
  }
  if (!FLOAT_TYPES.includes(query.type)) {
    throw new OpError(node, `query must be float32 or float16, got ${query.type}`);
  }
  const [batch, seqQ] = query.dims as [number, number];
  const sameBatch = (t: Shape, what: string) => {
    if (t.dims[0] !== batch)
      throw new OpError(node, `${what} batch ${t.dims[0]} differs from query batch ${batch}`);
  };
  if (query.rank === 5) {
    // Packed QKV [B, S, N, 3, H].
    if (key || value) throw new OpError(node, "packed QKV query [B,S,N,3,H] must come without key and value");
    const [, , n, three, h] = query.dims as number[];
    if (n !== numHeads || three !== 3) {
      throw new OpError(
        node,
        `packed QKV query must be [B,S,${numHeads},3,H], got [${query.dims.join(",")}]`,
      );
    }
    const view = (part: number): HeadSource => ({
      input: 0,
      layout: {
        offset: part * h!,
        batchStride: seqQ * n * 3 * h!,
        headStride: 3 * h!,
        seqStride: n * 3 * h!,
      },
    });
    return {
      batch,
      seqQ,
      seqKV: seqQ,
      numHeads,
      headSize: h!,
      vHeadSize: h!,
      q: view(0),
      k: view(1),
      v: view(2),
      kvBnsh: false,
    };
  }
  requireRank(node, query, [3], "query");
  const qHidden = query.dims[2]!;
  if (qHidden % numHeads !== 0) {
    throw new OpError(node, `query hidden size ${qHidden} is not divisible by num_heads ${numHeads}`);
  }
  const headSize = qHidden / numHeads;
  const q: HeadSource = { input: 0, layout: bsnhLayout(seqQ, qHidden, headSize) };
  if (!key) throw new OpError(node, "key is required unless query is packed QKV [B,S,N,3,H]");
  sameBatch(key, "key");
  if (key.rank === 5) {
    // Packed KV [B, L, N, 2, H].
    if (value) throw new OpError(node, "packed KV key [B,L,N,2,H] must come without value");
    const [, seqKV, n, two, h] = key.dims as number[];
    if (n !== numHeads || two !== 2 || h !== headSize) {
      throw new OpError(
        node,
        `packed KV key must be [B,L,${numHeads},2,${headSize}], got [${key.dims.join(",")}]`,
      );
    }
    const layout = (part: number): StridedLayout => ({
      offset: part * headSize,
      batchStride: seqKV! * n * 2 * headSize,
      headStride: 2 * headSize,
      seqStride: n * 2 * headSize,
    });
    const k = { input: 1, layout: layout(0) };
    const v = { input: 1, layout: layout(1) };
    return { batch, seqQ, seqKV: seqKV!, numHeads, headSize, vHeadSize: headSize, q, k, v, kvBnsh: false };
  }
  if (!value) throw new OpError(node, "value is required with a 3-D or 4-D key");
  sameBatch(value, "value");
  if (key.rank === 4) {
    requireRank(node, value, [4], "value (with a 4-D key)");
    const [, kn, seqKV, kh] = key.dims as number[];
    const [, vn, vSeq, vh] = value.dims as number[];
    if (kn !== numHeads || vn !== numHeads || kh !== headSize || vSeq !== seqKV) {
      throw new OpError(
        node,
        `BNSH key/value must be [B,${numHeads},L,${headSize}] and [B,${numHeads},L,Hv], got [${key.dims}] and [${value.dims}]`,
      );
    }
    const bnsh = (seq: number, h: number) => ({
      offset: 0,
      batchStride: numHeads * seq * h,
      headStride: seq * h,
      seqStride: h,
    });
    return {
      batch,
      seqQ,
      seqKV: seqKV!,
      numHeads,
      headSize,
      vHeadSize: vh!,
      q,
      k: { input: 1, layout: bnsh(seqKV!, headSize) },
      v: { input: 2, layout: bnsh(seqKV!, vh!) },
      kvBnsh: true,
    };
  }
  requireRank(node, key, [3], "key");
  requireRank(node, value, [3], "value");
  const [, seqKV, kHidden] = key.dims as number[];
  const [, vSeq, vHidden] = value.dims as number[];
  if (kHidden !== qHidden)
    throw new OpError(node, `key hidden size ${kHidden} must equal query's ${qHidden}`);
  if (vSeq !== seqKV) throw new OpError(node, `key and value sequence lengths differ: ${seqKV} vs ${vSeq}`);
  if (vHidden! % numHeads !== 0) {
    throw new OpError(node, `value hidden size ${vHidden} is not divisible by num_heads ${numHeads}`);
  }
  const vHeadSize = vHidden! / numHeads;
  return {
    batch,
    seqQ,
    seqKV: seqKV!,
    numHeads,
    headSize,
    vHeadSize,
    q,
    k: { input: 1, layout: bsnhLayout(seqKV!, kHidden!, headSize) },
    v: { input: 2, layout: bsnhLayout(seqKV!, vHidden!, vHeadSize) },
    kvBnsh: false,
  };
}

/** The geometry with each view bound to its input's float32 data. */
function mhaViews(node: Node, query: Tensor, key: Tensor | undefined, value: Tensor | undefined): MhaViews {
  const g = mhaGeometry(node, query, key, value);
  const inputs = [query, key, value];
  const names = ["query", "key", "value"];
  const view = (s: HeadSource): HeadView => ({
    data: floatData(node, inputs[s.input]!, names[s.input]!),
    layout: s.layout,
  });
  return { ...g, q: view(g.q), k: view(g.k), v: view(g.v) };
}

/** A dense BSNH copy of a view with a per-column bias added. */
function addHeadBias(
  m: MhaViews,
  view: HeadView,
  seq: number,
  headSize: number,
  bias: Float32Array,
  at: number,
): HeadView {
  const width = m.numHeads * headSize;
  const out = new Float32Array(m.batch * seq * width);
  const layout = bsnhLayout(seq, width, headSize);
  for (let b = 0; b < m.batch; b++)
    for (let s = 0; s < seq; s++)
      for (let n = 0; n < m.numHeads; n++) {
        const src =
          view.layout.offset +
          b * view.layout.batchStride +
          n * view.layout.headStride +
          s * view.layout.seqStride;
        const dst = b * layout.batchStride + s * layout.seqStride + n * headSize;
        for (let h = 0; h < headSize; h++) out[dst + h] = view.data[src + h]! + bias[at + n * headSize + h]!;
      }
  return { data: out, layout };
}

/** unidirectional=1 as a causal offset (0: top-left), or undefined. */
export function mhaCausalOffset(node: Node, m: Pick<AttentionDims, "seqQ" | "seqKV">): number | undefined {
  if (!attrInt(node, "unidirectional", 0) || m.seqQ <= 1) return undefined;
  // onnxruntime leaves the last query row unmasked, which only agrees with causal attention when Sq == Skv.
  if (m.seqQ !== m.seqKV) {
    throw new OpError(
      node,
      `unidirectional=1 needs query length == key length (or 1), got ${m.seqQ} and ${m.seqKV}; use mhafuse.Attention with causal=1 for bottom-right causal cross attention`,
    );
  }
  return 0;
}

function runMultiHeadAttention(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const node = ctx.node;
  const [query, key, value, bias, keyPaddingMask, attentionBias] = inputs;
  if (!query) throw new OpError(node, "input 'query' is required");
  rejectPast(node, inputs, [6, 7, 8, 9], "past_key/past_value");
  rejectOutput(node, 3, "qk");
  const m = mhaViews(node, query, key, value);
  const dq = m.numHeads * m.headSize;
  const dv = m.numHeads * m.vHeadSize;
  if (bias) {
    if (bias.rank !== 1 || bias.dims[0] !== 2 * dq + dv) {
      throw new OpError(node, `bias must have shape [${2 * dq + dv}] (Q|K|V), got [${bias.dims.join(",")}]`);
    }
    const b = floatData(node, bias, "bias");
    m.q = addHeadBias(m, m.q, m.seqQ, m.headSize, b, 0);
    if (!m.kvBnsh) {
      m.k = addHeadBias(m, m.k, m.seqKV, m.headSize, b, dq);
      m.v = addHeadBias(m, m.v, m.seqKV, m.vHeadSize, b, 2 * dq);
    }
  }
  const causalOffset = mhaCausalOffset(node, m);
  const problem: AttentionProblem = {
    ...m,
    kvNumHeads: m.numHeads,
    scale: scaleAttr(node, m.headSize),
    causalOffset,
  };
  const parts: DenseBias[] = [];
  if (keyPaddingMask) {
    parts.push(
      maskBias(node, keyPaddingMask, m.batch, m.seqQ, m.seqKV, maskFilterValue(node), "key_padding_mask"),
    );
  }
  if (attentionBias)
    parts.push(attentionBiasInput(node, attentionBias, [m.batch, m.numHeads, m.seqQ, m.seqKV]));
  applyBiases(node, problem, parts);
  const out = solveAttention(problem, bsnhLayout(m.seqQ, dv, m.vHeadSize), ctx.compute);
  const results = [floatTensor(query.type, out, [m.batch, m.seqQ, dv])];
  if (node.outputs[1] || node.outputs[2]) {
    // Without a past, the present cache is just this step's K and V in [B, N, L, H].
    const kvDims = (h: number) => [m.batch, m.numHeads, m.seqKV, h];
    results.push(
      floatTensor(query.type, toBnsh(m.k, m.batch, m.numHeads, m.seqKV, m.headSize), kvDims(m.headSize)),
      floatTensor(query.type, toBnsh(m.v, m.batch, m.numHeads, m.seqKV, m.vHeadSize), kvDims(m.vHeadSize)),
    );
  }
  return results;
}

function inferMultiHeadAttention(ctx: TypeContext): ValueType[] {
  const [query, key, value] = ctx.inputs;
  if (!query) throw new OpError(ctx.node, "input 'query' is required");
  const numHeads = positiveIntAttr(ctx.node, "num_heads");
  const qs = query.shape;
  let dv: Dim = null;
  let seqKV: Dim = null;
  let vh: Dim = null;
  let kh: Dim = null;
  if (qs?.length === 5) {
    dv = typeof qs[4] === "number" ? qs[4] * numHeads : null;
    [seqKV, kh, vh] = [qs[1] ?? null, qs[4] ?? null, qs[4] ?? null];
  } else if (key?.shape?.length === 5) {
    [seqKV, kh, vh] = [key.shape[1] ?? null, key.shape[4] ?? null, key.shape[4] ?? null];
    dv = typeof vh === "number" ? vh * numHeads : null;
  } else if (value?.shape?.length === 4) {
    [seqKV, kh, vh] = [value.shape[2] ?? null, key?.shape?.[3] ?? null, value.shape[3] ?? null];
    dv = typeof vh === "number" ? vh * numHeads : null;
  } else if (value?.shape?.length === 3) {
    dv = value.shape[2] ?? null;
    seqKV = value.shape[1] ?? null;
    vh = divDim(dv, numHeads);
    kh = divDim(key?.shape?.[2], numHeads);
  }
  const b = qs?.[0] ?? null;
  const out: ValueType[] = [{ dtype: query.dtype, shape: [b, qs?.[1] ?? null, dv] }];
  if (ctx.node.outputs.length > 1) {
    out.push(
      { dtype: query.dtype, shape: [b, numHeads, seqKV, kh] },
      { dtype: query.dtype, shape: [b, numHeads, seqKV, vh] },
    );
  }
  return out;
}

export const contribAttentionOps: OpDef[] = [
  {
    opType: "Attention",
    domain: "com.microsoft",
    inferTypes: inferContribAttention,
    run: runContribAttention,
  },
  {
    opType: "MultiHeadAttention",
    domain: "com.microsoft",
    inferTypes: inferMultiHeadAttention,
    run: runMultiHeadAttention,
  },
];

registerOps(contribAttentionOps);
