// Ops that cut tensors apart or join them: Concat, Split, Slice and Tile.
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { sizeOf, stridesOf, Tensor } from "../ir/tensor.js";
import {
  checkedAxes,
  checkedAxis,
  copyBlock,
  forEachOuter,
  intValues,
  requireInput,
} from "./data-movement.js";
import {
  attrInt,
  attrInts,
  hasAttr,
  type OpContext,
  type OpDef,
  registerOps,
  type TypeContext,
} from "./registry.js";

/** Two dims known to be equal: a number beats a symbol, agreeing symbols stay, otherwise unknown. */
function sameDim(a: Dim, b: Dim): Dim {
  if (typeof a === "number") return a;
  if (typeof b === "number") return b;
  return a === b ? a : null;
}

// ---- Concat -----------------------------------------------------------------------------------------

/** Concat's axis, normalised for inputs of rank `rank`. */
export function concatAxis(ctx: OpContext, rank: number): number {
  // Opset 1 made axis optional with default 1; from opset 4 it is required.
  const axis = ctx.opset < 4 ? attrInt(ctx.node, "axis", 1) : attrInt(ctx.node, "axis");
  return checkedAxis(ctx.node, axis, rank);
}

export const Concat: OpDef = {
  opType: "Concat",
  inferTypes(ctx) {
    const ins = ctx.inputs.map((t, i) => requireInput(ctx, t, `inputs[${i}]`));
    if (ins.length === 0) throw new OpError(ctx.node, "needs at least one input");
    const dtype = ins[0]!.dtype;
    const known = ins.filter((t): t is ValueType & { shape: Dim[] } => t.shape !== undefined);
    if (known.length === 0) return [{ dtype }];
    const rank = known[0]!.shape.length;
    if (known.some((t) => t.shape.length !== rank)) throw new OpError(ctx.node, "inputs differ in rank");
    const axis = concatAxis(ctx, rank);
    const shape: Dim[] = [];
    for (let a = 0; a < rank; a++) {
      if (a === axis) {
        const all = ins.map((t) => t.shape?.[a] ?? null);
        shape.push(
          all.every((d) => typeof d === "number") ? all.reduce((s: number, d) => s + (d as number), 0) : null,
        );
      } else {
        shape.push(known.map((t): Dim => t.shape[a] ?? null).reduce(sameDim));
      }
    }
    return [{ dtype, shape }];
  },
  run(ctx, inputs) {
    const ins = inputs.map((t, i) => requireInput(ctx, t, `inputs[${i}]`));
    if (ins.length === 0) throw new OpError(ctx.node, "needs at least one input");
    const first = ins[0]!;
    const axis = concatAxis(ctx, first.rank);
    for (const t of ins) {
      if (t.type !== first.type) throw new OpError(ctx.node, `inputs mix ${first.type} and ${t.type}`);
      if (t.rank !== first.rank || t.dims.some((d, a) => a !== axis && d !== first.dims[a])) {
        throw new OpError(ctx.node, `input shapes [${first.dims}] and [${t.dims}] differ off axis ${axis}`);
      }
    }
    const outDims = [...first.dims];
    outDims[axis] = ins.reduce((s, t) => s + t.dims[axis]!, 0);
    const out = Tensor.zeros(first.type, outDims);
    const outer = sizeOf(first.dims.slice(0, axis));
    const inner = sizeOf(first.dims.slice(axis + 1));
    const outRow = outDims[axis]! * inner;
    let offset = 0;
    for (const t of ins) {
      const chunk = t.dims[axis]! * inner;
      for (let o = 0; o < outer; o++) copyBlock(t.data, o * chunk, out.data, o * outRow + offset, chunk);
      offset += chunk;
    }
    return [out];
  },
};

// ---- Split ------------------------------------------------------------------------------------------

/** Explicit split sizes (attribute before opset 13, optional input from 13); undefined when absent. */
function explicitSplit(ctx: OpContext, splitInput: Tensor | undefined): number[] | undefined {
  if (ctx.opset < 13) return hasAttr(ctx.node, "split") ? attrInts(ctx.node, "split") : undefined;
  return splitInput ? intValues(ctx.node, splitInput, "split") : undefined;
}

/** Sizes for an implicit split: num_outputs (opset 18, last chunk may be smaller) or equal parts. */
function implicitSplit(ctx: OpContext, dim: number): number[] {
  const outputs = ctx.node.outputs.length;
  if (ctx.opset >= 18 && hasAttr(ctx.node, "num_outputs")) {
    const n = attrInt(ctx.node, "num_outputs");
    if (n < 1 || n !== outputs)
      throw new OpError(ctx.node, `num_outputs ${n} but the node has ${outputs} outputs`);
    // onnxruntime refuses more chunks than elements rather than emitting empty outputs; so do we.
    if (n > dim) throw new OpError(ctx.node, `num_outputs ${n} exceeds the axis size ${dim}`);
    const chunk = Math.ceil(dim / n);
    const last = dim - chunk * (n - 1);
    if (last < 0) throw new OpError(ctx.node, `cannot split a dim of ${dim} into ${n} chunks of ${chunk}`);
    return [...new Array<number>(n - 1).fill(chunk), last];
  }
  if (dim % outputs !== 0) {
    throw new OpError(ctx.node, `cannot split a dim of ${dim} evenly into ${outputs} outputs`);
  }
  return new Array<number>(outputs).fill(dim / outputs);
}

function checkSplit(node: Node, sizes: readonly number[], dim: number): void {
  if (sizes.length !== node.outputs.length) {
    throw new OpError(
      node,
      `split [${sizes}] has ${sizes.length} entries for ${node.outputs.length} outputs`,
    );
  }
  if (sizes.some((s) => s < 0) || sizes.reduce((a, b) => a + b, 0) !== dim) {
    throw new OpError(node, `split [${sizes}] does not add up to the axis size ${dim}`);
  }
}

export const Split: OpDef = {
  opType: "Split",
  inferTypes(ctx) {
    const x = requireInput(ctx, ctx.inputs[0], "input");
    const outputs = ctx.node.outputs.length;
    if (!x.shape) return new Array(outputs).fill({ dtype: x.dtype });
    const axis = checkedAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.shape.length);
    const dim = x.shape[axis]!;
    let sizes: Dim[];
    if (ctx.opset < 13 && hasAttr(ctx.node, "split")) sizes = attrInts(ctx.node, "split");
    else if (ctx.opset >= 13 && ctx.node.inputs[1])
      sizes = ctx.constant(1)?.toNumbers() ?? new Array(outputs).fill(null);
    else if (typeof dim === "number") sizes = implicitSplit(ctx, dim);
    else sizes = new Array<Dim>(outputs).fill(null);
    return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape!.map((d, a) => (a === axis ? s : d)) }));
  },
  run(ctx, [xIn, splitInput]) {
    const x = requireInput(ctx, xIn, "input");
    const axis = checkedAxis(ctx.node, attrInt(ctx.node, "axis", 0), x.rank);
    const dim = x.dims[axis]!;
    const sizes = explicitSplit(ctx, splitInput) ?? implicitSplit(ctx, dim);
    checkSplit(ctx.node, sizes, dim);
    const outer = sizeOf(x.dims.slice(0, axis));
    const inner = sizeOf(x.dims.slice(axis + 1));
    let start = 0;
    return sizes.map((size) => {
      const dims = [...x.dims];
      dims[axis] = size;
      const out = Tensor.zeros(x.type, dims);
      const chunk = size * inner;
      for (let o = 0; o < outer; o++)
        copyBlock(x.data, (o * dim + start) * inner, out.data, o * chunk, chunk);
      start += size;
      return out;
    });
  },
};

// ---- Slice ------------------------------------------------------------------------------------------

interface SliceArgs {
  starts: number[];
  ends: number[];
  axes?: number[];
  steps?: number[];
}

/** One axis of a slice after clamping: first source index, step, and output length. */
export interface AxisSlice {
  start: number;
  step: number;
  length: number;
}

/** ONNX clamping: negatives count from the end; positive steps clamp to [0, dim], negative to [-1, dim-1]. */
export function sliceAxis(start: number, end: number, step: number, dim: number): AxisSlice {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
  } else {
    start = Math.min(Math.max(start, 0), dim - 1);
    end = Math.min(Math.max(end, -1), dim - 1);
  }
  return { start, step, length: Math.max(0, Math.ceil((end - start) / step)) };
}

function sliceArgsForRun(ctx: OpContext, inputs: (Tensor | undefined)[]): SliceArgs {
  if (ctx.opset < 10) {
    return {
      starts: attrInts(ctx.node, "starts"),
      ends: attrInts(ctx.node, "ends"),
      axes: hasAttr(ctx.node, "axes") ? attrInts(ctx.node, "axes") : undefined,
    };
  }
  const [, starts, ends, axes, steps] = inputs;
  const opt = (t: Tensor | undefined, what: string) => (t ? intValues(ctx.node, t, what) : undefined);
  return {
    starts: intValues(ctx.node, requireInput(ctx, starts, "starts"), "starts"),
    ends: intValues(ctx.node, requireInput(ctx, ends, "ends"), "ends"),
    axes: opt(axes, "axes"),
    steps: opt(steps, "steps"),
  };
}

/** Slice arguments when all are statically known; undefined otherwise. */
function sliceArgsForTypes(ctx: TypeContext): SliceArgs | undefined {
  if (ctx.opset < 10) return sliceArgsForRun(ctx, []);
  const get = (i: number): number[] | undefined | null => {
    if (!ctx.node.inputs[i]) return undefined;
    return ctx.constant(i)?.toNumbers() ?? null;
  };
  const [starts, ends, axes, steps] = [get(1), get(2), get(3), get(4)];
  if (!starts || !ends || axes === null || steps === null) return undefined;
  return { starts, ends, axes, steps };
}

/**
 * A Slice node's per-axis slices of an input of `dims`, from its attributes (opset < 10) or host inputs 1..4:
 * what a device backend needs to copy the window without the data on the host.
 */
export function sliceGeometry(
  ctx: OpContext,
  dims: readonly number[],
  inputs: (Tensor | undefined)[],
): AxisSlice[] {
  return resolveSlice(ctx.node, dims, sliceArgsForRun(ctx, inputs));
}

/** Validated per-axis slices for every axis of the input (untouched axes take all of it). */
function resolveSlice(node: Node, dims: readonly number[], args: SliceArgs): AxisSlice[] {
  const n = args.starts.length;
  const axes = checkedAxes(node, args.axes ?? [...Array(n).keys()], dims.length);
  const steps = args.steps ?? new Array<number>(n).fill(1);
  if (args.ends.length !== n || axes.length !== n || steps.length !== n) {
    throw new OpError(node, "starts, ends, axes and steps must have the same length");
  }
  const out: AxisSlice[] = dims.map((d) => ({ start: 0, step: 1, length: d }));
  axes.forEach((axis, i) => {
    if (steps[i] === 0) throw new OpError(node, "steps must not be 0");
    out[axis] = sliceAxis(args.starts[i]!, args.ends[i]!, steps[i]!, dims[axis]!);
  });
  return out;
}

/** Beyond any real dim: exporters write INT64_MAX / INT32_MAX for "to the end". */
const TO_THE_END = 2 ** 31 - 1;

/** The length of a slice of a symbolic dim, when it is provably the whole dim; else null. */
function symbolicSliceDim(d: Dim, start: number, end: number, step: number): Dim {
  if (step === 1 && (start === 0 || start <= -TO_THE_END) && end >= TO_THE_END) return d;
  if (step === -1 && (start === -1 || start >= TO_THE_END) && end <= -TO_THE_END) return d;
  return null;
}

export function sliceTensor(node: Node, x: Tensor, args: SliceArgs): Tensor {
  const ax = resolveSlice(node, x.dims, args);
  const outDims = ax.map((a) => a.length);
  const out = Tensor.zeros(x.type, outDims);
  if (out.size === 0) return out;
  const inStrides = stridesOf(x.dims);
  const base = ax.reduce((s, a, i) => s + a.start * inStrides[i]!, 0);
  // Trailing untouched axes, plus one more with step 1, form contiguous runs copied in one go.
  let k = ax.length;
  let run = 1;
  while (k > 0 && ax[k - 1]!.step === 1 && ax[k - 1]!.start === 0 && ax[k - 1]!.length === x.dims[k - 1]) {
    run *= x.dims[--k]!;
  }
  if (k > 0 && ax[k - 1]!.step === 1) run *= ax[--k]!.length;
  const outStrides = stridesOf(outDims);
  forEachOuter(
    outDims.slice(0, k),
    ax.slice(0, k).map((a, i) => a.step * inStrides[i]!),
    outStrides.slice(0, k),
    (s, d) => copyBlock(x.data, base + s, out.data, d, run),
  );
  return out;
}

export const Slice: OpDef = {
  opType: "Slice",
  inferTypes(ctx) {
    const x = requireInput(ctx, ctx.inputs[0], "data");
    if (!x.shape) return [{ dtype: x.dtype }];
    const shape = x.shape;
    const args = sliceArgsForTypes(ctx);
    if (args) {
      const n = args.starts.length;
      const axes = checkedAxes(ctx.node, args.axes ?? [...Array(n).keys()], shape.length);
      const steps = args.steps ?? new Array<number>(n).fill(1);
      const out = [...shape];
      axes.forEach((axis, i) => {
        const d = shape[axis]!;
        if (steps[i] === 0) throw new OpError(ctx.node, "steps must not be 0");
        out[axis] =
          typeof d === "number"
            ? sliceAxis(args.starts[i]!, args.ends[i]!, steps[i]!, d).length
            : symbolicSliceDim(d, args.starts[i]!, args.ends[i]!, steps[i]!);
      });
      return [{ dtype: x.dtype, shape: out }];
    }
    // Values unknown: with known axes only those dims are unknown, otherwise every dim may change.
    const axes = ctx.node.inputs[3] ? ctx.constant(3)?.toNumbers() : undefined;
    if (axes) {
      const sliced = checkedAxes(ctx.node, axes, shape.length);
      return [{ dtype: x.dtype, shape: shape.map((d, a) => (sliced.includes(a) ? null : d)) }];
    }
    return [{ dtype: x.dtype, shape: shape.map(() => null) }];
  },
  run(ctx, inputs) {
    const x = requireInput(ctx, inputs[0], "data");
    return [sliceTensor(ctx.node, x, sliceArgsForRun(ctx, inputs))];
  },
};

// ---- Tile -------------------------------------------------------------------------------------------

export const Tile: OpDef = {
  opType: "Tile",
  inferTypes(ctx) {
    const x = requireInput(ctx, ctx.inputs[0], "input");
    if (!x.shape) return [{ dtype: x.dtype }];
    const repeats = ctx.constant(1)?.toNumbers();
    if (!repeats) return [{ dtype: x.dtype, shape: x.shape.map(() => null) }];
    if (repeats.length !== x.shape.length) {
      throw new OpError(
        ctx.node,
        `repeats [${repeats}] must have one entry per input dim (${x.shape.length})`,
      );
    }
    const shape = x.shape.map((d, a): Dim => {
      const r = repeats[a]!;
      if (typeof d === "number") return d * r;
      return r === 1 ? d : r === 0 ? 0 : null;
    });
    return [{ dtype: x.dtype, shape }];
  },
  run(ctx, [xIn, repeatsIn]) {
    const x = requireInput(ctx, xIn, "input");
    const repeats = intValues(ctx.node, requireInput(ctx, repeatsIn, "repeats"), "repeats");
    if (repeats.length !== x.rank || repeats.some((r) => r < 0)) {
      throw new OpError(ctx.node, `repeats [${repeats}] must be ${x.rank} non-negative values`);
    }
    const outDims = x.dims.map((d, a) => d * repeats[a]!);
    const out = Tensor.zeros(x.type, outDims);
    if (out.size === 0) return [out];
    if (x.rank === 0) {
      copyBlock(x.data, 0, out.data, 0, 1);
      return [out];
    }
    const last = x.rank - 1;
    const outStrides = stridesOf(outDims);
    const row = x.dims[last]!;
    // 1. Each source row, repeated along the last axis, lands in the first tile of the other axes.
    forEachOuter(
      x.dims.slice(0, last),
      stridesOf(x.dims).slice(0, last),
      outStrides.slice(0, last),
      (s, d) => {
        for (let t = 0; t < repeats[last]!; t++) copyBlock(x.data, s, out.data, d + t * row, row);
      },
    );
    // 2. Outward, axis by axis: the filled block of axis a is copied to its remaining repeats.
    for (let a = last - 1; a >= 0; a--) {
      const block = x.dims[a]! * outStrides[a]!;
      const zeros = new Array<number>(a).fill(0);
      forEachOuter(x.dims.slice(0, a), zeros, outStrides.slice(0, a), (_, d) => {
        for (let t = 1; t < repeats[a]!; t++) copyBlock(out.data, d, out.data, d + t * block, block);
      });
    }
    return [out];
  },
};

registerOps([Concat, Split, Slice, Tile]);
