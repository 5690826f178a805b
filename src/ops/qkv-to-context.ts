/**
 * `mhafuse.QKVToContext`: packed-QKV self-attention with TensorRT bertQKVToContext semantics
 * (docs/qkv-plugin.md). TensorRT's own `CustomQKVToContextPluginDynamic` node is in trt-qkv-plugin.ts and
 * shares the fixed-length and var-seqlen halves below.
 *
 *   fixed length   (qkv [S, B, 3E, 1, 1], mask?, fallback_bias?)          → [S, B, E, 1, 1]
 *                  mask: int32 [B] / [B, 1] valid lengths, or embLayerNorm's packed mask [B, 512 | 6144]
 *                  batch_first = 1 (mhafuse's own): qkv [B, S, 3E, 1, 1] → [B, S, E, 1, 1], the layout of the
 *                  model's activations — what the fusion emits, with no Transpose on either side
 *   var_seqlen = 1 (qkv [T, 3E, 1, 1], dummy mask, cu_seqlens [B + 1], dummy [max_seqlen]) → [T, E, 1, 1]
 *
 * Attributes: num_heads (required), hidden_size, has_mask, var_seqlen, batch_first, type_id (0 fp32, 1 fp16: compute is
 * float32 either way, output keeps the input dtype), compute_padded_rows (default 1: padded query rows attend
 * to the valid keys, as in TensorRT; 0 writes zeros there and skips them).
 */

import { decodePluginMask } from "../attention/plugin-mask.js";
import { checkQkvContract, type Fail, type QkvLayout } from "../attention/qkv-contract.js";
import { type Attend, type QkvRunOptions, runQkvAttention } from "../attention/qkv-to-context.js";
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import { attrInt, type OpContext, type OpDef, registerOps, type TypeContext } from "./registry.js";

export const QKV_DOMAIN = "mhafuse";

/** The op's attention problems run on the backend's attention primitive (the reference's when there is none). */
export function attendWith(ctx: OpContext): Attend {
  const compute = computeOf(ctx);
  return (problems) => {
    for (const p of problems) compute.attention(p);
  };
}

export function failFor(node: Node): Fail {
  return (message) => {
    throw new OpError(node, message);
  };
}

export function intValues(t: Tensor, what: string, fail: Fail): number[] {
  if (t.type !== "int32" && t.type !== "int64") fail(`${what} must be int32, got ${t.type}`);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** Padded query rows: computed (TensorRT's numbers) unless compute_padded_rows = 0. */
export function computePaddedRows(node: Node): boolean {
  return attrInt(node, "compute_padded_rows", 1) !== 0;
}

/** The var-seqlen form: qkv [T, 3E, 1, 1], cu_seqlens at input 2, max_seqlen = dim 0 of input 3. */
export function varSeqlenLayout(
  inputs: (Tensor | undefined)[],
  numHeads: number,
  hiddenSize: number | undefined,
  fail: Fail,
): QkvLayout {
  const cu = inputs[2];
  if (!cu)
    fail(
      "var_seqlen expects 4 inputs: qkv [T, 3E, 1, 1], a dummy mask, cu_seqlens int32 [B + 1] as input 2, " +
        "and a dummy tensor whose dim 0 is the max sequence length",
    );
  return checkQkvContract(
    {
      qkv: inputs[0]!,
      numHeads,
      hiddenSize,
      cuSeqlens: intValues(cu!, "cu_seqlens", fail),
      maxSeqlen: inputs[3] && inputs[3].dims.length > 0 ? inputs[3].dims[0] : undefined,
      varSeqlen: true,
    },
    fail,
  );
}

/** The fixed-length form with an optional mask (lengths or TensorRT's packed mask) and fallback bias. */
export function fixedLayout(
  inputs: (Tensor | undefined)[],
  numHeads: number,
  hiddenSize: number | undefined,
  fail: Fail,
  batchFirst = false,
): { layout: QkvLayout; keyValid?: Uint8Array } {
  const qkv = inputs[0]!;
  const mask = inputs[1];
  let decoded: ReturnType<typeof decodePluginMask> | undefined;
  if (mask) {
    const form = batchFirst ? "[B, S, 3E, 1, 1]" : "[S, B, 3E, 1, 1]";
    if (qkv.dims.length !== 5) fail(`fixed-length qkv must be ${form}, got [${qkv.dims}]`);
    const [d0, d1] = qkv.dims as [number, number];
    const [S, B] = batchFirst ? [d1, d0] : [d0, d1];
    decoded = decodePluginMask(intValues(mask, "mask", fail), mask.dims, B, S, fail);
  }
  const layout = checkQkvContract(
    {
      qkv,
      numHeads,
      hiddenSize,
      lengths: decoded?.lengths,
      hasFallbackBias: inputs[2] !== undefined || decoded?.keyValid !== undefined,
      varSeqlen: false,
      batchFirst,
    },
    fail,
  );
  return { layout, keyValid: decoded?.keyValid };
}

/** batch_first, checked: an attribute of the fixed-length form only (var-seqlen rows are tokens). */
export function isBatchFirst(node: Node): boolean {
  const batchFirst = node.attrs.batch_first ? attrInt(node, "batch_first") !== 0 : false;
  if (batchFirst && node.attrs.var_seqlen && attrInt(node, "var_seqlen") !== 0)
    throw new OpError(
      node,
      "batch_first = 1 is for the fixed-length form; var_seqlen's qkv is [T, 3E, 1, 1]",
    );
  return batchFirst;
}

/** Fixed length or var-seqlen for mhafuse.QKVToContext, from var_seqlen, checked against the rank of qkv. */
function isVarSeqlen(node: Node, qkvRank: number | undefined): boolean {
  const want = node.attrs.var_seqlen ? attrInt(node, "var_seqlen") !== 0 : qkvRank === 4;
  if (qkvRank !== undefined && want && qkvRank !== 4)
    throw new OpError(node, `var_seqlen=1 expects qkv [T, 3E, 1, 1], got rank ${qkvRank}`);
  if (qkvRank !== undefined && !want && qkvRank !== 5)
    throw new OpError(
      node,
      `fixed-length QKVToContext expects qkv [S, B, 3E, 1, 1], got rank ${qkvRank}` +
        (qkvRank === 4 ? "; for [T, 3E, 1, 1] set var_seqlen=1 and pass cu_seqlens as input 2" : ""),
    );
  return want;
}

/** type_id as mhafuse.QKVToContext reads it: 0 float32, 1 float16 (int8 is TensorRT's plugin v3/v6). */
function checkTypeId(node: Node, fail: Fail): void {
  const typeId = attrInt(node, "type_id", 0);
  if (typeId === 2)
    fail(
      "type_id=2 (int8) is not a form of mhafuse.QKVToContext: use TensorRT's int8 interleaved plugin " +
        "(CustomQKVToContextPluginDynamic, plugin_version 3 or 6, with use_explicit_int8 and its scales)",
    );
  if (typeId !== 0 && typeId !== 1) fail(`type_id must be 0 (float32) or 1 (float16), got ${typeId}`);
}

function run(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const { node } = ctx;
  const fail = failFor(node);
  const qkv = inputs[0];
  if (!qkv) return fail("input 0 (qkv) is required");
  checkTypeId(node, fail);
  const numHeads = attrInt(node, "num_heads");
  const hiddenSize = node.attrs.hidden_size ? attrInt(node, "hidden_size") : undefined;
  const opts: QkvRunOptions = {
    computePaddedRows: computePaddedRows(node),
    allocFloat32: computeOf(ctx).allocFloat32,
  };
  const batchFirst = isBatchFirst(node);
  if (isVarSeqlen(node, qkv.dims.length))
    return [
      runQkvAttention(qkv, varSeqlenLayout(inputs, numHeads, hiddenSize, fail), opts, fail, attendWith(ctx)),
    ];
  const hasMaskAttr = node.attrs.has_mask ? attrInt(node, "has_mask") !== 0 : undefined;
  if (hasMaskAttr === true && !inputs[1])
    fail("has_mask=1 but input 1 (mask: int32 [B] valid lengths) is missing");
  if (hasMaskAttr === false && inputs[1])
    fail("has_mask=0 but a mask is connected to input 1; set has_mask=1 to use it");
  const { layout, keyValid } = fixedLayout(inputs, numHeads, hiddenSize, fail, batchFirst);
  return [
    runQkvAttention(qkv, layout, { ...opts, keyValid, fallbackBias: inputs[2] }, fail, attendWith(ctx)),
  ];
}

/** Output [S, B, E, 1, 1] ([B, S, E, 1, 1] batch-first) or [T, E, 1, 1] with the dtype of qkv. */
export function packedOutputType(
  qkv: ValueType,
  varSeqlen: boolean,
  hiddenSize: number | undefined,
): ValueType {
  const shape = qkv.shape;
  if (!shape) return { dtype: qkv.dtype };
  const packed = shape[varSeqlen ? 1 : 2];
  const E: Dim = typeof packed === "number" ? packed / 3 : (hiddenSize ?? null);
  return { dtype: qkv.dtype, shape: varSeqlen ? [shape[0]!, E, 1, 1] : [shape[0]!, shape[1]!, E, 1, 1] };
}

function inferTypes(ctx: TypeContext): ValueType[] {
  const qkv = ctx.inputs[0];
  if (!qkv) throw new OpError(ctx.node, "input 0 (qkv) is required");
  if (qkv.dtype !== "float32" && qkv.dtype !== "float16")
    throw new OpError(ctx.node, `qkv must be float32 or float16, got ${qkv.dtype}`);
  const hidden = ctx.node.attrs.hidden_size ? attrInt(ctx.node, "hidden_size") : undefined;
  isBatchFirst(ctx.node); // [B, S, …] keeps the first two axes' order: the same output rule
  return [packedOutputType(qkv, isVarSeqlen(ctx.node, qkv.shape?.length), hidden)];
}

export const qkvToContextOp: OpDef = { opType: "QKVToContext", domain: QKV_DOMAIN, inferTypes, run };

registerOps([qkvToContextOp]);
