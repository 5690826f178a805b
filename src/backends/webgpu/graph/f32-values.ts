/**
 * fp16 mode's one storage exception: values kept in f32 although the run stores activations as f16. These are
 * the residual sums — outputs of Add/Sub that a normalisation reads (post-LN BERT: Add(x, sublayer) →
 * LayerNormalization) — so the sum is rounded once, by the norm's f16 output, not twice (PyTorch autocast
 * likewise runs the residual add and LayerNorm in f32). SkipLayerNormalization sums in f32 inside the kernel.
 */
import { type Graph, normalizeDomain } from "../../../ir/graph.js";

const NORMS = new Set([
  "::LayerNormalization",
  "com.microsoft::SkipLayerNormalization",
  "com.microsoft::SkipSimplifiedLayerNormalization",
  "com.microsoft::SimplifiedLayerNormalization",
  "::RMSNormalization",
]);
const SUMS = new Set(["::Add", "::Sub"]);

const key = (n: { domain: string; opType: string }) => `${normalizeDomain(n.domain)}::${n.opType}`;

/** Names of the values fp16 mode stores as f32. */
export function f32Values(graph: Pick<Graph, "nodes">): Set<string> {
  const readByNorm = new Set<string>();
  for (const n of graph.nodes) if (NORMS.has(key(n))) for (const i of n.inputs) if (i) readByNorm.add(i);
  const out = new Set<string>();
  for (const n of graph.nodes)
    if (SUMS.has(key(n)) && n.outputs[0] && readByNorm.has(n.outputs[0])) out.add(n.outputs[0]);
  return out;
}
