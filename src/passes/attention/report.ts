/**
 * The fusion report: one entry per attention block found (every Softmax between a MatMul(Q,Kᵀ)-like
 * producer and a MatMul with V), fused or not, and why not. `mhafuse inspect` prints it, verify mode uses
 * `output` to compare a block's result between the unfused and the fused graph.
 */

export type AttentionKind = "self" | "cross" | "causal";
export type AttentionTrait =
  | "GQA"
  | "biased"
  | "rotary"
  | "padding-mask"
  | "kv-cache"
  | "sliding-window"
  | "packed-input"
  /** Q, K, V sliced from one [E, 3E] projection as Q | K | V blocks (GPT-2 c_attn, Phi-3 qkv_proj). */
  | "fused-qkv"
  /** Q, K, V chunked from one projection whose weight is already per head [N, 3, H] (GPT-NeoX). */
  | "interleaved-qkv";
/** The attention core a block runs on: the packed-QKV op's, or the general one (every other attention op). */
export type FusionPath = "packed-qkv" | "attention";
/**
 * The mask a block applies besides causality (which is its kind): none; a padding mask from a graph input
 * (turned into lengths, or kept as a bias); valid key lengths per batch; TensorRT's packed mask; var-seqlen
 * cu_seqlens; GroupQueryAttention's seqlens_k; a boolean mask; an additive float bias.
 */
export type MaskKind =
  | "none"
  | "padding"
  | "key-lengths"
  | "trt-mask"
  | "cu-seqlens"
  | "seqlens-k"
  | "boolean"
  | "additive";

export interface AttentionReport {
  /** Name of the block's Softmax node: stable across runs, readable in the model's own naming. */
  id: string;
  kind: AttentionKind;
  /**
   * More about the block: grouped-query heads, additive bias beyond masks, rotary, padding mask, a KV cache
   * (past Concat) taken into the fused op.
   */
  traits: AttentionTrait[];
  fused: boolean;
  /** Where the block came from: a subgraph the fusion pass found, or an attention op already in the file. */
  origin: "subgraph" | "file";
  path?: FusionPath;
  /** The op that runs the block, domain-qualified ("mhafuse.QKVToContext", "com.microsoft.Attention"). */
  op?: string;
  mask?: MaskKind;
  /** Why this path (and not the packed op), or how an op of the file runs. */
  why?: string;
  /** When not fused: which node broke which pattern, or which condition the rewrite declined on. */
  reason?: string;
  /** Names of the original nodes that make up the block. */
  nodes: string[];
  /** The value the block computes, present under the same name in the original and the fused graph. */
  output?: string;
  /**
   * What became of a rotary embedding on Q/K: "folded into com.microsoft.RotaryEmbedding (…)" — one op node
   * right before the fused op — or "kept as graph nodes: why".
   */
  rotary?: string;
  numHeads?: number;
  kvNumHeads?: number;
  headSize?: number;
  scale?: number;
}

/** One line per block for logs and test failure messages. */
export function summarizeReport(report: readonly AttentionReport[]): string {
  return report
    .map((b) => {
      const what = [b.kind, ...b.traits].join("+");
      if (!b.fused) return `${b.id}: ${what} NOT fused: ${b.reason}`;
      const where = b.origin === "file" ? "already fused in the file, runs" : "fused";
      const details = [b.op, b.mask && `mask ${b.mask}`, b.rotary && `rotary ${b.rotary}`]
        .filter(Boolean)
        .join(", ");
      return `${b.id}: ${what} ${where} via ${b.path}${details ? ` (${details})` : ""}${b.why ? `: ${b.why}` : ""}`;
    })
    .join("\n");
}
