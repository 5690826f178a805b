/** float16 models in tests: feeds in the model's dtypes, and onnxruntime-node's run of the same model. */
import * as ort from "onnxruntime-node";
import type { Graph } from "../../src/ir/graph.js";
import { Tensor } from "../../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../../src/onnx/index.js";

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

/** onnxruntime-node CPU's outputs for `graph` (level "all", REFERENCE_DISABLED off). */
export async function runOrt(graph: Graph, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), {
    graphOptimizationLevel: "all",
    extra: { optimization: { disable_specified_optimizers: REFERENCE_DISABLED } },
  });
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]);
  const result = await session.run(ortFeeds);
  await session.release();
  return Object.fromEntries(
    Object.entries(result).map(([k, v]) => [
      k,
      new Tensor(v.type as "float16", v.data as Uint16Array, v.dims as number[]),
    ]),
  );
}
