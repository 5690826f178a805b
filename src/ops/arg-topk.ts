/**
 * Index-returning reductions: ArgMax / ArgMin (keepdims, select_last_index; int64 indices) and TopK
 * (k as an attribute before opset 10, an int64 input from 10; largest, sorted; ties keep the lower index
 * first, as the spec requires).
 */
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

/** [outer, length, inner] view of x around `axis`. */
function around(dims: readonly number[], axis: number) {
  return { outer: sizeOf(dims.slice(0, axis)), length: dims[axis]!, inner: sizeOf(dims.slice(axis + 1)) };
}

/** The node's axis attribute (default: 0 for ArgMax/ArgMin, -1 for TopK), normalised. */
function axisOf(node: Node, rank: number) {
  try {
    return normalizeAxis(attrInt(node, "axis", node.opType === "TopK" ? -1 : 0), Math.max(rank, 1));
  } catch (e) {
    throw new OpError(node, (e as Error).message);
  }
}

function argOp(opType: "ArgMax" | "ArgMin"): OpDef {
  const better = opType === "ArgMax" ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  return {
    opType,
    inferTypes(ctx) {
      const x = ctx.inputs[0];
      if (!x?.shape) return [{ dtype: "int64" }];
      const axis = axisOf(ctx.node, x.shape.length);
      const keep = attrInt(ctx.node, "keepdims", 1) !== 0;
      const shape: Dim[] = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [{ dtype: "int64", shape }];
    },
    run(ctx, inputs) {
      const node = ctx.node;
      const x = requireInput(node, inputs, 0);
      if (x.type === "bool") throw new OpError(node, "bool input is not supported");
      const axis = axisOf(node, x.rank);
      const last = attrInt(node, "select_last_index", 0) !== 0;
      const keep = attrInt(node, "keepdims", 1) !== 0;
      const { outer, length, inner } = around(x.dims, axis);
      if (length === 0) throw new OpError(node, `axis ${axis} has size 0: there is no ${opType}`);
      const v = x.toFloat64();
      const out = new BigInt64Array(outer * inner);
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < inner; i++) {
          const base = o * length * inner + i;
          let best = 0;
          for (let k = 1; k < length; k++) {
            const a = v[base + k * inner]!;
            const b = v[base + best * inner]!;
            if (better(a, b) || (last && a === b)) best = k;
          }
          out[o * inner + i] = BigInt(best);
        }
      const dims = x.dims.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [new Tensor("int64", out, dims)];
    },
  };
}

const TopK: OpDef = {
  opType: "TopK",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    if (!x) return [{ dtype: "float32" }, { dtype: "int64" }];
    if (!x.shape) return [{ dtype: x.dtype }, { dtype: "int64" }];
    const axis = axisOf(ctx.node, x.shape.length);
    const kT = ctx.opset < 10 ? undefined : ctx.constant(1);
    const k: Dim = ctx.opset < 10 ? attrInt(ctx.node, "k") : kT ? kT.getNumber(0) : null;
    const shape = x.shape.map((d, i) => (i === axis ? k : d));
    const types: ValueType[] = [
      { dtype: x.dtype, shape },
      { dtype: "int64", shape },
    ];
    return types;
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const axis = axisOf(node, x.rank);
    let k: number;
    if (ctx.opset < 10) k = attrInt(node, "k");
    else {
      const kT = requireInput(node, inputs, 1);
      if (kT.type !== "int64" || kT.size !== 1)
        throw new OpError(node, `K must be an int64 [1], got ${kT.type} [${kT.dims}]`);
      k = kT.getNumber(0);
    }
    const { outer, length, inner } = around(x.dims, axis);
    if (!Number.isInteger(k) || k < 0 || k > length)
      throw new OpError(node, `k = ${k} must be in [0, ${length}] (the size of axis ${axis})`);
    const largest = ctx.opset < 11 || attrInt(node, "largest", 1) !== 0;
    const v = x.toFloat64();
    const values = new Float64Array(outer * k * inner);
    const indices = new BigInt64Array(outer * k * inner);
    const order = Array.from({ length }, (_, i) => i);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        const at = (j: number) => v[o * length * inner + j * inner + i]!;
        // Stable: equal values keep the lower index first. NaN counts as the largest value, as in numpy.
        const key = (j: number) => (Number.isNaN(at(j)) ? Number.POSITIVE_INFINITY : at(j));
        order.sort((a, b) => (largest ? key(b) - key(a) : key(a) - key(b)) || a - b);
        for (let r = 0; r < k; r++) {
          values[o * k * inner + r * inner + i] = at(order[r]!);
          indices[o * k * inner + r * inner + i] = BigInt(order[r]!);
        }
        order.sort((a, b) => a - b);
      }
    const dims = x.dims.map((d, i) => (i === axis ? k : d));
    return [tensorFromFloat64(x.type, values, dims), new Tensor("int64", indices, dims)];
  },
};

export const argTopKOps: readonly OpDef[] = [argOp("ArgMax"), argOp("ArgMin"), TopK];
registerOps(argTopKOps);
