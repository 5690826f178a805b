/**
 * Pooling over N spatial axes of [N, C, spatial…]: MaxPool (optional Indices output, storage_order), AveragePool
 * (count_include_pad), LpPool, and the Global variants. Window geometry is Conv's (strides, dilations, pads,
 * auto_pad) plus ceil_mode. Padded positions never take part: MaxPool ignores them, AveragePool divides by the
 * in-image count unless count_include_pad (then by the window's size within the padded image).
 */
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { type ConvGeometry, convGeometry } from "./conv.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrFloat, attrInt, attrInts, attrString, type OpDef, registerOps } from "./registry.js";

/** Conv's geometry, with ceil_mode rounding the output size up. */
function poolGeometry(node: Node, spatial: readonly number[]): ConvGeometry {
  const kernel = attrInts(node, "kernel_shape");
  if (kernel.length !== spatial.length)
    throw new OpError(
      node,
      `kernel_shape has ${kernel.length} axes, the input ${spatial.length} spatial axes`,
    );
  const g = convGeometry(node, spatial, kernel);
  if (attrInt(node, "ceil_mode", 0) !== 0 && attrString(node, "auto_pad", "NOTSET") === "NOTSET")
    g.out = g.out.map((_, i) => {
      const reach = g.dilations[i]! * (kernel[i]! - 1) + 1;
      return Math.ceil((spatial[i]! + g.padBegin[i]! + g.padEnd[i]! - reach) / g.strides[i]!) + 1;
    });
  return g;
}

type Mode = "max" | "average" | "lp";

/** Visits every output position and, for each, the in-image input offsets under its window. */
function pool(node: Node, x: Tensor, g: ConvGeometry, mode: Mode) {
  const [N, C] = x.dims as [number, number];
  const spatial = x.dims.slice(2);
  const n = spatial.length;
  const v = x.toFloat64();
  const imageSize = sizeOf(spatial);
  const outSize = sizeOf(g.out);
  const y = new Float64Array(N * C * outSize);
  const indices = mode === "max" ? new BigInt64Array(N * C * outSize) : undefined;
  const includePad = attrInt(node, "count_include_pad", 0) !== 0;
  const p = mode === "lp" ? attrFloat(node, "p", 2) : 0;
  const columnMajor = attrInt(node, "storage_order", 0) === 1;
  const kSize = sizeOf(g.kernel);
  const o = new Array<number>(n).fill(0);
  const k = new Array<number>(n).fill(0);
  for (let img = 0; img < N * C; img++) {
    const base = img * imageSize;
    o.fill(0);
    for (let out = 0; out < outSize; out++) {
      let acc = mode === "max" ? Number.NEGATIVE_INFINITY : 0;
      let count = 0;
      let padded = 0;
      let arg = -1;
      k.fill(0);
      for (let t = 0; t < kSize; t++) {
        let offset = 0;
        let inside = true;
        let inPadded = true;
        for (let a = 0; a < n; a++) {
          const pos = o[a]! * g.strides[a]! - g.padBegin[a]! + k[a]! * g.dilations[a]!;
          if (pos < 0 || pos >= spatial[a]!) inside = false;
          if (pos >= spatial[a]! + g.padEnd[a]!) inPadded = false;
          offset = offset * spatial[a]! + pos;
        }
        if (inPadded) padded++;
        if (inside) {
          const val = v[base + offset]!;
          count++;
          if (mode === "max") {
            // The first maximum wins; a NaN, once seen, stays (it propagates).
            if (arg < 0 || val > acc || (Number.isNaN(val) && !Number.isNaN(acc))) {
              acc = val;
              arg = offset;
            }
          } else acc += mode === "lp" ? Math.abs(val) ** p : val;
        }
        for (let a = n - 1; a >= 0; a--) {
          if (++k[a]! < g.kernel[a]!) break;
          k[a] = 0;
        }
      }
      const at = img * outSize + out;
      if (mode === "max") {
        y[at] = acc;
        let flat = arg;
        if (columnMajor && arg >= 0) {
          // Column-major index within the image: reverse the axis order.
          flat = 0;
          let rest = arg;
          const coords = new Array<number>(n);
          for (let a = n - 1; a >= 0; a--) {
            coords[a] = rest % spatial[a]!;
            rest = Math.floor(rest / spatial[a]!);
          }
          for (let a = n - 1; a >= 0; a--) flat = flat * spatial[a]! + coords[a]!;
        }
        indices![at] = BigInt(base + flat);
      } else if (mode === "average") y[at] = acc / (includePad ? padded : count);
      else y[at] = acc ** (1 / p);
      for (let a = n - 1; a >= 0; a--) {
        if (++o[a]! < g.out[a]!) break;
        o[a] = 0;
      }
    }
  }
  return { y, indices, dims: [N, C, ...g.out] };
}

function poolType(node: Node, x: ValueType | undefined, global: boolean): ValueType {
  if (!x?.shape || x.shape.length < 3) return { dtype: x?.dtype ?? "float32" };
  const spatial = x.shape.slice(2);
  if (global) return { dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...spatial.map(() => 1)] };
  if (spatial.some((d) => typeof d !== "number"))
    return { dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...spatial.map((): Dim => null)] };
  const g = poolGeometry(node, spatial as number[]);
  return { dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, ...g.out] };
}

function poolOp(opType: string, mode: Mode, global: boolean): OpDef {
  return {
    opType,
    inferTypes(ctx) {
      const t = poolType(ctx.node, ctx.inputs[0], global);
      return mode === "max" && !global ? [t, { dtype: "int64", shape: t.shape }] : [t];
    },
    run(ctx, inputs) {
      const node = ctx.node;
      const x = requireInput(node, inputs, 0);
      // MaxPool takes int8 / uint8 too (opset 12); the others are float only.
      if (!(mode === "max" && (x.type === "int8" || x.type === "uint8"))) requireFloat(node, x, "X");
      if (x.rank < 3) throw new OpError(node, `X must be [N, C, spatial…], got [${x.dims}]`);
      const spatial = x.dims.slice(2);
      const g = global
        ? {
            kernel: [...spatial],
            strides: spatial.map(() => 1),
            dilations: spatial.map(() => 1),
            padBegin: spatial.map(() => 0),
            padEnd: spatial.map(() => 0),
            out: spatial.map(() => 1),
          }
        : poolGeometry(node, spatial);
      const r = pool(node, x, g, mode);
      const y = tensorFromFloat64(x.type, r.y, r.dims);
      return r.indices && !global ? [y, new Tensor("int64", r.indices, r.dims)] : [y];
    },
  };
}

export const poolOps: readonly OpDef[] = [
  poolOp("MaxPool", "max", false),
  poolOp("AveragePool", "average", false),
  poolOp("LpPool", "lp", false),
  poolOp("GlobalMaxPool", "max", true),
  poolOp("GlobalAveragePool", "average", true),
  poolOp("GlobalLpPool", "lp", true),
];
registerOps(poolOps);
