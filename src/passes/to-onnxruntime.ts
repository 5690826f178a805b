/**
 * `--target onnxruntime`: rewrites mhafuse's own ops into ops onnxruntime runs, so an optimized model can be
 * handed to onnxruntime. Every other node is kept.
 *
 * - `mhafuse.Attention` → ONNX `Attention` when the graph's default opset is ≥ 23 (GQA, causal and masks
 *   natively), else `com.microsoft` MultiHeadAttention (K/V heads repeated with Reshape/Expand for GQA,
 *   key_lengths as key_padding_mask, bias and causal mask as attention_bias). A KV cache (past_key /
 *   past_value, present outputs) becomes Concat nodes in front of either.
 * - `mhafuse.QKVToContext` ([S,B,3E,1,1], or [B,S,3E,1,1] with batch_first, packed per token as [N,3,H], int32 lengths with -1 = use
 *   fallback_bias) → Reshape/Transpose/Gather to Q, K, V, a key mask built with Range/Less/Where, and
 *   MultiHeadAttention; padded rows zeroed when compute_padded_rows=0.
 * - `mhafuse.SeqLensFromMask` → Cast/ReduceSum/Range/Less/Xor/Where.
 * - `mhafuse.FusedGemm` → Gemm (+ com.microsoft.Gelu or FastGelu) (+ Add of its residual): onnxruntime fuses
 *   them its own way.
 *
 * Where onnxruntime's semantics differ from mhafuse's in corner cases, the result carries a note.
 */

import { MhafuseError, OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import type { Attribute, Dim, Graph, Node, ValueType } from "../ir/graph.js";
import { cloneGraph, opsetOf } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { fusedGemmActivation } from "../ops/matmul.js";
import { isBatchFirst } from "../ops/qkv-to-context.js";
import { attrFloat, attrInt, hasAttr } from "../ops/registry.js";
import { inferGraphTypes } from "./infer-types.js";

export interface ToOnnxruntimeResult {
  graph: Graph;
  /** One line per converted node, plus any semantic caveat. */
  notes: string[];
}

export interface ToOnnxruntimeOptions {
  /** Force the op used for mhafuse.Attention; default: ONNX Attention when opset ≥ 23, else MultiHeadAttention. */
  attentionOp?: "MultiHeadAttention" | "Attention";
}

const MS = "com.microsoft";

const int = (value: number): Attribute => ({ type: "int", value });
const ints = (value: number[]): Attribute => ({ type: "ints", value });
const float = (value: number): Attribute => ({ type: "float", value });

/** Most negative finite value of a float type: masks with it stay finite (no NaN when a row is all masked). */
function lowest(dtype: DType): number {
  return dtype === "float16" ? -65504 : -3.4028234663852886e38;
}

/** Appends the standard nodes that replace one mhafuse node; names are derived from the node's name. */
class Emitter {
  readonly nodes: Node[] = [];
  private count = 0;
  constructor(
    private readonly graph: Graph,
    private readonly prefix: string,
  ) {}

  private fresh(what: string): string {
    return `${this.prefix}/ort_${what}_${this.count++}`;
  }

  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attribute> = {},
    domain = "",
    output?: string,
  ): string {
    const name = this.fresh(opType);
    const out = output ?? `${name}_out`;
    this.nodes.push({ name, opType, domain, inputs, outputs: [out], attrs });
    return out;
  }

  constant(t: Tensor, what = "const"): string {
    const name = this.fresh(what);
    this.graph.initializers.set(name, t);
    return name;
  }

  int64s(values: number[]): string {
    return this.constant(new Tensor("int64", values, [values.length]), "shape");
  }

  scalar(dtype: DType, value: number): string {
    return this.constant(new Tensor(dtype, [value], []), "scalar");
  }

  /** Dimension `axis` of a value as an int64 scalar (Shape + Gather work at every opset). */
  dim(value: string, axis: number): string {
    const shape = this.op("Shape", [value]);
    return this.op("Gather", [shape, this.constant(new Tensor("int64", [axis], []), "axis")], {
      axis: int(0),
    });
  }

  /** 0, 1, …, n-1 as int64 [n] for an int64 scalar n. */
  range(n: string): string {
    return this.op("Range", [this.scalar("int64", 0), n, this.scalar("int64", 1)]);
  }

  reshape(value: string, shape: number[]): string {
    return this.op("Reshape", [value, this.int64s(shape)]);
  }

  /** ReduceSum over one axis, keepdims 0: axes became an input in opset 13. */
  reduceSum(value: string, axis: number): string {
    if (opsetOf(this.graph, "") >= 13) {
      return this.op("ReduceSum", [value, this.int64s([axis])], { keepdims: int(0) });
    }
    return this.op("ReduceSum", [value], { axes: ints([axis]), keepdims: int(0) });
  }

  /** Where(cond, 0, negative) in `dtype`: an additive mask. */
  maskToBias(keep: string, dtype: DType, negative: number): string {
    return this.op("Where", [keep, this.scalar(dtype, 0), this.scalar(dtype, negative)]);
  }
}

/** [B,1,1,Skv] additive bias: 0 for keys j < length[b], `negative` elsewhere (all keys when length is -1). */
function keyMaskBias(e: Emitter, lengths: string, seqKV: string, dtype: DType, negative: number): string {
  const keys = e.range(seqKV);
  const len = e.reshape(e.op("Cast", [lengths], { to: int(7) }), [-1, 1]);
  const valid = e.op("Less", [keys, len]);
  return e.reshape(e.maskToBias(valid, dtype, negative), [0, 1, 1, -1]);
}

/** [Sq,Skv] additive bias that blocks key j for query i when j > i + (Skv − Sq) (bottom-right causal). */
function causalBias(e: Emitter, seqQ: string, seqKV: string, dtype: DType, negative: number): string {
  const rows = e.reshape(e.range(seqQ), [-1, 1]);
  const limit = e.op("Add", [rows, e.op("Sub", [seqKV, seqQ])]);
  const blocked = e.op("Less", [limit, e.range(seqKV)]);
  return e.op("Where", [blocked, e.scalar(dtype, negative), e.scalar(dtype, 0)]);
}

function sum(e: Emitter, parts: string[]): string | undefined {
  return parts.reduce<string | undefined>((acc, p) => (acc ? e.op("Add", [acc, p]) : p), undefined);
}

/** Broadcast a bias of rank ≤ 4 to [b, n, Sq, Skv] with b/n kept as they are (MHA's attention_bias form). */
function expandToScores(e: Emitter, bias: string, seqQ: string, seqKV: string): string {
  const shape = e.op("Concat", [e.int64s([1, 1]), e.reshape(seqQ, [1]), e.reshape(seqKV, [1])], {
    axis: int(0),
  });
  return e.op("Expand", [bias, shape]);
}

interface Context {
  graph: Graph;
  types: Map<string, ValueType>;
  notes: string[];
  options: ToOnnxruntimeOptions;
}

function dtypeOf(ctx: Context, value: string): DType {
  return ctx.types.get(value)?.dtype ?? "float32";
}

function sameDim(a: Dim | undefined, b: Dim | undefined): boolean {
  return a !== undefined && a !== null && a === b;
}

/** True when Q and K provably have the same sequence length, so top-left and bottom-right causal agree. */
function sameSequence(ctx: Context, q: string, k: string): boolean {
  return q === k || sameDim(ctx.types.get(q)?.shape?.[1], ctx.types.get(k)?.shape?.[1]);
}

// ---- mhafuse.Attention --------------------------------------------------------------------------------

/**
 * The KV cache as graph nodes: present = Concat(past, this step's K as [B,Nkv,S,H]) along the sequence,
 * written to the node's present output, and the keys attended to as [B,T,Nkv·H]. Used for both targets:
 * MultiHeadAttention's own past inputs cannot take GQA, and one lowering keeps the masks' key count simple.
 */
function lowerCache(
  e: Emitter,
  current: string,
  past: string,
  present: string | undefined,
  heads: number,
): string {
  const bnsh = e.op("Transpose", [e.reshape(current, [0, 0, heads, -1])], { perm: ints([0, 2, 1, 3]) });
  const all = past ? e.op("Concat", [past, bnsh], { axis: int(2) }, "", present || undefined) : bnsh;
  if (!past && present) e.op("Identity", [bnsh], {}, "", present);
  return e.reshape(e.op("Transpose", [all], { perm: ints([0, 2, 1, 3]) }), [0, 0, -1]);
}

function convertAttention(ctx: Context, node: Node, e: Emitter): void {
  const [q, k0, v0, bias = "", lengths = "", pastKey = "", pastValue = ""] = node.inputs as [
    string,
    string,
    string,
    string?,
    string?,
    string?,
    string?,
  ];
  const numHeads = attrInt(node, "num_heads");
  const kvNumHeads = attrInt(node, "kv_num_heads", numHeads);
  const [, presentKey, presentValue] = node.outputs;
  const cached = !!(pastKey || presentKey || presentValue);
  const k = cached ? lowerCache(e, k0, pastKey, presentKey, kvNumHeads) : k0;
  const v = cached ? lowerCache(e, v0, pastValue, presentValue, kvNumHeads) : v0;
  if (pastKey) ctx.notes.push(`${node.name}: past key/value → Concat nodes before the attention op`);
  const causal = attrInt(node, "causal", 0) === 1;
  const dtype = dtypeOf(ctx, q);
  const scale: Record<string, Attribute> = hasAttr(node, "scale")
    ? { scale: float(attrFloat(node, "scale")) }
    : {};
  const nativeCausal = causal && sameSequence(ctx, q!, k!);
  const seqQ = () => e.dim(q!, 1);
  const seqKV = () => e.dim(k!, 1);
  const useOnnx =
    (ctx.options.attentionOp ?? (opsetOf(ctx.graph, "") >= 23 ? "Attention" : "MultiHeadAttention")) ===
    "Attention";

  if (useOnnx) {
    // ONNX Attention: -inf masks give zero rows, exactly mhafuse's semantics.
    const parts: string[] = [];
    if (bias) parts.push(bias);
    if (lengths) parts.push(keyMaskBias(e, lengths, seqKV(), dtype, Number.NEGATIVE_INFINITY));
    if (causal && !nativeCausal) parts.push(causalBias(e, seqQ(), seqKV(), dtype, Number.NEGATIVE_INFINITY));
    // onnxruntime wants the mask at rank ≥ 2 with the query axis spelled out, so expand it to [b,n,Sq,Skv].
    const summed = sum(e, parts);
    const mask = summed ? expandToScores(e, summed, seqQ(), seqKV()) : "";
    const inputs = mask ? [q!, k!, v!, mask] : [q!, k!, v!];
    const attrs = {
      q_num_heads: int(numHeads),
      kv_num_heads: int(kvNumHeads),
      ...scale,
      ...(nativeCausal ? { is_causal: int(1) } : {}),
    };
    e.op("Attention", inputs, attrs, "", node.outputs[0]);
    ctx.notes.push(`${node.name}: mhafuse.Attention → Attention (opset ${opsetOf(ctx.graph, "")})`);
    return;
  }

  let [key, value] = [k!, v!];
  if (kvNumHeads !== numHeads) {
    // MultiHeadAttention has no GQA: repeat each KV head numHeads/kvNumHeads times (query head n reads n/g).
    const group = numHeads / kvNumHeads;
    const repeat = (t: string) =>
      e.reshape(
        e.op("Expand", [e.reshape(t, [0, 0, kvNumHeads, 1, -1]), e.int64s([1, 1, 1, group, 1])]),
        [0, 0, -1],
      );
    [key, value] = [repeat(key), repeat(value)];
  }
  const negative = lowest(dtype);
  const parts: string[] = [];
  if (bias) parts.push(bias);
  if (causal && !nativeCausal) parts.push(causalBias(e, seqQ(), seqKV(), dtype, negative));
  const summed = sum(e, parts);
  const attentionBias = summed ? expandToScores(e, summed, seqQ(), seqKV()) : "";
  const inputs = [q!, key, value, "", lengths, attentionBias];
  while (inputs.at(-1) === "") inputs.pop();
  const attrs = { num_heads: int(numHeads), ...scale, ...(nativeCausal ? { unidirectional: int(1) } : {}) };
  e.op("MultiHeadAttention", inputs, attrs, MS, node.outputs[0]);
  ctx.notes.push(`${node.name}: mhafuse.Attention → com.microsoft.MultiHeadAttention`);
  if (lengths) {
    ctx.notes.push(
      `${node.name}: key_lengths became key_padding_mask; onnxruntime adds -10000 to padded keys, so a sequence of length 0 attends to every key instead of giving zeros`,
    );
  }
  if (bias) {
    ctx.notes.push(
      `${node.name}: a query row whose bias is -inf on every key gives NaN in onnxruntime (zeros in mhafuse)`,
    );
  }
}

// ---- mhafuse.QKVToContext -----------------------------------------------------------------------------

function convertQkvToContext(ctx: Context, node: Node, e: Emitter): void {
  const [qkv, lengths = "", fallback = ""] = node.inputs as [string, string?, string?];
  if (!qkv || ctx.types.get(qkv)?.shape?.length === 4 || attrInt(node, "var_seqlen", 0) === 1) {
    throw new OpError(
      node,
      "only the fixed-length form [S,B,3E,1,1] converts to onnxruntime (not var-seqlen)",
    );
  }
  const maskShape = lengths ? ctx.types.get(lengths)?.shape : undefined;
  if (maskShape && maskShape.length !== 1)
    throw new OpError(
      node,
      `only an int32 [B] lengths mask converts to onnxruntime, not a mask of shape [${maskShape}] ` +
        "(TensorRT's packed mask or [B, 1] lengths)",
    );
  const numHeads = attrInt(node, "num_heads");
  const computePaddedRows = attrInt(node, "compute_padded_rows", 1) === 1;
  const batchFirst = isBatchFirst(node);
  const dtype = dtypeOf(ctx, qkv);
  // [S,B,3E,1,1] → [S,B,N,3,H] → [3,B,S,N,H] → Q, K, V as [B,S,E]; batch-first [B,S,3E,1,1] the same way.
  const heads = e.op("Transpose", [e.reshape(qkv, [0, 0, numHeads, 3, -1])], {
    perm: ints(batchFirst ? [3, 0, 1, 2, 4] : [3, 1, 0, 2, 4]),
  });
  const part = (i: number) =>
    e.reshape(
      e.op("Gather", [heads, e.constant(new Tensor("int64", [i], []), "index")], { axis: int(0) }),
      [0, 0, -1],
    );
  const [q, k, v] = [part(0), part(1), part(2)];
  let attentionBias = "";
  let rowScale = "";
  if (lengths) {
    const seq = e.dim(qkv, batchFirst ? 1 : 0);
    const keyBias = keyMaskBias(e, lengths, seq, dtype, lowest(dtype));
    const isFallback = e.reshape(e.op("Equal", [lengths, e.scalar("int32", -1)]), [-1, 1, 1, 1]);
    const bias = fallback ? e.op("Where", [isFallback, fallback, keyBias]) : keyBias;
    attentionBias = expandToScores(e, bias, seq, seq);
    if (!computePaddedRows) {
      // TensorRT convention: rows of padded queries are zeros (sequences on the fallback path keep all rows).
      const rows = e.range(seq);
      const len = e.reshape(e.op("Cast", [lengths], { to: int(7) }), [-1, 1]);
      const keep = e.op("Or", [e.op("Less", [rows, len]), e.reshape(isFallback, [-1, 1])]);
      rowScale = e.reshape(e.op("Cast", [keep], { to: int(dtype === "float16" ? 10 : 1) }), [0, -1, 1]);
    }
  }
  const inputs = [q, k, v, "", "", attentionBias];
  while (inputs.at(-1) === "") inputs.pop();
  let context = e.op("MultiHeadAttention", inputs, { num_heads: int(numHeads) }, MS);
  if (rowScale) context = e.op("Mul", [context, rowScale]);
  const rows = batchFirst ? context : e.op("Transpose", [context], { perm: ints([1, 0, 2]) });
  e.op("Reshape", [rows, e.int64s([0, 0, -1, 1, 1])], {}, "", node.outputs[0]);
  ctx.notes.push(`${node.name}: mhafuse.QKVToContext → Transpose/Gather + com.microsoft.MultiHeadAttention`);
}

// ---- mhafuse.SeqLensFromMask --------------------------------------------------------------------------

function convertSeqLensFromMask(ctx: Context, node: Node, e: Emitter): void {
  const mask = node.inputs[0]!;
  // valid = mask != 0; length = #valid; right-padded iff valid == (position < length) everywhere. Compared in
  // double: exact for every mask type (a float64 1e-60 or 1 + 1e-12 must not round onto 0 or 1).
  const asFloat = e.op("Cast", [mask], { to: int(11) });
  const valid = e.op("Not", [e.op("Equal", [asFloat, e.scalar("float64", 0)])]);
  const length = e.reduceSum(e.op("Cast", [valid], { to: int(7) }), 1);
  const expected = e.op("Less", [e.range(e.dim(mask, 1)), e.reshape(length, [-1, 1])]);
  const mismatches = e.reduceSum(e.op("Cast", [e.op("Xor", [expected, valid])], { to: int(7) }), 1);
  // Any value other than 0 and 1 makes the row -1 as well (the model's own mask bias runs for it).
  const binary = e.op("Or", [
    e.op("Equal", [asFloat, e.scalar("float64", 0)]),
    e.op("Equal", [asFloat, e.scalar("float64", 1)]),
  ]);
  const others = e.reduceSum(e.op("Cast", [e.op("Not", [binary])], { to: int(7) }), 1);
  const zero = e.scalar("int64", 0);
  const ok = e.op("And", [
    e.op("And", [e.op("Equal", [mismatches, zero]), e.op("Equal", [others, zero])]),
    e.op("Greater", [length, zero]),
  ]);
  const result = e.op("Where", [ok, length, e.scalar("int64", -1)]);
  e.op("Cast", [result], { to: int(6) }, "", node.outputs[0]);
  ctx.notes.push(`${node.name}: mhafuse.SeqLensFromMask → Cast/ReduceSum/Range/Less/Xor/Where`);
}

// ---- mhafuse.FusedGemm ----------------------------------------------------------------------------------

/** FusedGemm's activation as the com.microsoft op onnxruntime runs (both erf and tanh forms are contrib ops). */
const ORT_ACTIVATION = { gelu: "Gelu", "gelu-tanh": "FastGelu" } as const;

function convertFusedGemm(ctx: Context, node: Node, e: Emitter): void {
  // An activation other than Gelu / FastGelu is an invalid node: rejected here, by the op's own check.
  const activation = fusedGemmActivation(node);
  const residual = node.inputs[3] || undefined;
  const { activation: _activation, ...gemmAttrs } = node.attrs;
  // Gemm takes A, B and the optional C: no trailing "" where C is omitted.
  const gemmInputs = node.inputs.slice(0, 3);
  while (gemmInputs.length > 2 && !gemmInputs[gemmInputs.length - 1]) gemmInputs.pop();
  const steps: string[] = ["Gemm"];
  let value = e.op("Gemm", gemmInputs, gemmAttrs, "", activation || residual ? undefined : node.outputs[0]);
  if (activation) {
    const op = ORT_ACTIVATION[activation];
    value = e.op(op, [value], {}, MS, residual ? undefined : node.outputs[0]);
    steps.push(`com.microsoft.${op}`);
  }
  if (residual) {
    e.op("Add", [value, residual], {}, "", node.outputs[0]);
    steps.push("Add");
  }
  ctx.notes.push(`${node.name}: mhafuse.FusedGemm → ${steps.join(" + ")}`);
}

const converters: Record<string, (ctx: Context, node: Node, e: Emitter) => void> = {
  FusedGemm: convertFusedGemm,
  Attention: convertAttention,
  QKVToContext: convertQkvToContext,
  SeqLensFromMask: convertSeqLensFromMask,
};

/** Converts a (fused) graph for onnxruntime; the input graph is not modified. */
export function toOnnxruntime(graph: Graph, options: ToOnnxruntimeOptions = {}): ToOnnxruntimeResult {
  const out = cloneGraph(graph);
  const ctx: Context = { graph: out, types: inferGraphTypes(graph).types, notes: [], options };
  const nodes: Node[] = [];
  let usesContrib = false;
  for (const node of out.nodes) {
    if (node.domain !== "mhafuse") {
      nodes.push(node);
      continue;
    }
    const convert = converters[node.opType];
    if (!convert)
      throw new MhafuseError(
        `to-onnxruntime: no conversion for mhafuse.${node.opType} (node '${node.name}')`,
        { code: "OP_UNSUPPORTED", node: node.name },
      );
    const e = new Emitter(out, node.name);
    convert(ctx, node, e);
    usesContrib ||= e.nodes.some((n) => n.domain === MS);
    nodes.push(...e.nodes);
  }
  out.nodes = nodes;
  out.opsets.delete("mhafuse");
  if (usesContrib && !out.opsets.has(MS)) out.opsets.set(MS, 1);
  return { graph: out, notes: ctx.notes };
}
