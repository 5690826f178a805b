/**
 * TensorRT's `CustomQKVToContextPluginDynamic`, as TensorRT's own sources define it (NVIDIA/TensorRT a892d222,
 * `plugin/bertQKVToContextPlugin/`), so a graph prepared for TensorRT runs unchanged with TensorRT's numbers.
 *
 * | plugin_version | TensorRT class                              | inputs                                              |
 * | "1", "4"       | QKVToContextPluginDynamic(Legacy)           | qkv [S, B, 3E, 1, 1], mask if has_mask              |
 * | "2", "5"       | QKVToContextVarSeqlenPlugin(Legacy)         | var_seqlen 0: qkv, mask [B] if has_mask;            |
 * |                |                                             | var_seqlen 1: qkv [T, 3E, 1, 1], mask, cu_seqlens   |
 * |                |                                             |   [B + 1], dummy [max_seqlen]                       |
 * | "3", "6"       | QKVToContextInterleavedPlugin(Legacy), int8 | qkv int8 [1, 3E, T, 1], cu_seqlens, dummy [max_S]   |
 *
 * 4, 5 and 6 are the IPluginV3 ports of 1, 2 and 3 with the same inputs and attributes (README changelog,
 * Aug 2024). TensorRT's ONNX parser (onnx-tensorrt `onnxOpImporters.cpp`, the fallback plugin importer)
 * finds plugins by op type whatever the node's domain, and reads `plugin_version` with "1" as default.
 * Attribute checks are the creators' (`createPlugin`: required fields, ranges); fields a version does not know
 * are ignored, as TensorRT ignores them. mhafuse extensions: `compute_padded_rows` (default 1: TensorRT's
 * padded rows) and `trt_padded_head_size` (var-seqlen scale quirk, see docs/qkv-plugin.md).
 */
import { runInt8Interleaved } from "../attention/int8-interleaved.js";
import type { Fail } from "../attention/qkv-contract.js";
import { runQkvAttention } from "../attention/qkv-to-context.js";
import type { Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import {
  attendWith,
  computePaddedRows,
  failFor,
  fixedLayout,
  intValues,
  packedOutputType,
  varSeqlenLayout,
} from "./qkv-to-context.js";
import {
  attrFloat,
  attrInt,
  type OpContext,
  type OpDef,
  registerAnyDomain,
  type TypeContext,
} from "./registry.js";

export const TRT_PLUGIN_OP = "CustomQKVToContextPluginDynamic";

type Family = "fixed" | "varseqlen-capable" | "int8-interleaved";

/** Version → the TensorRT plugin class family and the attributes its creator requires at build time. */
const VERSIONS: Record<string, { family: Family; required: readonly string[] }> = {
  "1": { family: "fixed", required: ["type_id", "hidden_size", "num_heads", "has_mask"] },
  "4": { family: "fixed", required: ["type_id", "hidden_size", "num_heads", "has_mask"] },
  "2": { family: "varseqlen-capable", required: ["type_id", "hidden_size", "num_heads", "has_mask"] },
  "5": { family: "varseqlen-capable", required: ["type_id", "hidden_size", "num_heads", "has_mask"] },
  "3": { family: "int8-interleaved", required: ["hidden_size", "num_heads"] },
  "6": { family: "int8-interleaved", required: ["hidden_size", "num_heads"] },
};

/** What a node stands for once its attributes are checked. */
interface PluginNode {
  version: string;
  family: Family;
  numHeads: number;
  hiddenSize: number;
  /** Fixed-length and var-seqlen families. */
  hasMask: boolean;
  varSeqlen: boolean;
  typeId: number;
}

function pluginVersion(node: Node, fail: Fail): string {
  const a = node.attrs.plugin_version;
  const v = !a ? "1" : a.type === "string" ? a.value : a.type === "int" ? String(a.value) : "";
  if (!(v in VERSIONS))
    fail(
      `plugin_version must be one of "1" … "6" (TensorRT's CustomQKVToContextPluginDynamic versions), got ` +
        `${JSON.stringify(a?.value)}`,
    );
  return v;
}

/** An int attribute that TensorRT validates as 0 or 1. */
function flag(node: Node, name: string, fallback: number, fail: Fail): boolean {
  const v = attrInt(node, name, fallback);
  if (v !== 0 && v !== 1) fail(`${name} must be 0 or 1, got ${v}`);
  return v === 1;
}

function positive(name: string, value: number, fail: Fail): number {
  if (!(value > 0)) fail(`${name} must be > 0, got ${value}`);
  return value;
}

/** The creator's checks (createPlugin in qkvToContextPlugin*.cpp / qkvToContextInt8InterleavedPlugin*.cpp). */
function checkAttributes(node: Node, fail: Fail): PluginNode {
  const version = pluginVersion(node, fail);
  const { family, required } = VERSIONS[version]!;
  const absent = required.filter((name) => !(name in node.attrs));
  if (absent.length > 0)
    fail(
      `plugin_version "${version}" requires attribute${absent.length > 1 ? "s" : ""} ${absent.join(", ")} ` +
        `(TensorRT's plugin creator refuses the node without ${absent.length > 1 ? "them" : "it"})`,
    );
  const numHeads = positive("num_heads", attrInt(node, "num_heads"), fail);
  const hiddenSize = positive("hidden_size", attrInt(node, "hidden_size"), fail);
  if (node.attrs.dq_probs) positive("dq_probs", attrFloat(node, "dq_probs"), fail);
  if (family === "int8-interleaved")
    return { version, family, numHeads, hiddenSize, hasMask: false, varSeqlen: true, typeId: 2 };
  const typeId = attrInt(node, "type_id");
  if (typeId < 0 || typeId > 2) fail(`type_id must be 0 (float32), 1 (float16) or 2 (int8), got ${typeId}`);
  if (typeId === 2)
    fail(
      `type_id=2 (int8) on plugin_version "${version}" takes its scales from TensorRT's calibration (the tensors' ` +
        `dynamic ranges), which an ONNX graph does not carry; use plugin_version "3" or "6" with ` +
        `use_explicit_int8=1, input_qkv_scale and output_ctx_scale, or type_id 0 / 1`,
    );
  const hasMask = flag(node, "has_mask", 0, fail);
  const varSeqlen = family === "varseqlen-capable" && attrInt(node, "var_seqlen", 0) !== 0;
  if (family === "varseqlen-capable") flag(node, "use_int8_scale_max", 1, fail);
  return { version, family, numHeads, hiddenSize, hasMask, varSeqlen, typeId };
}

/** The node's inputs, counted as TensorRT counts them (trailing omitted inputs do not count). */
function checkInputCount(p: PluginNode, node: Node, fail: Fail): void {
  let count = node.inputs.length;
  while (count > 0 && !node.inputs[count - 1]) count--;
  const want =
    p.family === "int8-interleaved"
      ? { n: 3, what: "qkv int8 [1, 3E, T, 1], cu_seqlens int32 [B + 1], a dummy [max_seqlen]" }
      : p.varSeqlen
        ? { n: 4, what: "qkv [T, 3E, 1, 1], a mask (dummy), cu_seqlens int32 [B + 1], a dummy [max_seqlen]" }
        : p.hasMask
          ? { n: 2, what: "qkv [S, B, 3E, 1, 1] and the mask" }
          : { n: 1, what: "qkv [S, B, 3E, 1, 1] alone (has_mask=0)" };
  if (p.varSeqlen && p.family !== "int8-interleaved" && !p.hasMask)
    fail("var_seqlen=1 needs has_mask=1: TensorRT expects 1 + has_mask + 2 = 4 inputs in that mode");
  if (count !== want.n)
    fail(
      `plugin_version "${p.version}" takes ${want.n} input${want.n > 1 ? "s" : ""} (${want.what}), got ${count}`,
    );
}

/** TensorRT checks the qkv dtype against type_id (supportsFormatCombination). */
function checkDtype(p: PluginNode, dtype: string, fail: Fail): void {
  if (p.family === "int8-interleaved") {
    if (dtype !== "int8") fail(`plugin_version "${p.version}" takes int8 qkv, got ${dtype}`);
    return;
  }
  const want = p.typeId === 0 ? "float32" : "float16";
  if (dtype !== want) fail(`type_id=${p.typeId} declares ${want} input, but qkv is ${dtype}`);
}

/** The qkv rank each form takes, with the hint that points at the attribute that picks the form. */
function checkRank(p: PluginNode, rank: number, fail: Fail): void {
  if (p.family === "int8-interleaved") return;
  if (p.varSeqlen && rank !== 4) fail(`var_seqlen=1 expects qkv [T, 3E, 1, 1], got rank ${rank}`);
  if (!p.varSeqlen && rank !== 5)
    fail(
      `plugin_version "${p.version}" expects qkv [S, B, 3E, 1, 1], got rank ${rank}` +
        (rank === 4
          ? p.family === "fixed"
            ? `; the var-seqlen form [T, 3E, 1, 1] is plugin_version "2" or "5" with var_seqlen=1`
            : "; for [T, 3E, 1, 1] set var_seqlen=1"
          : ""),
    );
}

/** var-seqlen scale quirk: TensorRT pads the head size to 32 or 64 and scales by 1/√(padded). */
function varSeqlenScale(node: Node, headSize: number, fail: Fail): number | undefined {
  const padded = attrInt(node, "trt_padded_head_size", 0);
  if (padded === 0) return undefined;
  if (padded !== 32 && padded !== 64) fail(`trt_padded_head_size must be 0, 32 or 64, got ${padded}`);
  if (headSize > padded) fail(`trt_padded_head_size=${padded} is smaller than the head size ${headSize}`);
  return 1 / Math.sqrt(padded);
}

function run(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const { node } = ctx;
  const fail = failFor(node);
  const p = checkAttributes(node, fail);
  checkInputCount(p, node, fail);
  const qkv = inputs[0];
  if (!qkv) return fail("input 0 (qkv) is required");
  checkDtype(p, qkv.type, fail);
  checkRank(p, qkv.dims.length, fail);
  if (p.family === "int8-interleaved") {
    const cu = inputs[1];
    if (!cu) return fail("input 1 (cu_seqlens: int32 [B + 1]) is required");
    const useExplicit = flag(node, "use_explicit_int8", 0, fail);
    flag(node, "use_int8_scale_max", 1, fail);
    if (!useExplicit)
      fail(
        "use_explicit_int8=0: TensorRT then takes the int8 scales from the tensors' dynamic ranges (calibration), " +
          "which this node does not carry; set use_explicit_int8=1 with input_qkv_scale and output_ctx_scale",
      );
    const out = runInt8Interleaved(
      qkv,
      {
        numHeads: p.numHeads,
        hiddenSize: p.hiddenSize,
        cuSeqlens: intValues(cu, "cu_seqlens", fail),
        maxSeqlen: inputs[2] && inputs[2].dims.length > 0 ? inputs[2].dims[0] : undefined,
        qkvScale: positive("input_qkv_scale", attrFloat(node, "input_qkv_scale", 1), fail),
        ctxScale: positive("output_ctx_scale", attrFloat(node, "output_ctx_scale", 1), fail),
      },
      fail,
      attendWith(ctx),
    );
    return [out];
  }
  const padded = computePaddedRows(node);
  if (p.varSeqlen) {
    const layout = varSeqlenLayout(inputs, p.numHeads, p.hiddenSize, fail);
    const scale = varSeqlenScale(node, layout.headSize, fail);
    return [runQkvAttention(qkv, layout, { computePaddedRows: padded, scale }, fail, attendWith(ctx))];
  }
  const mask = p.hasMask ? inputs[1] : undefined;
  if (mask && p.family === "varseqlen-capable" && mask.dims.length !== 1 && mask.dims[1] !== 1)
    fail(
      `plugin_version "${p.version}" with var_seqlen=0 takes int32 [B] lengths as mask, got [${mask.dims}]`,
    );
  const { layout, keyValid } = fixedLayout([qkv, mask], p.numHeads, p.hiddenSize, fail);
  return [runQkvAttention(qkv, layout, { computePaddedRows: padded, keyValid }, fail, attendWith(ctx))];
}

function inferTypes(ctx: TypeContext): ValueType[] {
  const fail = failFor(ctx.node);
  const p = checkAttributes(ctx.node, fail);
  const qkv = ctx.inputs[0];
  if (!qkv) return fail("input 0 (qkv) is required");
  checkDtype(p, qkv.dtype, fail);
  if (qkv.shape) checkRank(p, qkv.shape.length, fail);
  if (p.family === "int8-interleaved") {
    const T = qkv.shape?.[2];
    return [{ dtype: "int8", shape: T === undefined ? undefined : [1, p.hiddenSize, T, 1] }];
  }
  return [packedOutputType(qkv, p.varSeqlen, p.hiddenSize)];
}

export const trtQkvPluginOp: OpDef = { opType: TRT_PLUGIN_OP, inferTypes, run };

registerAnyDomain(TRT_PLUGIN_OP, trtQkvPluginOp);
