/**
 * `mhafuse.QKVToContext`: packed-QKV self-attention with TensorRT bertQKVToContext semantics, also registered
 * as TensorRT's own `CustomQKVToContextPluginDynamic` (domains "" and "trt.plugins", plugin versions 1–3) so a
 * graph prepared for TensorRT with onnx-graphsurgeon runs unchanged. Input conventions (docs/qkv-plugin.md):
 *
 *   fixed length   (qkv [S, B, 3E, 1, 1], mask?, fallback_bias?)          → [S, B, E, 1, 1]
 *                  mask: int32 [B] valid lengths, or v1's maskIdx [B, packSize]
 *   var_seqlen = 1 (qkv [T, 3E, 1, 1], dummy mask, cu_seqlens [B + 1], dummy [max_seqlen]) → [T, E, 1, 1]
 *
 * Attributes: num_heads (required), hidden_size, has_mask, var_seqlen, type_id (0 fp32, 1 fp16: compute is
 * float32 either way, output keeps the input dtype), plugin_version; mhafuse adds compute_padded_rows.
 */

import { decodePluginMask } from "../attention/plugin-mask.js";
import { checkQkvContract, type Fail, type QkvLayout } from "../attention/qkv-contract.js";
import { runQkvAttention } from "../attention/qkv-to-context.js";
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import {
  attrInt,
  type OpContext,
  type OpDef,
  registerAlias,
  registerOps,
  type TypeContext,
} from "./registry.js";

export const QKV_DOMAIN = "mhafuse";
export const TRT_PLUGIN_OP = "CustomQKVToContextPluginDynamic";
export const TRT_PLUGIN_DOMAINS = ["", "trt.plugins"] as const;

/** plugin_version is a string attribute in TensorRT graphs ("1"); accept an int too. */
function pluginVersion(node: Node): number | undefined {
  const a = node.attrs.plugin_version;
  if (!a) return undefined;
  const v = a.type === "string" ? Number(a.value) : a.type === "int" ? a.value : Number.NaN;
  if (![1, 2, 3].includes(v))
    throw new OpError(
      node,
      `plugin_version must be "1", "2" or "3" (TensorRT's QKVToContext versions), got ${JSON.stringify(a.value)}`,
    );
  return v;
}

/** Fixed length or var-seqlen, from the attributes, checked against the rank of qkv. */
function isVarSeqlen(node: Node, qkvRank: number | undefined): boolean {
  const version = pluginVersion(node);
  const attr = node.attrs.var_seqlen ? attrInt(node, "var_seqlen") !== 0 : undefined;
  const want = attr ?? (version === 3 ? true : qkvRank === 4);
  if (qkvRank !== undefined && want && qkvRank !== 4)
    throw new OpError(
      node,
      `var_seqlen=1 (or plugin_version 3) expects qkv [T, 3E, 1, 1], got rank ${qkvRank}`,
    );
  if (qkvRank !== undefined && !want && qkvRank !== 5)
    throw new OpError(
      node,
      `fixed-length QKVToContext expects qkv [S, B, 3E, 1, 1], got rank ${qkvRank}` +
        (qkvRank === 4 ? "; for [T, 3E, 1, 1] set var_seqlen=1 and pass cu_seqlens as input 2" : ""),
    );
  return want;
}

function intValues(node: Node, t: Tensor, what: string): number[] {
  if (t.type !== "int32" && t.type !== "int64")
    throw new OpError(node, `${what} must be int32, got ${t.type}`);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

function typeIdCheck(node: Node): void {
  const typeId = attrInt(node, "type_id", 0);
  if (typeId === 2)
    throw new OpError(
      node,
      "type_id=2 (int8) is not supported: mhafuse computes in float32/float16; use type_id 0 or 1",
    );
  if (typeId !== 0 && typeId !== 1)
    throw new OpError(node, `type_id must be 0 (float32) or 1 (float16), got ${typeId}`);
}

function layoutFor(ctx: OpContext, inputs: (Tensor | undefined)[], fail: Fail): QkvLayout {
  const { node } = ctx;
  const qkv = inputs[0];
  if (!qkv) return fail("input 0 (qkv) is required");
  typeIdCheck(node);
  const numHeads = attrInt(node, "num_heads");
  const hiddenSize = node.attrs.hidden_size ? attrInt(node, "hidden_size") : undefined;
  if (isVarSeqlen(node, qkv.dims.length)) {
    const cu = inputs[2];
    if (!cu)
      fail(
        "var_seqlen expects 4 inputs: qkv [T, 3E, 1, 1], a dummy mask (or ''), cu_seqlens int32 [B + 1] as input 2, " +
          "and a dummy tensor whose dim 0 is the max sequence length",
      );
    return checkQkvContract(
      {
        qkv,
        numHeads,
        hiddenSize,
        cuSeqlens: intValues(node, cu!, "cu_seqlens"),
        maxSeqlen: inputs[3] && inputs[3].dims.length > 0 ? inputs[3].dims[0] : undefined,
        varSeqlen: true,
      },
      fail,
    );
  }
  const mask = inputs[1];
  const hasMaskAttr = node.attrs.has_mask ? attrInt(node, "has_mask") !== 0 : undefined;
  if (hasMaskAttr === true && !mask)
    fail("has_mask=1 but input 1 (mask: int32 [B] valid lengths) is missing");
  if (hasMaskAttr === false && mask)
    fail("has_mask=0 but a mask is connected to input 1; set has_mask=1 to use it");
  const fallbackBias = inputs[2];
  let lengths: number[] | undefined;
  if (mask) {
    const [S, B] = qkv.dims as [number, number];
    lengths = decodePluginMask(intValues(node, mask, "mask"), mask.dims, B ?? 0, S ?? 0, fail);
  }
  return checkQkvContract(
    { qkv, numHeads, hiddenSize, lengths, hasFallbackBias: fallbackBias !== undefined, varSeqlen: false },
    fail,
  );
}

function run(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const fail: Fail = (message) => {
    throw new OpError(ctx.node, message);
  };
  const layout = layoutFor(ctx, inputs, fail);
  const computePaddedRows = attrInt(ctx.node, "compute_padded_rows", 0) !== 0;
  const fallbackBias = layout.mode === "fixed" ? inputs[2] : undefined;
  return [runQkvAttention(inputs[0]!, layout, { computePaddedRows, fallbackBias }, fail)];
}

function inferTypes(ctx: TypeContext): ValueType[] {
  const qkv = ctx.inputs[0];
  if (!qkv) throw new OpError(ctx.node, "input 0 (qkv) is required");
  if (qkv.dtype !== "float32" && qkv.dtype !== "float16")
    throw new OpError(ctx.node, `qkv must be float32 or float16, got ${qkv.dtype}`);
  const shape = qkv.shape;
  if (!shape) return [{ dtype: qkv.dtype }];
  const hidden = ctx.node.attrs.hidden_size ? attrInt(ctx.node, "hidden_size") : undefined;
  const varSeqlen = isVarSeqlen(ctx.node, shape.length);
  const packed = shape[varSeqlen ? 1 : 2];
  const E: Dim = typeof packed === "number" ? packed / 3 : (hidden ?? null);
  return [{ dtype: qkv.dtype, shape: varSeqlen ? [shape[0]!, E, 1, 1] : [shape[0]!, shape[1]!, E, 1, 1] }];
}

export const qkvToContextOp: OpDef = { opType: "QKVToContext", domain: QKV_DOMAIN, inferTypes, run };
export const trtQkvPluginOp: OpDef = { opType: TRT_PLUGIN_OP, inferTypes, run };

registerOps([qkvToContextOp]);
for (const domain of TRT_PLUGIN_DOMAINS) registerAlias(domain, TRT_PLUGIN_OP, { ...trtQkvPluginOp, domain });
