/**
 * Ops that move or select elements without arithmetic, for every dtype, each an index map from output to input
 * (`take`): DepthToSpace (DCR / CRD), SpaceToDepth, Compress, Pad (constant / reflect / edge / wrap; pads as an
 * attribute before opset 11), ReverseSequence, ScatterElements / Scatter (with reduction), OneHot, EyeLike,
 * NonZero.
 */
import { OpError } from "../errors.js";
import { allocate, type DType, type TypedArray } from "../ir/dtype.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf, stridesOf, Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrFloat, attrInt, attrInts, attrString, hasAttr, type OpDef, registerOps } from "./registry.js";

/** out[i] = x[from[i]] (from[i] < 0: the fill value), keeping x's dtype. */
function take(x: Tensor, from: ArrayLike<number>, dims: readonly number[], fill = 0): Tensor {
  const out = allocate(x.type, from.length) as TypedArray;
  const src = x.data as TypedArray;
  const fillValue =
    x.type === "int64"
      ? BigInt(Math.trunc(fill))
      : x.type === "float16"
        ? new Tensor("float16", [fill], []).data[0]!
        : fill;
  for (let i = 0; i < from.length; i++)
    (out as unknown as unknown[])[i] = from[i]! < 0 ? fillValue : src[from[i]!]!;
  return new Tensor(x.type, out, dims);
}

function axisOf(node: Node, value: number, rank: number): number {
  try {
    return normalizeAxis(value, rank);
  } catch (e) {
    throw new OpError(node, (e as Error).message);
  }
}

/** Calls f(flatIndex, coords) for every position of `dims` in row-major order. */
function forEachIndex(dims: readonly number[], f: (i: number, at: number[]) => void): void {
  const n = sizeOf(dims);
  const at = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < n; i++) {
    f(i, at);
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++at[d]! < dims[d]!) break;
      at[d] = 0;
    }
  }
}

const unknownShape = (x: ValueType | undefined): ValueType[] => [{ dtype: x?.dtype ?? "float32" }];

// ---- DepthToSpace / SpaceToDepth ---------------------------------------------------------------------

const DepthToSpace: OpDef = {
  opType: "DepthToSpace",
  inferTypes: (ctx) => unknownShape(ctx.inputs[0]),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    if (x.rank !== 4) throw new OpError(node, `input must be [N, C, H, W], got [${x.dims}]`);
    const bs = attrInt(node, "blocksize");
    const crd = attrString(node, "mode", "DCR") === "CRD";
    const [N, C, H, W] = x.dims as [number, number, number, number];
    if (C % (bs * bs) !== 0) throw new OpError(node, `C = ${C} is not divisible by blocksize² = ${bs * bs}`);
    const c2 = C / (bs * bs);
    const dims = [N, c2, H * bs, W * bs];
    const from = new Int32Array(sizeOf(dims));
    forEachIndex(dims, (i, [n, c, h, w]) => {
      const [bh, bw] = [h! % bs, w! % bs];
      const src = crd ? c! * bs * bs + bh * bs + bw : (bh * bs + bw) * c2 + c!;
      from[i] = ((n! * C + src) * H + Math.floor(h! / bs)) * W + Math.floor(w! / bs);
    });
    return [take(x, from, dims)];
  },
};

const SpaceToDepth: OpDef = {
  opType: "SpaceToDepth",
  inferTypes: (ctx) => unknownShape(ctx.inputs[0]),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    if (x.rank !== 4) throw new OpError(node, `input must be [N, C, H, W], got [${x.dims}]`);
    const bs = attrInt(node, "blocksize");
    const [N, C, H, W] = x.dims as [number, number, number, number];
    if (H % bs !== 0 || W % bs !== 0) throw new OpError(node, `H, W = ${H}, ${W} are not multiples of ${bs}`);
    const dims = [N, C * bs * bs, H / bs, W / bs];
    const from = new Int32Array(sizeOf(dims));
    forEachIndex(dims, (i, [n, c, h, w]) => {
      const block = Math.floor(c! / C);
      const src = c! % C;
      const [bh, bw] = [Math.floor(block / bs), block % bs];
      from[i] = ((n! * C + src) * H + h! * bs + bh) * W + w! * bs + bw;
    });
    return [take(x, from, dims)];
  },
};

// ---- Compress ---------------------------------------------------------------------------------------

const Compress: OpDef = {
  opType: "Compress",
  inferTypes: (ctx) => unknownShape(ctx.inputs[0]),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const cond = requireInput(node, inputs, 1).toNumbers();
    if (!hasAttr(node, "axis")) {
      const from = cond.flatMap((c, i) => (c && i < x.size ? [i] : []));
      return [take(x, from, [from.length])];
    }
    const axis = axisOf(node, attrInt(node, "axis"), x.rank);
    const keep = cond.flatMap((c, i) => (c && i < x.dims[axis]! ? [i] : []));
    const dims = x.dims.map((d, i) => (i === axis ? keep.length : d));
    const strides = stridesOf(x.dims);
    const from = new Int32Array(sizeOf(dims));
    forEachIndex(dims, (i, at) => {
      from[i] = at.reduce((acc, v, d) => acc + (d === axis ? keep[v]! : v) * strides[d]!, 0);
    });
    return [take(x, from, dims)];
  },
};

// ---- Pad ----------------------------------------------------------------------------------------------

const Pad: OpDef = {
  opType: "Pad",
  inferTypes: (ctx) => unknownShape(ctx.inputs[0]),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const rank = x.rank;
    let pads: number[];
    let value = 0;
    let axes = Array.from({ length: rank }, (_, i) => i);
    if (ctx.opset < 11) {
      pads = attrInts(node, "pads");
      value = attrFloat(node, "value", 0);
    } else {
      pads = requireInput(node, inputs, 1).toNumbers();
      if (inputs[2] && inputs[2].size > 0) value = inputs[2].getNumber(0);
      if (inputs[3]) axes = inputs[3].toNumbers().map((a) => axisOf(node, a, rank));
    }
    if (pads.length !== 2 * axes.length)
      throw new OpError(node, `pads has ${pads.length} values, expected ${2 * axes.length}`);
    const begin = new Array<number>(rank).fill(0);
    const end = new Array<number>(rank).fill(0);
    axes.forEach((a, i) => {
      begin[a] = pads[i]!;
      end[a] = pads[i + axes.length]!;
    });
    const mode = attrString(node, "mode", "constant");
    const dims = x.dims.map((d, i) => d + begin[i]! + end[i]!);
    if (dims.some((d) => d < 0)) throw new OpError(node, `pads [${pads}] make a negative dimension`);
    const strides = stridesOf(x.dims);
    const from = new Int32Array(sizeOf(dims));
    forEachIndex(dims, (i, at) => {
      let offset = 0;
      for (let d = 0; d < rank; d++) {
        const size = x.dims[d]!;
        let p = at[d]! - begin[d]!;
        if (p < 0 || p >= size) {
          if (mode === "constant" || size === 0) {
            offset = -1;
            break;
          }
          if (mode === "edge") p = Math.min(Math.max(p, 0), size - 1);
          else if (mode === "wrap") p = ((p % size) + size) % size;
          else if (mode === "reflect") {
            const period = 2 * (size - 1) || 1;
            p = ((p % period) + period) % period;
            if (p >= size) p = period - p;
          } else throw new OpError(node, `unknown mode '${mode}'`);
        }
        offset += p * strides[d]!;
      }
      from[i] = offset;
    });
    return [take(x, from, dims, value)];
  },
};

// ---- ReverseSequence ----------------------------------------------------------------------------------

const ReverseSequence: OpDef = {
  opType: "ReverseSequence",
  inferTypes: (ctx) => [ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" }],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const lens = requireInput(node, inputs, 1).toNumbers();
    const timeAxis = attrInt(node, "time_axis", 0);
    const batchAxis = attrInt(node, "batch_axis", 1);
    const strides = stridesOf(x.dims);
    const from = new Int32Array(x.size);
    forEachIndex(x.dims, (i, at) => {
      const len = lens[at[batchAxis]!]!;
      const t = at[timeAxis]!;
      const src = t < len ? len - 1 - t : t;
      from[i] = i + (src - t) * strides[timeAxis]!;
    });
    return [take(x, from, x.dims)];
  },
};

// ---- ScatterElements / Scatter ------------------------------------------------------------------------

function scatterElements(ctx: Parameters<OpDef["run"]>[0], inputs: (Tensor | undefined)[]): Tensor[] {
  const node = ctx.node;
  const data = requireInput(node, inputs, 0);
  const indices = requireInput(node, inputs, 1);
  const updates = requireInput(node, inputs, 2);
  const axis = axisOf(node, attrInt(node, "axis", 0), data.rank);
  const reduction = attrString(node, "reduction", "none");
  const out = data.toFloat64();
  const idx = indices.toNumbers();
  const upd = updates.toFloat64();
  const strides = stridesOf(data.dims);
  forEachIndex(indices.dims, (i, at) => {
    let k = idx[i]!;
    if (k < 0) k += data.dims[axis]!;
    if (k < 0 || k >= data.dims[axis]!)
      throw new OpError(node, `index ${idx[i]} is out of range on axis ${axis}`);
    const o = at.reduce((acc, v, d) => acc + (d === axis ? k : v) * strides[d]!, 0);
    const u = upd[i]!;
    if (reduction === "add") out[o] = out[o]! + u;
    else if (reduction === "mul") out[o] = out[o]! * u;
    else if (reduction === "max") out[o] = Math.max(out[o]!, u);
    else if (reduction === "min") out[o] = Math.min(out[o]!, u);
    else out[o] = u;
  });
  return [tensorFromFloat64(data.type, out, data.dims)];
}

const ScatterElements: OpDef = {
  opType: "ScatterElements",
  inferTypes: (ctx) => [ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" }],
  run: scatterElements,
};
const Scatter: OpDef = { ...ScatterElements, opType: "Scatter" };

// ---- OneHot / EyeLike / NonZero -----------------------------------------------------------------------

const OneHot: OpDef = {
  opType: "OneHot",
  inferTypes: (ctx) => [{ dtype: ctx.inputs[2]?.dtype ?? "float32" }],
  run(ctx, inputs) {
    const node = ctx.node;
    const indices = requireInput(node, inputs, 0).toNumbers();
    const depth = requireInput(node, inputs, 1).getNumber(0);
    const values = requireInput(node, inputs, 2);
    const [off, on] = values.toNumbers() as [number, number];
    const inDims = requireInput(node, inputs, 0).dims;
    const axis = axisOf(node, attrInt(node, "axis", -1), inDims.length + 1);
    const D = Math.trunc(depth);
    const dims = [...inDims.slice(0, axis), D, ...inDims.slice(axis)];
    const inner = sizeOf(inDims.slice(axis));
    const out = new Float64Array(sizeOf(dims)).fill(off);
    indices.forEach((v, i) => {
      const k = v < 0 ? v + D : v;
      if (k < 0 || k >= D) return;
      const o = Math.floor(i / inner);
      out[(o * D + k) * inner + (i % inner)] = on;
    });
    return [tensorFromFloat64(values.type, out, dims)];
  },
};

const EyeLike: OpDef = {
  opType: "EyeLike",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    const dtype = hasAttr(ctx.node, "dtype") ? onnxDType(ctx.node, attrInt(ctx.node, "dtype")) : x?.dtype;
    return [{ dtype: dtype ?? "float32", shape: x?.shape ? [...x.shape] : undefined }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    if (x.rank !== 2) throw new OpError(node, `input must be 2-D, got [${x.dims}]`);
    const k = attrInt(node, "k", 0);
    const dtype: DType = hasAttr(node, "dtype") ? onnxDType(node, attrInt(node, "dtype")) : x.type;
    const [R, C] = x.dims as [number, number];
    const out = new Float64Array(R * C);
    for (let r = 0; r < R; r++) if (r + k >= 0 && r + k < C) out[r * C + r + k] = 1;
    return [tensorFromFloat64(dtype, out, x.dims)];
  },
};

const ONNX_DTYPES: Record<number, DType> = {
  1: "float32",
  3: "int8",
  2: "uint8",
  6: "int32",
  7: "int64",
  9: "bool",
  10: "float16",
  11: "float64",
};
function onnxDType(node: Node, code: number): DType {
  const t = ONNX_DTYPES[code];
  if (!t) throw new OpError(node, `dtype ${code} is not supported`);
  return t;
}

const NonZero: OpDef = {
  opType: "NonZero",
  inferTypes: (ctx) => [{ dtype: "int64", shape: [ctx.inputs[0]?.shape?.length ?? null, null] as Dim[] }],
  run(ctx, inputs) {
    const x = requireInput(ctx.node, inputs, 0);
    const v = x.toFloat64();
    const hits: number[][] = [];
    forEachIndex(x.dims, (i, at) => {
      if (v[i] !== 0) hits.push([...at]);
    });
    const rank = x.rank;
    const out = new BigInt64Array(rank * hits.length);
    hits.forEach((at, j) => {
      at.forEach((c, d) => {
        out[d * hits.length + j] = BigInt(c);
      });
    });
    return [new Tensor("int64", out, [rank, hits.length])];
  },
};

export const rearrangeOps: readonly OpDef[] = [
  DepthToSpace,
  SpaceToDepth,
  Compress,
  Pad,
  ReverseSequence,
  ScatterElements,
  Scatter,
  OneHot,
  EyeLike,
  NonZero,
];
registerOps(rearrangeOps);
