// Ops that produce tensors from attributes or a few scalars: Constant, ConstantOfShape, Range, Trilu.
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { copyBlock, fillBlock, intValues, requireInput } from "./data-movement.js";
import { attrInt, attrTensor, type OpContext, type OpDef, registerOps } from "./registry.js";

// ---- Constant ---------------------------------------------------------------------------------------

const CONSTANT_ATTRS = [
  "value",
  "value_float",
  "value_floats",
  "value_int",
  "value_ints",
  "value_string",
  "value_strings",
  "sparse_value",
];

/** The tensor a Constant node holds, built from whichever one of its value attributes is set. */
export function constantValue(node: Node): Tensor {
  const set = CONSTANT_ATTRS.filter((name) => name in node.attrs);
  if (set.length !== 1) {
    throw new OpError(node, `needs exactly one value attribute, got ${set.length ? set.join(", ") : "none"}`);
  }
  const name = set[0]!;
  const a = node.attrs[name]!;
  switch (name) {
    case "value":
      return attrTensor(node, "value")!;
    case "value_float":
      if (a.type !== "float" && a.type !== "int") break;
      return new Tensor("float32", [a.value], []);
    case "value_floats":
      if (a.type !== "floats" && a.type !== "ints") break;
      return new Tensor("float32", a.value, [a.value.length]);
    case "value_int":
      if (a.type !== "int") break;
      return new Tensor("int64", [a.value], []);
    case "value_ints":
      if (a.type !== "ints") break;
      return new Tensor("int64", a.value, [a.value.length]);
    case "value_string":
    case "value_strings":
      throw new OpError(node, `${name}: string tensors are not supported`);
    default:
      throw new OpError(node, `${name}: sparse tensors are not supported`);
  }
  throw new OpError(node, `attribute '${name}' has the wrong type (${a.type})`);
}

export const Constant: OpDef = {
  opType: "Constant",
  inferTypes(ctx) {
    const t = constantValue(ctx.node);
    return [{ dtype: t.type, shape: [...t.dims] }];
  },
  run(ctx) {
    return [constantValue(ctx.node)];
  },
};

// ---- ConstantOfShape --------------------------------------------------------------------------------

/** The one-element fill value: the `value` attribute, or float32 zero. */
function fillValue(node: Node): Tensor {
  const v = attrTensor(node, "value");
  if (!v) return new Tensor("float32", [0], [1]);
  if (v.size !== 1) throw new OpError(node, `value must hold exactly one element, got [${v.dims}]`);
  return v;
}

export const ConstantOfShape: OpDef = {
  opType: "ConstantOfShape",
  inferTypes(ctx) {
    const dtype = fillValue(ctx.node).type;
    const dims = ctx.constant(0)?.toNumbers();
    if (dims) return [{ dtype, shape: dims }];
    const n = ctx.inputs[0]?.shape?.[0];
    return [typeof n === "number" ? { dtype, shape: new Array<Dim>(n).fill(null) } : { dtype }];
  },
  run(ctx, [shapeIn]) {
    const shape = requireInput(ctx, shapeIn, "input");
    if (shape.rank !== 1) throw new OpError(ctx.node, `input must be 1-D, got [${shape.dims}]`);
    const dims = intValues(ctx.node, shape, "input");
    if (dims.some((d) => d < 0)) throw new OpError(ctx.node, `negative dimension in [${dims}]`);
    const value = fillValue(ctx.node);
    const out = Tensor.zeros(value.type, dims);
    fillBlock(value.data, 0, out.data, 0, out.size);
    return [out];
  },
};

// ---- Range ------------------------------------------------------------------------------------------

const RANGE_TYPES = new Set(["float32", "float64", "int32", "int64"]);

function scalarOf(ctx: OpContext, t: Tensor | undefined, what: string): Tensor {
  const s = requireInput(ctx, t, what);
  if (s.size !== 1) throw new OpError(ctx.node, `${what} must be a scalar, got [${s.dims}]`);
  return s;
}

/** Element count max(ceil((limit - start) / delta), 0), in the arithmetic onnxruntime uses. */
function rangeCount(ctx: OpContext, start: Tensor, limit: Tensor, delta: Tensor): number {
  if (start.type === "int64") {
    const [s, l, d] = [start, limit, delta].map((t) => (t.data as BigInt64Array)[0]!) as [
      bigint,
      bigint,
      bigint,
    ];
    if (d === 0n) throw new OpError(ctx.node, "delta must not be 0");
    const span = l - s;
    // Ceiling division on bigints (which truncate toward zero).
    const q = span / d + (span % d !== 0n && span > 0n === d > 0n ? 1n : 0n);
    return q > 0n ? Number(q) : 0;
  }
  const [s, l, d] = [start, limit, delta].map((t) => t.getNumber(0)) as [number, number, number];
  if (d === 0) throw new OpError(ctx.node, "delta must not be 0");
  // float32 inputs subtract in float32 before the division, as the reference kernel does.
  const span = start.type === "float32" ? Math.fround(l - s) : l - s;
  return Math.max(Math.ceil(span / d), 0);
}

export const Range: OpDef = {
  opType: "Range",
  inferTypes(ctx) {
    const dtype = requireInput(ctx, ctx.inputs[0], "start").dtype;
    const [s, l, d] = [ctx.constant(0), ctx.constant(1), ctx.constant(2)];
    if (s && l && d) return [{ dtype, shape: [rangeCount(ctx, s, l, d)] }];
    return [{ dtype, shape: [null] }];
  },
  run(ctx, [startIn, limitIn, deltaIn]) {
    const start = scalarOf(ctx, startIn, "start");
    const limit = scalarOf(ctx, limitIn, "limit");
    const delta = scalarOf(ctx, deltaIn, "delta");
    if (!RANGE_TYPES.has(start.type)) throw new OpError(ctx.node, `unsupported dtype ${start.type}`);
    if (limit.type !== start.type || delta.type !== start.type) {
      throw new OpError(
        ctx.node,
        `start, limit and delta must share a dtype (${start.type}, ${limit.type}, ${delta.type})`,
      );
    }
    const n = rangeCount(ctx, start, limit, delta);
    const out = Tensor.zeros(start.type, [n]);
    if (start.type === "int64") {
      const [s, d] = [(start.data as BigInt64Array)[0]!, (delta.data as BigInt64Array)[0]!];
      const o = out.data as BigInt64Array;
      for (let i = 0; i < n; i++) o[i] = s + BigInt(i) * d;
      return [out];
    }
    // Floats accumulate value += delta in the output type, like onnxruntime; ints are exact either way.
    const o = out.data as Float32Array | Float64Array | Int32Array;
    const d = delta.getNumber(0);
    let v = start.getNumber(0);
    for (let i = 0; i < n; i++) {
      o[i] = v;
      v = o[i]! + d;
    }
    return [out];
  },
};

// ---- Trilu ------------------------------------------------------------------------------------------

function triluK(ctx: OpContext, k: Tensor | undefined): number {
  if (!k) return 0;
  if (k.size !== 1) throw new OpError(ctx.node, `k must be a scalar, got [${k.dims}]`);
  return intValues(ctx.node, k, "k")[0]!;
}

export const Trilu: OpDef = {
  opType: "Trilu",
  inferTypes(ctx) {
    const x: ValueType = requireInput(ctx, ctx.inputs[0], "input");
    return [x.shape ? { dtype: x.dtype, shape: [...x.shape] } : { dtype: x.dtype }];
  },
  // Keeps element (i, j) of every matrix when j - i >= k (upper) or j - i <= k (lower); zeros the rest.
  run(ctx, [xIn, kIn]) {
    const x = requireInput(ctx, xIn, "input");
    if (x.rank < 2) throw new OpError(ctx.node, `input must have rank >= 2, got [${x.dims}]`);
    const k = triluK(ctx, kIn);
    const upper = attrInt(ctx.node, "upper", 1) !== 0;
    const rows = x.dims[x.rank - 2]!;
    const cols = x.dims[x.rank - 1]!;
    const out = Tensor.zeros(x.type, x.dims);
    const matrices = sizeOf(x.dims.slice(0, -2));
    for (let m = 0; m < matrices; m++) {
      for (let i = 0; i < rows; i++) {
        const from = upper ? Math.min(Math.max(i + k, 0), cols) : 0;
        const to = upper ? cols : Math.min(Math.max(i + k + 1, 0), cols);
        const at = (m * rows + i) * cols + from;
        copyBlock(x.data, at, out.data, at, to - from);
      }
    }
    return [out];
  },
};

registerOps([Constant, ConstantOfShape, Range, Trilu]);
