// Ops that change how a tensor's elements are viewed, not their order: Reshape, Squeeze, Unsqueeze, Flatten,
// Expand (broadcast copy), Shape, Size, Identity and inference-mode Dropout.
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { broadcastDims, broadcastSymbolic } from "../ir/shape.js";
import { sizeOf, stridesOf, Tensor } from "../ir/tensor.js";
import { checkedAxes, copyBlock, fillBlock, forEachOuter, intValues, requireInput } from "./data-movement.js";
import {
  attrFloat,
  attrInt,
  attrInts,
  hasAttr,
  type OpContext,
  type OpDef,
  registerOps,
  type TypeContext,
} from "./registry.js";

function first(ctx: OpContext, x: unknown): asserts x {
  requireInput(ctx, x ?? undefined, "input 0");
}

// ---- symbolic products ------------------------------------------------------------------------------

/** A product of dims as numeric factor times a multiset of symbols; undefined when a dim is unknown. */
function symbolicProduct(dims: readonly Dim[]): { num: number; syms: string[] } | undefined {
  let num = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (d === null) return undefined;
    if (typeof d === "number") num *= d;
    else syms.push(d);
  }
  return { num, syms };
}

/** A product of dims as one Dim: a number, a lone symbol (times 1), or null. */
function productDim(dims: readonly Dim[]): Dim {
  const p = symbolicProduct(dims);
  if (!p) return null;
  if (p.syms.length === 0) return p.num;
  if (p.num === 0) return 0;
  return p.syms.length === 1 && p.num === 1 ? p.syms[0]! : null;
}

/**
 * The dim that makes prod(`others`) * x = prod(`total`), when it can be named: a number, or a symbol left
 * over after the symbols on both sides cancel. Otherwise null — never a guess.
 */
function quotientDim(total: readonly Dim[], others: readonly Dim[]): Dim {
  const t = symbolicProduct(total);
  const o = symbolicProduct(others);
  if (!t || !o || o.num === 0) return null;
  const left = [...t.syms];
  for (const s of o.syms) {
    const i = left.indexOf(s);
    if (i < 0) return null;
    left.splice(i, 1);
  }
  if (left.length === 0) return t.num % o.num === 0 ? t.num / o.num : null;
  return left.length === 1 && t.num === o.num ? left[0]! : null;
}

// ---- Reshape ----------------------------------------------------------------------------------------

function reshapeTarget(ctx: OpContext, shapeInput: Tensor | undefined): number[] {
  if (ctx.opset < 5) return attrInts(ctx.node, "shape");
  if (!shapeInput) throw new OpError(ctx.node, "missing required input 'shape'");
  if (shapeInput.rank !== 1) throw new OpError(ctx.node, `shape must be 1-D, got [${shapeInput.dims}]`);
  return intValues(ctx.node, shapeInput, "shape");
}

function checkTarget(node: Node, target: readonly number[], allowZero: boolean): void {
  if (target.filter((d) => d === -1).length > 1) {
    throw new OpError(node, `shape [${target}] has more than one -1`);
  }
  if (target.some((d) => d < -1)) throw new OpError(node, `shape [${target}] has an invalid dimension`);
  if (allowZero && target.includes(0) && target.includes(-1)) {
    throw new OpError(node, `shape [${target}] mixes 0 and -1 while allowzero=1`);
  }
}

/** Concrete output dims of Reshape: 0 copies the input dim (unless allowzero), -1 takes what is left. */
export function reshapeDims(
  node: Node,
  inDims: readonly number[],
  target: readonly number[],
  allowZero: boolean,
) {
  checkTarget(node, target, allowZero);
  const out = target.map((d, i) => {
    if (d !== 0 || allowZero) return d;
    if (i >= inDims.length)
      throw new OpError(node, `shape [${target}] copies dim ${i} of a rank-${inDims.length} input`);
    return inDims[i]!;
  });
  const total = sizeOf(inDims);
  const hole = out.indexOf(-1);
  if (hole >= 0) {
    const known = sizeOf(out.filter((_, i) => i !== hole));
    if (known === 0 || total % known !== 0) {
      throw new OpError(node, `cannot reshape [${inDims}] (${total} elements) to [${target}]`);
    }
    out[hole] = total / known;
  }
  if (sizeOf(out) !== total) {
    throw new OpError(node, `cannot reshape [${inDims}] (${total} elements) to [${target}]`);
  }
  return out;
}

export const Reshape: OpDef = {
  opType: "Reshape",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    const allowZero = attrInt(ctx.node, "allowzero", 0) === 1;
    let target: Dim[] | undefined;
    if (ctx.opset < 5) target = attrInts(ctx.node, "shape");
    else target = ctx.constant(1)?.toNumbers() ?? ctx.symbolic?.(1);
    if (!target) {
      const n = ctx.inputs[1]?.shape?.[0];
      return [
        typeof n === "number" ? { dtype: x.dtype, shape: new Array<Dim>(n).fill(null) } : { dtype: x.dtype },
      ];
    }
    checkTarget(
      ctx.node,
      target.filter((d): d is number => typeof d === "number"),
      allowZero,
    );
    // Symbolic entries (a dim computed with Shape()) are dims as they are; numbers follow the spec.
    const shape: Dim[] = target.map((d, i) => {
      if (d !== 0 || allowZero) return d;
      return x.shape ? (x.shape[i] ?? null) : null;
    });
    const hole = shape.indexOf(-1);
    if (hole >= 0) {
      shape[hole] = x.shape
        ? quotientDim(
            x.shape,
            shape.filter((_, i) => i !== hole),
          )
        : null;
    }
    return [{ dtype: x.dtype, shape }];
  },
  run(ctx, [x, shape]) {
    first(ctx, x);
    const allowZero = attrInt(ctx.node, "allowzero", 0) === 1;
    return [x.reshape(reshapeDims(ctx.node, x.dims, reshapeTarget(ctx, shape), allowZero))];
  },
};

// ---- Squeeze / Unsqueeze ----------------------------------------------------------------------------

/** Axes from the attribute (before opset 13) or the optional second input (13+); undefined when absent. */
function axesForRun(ctx: OpContext, axesInput: Tensor | undefined): number[] | undefined {
  if (ctx.opset < 13) return hasAttr(ctx.node, "axes") ? attrInts(ctx.node, "axes") : undefined;
  return axesInput ? intValues(ctx.node, axesInput, "axes") : undefined;
}

type AxesKnowledge =
  | { kind: "absent" }
  | { kind: "known"; axes: number[] }
  | { kind: "unknown"; count?: number };

function axesForTypes(ctx: TypeContext): AxesKnowledge {
  if (ctx.opset < 13) {
    return hasAttr(ctx.node, "axes")
      ? { kind: "known", axes: attrInts(ctx.node, "axes") }
      : { kind: "absent" };
  }
  if (!ctx.node.inputs[1]) return { kind: "absent" };
  const c = ctx.constant(1);
  if (c) return { kind: "known", axes: c.toNumbers() };
  const n = ctx.inputs[1]?.shape?.[0];
  return { kind: "unknown", count: typeof n === "number" ? n : undefined };
}

export const Squeeze: OpDef = {
  opType: "Squeeze",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    const axes = axesForTypes(ctx);
    if (!x.shape) return [{ dtype: x.dtype }];
    const shape = x.shape;
    if (axes.kind === "known") {
      const drop = checkedAxes(ctx.node, axes.axes, shape.length);
      for (const a of drop) {
        if (typeof shape[a] === "number" && shape[a] !== 1) {
          throw new OpError(ctx.node, `cannot squeeze axis ${a} of size ${shape[a]}`);
        }
      }
      return [{ dtype: x.dtype, shape: shape.filter((_, i) => !drop.includes(i)) }];
    }
    if (axes.kind === "absent" && shape.every((d) => typeof d === "number")) {
      return [{ dtype: x.dtype, shape: shape.filter((d) => d !== 1) }];
    }
    // A symbolic dim may or may not be 1, so which axes go is unknown; with a known count the rank is not.
    if (axes.kind === "unknown" && axes.count !== undefined) {
      return [{ dtype: x.dtype, shape: new Array<Dim>(shape.length - axes.count).fill(null) }];
    }
    return [{ dtype: x.dtype }];
  },
  run(ctx, [x, axesInput]) {
    first(ctx, x);
    const given = axesForRun(ctx, axesInput);
    const drop = given
      ? checkedAxes(ctx.node, given, x.rank)
      : x.dims.flatMap((d, i) => (d === 1 ? [i] : []));
    for (const a of drop) {
      if (x.dims[a] !== 1) throw new OpError(ctx.node, `cannot squeeze axis ${a} of size ${x.dims[a]}`);
    }
    return [x.reshape(x.dims.filter((_, i) => !drop.includes(i)))];
  },
};

/** Output shape of Unsqueeze: axes refer to the output rank. */
function unsqueezeShape<D extends Dim>(node: Node, dims: readonly D[], axes: readonly number[]): (D | 1)[] {
  const rank = dims.length + axes.length;
  const at = checkedAxes(node, axes, rank);
  const out: (D | 1)[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) out.push(at.includes(i) ? 1 : dims[next++]!);
  return out;
}

export const Unsqueeze: OpDef = {
  opType: "Unsqueeze",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    const axes = axesForTypes(ctx);
    if (axes.kind === "absent") throw new OpError(ctx.node, "axes are required");
    if (!x.shape) return [{ dtype: x.dtype }];
    if (axes.kind === "known")
      return [{ dtype: x.dtype, shape: unsqueezeShape(ctx.node, x.shape, axes.axes) }];
    if (axes.count !== undefined) {
      return [{ dtype: x.dtype, shape: new Array<Dim>(x.shape.length + axes.count).fill(null) }];
    }
    return [{ dtype: x.dtype }];
  },
  run(ctx, [x, axesInput]) {
    first(ctx, x);
    const axes = axesForRun(ctx, axesInput);
    if (!axes) throw new OpError(ctx.node, "axes are required");
    return [x.reshape(unsqueezeShape(ctx.node, x.dims, axes))];
  },
};

// ---- Flatten ----------------------------------------------------------------------------------------

function flattenAxis(node: Node, rank: number): number {
  const axis = attrInt(node, "axis", 1);
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank) throw new OpError(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export const Flatten: OpDef = {
  opType: "Flatten",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    if (!x.shape) return [{ dtype: x.dtype, shape: [null, null] }];
    const a = flattenAxis(ctx.node, x.shape.length);
    return [{ dtype: x.dtype, shape: [productDim(x.shape.slice(0, a)), productDim(x.shape.slice(a))] }];
  },
  run(ctx, [x]) {
    first(ctx, x);
    const a = flattenAxis(ctx.node, x.rank);
    return [x.reshape([sizeOf(x.dims.slice(0, a)), sizeOf(x.dims.slice(a))])];
  },
};

// ---- Expand -----------------------------------------------------------------------------------------

/** Numpy broadcast of `x` to `outDims` (which must already be a valid broadcast target). */
export function broadcastTo(x: Tensor, outDims: readonly number[]): Tensor {
  const out = Tensor.zeros(x.type, outDims);
  const rank = outDims.length;
  if (out.size === 0) return out;
  const inDims = [...new Array<number>(rank - x.rank).fill(1), ...x.dims];
  const inStrides = stridesOf(inDims).map((s, i) => (inDims[i] === 1 ? 0 : s));
  if (rank === 0) {
    copyBlock(x.data, 0, out.data, 0, 1);
    return out;
  }
  const outStrides = stridesOf(outDims);
  const row = outDims[rank - 1]!;
  const rowFromSource = inStrides[rank - 1] === 1;
  forEachOuter(
    outDims.slice(0, -1),
    inStrides.slice(0, -1),
    outStrides.slice(0, -1),
    rowFromSource
      ? (s, d) => copyBlock(x.data, s, out.data, d, row)
      : (s, d) => fillBlock(x.data, s, out.data, d, row),
  );
  return out;
}

export const Expand: OpDef = {
  opType: "Expand",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    const target = ctx.constant(1)?.toNumbers();
    if (!target || !x.shape) {
      // The output rank is max(rank(x), len(shape)) but the dims depend on values we do not have.
      const n = ctx.inputs[1]?.shape?.[0];
      if (typeof n === "number" && x.shape) {
        return [{ dtype: x.dtype, shape: new Array<Dim>(Math.max(n, x.shape.length)).fill(null) }];
      }
      return [{ dtype: x.dtype }];
    }
    const shape = broadcastSymbolic(x.shape, target);
    if (!shape) throw new OpError(ctx.node, `cannot expand [${x.shape}] to [${target}]`);
    return [{ dtype: x.dtype, shape }];
  },
  run(ctx, [x, shape]) {
    first(ctx, x);
    if (!shape) throw new OpError(ctx.node, "missing required input 'shape'");
    const target = intValues(ctx.node, shape, "shape");
    const outDims = broadcastDims(x.dims, target);
    if (!outDims) throw new OpError(ctx.node, `cannot expand [${x.dims}] to [${target}]`);
    return [broadcastTo(x, outDims)];
  },
};

// ---- Shape / Size / Identity / Dropout --------------------------------------------------------------

/** [start, end) of the dims Shape reports (opset 15 start/end attributes, clamped like Slice). */
function shapeRange(ctx: OpContext, rank: number): [number, number] {
  if (ctx.opset < 15) return [0, rank];
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(attrInt(ctx.node, "start", 0));
  const end = clamp(attrInt(ctx.node, "end", rank));
  return [start, Math.max(start, end)];
}

export const Shape: OpDef = {
  opType: "Shape",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    if (!x.shape) return [{ dtype: "int64", shape: [null] }];
    const [start, end] = shapeRange(ctx, x.shape.length);
    return [{ dtype: "int64", shape: [end - start] }];
  },
  run(ctx, [x]) {
    first(ctx, x);
    const [start, end] = shapeRange(ctx, x.rank);
    const dims = x.dims.slice(start, end);
    return [new Tensor("int64", dims, [dims.length])];
  },
};

export const Size: OpDef = {
  opType: "Size",
  inferTypes(ctx) {
    first(ctx, ctx.inputs[0]);
    return [{ dtype: "int64", shape: [] }];
  },
  run(ctx, [x]) {
    first(ctx, x);
    return [new Tensor("int64", [x.size], [])];
  },
};

export const Identity: OpDef = {
  opType: "Identity",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    return [sameType(x)];
  },
  // Tensors are never mutated in place, so the input itself is a correct output.
  run(ctx, [x]) {
    first(ctx, x);
    return [x];
  },
};

const sameType = (x: ValueType): ValueType =>
  x.shape ? { dtype: x.dtype, shape: [...x.shape] } : { dtype: x.dtype };

/** Mask dtype: bool from opset 10, the data type before. */
function dropoutMaskType(ctx: OpContext, x: ValueType): ValueType {
  return { ...sameType(x), dtype: ctx.opset >= 10 ? "bool" : x.dtype };
}

function ones(type: Tensor["type"], dims: readonly number[]): Tensor {
  const t = Tensor.zeros(type, dims);
  const one = type === "int64" ? 1n : type === "float16" ? 0x3c00 : 1;
  (t.data as Uint8Array).fill(one as number);
  return t;
}

export const Dropout: OpDef = {
  opType: "Dropout",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    first(ctx, x);
    return ctx.node.outputs[1] ? [sameType(x), dropoutMaskType(ctx, x)] : [sameType(x)];
  },
  // Inference semantics: the identity, with a mask that keeps everything. Training-mode dropout with a
  // non-zero ratio is random and has no place in an inference engine, so it is refused rather than ignored.
  run(ctx, [x, ratioInput, trainingInput]) {
    first(ctx, x);
    const training = ctx.opset >= 12 && trainingInput !== undefined && trainingInput.getNumber(0) !== 0;
    const ratio =
      ctx.opset >= 12 ? (ratioInput ? ratioInput.getNumber(0) : 0.5) : attrFloat(ctx.node, "ratio", 0.5);
    if (training && ratio !== 0)
      throw new OpError(ctx.node, "training_mode=true is not supported (inference only)");
    if (!ctx.node.outputs[1]) return [x];
    return [x, ones(dropoutMaskType(ctx, { dtype: x.type }).dtype, x.dims)];
  },
};

registerOps([Reshape, Squeeze, Unsqueeze, Flatten, Expand, Shape, Size, Identity, Dropout]);
