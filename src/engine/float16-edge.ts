/**
 * The session edge of a float16 model run lifted to float32 types (passes/lift-float16.ts; the webgpu
 * provider): callers feed and fetch the model's float16 tensors, the lifted graph takes and gives float32.
 * Feeds widen exactly (every half is a float32); outputs are rounded to half, to nearest even — the rounding
 * the float16 model's last op would have done.
 */

import { floatToHalf } from "../ir/float16.js";
import type { Graph, ValueInfo } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { tensorToFloat32 } from "../passes/lift-float16.js";

export interface Float16Edge {
  /** The model's inputs and outputs, float16 where the model says so (what the session reports). */
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly halfInputs: ReadonlySet<string>;
  readonly halfOutputs: ReadonlySet<string>;
}

/** The edge between `model` and its lifted graph (whose inputs and outputs have the same names and order). */
export function float16Edge(model: Graph): Float16Edge {
  const half = (vs: readonly ValueInfo[]) =>
    new Set(vs.filter((v) => v.dtype === "float16").map((v) => v.name));
  return {
    inputs: model.inputs,
    outputs: model.outputs,
    halfInputs: half(model.inputs),
    halfOutputs: half(model.outputs),
  };
}

/** The feeds as the lifted graph takes them: float16 inputs as float32. */
export function widenFeeds(edge: Float16Edge, feeds: Record<string, Tensor>): Record<string, Tensor> {
  if (edge.halfInputs.size === 0) return feeds;
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(feeds))
    out[name] = edge.halfInputs.has(name) ? tensorToFloat32(t) : t;
  return out;
}

/** The lifted graph's results as the model gives them: float16 outputs rounded back to float16. */
export function narrowOutputs(edge: Float16Edge, outputs: Record<string, Tensor>): Record<string, Tensor> {
  if (edge.halfOutputs.size === 0) return outputs;
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(outputs)) {
    if (!edge.halfOutputs.has(name) || t.type !== "float32") {
      out[name] = t;
      continue;
    }
    const wide = t.data as Float32Array;
    const bits = new Uint16Array(wide.length);
    for (let i = 0; i < wide.length; i++) bits[i] = floatToHalf(wide[i]!);
    out[name] = new Tensor("float16", bits, t.dims);
  }
  return out;
}
