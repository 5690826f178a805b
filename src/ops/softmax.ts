import { OpError } from "../errors.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import { allocFloat, floatData, floatTensor, requireFloat } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

/**
 * Softmax along a strided axis: the input is viewed as [outer, length, inner]. Subtracting the row max
 * first keeps exp() finite. A row of all -Infinity gives NaN (-Infinity minus -Infinity), as the spec formula does.
 */
function softmaxRows(
  x: Float32Array | Float64Array,
  y: Float32Array | Float64Array,
  outer: number,
  length: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * length * inner + i;
      let max = Number.NEGATIVE_INFINITY;
      for (let k = 0, p = base; k < length; k++, p += inner) if (x[p]! > max) max = x[p]!;
      let sum = 0;
      for (let k = 0, p = base; k < length; k++, p += inner) {
        const e = Math.exp(x[p]! - max);
        y[p] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let k = 0, p = base; k < length; k++, p += inner) y[p] = y[p]! * inv;
    }
  }
}

/** LogSoftmax rows: x - max - log(Σ exp(x - max)). */
function logSoftmaxRows(
  x: Float32Array | Float64Array,
  y: Float32Array | Float64Array,
  outer: number,
  length: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * length * inner + i;
      let max = Number.NEGATIVE_INFINITY;
      for (let k = 0, p = base; k < length; k++, p += inner) if (x[p]! > max) max = x[p]!;
      let sum = 0;
      for (let k = 0, p = base; k < length; k++, p += inner) sum += Math.exp(x[p]! - max);
      const shift = max + Math.log(sum);
      for (let k = 0, p = base; k < length; k++, p += inner) y[p] = x[p]! - shift;
    }
  }
}

/** Hardmax rows: 1 at the first maximum of each row, 0 elsewhere. */
function hardmaxRows(
  x: Float32Array | Float64Array,
  y: Float32Array | Float64Array,
  outer: number,
  length: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * length * inner + i;
      let best = 0;
      for (let k = 1; k < length; k++) if (x[base + k * inner]! > x[base + best * inner]!) best = k;
      for (let k = 0, p = base; k < length; k++, p += inner) y[p] = k === best ? 1 : 0;
    }
  }
}

type Rows = typeof softmaxRows;

/** Softmax, LogSoftmax and Hardmax share the axis rules: 2-D coercion at `axis` before 13, one axis from 13. */
function softmaxFamily(opType: string, rows: Rows): OpDef {
  return {
    opType,
    inferTypes(ctx) {
      const x = ctx.inputs[0];
      return [x ? { ...x } : { dtype: "float32" }];
    },
    run(ctx, [x]) {
      const node = ctx.node;
      if (!x) throw new OpError(node, `${opType} needs an input`);
      requireFloat(node, x, "input");
      const rank = x.rank;
      let outer: number;
      let length: number;
      let inner: number;
      try {
        if (ctx.opset < 13) {
          // Opsets 1–12: flatten to 2-D at `axis` and normalise each row of the flattened matrix.
          const axis = rank === 0 ? 0 : normalizeAxis(attrInt(node, "axis", 1), rank);
          outer = sizeOf(x.dims.slice(0, axis));
          length = sizeOf(x.dims.slice(axis));
          inner = 1;
        } else {
          const axis = normalizeAxis(attrInt(node, "axis", -1), Math.max(rank, 1));
          outer = sizeOf(x.dims.slice(0, axis));
          length = rank === 0 ? 1 : x.dims[axis]!;
          inner = sizeOf(x.dims.slice(axis + 1));
        }
      } catch (e) {
        throw new OpError(node, (e as Error).message);
      }
      // float32 outputs come from the backend's buffer pool (the memory plan returns them when dead).
      const y = x.type === "float32" ? computeOf(ctx).allocFloat32(x.size) : allocFloat(x.type, x.size);
      if (x.size > 0) rows(floatData(x), y, outer, length, inner);
      return [floatTensor(x.type, y, x.dims)];
    },
  };
}

export const softmaxOps: readonly OpDef[] = [
  softmaxFamily("Softmax", softmaxRows),
  softmaxFamily("LogSoftmax", logSoftmaxRows),
  softmaxFamily("Hardmax", hardmaxRows),
];
registerOps(softmaxOps);
