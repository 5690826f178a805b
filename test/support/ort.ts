/**
 * onnxruntime-node as the tests' reference runtime: a graph saved as ONNX, run on its CPU provider, feeds and
 * outputs as mhafuse tensors (so results compare with maxAbsDiff directly). The session is released after the run.
 */
import * as ort from "onnxruntime-node";
import type { Graph } from "../../src/ir/graph.js";
import { Tensor } from "../../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../../src/onnx/index.js";

export async function runOnOnnxruntime(
  graph: Graph,
  feeds: Record<string, Tensor>,
  options?: ort.InferenceSession.SessionOptions,
): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)), options);
  try {
    const ortFeeds = Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [
        k,
        new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]),
      ]),
    );
    const out = await session.run(ortFeeds);
    return Object.fromEntries(
      Object.entries(out).map(([k, v]) => [
        k,
        new Tensor(v.type as Tensor["type"], v.data as Float32Array, v.dims as number[]),
      ]),
    );
  } finally {
    await session.release();
  }
}
