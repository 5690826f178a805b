// Index-driven data movement: Gather, GatherElements, GatherND and ScatterND.
import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import { floatToHalf, halfToFloat } from "../ir/float16.js";
import type { Dim, Node } from "../ir/graph.js";
import { sizeOf, stridesOf, Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import {
  checkedAxis,
  copyBlock,
  type Elements,
  elements,
  forEachOuter,
  intValues,
  requireInput,
} from "./data-movement.js";
import { attrInt, attrString, type OpDef, registerOps } from "./registry.js";

/** Index values with negatives wrapped; anything outside [-size, size) is an error naming the node. */
function wrapIndex(node: Node, i: number, size: number, axis: number): number {
  if (i < -size || i >= size)
    throw new OpError(node, `index ${i} is out of bounds for axis ${axis} of size ${size}`);
  return i < 0 ? i + size : i;
}

// ---- Gather -----------------------------------------------------------------------------------------

export const Gather: OpDef = {
  opType: "Gather",
  inferTypes(ctx) {
    const data = requireInput(ctx, ctx.inputs[0], "data");
    const indices = requireInput(ctx, ctx.inputs[1], "indices");
    if (!data.shape || !indices.shape) return [{ dtype: data.dtype }];
    const axis = checkedAxis(ctx.node, attrInt(ctx.node, "axis", 0), data.shape.length);
    return [
      {
        dtype: data.dtype,
        shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)],
      },
    ];
  },
  run(ctx, [dataIn, indicesIn]) {
    const data = requireInput(ctx, dataIn, "data");
    const indices = requireInput(ctx, indicesIn, "indices");
    const axis = checkedAxis(ctx.node, attrInt(ctx.node, "axis", 0), data.rank);
    const n = data.dims[axis]!;
    const idx = intValues(ctx.node, indices, "indices").map((i) => wrapIndex(ctx.node, i, n, axis));
    const outDims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
    // Every element is copied in, so a float32 output may be a reused buffer (embedding lookups).
    const out =
      data.type === "float32"
        ? new Tensor("float32", computeOf(ctx).allocFloat32(sizeOf(outDims)), outDims)
        : Tensor.zeros(data.type, outDims);
    const outer = sizeOf(data.dims.slice(0, axis));
    const inner = sizeOf(data.dims.slice(axis + 1));
    const k = idx.length;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++)
        copyBlock(data.data, (o * n + idx[j]!) * inner, out.data, (o * k + j) * inner, inner);
    }
    return [out];
  },
};

// ---- GatherElements ---------------------------------------------------------------------------------

export const GatherElements: OpDef = {
  opType: "GatherElements",
  inferTypes(ctx) {
    const data = requireInput(ctx, ctx.inputs[0], "data");
    const indices = requireInput(ctx, ctx.inputs[1], "indices");
    return [indices.shape ? { dtype: data.dtype, shape: [...indices.shape] } : { dtype: data.dtype }];
  },
  run(ctx, [dataIn, indicesIn]) {
    const data = requireInput(ctx, dataIn, "data");
    const indices = requireInput(ctx, indicesIn, "indices");
    if (indices.rank !== data.rank) {
      throw new OpError(ctx.node, `indices rank ${indices.rank} differs from data rank ${data.rank}`);
    }
    const axis = checkedAxis(ctx.node, attrInt(ctx.node, "axis", 0), data.rank);
    indices.dims.forEach((d, a) => {
      if (a !== axis && d > data.dims[a]!) {
        throw new OpError(ctx.node, `indices dim ${a} (${d}) exceeds data dim (${data.dims[a]})`);
      }
    });
    const n = data.dims[axis]!;
    const idx = intValues(ctx.node, indices, "indices");
    const out = Tensor.zeros(data.type, indices.dims);
    if (out.size === 0) return [out];
    const dataStrides = stridesOf(data.dims);
    const axisStride = dataStrides[axis]!;
    const src = elements(data.data);
    const dst = elements(out.data);
    forEachOuter(
      indices.dims,
      dataStrides.map((s, a) => (a === axis ? 0 : s)),
      stridesOf(indices.dims),
      (base, pos) => {
        dst[pos] = src[base + wrapIndex(ctx.node, idx[pos]!, n, axis) * axisStride]!;
      },
    );
    return [out];
  },
};

// ---- GatherND ---------------------------------------------------------------------------------------

interface NdLayout {
  /** Index tuples of length m address data dims [batchDims, batchDims + m). */
  m: number;
  batches: number;
  tuplesPerBatch: number;
  /** Elements in one addressed slice: prod(data.dims[batchDims + m:]). */
  slice: number;
  batchStride: number;
  tupleStrides: number[];
}

function ndLayout(node: Node, data: Tensor, indices: Tensor, batchDims: number): NdLayout {
  const q = indices.rank;
  const r = data.rank;
  if (q < 1) throw new OpError(node, "indices must have rank >= 1");
  if (batchDims < 0 || batchDims >= Math.min(q, r)) {
    throw new OpError(node, `batch_dims ${batchDims} must be < min(rank(data), rank(indices))`);
  }
  const m = indices.dims[q - 1]!;
  if (m < 1 || batchDims + m > r) {
    throw new OpError(
      node,
      `index tuples of length ${m} do not fit data of rank ${r} (batch_dims ${batchDims})`,
    );
  }
  for (let a = 0; a < batchDims; a++) {
    if (indices.dims[a] !== data.dims[a]) {
      throw new OpError(node, `batch dim ${a} differs: data ${data.dims[a]}, indices ${indices.dims[a]}`);
    }
  }
  const strides = stridesOf(data.dims);
  return {
    m,
    batches: sizeOf(data.dims.slice(0, batchDims)),
    tuplesPerBatch: sizeOf(indices.dims.slice(batchDims, q - 1)),
    slice: sizeOf(data.dims.slice(batchDims + m)),
    batchStride: sizeOf(data.dims.slice(batchDims)),
    tupleStrides: strides.slice(batchDims, batchDims + m),
  };
}

/** Start offset in data of each addressed slice, in index-tuple order. */
function sliceOffsets(node: Node, data: Tensor, indices: Tensor, batchDims: number, l: NdLayout): number[] {
  const idx = intValues(node, indices, "indices");
  const offsets: number[] = [];
  for (let b = 0; b < l.batches; b++) {
    for (let t = 0; t < l.tuplesPerBatch; t++) {
      const tuple = (b * l.tuplesPerBatch + t) * l.m;
      let off = b * l.batchStride;
      for (let j = 0; j < l.m; j++) {
        const axis = batchDims + j;
        off += wrapIndex(node, idx[tuple + j]!, data.dims[axis]!, axis) * l.tupleStrides[j]!;
      }
      offsets.push(off);
    }
  }
  return offsets;
}

export const GatherND: OpDef = {
  opType: "GatherND",
  inferTypes(ctx) {
    const data = requireInput(ctx, ctx.inputs[0], "data");
    const indices = requireInput(ctx, ctx.inputs[1], "indices");
    const m = indices.shape?.[indices.shape.length - 1];
    if (!data.shape || !indices.shape || typeof m !== "number") return [{ dtype: data.dtype }];
    const b = attrInt(ctx.node, "batch_dims", 0);
    return [
      { dtype: data.dtype, shape: [...indices.shape.slice(0, -1), ...data.shape.slice(b + m)] as Dim[] },
    ];
  },
  run(ctx, [dataIn, indicesIn]) {
    const data = requireInput(ctx, dataIn, "data");
    const indices = requireInput(ctx, indicesIn, "indices");
    const b = attrInt(ctx.node, "batch_dims", 0);
    const l = ndLayout(ctx.node, data, indices, b);
    const out = Tensor.zeros(data.type, [...indices.dims.slice(0, -1), ...data.dims.slice(b + l.m)]);
    sliceOffsets(ctx.node, data, indices, b, l).forEach((off, i) => {
      copyBlock(data.data, off, out.data, i * l.slice, l.slice);
    });
    return [out];
  },
};

// ---- ScatterND --------------------------------------------------------------------------------------

type Combine = (old: number | bigint, update: number | bigint) => number | bigint;

/** Element combiner for a reduction, in the arithmetic of the stored dtype. */
function combiner(node: Node, type: DType, reduction: string): Combine {
  if (!["add", "mul", "max", "min"].includes(reduction)) {
    throw new OpError(node, `unknown reduction '${reduction}' (expected none, add, mul, max or min)`);
  }
  if (type === "int64") {
    const ops: Record<string, (a: bigint, b: bigint) => bigint> = {
      add: (a, b) => BigInt.asIntN(64, a + b),
      mul: (a, b) => BigInt.asIntN(64, a * b),
      // biome-ignore lint/complexity/useMathMinMax: Math.max does not accept bigints
      max: (a, b) => (a > b ? a : b),
      // biome-ignore lint/complexity/useMathMinMax: Math.min does not accept bigints
      min: (a, b) => (a < b ? a : b),
    };
    return ops[reduction] as Combine;
  }
  if (type === "bool") {
    const either = reduction === "add" || reduction === "max";
    return (a, b) => (either ? Number(a) | Number(b) : Number(a) & Number(b));
  }
  const numeric: Record<string, (a: number, b: number) => number> = {
    add: (a, b) => a + b,
    mul: type === "int32" ? Math.imul : (a, b) => a * b,
    max: Math.max,
    min: Math.min,
  };
  const f = numeric[reduction]!;
  if (type === "float16") return (a, b) => floatToHalf(f(halfToFloat(a as number), halfToFloat(b as number)));
  return f as Combine;
}

export const ScatterND: OpDef = {
  opType: "ScatterND",
  inferTypes(ctx) {
    const data = requireInput(ctx, ctx.inputs[0], "data");
    return [data.shape ? { dtype: data.dtype, shape: [...data.shape] } : { dtype: data.dtype }];
  },
  run(ctx, [dataIn, indicesIn, updatesIn]) {
    const data = requireInput(ctx, dataIn, "data");
    const indices = requireInput(ctx, indicesIn, "indices");
    const updates = requireInput(ctx, updatesIn, "updates");
    if (updates.type !== data.type) {
      throw new OpError(ctx.node, `updates dtype ${updates.type} differs from data dtype ${data.type}`);
    }
    const l = ndLayout(ctx.node, data, indices, 0);
    const expected = [...indices.dims.slice(0, -1), ...data.dims.slice(l.m)];
    if (updates.dims.length !== expected.length || updates.dims.some((d, i) => d !== expected[i])) {
      throw new OpError(ctx.node, `updates shape [${updates.dims}] should be [${expected}]`);
    }
    const out = new Tensor(data.type, data.data.slice(), data.dims);
    const reduction = attrString(ctx.node, "reduction", "none");
    const offsets = sliceOffsets(ctx.node, data, indices, 0, l);
    if (reduction === "none") {
      offsets.forEach((off, i) => {
        copyBlock(updates.data, i * l.slice, out.data, off, l.slice);
      });
      return [out];
    }
    const combine = combiner(ctx.node, data.type, reduction);
    const dst: Elements = elements(out.data);
    const src: Elements = elements(updates.data);
    offsets.forEach((off, i) => {
      for (let e = 0; e < l.slice; e++) dst[off + e] = combine(dst[off + e]!, src[i * l.slice + e]!);
    });
    return [out];
  },
};

registerOps([Gather, GatherElements, GatherND, ScatterND]);
