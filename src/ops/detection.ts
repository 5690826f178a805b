/**
 * NonMaxSuppression (10, 11), MaxUnpool (9, 11), Det (11) and Unique (11), from the spec's definitions.
 */
import { OpError } from "../errors.js";
import type { Dim } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrInt, attrInts, hasAttr, type OpDef, registerOps } from "./registry.js";

/** Corners [y1, x1, y2, x2] of box i (center_point_box 1: [x_center, y_center, width, height]). */
function corners(b: Float64Array, i: number, center: boolean): [number, number, number, number] {
  const [a, c, d, e] = [b[i * 4]!, b[i * 4 + 1]!, b[i * 4 + 2]!, b[i * 4 + 3]!];
  if (center) return [c - e / 2, a - d / 2, c + e / 2, a + d / 2];
  return [Math.min(a, d), Math.min(c, e), Math.max(a, d), Math.max(c, e)];
}

function iou(p: number[], q: number[]): number {
  const h = Math.max(0, Math.min(p[2]!, q[2]!) - Math.max(p[0]!, q[0]!));
  const w = Math.max(0, Math.min(p[3]!, q[3]!) - Math.max(p[1]!, q[1]!));
  const inter = h * w;
  const union = (p[2]! - p[0]!) * (p[3]! - p[1]!) + (q[2]! - q[0]!) * (q[3]! - q[1]!) - inter;
  return union > 0 ? inter / union : 0;
}

const NonMaxSuppression: OpDef = {
  opType: "NonMaxSuppression",
  inferTypes: () => [{ dtype: "int64", shape: [null, 3] }],
  run(ctx, inputs) {
    const node = ctx.node;
    const boxes = requireInput(node, inputs, 0);
    const scores = requireInput(node, inputs, 1);
    const maxOut = inputs[2] && inputs[2].size > 0 ? inputs[2].getNumber(0) : 0;
    const iouThreshold = inputs[3] && inputs[3].size > 0 ? inputs[3].getNumber(0) : 0;
    const scoreThreshold = inputs[4] && inputs[4].size > 0 ? inputs[4].getNumber(0) : undefined;
    const center = attrInt(node, "center_point_box", 0) === 1;
    const [B, C, n] = scores.dims as [number, number, number];
    if (boxes.dims[0] !== B || boxes.dims[1] !== n || boxes.dims[2] !== 4)
      throw new OpError(node, `boxes [${boxes.dims}] do not match scores [${scores.dims}]`);
    const bv = boxes.toFloat64();
    const sv = scores.toFloat64();
    const selected: number[] = [];
    for (let b = 0; b < B; b++) {
      const box = (i: number) => corners(bv.subarray(b * n * 4), i, center);
      for (let c = 0; c < C; c++) {
        const s = (i: number) => sv[(b * C + c) * n + i]!;
        const order = Array.from({ length: n }, (_, i) => i)
          .filter((i) => scoreThreshold === undefined || s(i) > scoreThreshold)
          .sort((i, j) => s(j) - s(i) || i - j);
        const kept: number[] = [];
        for (const i of order) {
          if (kept.length >= maxOut) break;
          if (kept.every((k) => iou(box(i), box(k)) <= iouThreshold)) kept.push(i);
        }
        for (const k of kept) selected.push(b, c, k);
      }
    }
    return [new Tensor("int64", BigInt64Array.from(selected, BigInt), [selected.length / 3, 3])];
  },
};

const MaxUnpool: OpDef = {
  opType: "MaxUnpool",
  inferTypes: (ctx) => [
    { dtype: ctx.inputs[0]?.dtype ?? "float32", shape: ctx.inputs[0]?.shape?.map((): Dim => null) },
  ],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const idx = requireInput(node, inputs, 1).toNumbers();
    const kernel = attrInts(node, "kernel_shape");
    const n = kernel.length;
    const strides = attrInts(node, "strides", new Array(n).fill(1));
    const pads = attrInts(node, "pads", new Array(2 * n).fill(0));
    // Indices count in the default output shape; a larger output_shape keeps each element's coordinates.
    const natural = [
      ...x.dims.slice(0, 2),
      ...x.dims.slice(2).map((d, i) => (d - 1) * strides[i]! + kernel[i]! - pads[i]! - pads[i + n]!),
    ];
    const dims = inputs[2] !== undefined ? inputs[2].toNumbers() : natural;
    if (dims.length !== natural.length || dims.some((d, i) => d < natural[i]!))
      throw new OpError(node, `output_shape [${dims}] is smaller than the unpooled shape [${natural}]`);
    const out = new Float64Array(sizeOf(dims));
    const v = x.toFloat64();
    idx.forEach((k, i) => {
      if (k < 0 || k >= sizeOf(natural))
        throw new OpError(node, `index ${k} is outside [0, ${sizeOf(natural)})`);
      let rest = k;
      let flat = 0;
      let scale = 1;
      for (let a = natural.length - 1; a >= 0; a--) {
        flat += (rest % natural[a]!) * scale;
        rest = Math.floor(rest / natural[a]!);
        scale *= dims[a]!;
      }
      out[flat] = v[i]!;
    });
    return [tensorFromFloat64(x.type, out, dims)];
  },
};

/** Determinant by LU decomposition with partial pivoting. */
function det(a: Float64Array, m: number): number {
  let d = 1;
  for (let c = 0; c < m; c++) {
    let p = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(a[r * m + c]!) > Math.abs(a[p * m + c]!)) p = r;
    if (a[p * m + c] === 0) return 0;
    if (p !== c) {
      for (let k = 0; k < m; k++) [a[c * m + k], a[p * m + k]] = [a[p * m + k]!, a[c * m + k]!];
      d = -d;
    }
    d *= a[c * m + c]!;
    for (let r = c + 1; r < m; r++) {
      const f = a[r * m + c]! / a[c * m + c]!;
      for (let k = c; k < m; k++) a[r * m + k] = a[r * m + k]! - f * a[c * m + k]!;
    }
  }
  return d;
}

const Det: OpDef = {
  opType: "Det",
  inferTypes: (ctx) => [
    { dtype: ctx.inputs[0]?.dtype ?? "float32", shape: ctx.inputs[0]?.shape?.slice(0, -2) },
  ],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "X");
    const m = x.dims[x.rank - 1]!;
    if (x.rank < 2 || x.dims[x.rank - 2] !== m)
      throw new OpError(node, `X must be [..., M, M], got [${x.dims}]`);
    const batch = sizeOf(x.dims.slice(0, -2));
    const v = x.toFloat64();
    const out = new Float64Array(batch);
    for (let b = 0; b < batch; b++) out[b] = det(v.slice(b * m * m, (b + 1) * m * m), m);
    return [tensorFromFloat64(x.type, out, x.dims.slice(0, -2))];
  },
};

const Unique: OpDef = {
  opType: "Unique",
  inferTypes: (ctx) => [
    { dtype: ctx.inputs[0]?.dtype ?? "float32" },
    { dtype: "int64", shape: [null] },
    { dtype: "int64", shape: [null] },
    { dtype: "int64", shape: [null] },
  ],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const sorted = attrInt(node, "sorted", 1) !== 0;
    const hasAxis = hasAttr(node, "axis");
    const axis = hasAxis ? (attrInt(node, "axis") + x.rank) % x.rank : 0;
    const dims = hasAxis ? x.dims : [x.size];
    const outer = sizeOf(dims.slice(0, axis));
    const len = dims[axis]!;
    const inner = sizeOf(dims.slice(axis + 1));
    const v = x.toFloat64();
    // Slice s along the axis, as a list of numbers (compared lexicographically when sorting).
    const slice = (s: number) => {
      const out: number[] = [];
      for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) out.push(v[(o * len + s) * inner + i]!);
      return out;
    };
    const keyOf = (s: number) => slice(s).join(",");
    const first = new Map<string, number>();
    const counts = new Map<string, number>();
    const inverseKeys: string[] = [];
    for (let s = 0; s < len; s++) {
      const k = keyOf(s);
      if (!first.has(k)) first.set(k, s);
      counts.set(k, (counts.get(k) ?? 0) + 1);
      inverseKeys.push(k);
    }
    let order = [...first.values()];
    if (sorted)
      order = order.sort((a, b) => {
        const [p, q] = [slice(a), slice(b)];
        for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return p[i]! - q[i]!;
        return 0;
      });
    const position = new Map(order.map((s, j) => [keyOf(s), j]));
    const outDims = dims.map((d, i) => (i === axis ? order.length : d));
    const y = new Float64Array(sizeOf(outDims));
    order.forEach((s, j) => {
      const vals = slice(s);
      let t = 0;
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < inner; i++) y[(o * order.length + j) * inner + i] = vals[t++]!;
    });
    const i64 = (a: number[]) => new Tensor("int64", BigInt64Array.from(a, BigInt), [a.length]);
    return [
      tensorFromFloat64(x.type, y, outDims),
      i64(order),
      i64(inverseKeys.map((k) => position.get(k)!)),
      i64(order.map((s) => counts.get(keyOf(s))!)),
    ];
  },
};

export const detectionOps: readonly OpDef[] = [NonMaxSuppression, MaxUnpool, Det, Unique];
registerOps(detectionOps);
