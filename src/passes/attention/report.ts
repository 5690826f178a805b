/**
 * The fusion report: one entry per attention block found (every Softmax between a MatMul(Q,Kᵀ)-like
 * producer and a MatMul with V), fused or not, and why not. `mhafuse inspect` prints it, verify mode uses
 * `output` to compare a block's result between the unfused and the fused graph.
 */

export type AttentionKind = "self" | "cross" | "causal";
export type AttentionTrait = "GQA" | "biased" | "rotary" | "padding-mask" | "kv-cache";
export type FusionPath = "packed-qkv" | "attention";

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
  path?: FusionPath;
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
      const rotary = b.rotary ? ` (rotary ${b.rotary})` : "";
      return b.fused
        ? `${b.id}: ${what} fused via ${b.path}${rotary}`
        : `${b.id}: ${what} NOT fused: ${b.reason}`;
    })
    .join("\n");
}
