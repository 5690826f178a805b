import type { Node } from "../../ir/graph.js";
import type { GraphView } from "../graph-view.js";
import { classifyBias } from "./mask-probe.js";
import type { AttentionKind, AttentionReport, AttentionTrait, FusionPath, MaskKind } from "./report.js";

/**
 * Report entries for attention that arrives already fused in the model file: onnxruntime's contrib ops
 * (Attention, MultiHeadAttention, GroupQueryAttention, the Packed* forms), ONNX Attention-23, TensorRT's
 * CustomQKVToContextPluginDynamic, and mhafuse's own ops in a file `mhafuse optimize` wrote. Nothing is
 * rewritten; each entry says what kind of attention the op computes (from its attributes and which optional
 * inputs are wired) and which core it runs on, so `inspect` shows every block of such a model.
 */

interface Described {
  kind: AttentionKind;
  traits: AttentionTrait[];
  mask: MaskKind;
  path: FusionPath;
  why: string;
  numHeads?: number;
  kvNumHeads?: number;
  /** Set when the engine cannot run this form: the block is listed as not runnable, with this reason. */
  unsupported?: string;
}

const intAttr = (n: Node, name: string): number | undefined => {
  const a = n.attrs[name];
  return a?.type === "int" ? a.value : undefined;
};
const strAttr = (n: Node, name: string): string | undefined => {
  const a = n.attrs[name];
  return a?.type === "string" ? a.value : undefined;
};
const wired = (n: Node, i: number) => !!n.inputs[i];

function rankOf(view: GraphView, n: Node, i: number): number | undefined {
  const v = n.inputs[i];
  return v ? view.typeOf(v)?.shape?.length : undefined;
}

/** Sequence length of a [B,S,D] or [B,N,S,H] input, when known (symbolic dims compare by name). */
function seqOf(view: GraphView, n: Node, i: number): string | number | null | undefined {
  const v = n.inputs[i];
  const shape = v ? view.typeOf(v)?.shape : undefined;
  if (!shape) return undefined;
  return shape[shape.length === 4 ? 2 : 1];
}

/**
 * The activation a value was projected from: up through Add(x, constant), MatMul/Gemm(x, constant weight)
 * and Reshape/Flatten.
 * Undefined unless a MatMul or Gemm was passed (anything else, e.g. rotary, says nothing about the source).
 */
function projectionSource(value: string, view: GraphView): string | undefined {
  let v = value;
  let projected = false;
  for (let hop = 0; hop < 6; hop++) {
    const node = view.producer.get(v);
    if (node?.domain !== "") break;
    // mhafuse's linear-bias pass writes X·W + b as Reshape(Gemm(Flatten(X))): walk through the reshapes.
    if (node.opType === "Reshape" || node.opType === "Flatten") {
      v = node.inputs[0]!;
      continue;
    }
    if (!["Add", "MatMul", "Gemm"].includes(node.opType)) break;
    const dynamic = node.inputs.filter((i) => i && !view.constant(i));
    if (dynamic.length !== 1) break;
    if (node.opType !== "Add") projected = true;
    v = dynamic[0]!;
  }
  return projected ? v : undefined;
}

/**
 * Cross-attention when the key sequence is known to differ from the query sequence, or (lengths unknown, as
 * in a file mhafuse wrote) when Q and K are projections of different activations.
 */
function crossOf(view: GraphView, n: Node, q: number, k: number): boolean {
  const a = seqOf(view, n, q);
  const b = seqOf(view, n, k);
  if (a !== undefined && a !== null && b !== undefined && b !== null) return a !== b;
  const qs = n.inputs[q] ? projectionSource(n.inputs[q]!, view) : undefined;
  const ks = n.inputs[k] ? projectionSource(n.inputs[k]!, view) : undefined;
  return qs !== undefined && ks !== undefined && qs !== ks;
}

/**
 * What an additive bias input computes, probed like a fusion block's bias: a padding mask, a causal mask,
 * both, or something else (relative position bias…). Exports lowered for onnxruntime (mhafuse's own
 * --target onnxruntime among them) pass masks this way.
 */
function probeBias(view: GraphView, value: string): { mask: MaskKind; causal: boolean; biased: boolean } {
  const c = classifyBias(view, value);
  if (c.kind === "padding") return { mask: "padding", causal: false, biased: false };
  if (c.kind === "causal") return { mask: "none", causal: true, biased: false };
  if (c.kind === "causal+padding") return { mask: "padding", causal: true, biased: false };
  return { mask: "additive", causal: false, biased: true };
}

/** Merges a probed bias into what the op's attributes and mask input said. */
function withBias(d: Described, view: GraphView, value: string | undefined): Described {
  if (!value) return d;
  const p = probeBias(view, value);
  const traits: AttentionTrait[] = d.traits.filter((t) => t !== "biased");
  if (p.biased) traits.push("biased");
  if (p.mask === "padding" && !traits.includes("padding-mask")) traits.push("padding-mask");
  const mask = d.mask === "none" || d.mask === "additive" ? p.mask : d.mask;
  return { ...d, traits, mask, kind: p.causal && d.kind === "self" ? "causal" : d.kind };
}

function kindOf(causal: boolean, cross: boolean): AttentionKind {
  return causal ? "causal" : cross ? "cross" : "self";
}

/** com.microsoft Attention: input [B,S,E] with the QKV projection inside the op; mask_index in its forms. */
function contribAttention(n: Node, view: GraphView): Described {
  const traits: AttentionTrait[] = [];
  let mask: MaskKind = "none";
  if (wired(n, 3)) {
    const r = rankOf(view, n, 3);
    // [B] end positions or [2B] end/start: key lengths; [B, S_total] a 0/1 padding mask; 3-D/4-D: a mask
    // matrix applied like an additive bias.
    mask = r === 1 ? "key-lengths" : r === 2 ? "padding" : "additive";
  }
  if (mask === "padding") traits.push("padding-mask");
  if (wired(n, 5)) traits.push("biased");
  if (wired(n, 4)) traits.push("kv-cache");
  if (intAttr(n, "do_rotary")) traits.push("rotary");
  const unsupported = wired(n, 4)
    ? "past (KV cache) of com.microsoft.Attention is not supported"
    : intAttr(n, "do_rotary")
      ? "do_rotary=1 of com.microsoft.Attention is not supported"
      : undefined;
  return {
    kind: kindOf(!!intAttr(n, "unidirectional"), false),
    traits,
    mask,
    path: "attention",
    why: "contrib op run as is: its QKV projection as a GEMM, then the general attention core",
    numHeads: intAttr(n, "num_heads"),
    unsupported,
  };
}

/** com.microsoft MultiHeadAttention: separate, packed-KV [B,L,N,2,H] or packed-QKV [B,S,N,3,H] inputs. */
function multiHeadAttention(n: Node, view: GraphView): Described {
  const traits: AttentionTrait[] = [];
  const packedQkv = rankOf(view, n, 0) === 5 && !wired(n, 1);
  if (packedQkv || rankOf(view, n, 1) === 5) traits.push("packed-input");
  let mask: MaskKind = "none";
  if (wired(n, 4)) {
    const r = rankOf(view, n, 4);
    mask = r === 1 ? "key-lengths" : r === 2 ? "padding" : "additive";
  }
  if (mask === "padding") traits.push("padding-mask");
  if (wired(n, 5)) traits.push("biased");
  if (wired(n, 6) || wired(n, 7)) traits.push("kv-cache");
  const cross = !packedQkv && wired(n, 1) && crossOf(view, n, 0, 1);
  return {
    kind: kindOf(!!intAttr(n, "unidirectional"), cross),
    traits,
    mask,
    path: "attention",
    why: "contrib op run as is on the general attention core",
    numHeads: intAttr(n, "num_heads"),
    unsupported:
      wired(n, 6) || wired(n, 7)
        ? "past_key/past_value (KV cache) of com.microsoft.MultiHeadAttention are not supported"
        : undefined,
  };
}

/** com.microsoft GroupQueryAttention: always causal, KV cache and seqlens_k, optional packed QKV and rotary. */
function groupQueryAttention(n: Node): Described {
  const numHeads = intAttr(n, "num_heads");
  const kvNumHeads = intAttr(n, "kv_num_heads");
  const traits: AttentionTrait[] = [];
  if (numHeads !== kvNumHeads) traits.push("GQA");
  if (!wired(n, 1)) traits.push("packed-input");
  if (wired(n, 3) || wired(n, 4)) traits.push("kv-cache");
  if (intAttr(n, "do_rotary")) traits.push("rotary");
  if ((intAttr(n, "local_window_size") ?? -1) >= 0) traits.push("sliding-window");
  return {
    kind: "causal",
    traits,
    mask: "seqlens-k",
    path: "attention",
    why: "contrib op run as is on the general attention core (causal, KV heads not repeated)",
    numHeads,
    kvNumHeads,
  };
}

/** ONNX Attention (opset 23): 3-D or 4-D Q/K/V, attn_mask bool or additive, is_causal, past_key/value. */
function onnxAttention(n: Node, view: GraphView): Described {
  const numHeads = intAttr(n, "q_num_heads");
  const kvNumHeads = intAttr(n, "kv_num_heads");
  const traits: AttentionTrait[] = [];
  if (numHeads !== undefined && kvNumHeads !== undefined && numHeads !== kvNumHeads) traits.push("GQA");
  let mask: MaskKind = "none";
  if (wired(n, 3)) mask = view.typeOf(n.inputs[3]!)?.dtype === "bool" ? "boolean" : "additive";
  if (wired(n, 4) || wired(n, 5)) traits.push("kv-cache");
  if (intAttr(n, "softcap")) traits.push("biased");
  const causal = !!intAttr(n, "is_causal");
  return {
    kind: kindOf(causal, !wired(n, 4) && crossOf(view, n, 0, 1)),
    traits,
    mask,
    path: "attention",
    why: "ONNX Attention-23 run as is on the general attention core",
    numHeads,
    kvNumHeads,
  };
}

/** TensorRT's plugin node: the packed [S,B,3E,1,1] (or var-seqlen [T,3E,1,1]) op, always self-attention. */
function trtPlugin(n: Node): Described {
  const version = strAttr(n, "plugin_version") ?? "1";
  const varSeqlen = !!intAttr(n, "var_seqlen") || version === "3" || version === "6";
  const hasMask = !!intAttr(n, "has_mask");
  return {
    kind: "self",
    traits: [],
    mask: varSeqlen ? "cu-seqlens" : hasMask ? "trt-mask" : "none",
    path: "packed-qkv",
    why:
      version === "3" || version === "6"
        ? "TensorRT plugin (int8 interleaved) run as is on the packed-QKV core"
        : "TensorRT plugin run as is on the packed-QKV core",
    numHeads: intAttr(n, "num_heads"),
  };
}

/** mhafuse.QKVToContext in a file mhafuse already optimised. */
function mhafuseQkv(n: Node, view: GraphView): Described {
  let mask: MaskKind = "none";
  if (intAttr(n, "var_seqlen")) mask = "cu-seqlens";
  else if (wired(n, 1)) {
    mask = view.producer.get(n.inputs[1]!)?.opType === "SeqLensFromMask" ? "padding" : "key-lengths";
  }
  return {
    kind: "self",
    traits: mask === "padding" ? ["padding-mask"] : [],
    mask,
    path: "packed-qkv",
    why: "mhafuse's packed op, already in the file",
    numHeads: intAttr(n, "num_heads"),
  };
}

/** mhafuse.Attention in a file mhafuse already optimised. */
function mhafuseAttention(n: Node, view: GraphView): Described {
  const numHeads = intAttr(n, "num_heads");
  const kvNumHeads = intAttr(n, "kv_num_heads") ?? numHeads;
  const traits: AttentionTrait[] = [];
  if (numHeads !== kvNumHeads) traits.push("GQA");
  // Inputs 5 and 6: past_key, past_value (the KV cache the fusion took into the op).
  if (wired(n, 5) || wired(n, 6)) traits.push("kv-cache");
  const mask: MaskKind = wired(n, 3) ? "additive" : wired(n, 4) ? "key-lengths" : "none";
  return {
    kind: kindOf(!!intAttr(n, "causal"), crossOf(view, n, 0, 1)),
    traits,
    mask,
    path: "attention",
    why: "mhafuse's general op, already in the file",
    numHeads,
    kvNumHeads,
  };
}

const DESCRIBERS: Record<string, (n: Node, view: GraphView) => Described> = {
  "com.microsoft::Attention": contribAttention,
  "com.microsoft::MultiHeadAttention": multiHeadAttention,
  "com.microsoft::GroupQueryAttention": groupQueryAttention,
  "::Attention": onnxAttention,
  "mhafuse::QKVToContext": mhafuseQkv,
  "mhafuse::Attention": mhafuseAttention,
};

/** onnxruntime's packed (token-packed, no padding) forms: listed as blocks, but the engine has no kernel. */
const UNSUPPORTED = new Set(["com.microsoft::PackedAttention", "com.microsoft::PackedMultiHeadAttention"]);

/** The op's additive bias input, if it has one wired: probed for padding and causal masks. */
function additiveBiasInput(n: Node, view: GraphView): string | undefined {
  const key = `${n.domain}::${n.opType}`;
  let value: string | undefined;
  if (key === "com.microsoft::Attention" || key === "com.microsoft::MultiHeadAttention") value = n.inputs[5];
  else if (key === "mhafuse::Attention") value = n.inputs[3];
  else if (key === "::Attention" && n.inputs[3] && view.typeOf(n.inputs[3])?.dtype !== "bool")
    value = n.inputs[3];
  return value || undefined;
}

/**
 * Rotary embeddings the fusion folded (or an exporter wrote) as RotaryEmbedding nodes feeding the op's Q/K,
 * and a KV cache lowered to Concat(past, K): found through the Reshape/Transpose/Expand (GQA repeat) a
 * --target onnxruntime lowering puts between them and the op.
 */
function rotaryInFile(n: Node, view: GraphView): { rotary?: string; cache: boolean } {
  let cache = false;
  const rotated = (value: string | undefined, key: boolean): boolean => {
    for (let v = value, hop = 0; v && hop < 10; hop++) {
      const p = view.producer.get(v);
      if (p?.opType === "RotaryEmbedding") return true;
      if (p?.domain !== "" || !["Reshape", "Transpose", "Expand", "Unsqueeze", "Concat"].includes(p.opType))
        return false;
      // A lowered KV cache is Concat(past, this step's K) along the sequence: the rotation is on this step's K.
      const axis = p.attrs.axis;
      if (p.opType === "Concat" && key && axis?.type === "int" && axis.value === 2) cache = true;
      v = p.opType === "Concat" ? p.inputs.at(-1) : p.inputs[0];
    }
    return false;
  };
  const on = [rotated(n.inputs[0], false) && "Q", rotated(n.inputs[1], true) && "K"].filter(Boolean);
  return { rotary: on.length ? `RotaryEmbedding nodes on ${on.join(", ")} in the file` : undefined, cache };
}

const qualified = (n: Node) => (n.domain ? `${n.domain}.${n.opType}` : n.opType);

/** The report entry for an attention op of the file, or undefined when the node is not attention. */
export function importedBlock(node: Node, view: GraphView): AttentionReport | undefined {
  const key = `${node.domain}::${node.opType}`;
  // TensorRT's ONNX parser finds the plugin by op type whatever the domain; so does the engine.
  const describe = node.opType === "CustomQKVToContextPluginDynamic" ? trtPlugin : DESCRIBERS[key];
  const base = {
    id: node.name,
    origin: "file" as const,
    op: qualified(node),
    nodes: [node.name],
    output: node.outputs[0],
  };
  if (UNSUPPORTED.has(key)) {
    const heads = intAttr(node, "num_heads");
    return {
      ...base,
      kind: "self",
      traits: ["packed-input"],
      fused: false,
      mask: "cu-seqlens",
      numHeads: heads,
      reason: `${qualified(node)} (token-packed batches) has no kernel in mhafuse: the model will not run`,
    };
  }
  if (!describe) return undefined;
  const d = withBias(describe(node, view), view, additiveBiasInput(node, view));
  const entry: AttentionReport = {
    ...base,
    kind: d.kind,
    traits: d.traits,
    fused: !d.unsupported,
    path: d.path,
    mask: d.mask,
    why: d.why,
    numHeads: d.numHeads,
  };
  if (d.kvNumHeads !== undefined) entry.kvNumHeads = d.kvNumHeads;
  const { rotary, cache } = rotaryInFile(node, view);
  if (rotary) {
    if (!entry.traits.includes("rotary")) entry.traits = [...entry.traits, "rotary"];
    entry.rotary = rotary;
  }
  if (cache && !entry.traits.includes("kv-cache")) entry.traits = [...entry.traits, "kv-cache"];
  if (d.unsupported) entry.reason = `${d.unsupported}: the model will not run`;
  return entry;
}
