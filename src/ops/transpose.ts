import { assert, OpError } from "../errors.js";
import type { TypedArray } from "../ir/dtype.js";
import type { Dim } from "../ir/graph.js";
import { stridesOf, Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import { forEachOuter } from "./data-movement.js";
import { attrInts, hasAttr, type OpContext, type OpDef, registerOps } from "./registry.js";

/** Same-width integer views: transposing moves bits, so one kernel per element width covers every dtype. */
type BitsArray = Int32Array | Uint16Array | Uint8Array;

/**
 * The bits of `data` as an integer array, plus how many integer words make one element. 8-byte elements
 * become two int32 words (an extra innermost axis that stays in place), which keeps float32 and int64 on
 * the same monomorphic Int32Array kernel and avoids any NaN canonicalisation of float payloads.
 */
function bitsView(data: TypedArray): { bits: BitsArray; words: number } {
  const { buffer, byteOffset, length } = data;
  switch (data.BYTES_PER_ELEMENT) {
    case 8:
      return { bits: new Int32Array(buffer, byteOffset, length * 2), words: 2 };
    case 4:
      return { bits: new Int32Array(buffer, byteOffset, length), words: 1 };
    case 2:
      return { bits: new Uint16Array(buffer, byteOffset, length), words: 1 };
    default:
      return { bits: new Uint8Array(buffer, byteOffset, length), words: 1 };
  }
}

/** Validated permutation: `perm` attribute, or reversed axes when absent. */
export function transposePerm(node: OpContext["node"], rank: number): number[] {
  if (!hasAttr(node, "perm")) return Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const perm = attrInts(node, "perm");
  if (perm.length !== rank) {
    throw new OpError(node, `perm [${perm}] has ${perm.length} entries but the input has rank ${rank}`);
  }
  const seen = new Array<boolean>(rank).fill(false);
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen[p]) {
      throw new OpError(node, `perm [${perm}] is not a permutation of 0..${rank - 1}`);
    }
    seen[p] = true;
  }
  return perm;
}

/**
 * Simplest equivalent problem: size-1 axes dropped and runs of axes that stay adjacent in the same order
 * merged. [B,S,H,D] with [0,2,1,3] stays 4-D, but e.g. [0,1,3,2] on [B,H,S,D] becomes [B*H,S,D] / [0,2,1].
 */
function collapse(dims: readonly number[], perm: readonly number[]): { dims: number[]; perm: number[] } {
  const kept = dims.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
  const renumber = new Map(kept.map((axis, i) => [axis, i]));
  const keptDims = kept.map((a) => dims[a]!);
  const keptPerm = perm.filter((p) => renumber.has(p)).map((p) => renumber.get(p)!);
  // Groups of output axes whose source axes are consecutive.
  const groups: number[][] = [];
  for (const p of keptPerm) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1]! + 1 === p) last.push(p);
    else groups.push([p]);
  }
  const bySource = [...groups].sort((a, b) => a[0]! - b[0]!);
  const newDims = bySource.map((g) => g.reduce((acc, a) => acc * keptDims[a]!, 1));
  const newPerm = groups.map((g) => bySource.indexOf(g));
  return { dims: newDims, perm: newPerm };
}

const TILE = 32;

/** Transpose of a collapsed problem on integer bit views. */
function transposeBits(src: BitsArray, out: BitsArray, dims: number[], perm: number[]): void {
  const rank = dims.length;
  if (rank <= 1) {
    out.set(src);
    return;
  }
  const inStrides = stridesOf(dims);
  const outDims = perm.map((p) => dims[p]!);
  const outStrides = stridesOf(outDims);
  const srcStrideOf = perm.map((p) => inStrides[p]!);
  const last = rank - 1;
  // The caller sends here only problems whose innermost axis moves, so each one is a set of 2-D
  // transposes between output axis q (the source's contiguous axis) and the last output axis.
  const q = perm.indexOf(last);
  assert(q >= 0 && q !== last, "transposeBits needs a problem whose innermost axis moves");
  const rows = outDims[q]!; // runs along the source's contiguous axis
  const cols = outDims[last]!; // runs along the output's contiguous axis
  const colStride = srcStrideOf[last]!;
  const rowStride = outStrides[q]!;
  const outerAxes = [...Array(rank).keys()].filter((a) => a !== q && a !== last);
  forEachOuter(
    outerAxes.map((a) => outDims[a]!),
    outerAxes.map((a) => srcStrideOf[a]!),
    outerAxes.map((a) => outStrides[a]!),
    (srcBase, dstBase) => {
      for (let i0 = 0; i0 < rows; i0 += TILE) {
        const i1 = Math.min(i0 + TILE, rows);
        for (let j0 = 0; j0 < cols; j0 += TILE) {
          const j1 = Math.min(j0 + TILE, cols);
          for (let i = i0; i < i1; i++) {
            let s = srcBase + i + j0 * colStride;
            let d = dstBase + i * rowStride + j0;
            for (let j = j0; j < j1; j++, s += colStride, d++) out[d] = src[s]!;
          }
        }
      }
    },
  );
}

/** Copies contiguous rows: the case where the innermost axis stays innermost (e.g. [0,2,1,3]). */
function transposeRows(src: BitsArray, out: BitsArray, dims: number[], perm: number[]): void {
  const rank = dims.length;
  const inStrides = stridesOf(dims);
  const outDims = perm.map((p) => dims[p]!);
  const outStrides = stridesOf(outDims);
  const row = outDims[rank - 1]!;
  const outerAxes = [...Array(rank - 1).keys()];
  forEachOuter(
    outerAxes.map((a) => outDims[a]!),
    outerAxes.map((a) => inStrides[perm[a]!]!),
    outerAxes.map((a) => outStrides[a]!),
    row >= 16
      ? (s, d) => out.set(src.subarray(s, s + row), d)
      : (s, d) => {
          for (let j = 0; j < row; j++) out[d + j] = src[s + j]!;
        },
  );
}

/** Transposed copy of any tensor. Exported for other kernels (attention head splits, layout passes). */
/**
 * Whether a permutation keeps the element order — the axes longer than 1 stay in their relative order, only
 * size-1 axes move (the [B, S, …] ↔ [S, B, …] Transposes around the packed op at batch 1): a backend may then
 * return the input's buffer under the new dims.
 */
export function isOrderPreserving(dims: readonly number[], perm: readonly number[]): boolean {
  const moved = perm.filter((p) => dims[p]! > 1);
  return moved.every((p, i) => i === 0 || moved[i - 1]! < p);
}

export function transposeTensor(
  input: Tensor,
  perm: readonly number[],
  allocFloat32?: (length: number) => Float32Array,
): Tensor {
  const outDims = perm.map((p) => input.dims[p]!);
  // A transpose writes every element, so a float32 output may be a reused buffer.
  const out =
    input.type === "float32" && allocFloat32
      ? new Tensor("float32", allocFloat32(input.size), outDims)
      : Tensor.zeros(input.type, outDims);
  if (input.size === 0) return out;
  const { bits: src, words } = bitsView(input.data);
  const { bits: dst } = bitsView(out.data);
  // Two-word elements get an extra trailing axis that never moves.
  const dims = words === 2 ? [...input.dims, 2] : [...input.dims];
  const fullPerm = words === 2 ? [...perm, perm.length] : [...perm];
  const c = collapse(dims, fullPerm);
  const r = c.dims.length;
  if (r <= 1) dst.set(src);
  else if (c.perm[r - 1] === r - 1) transposeRows(src, dst, c.dims, c.perm);
  else transposeBits(src, dst, c.dims, c.perm);
  return out;
}

export const Transpose: OpDef = {
  opType: "Transpose",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    if (!x) throw new OpError(ctx.node, "missing input");
    if (!x.shape) {
      if (!hasAttr(ctx.node, "perm")) return [{ dtype: x.dtype }];
      return [{ dtype: x.dtype, shape: attrInts(ctx.node, "perm").map((): Dim => null) }];
    }
    const perm = transposePerm(ctx.node, x.shape.length);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape![p]!) }];
  },
  run(ctx, [x]) {
    if (!x) throw new OpError(ctx.node, "missing input");
    return [transposeTensor(x, transposePerm(ctx.node, x.rank), computeOf(ctx).allocFloat32)];
  },
};

registerOps([Transpose]);
