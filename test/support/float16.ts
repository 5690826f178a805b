/** float16 models in tests: feeds in the model's dtypes, and onnxruntime-node's run of the same model. */
import type { Graph } from "../../src/ir/graph.js";
import { Tensor } from "../../src/ir/tensor.js";
import { runOnOnnxruntime } from "./ort.js";

/**
 * onnxruntime's FuseFp16InitializerToFp32NodeTransformer moves its own float16 results away from its float32
 * ones (qwen3_sdpa: 2.9e-2); the reference runs without it (see test/float16-models.test.ts).
 */
export const REFERENCE_DISABLED = "FuseFp16InitializerToFp32NodeTransformer";

/** Fixture feeds for a float16 graph: float32 feeds the graph declares float16 are rounded to half. */
export function halfFeeds(inputs: Record<string, Tensor>, graph: Graph): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) {
    const want = graph.inputs.find((i) => i.name === name)?.dtype;
    out[name] =
      want === "float16" && t.type === "float32"
        ? new Tensor("float16", Array.from(t.toFloat64()), t.dims)
        : t;
  }
  return out;
}

/**
 * onnxruntime-node CPU's outputs for `graph` at level "all" with `disableOptimizers` off (REFERENCE_DISABLED by
 * default; a test can name another list, or "" for none).
 */
export function runOrt(
  graph: Graph,
  feeds: Record<string, Tensor>,
  disableOptimizers = REFERENCE_DISABLED,
): Promise<Record<string, Tensor>> {
  return runOnOnnxruntime(graph, feeds, {
    graphOptimizationLevel: "all",
    extra: { optimization: { disable_specified_optimizers: disableOptimizers } },
  });
}
