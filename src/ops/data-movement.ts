// Dtype-agnostic helpers for kernels that move elements without interpreting them (shape ops, gathers,
// slices). Values are copied as they are stored: int64 stays bigint, float16 stays raw half bits.
import { OpError } from "../errors.js";
import type { TypedArray } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import type { OpContext } from "./registry.js";

/** Index access common to every typed array; lets one loop copy elements of any dtype. */
export type Elements = { [index: number]: number | bigint; readonly length: number };

export const elements = (data: TypedArray): Elements => data as Elements;

/** Copies n elements; `set` on a subarray wins for long runs, a plain loop for short ones. */
export function copyBlock(src: TypedArray, from: number, dst: TypedArray, to: number, n: number): void {
  if (n >= 16) {
    (dst as Uint8Array).set((src as Uint8Array).subarray(from, from + n), to);
    return;
  }
  const s = src as Elements;
  const d = dst as Elements;
  for (let i = 0; i < n; i++) d[to + i] = s[from + i]!;
}

/** Fills n elements of dst with src[from]. */
export function fillBlock(src: TypedArray, from: number, dst: TypedArray, to: number, n: number): void {
  (dst as Uint8Array).fill((src as Elements)[from] as number, to, to + n);
}

/**
 * Row-major walk over a box of positions, calling `visit(srcOffset, dstOffset)` once per position. Offsets
 * advance incrementally by the given strides, so callers keep their inner loops free of index arrays.
 */
export function forEachOuter(
  counts: readonly number[],
  srcStrides: readonly number[],
  dstStrides: readonly number[],
  visit: (src: number, dst: number) => void,
): void {
  const n = counts.length;
  if (counts.some((c) => c === 0)) return;
  const idx = new Array<number>(n).fill(0);
  let src = 0;
  let dst = 0;
  for (;;) {
    visit(src, dst);
    let a = n - 1;
    while (a >= 0) {
      idx[a]!++;
      src += srcStrides[a]!;
      dst += dstStrides[a]!;
      if (idx[a]! < counts[a]!) break;
      src -= srcStrides[a]! * counts[a]!;
      dst -= dstStrides[a]! * counts[a]!;
      idx[a] = 0;
      a--;
    }
    if (a < 0) return;
  }
}

/** Integer values of a small int tensor (shape, axes, repeats), checked to be int32/int64. */
export function intValues(node: Node, t: Tensor, what: string): number[] {
  if (t.type !== "int64" && t.type !== "int32") {
    throw new OpError(node, `${what} must be int64 or int32, got ${t.type}`);
  }
  return t.toNumbers();
}

/** Normalises an axis against a rank, raising an OpError that names the node. */
export function checkedAxis(node: Node, axis: number, rank: number, what = "axis"): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new OpError(node, `${what} ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** Normalises a list of distinct axes; duplicates are an error. */
export function checkedAxes(node: Node, axes: readonly number[], rank: number, what = "axes"): number[] {
  const out = axes.map((a) => checkedAxis(node, a, rank, what === "axes" ? "axis" : what));
  if (new Set(out).size !== out.length) throw new OpError(node, `${what} [${axes}] contain duplicates`);
  return out;
}

/**
 * A required input, or an OpError: "missing" when running, and while inferring types (a TypeContext has
 * `constant`) one that also covers an input whose type is unknown because something upstream failed.
 */
export function requireInput<T>(ctx: OpContext, x: T | undefined, what: string): T {
  if (x !== undefined) return x;
  const inferring = "constant" in ctx;
  throw new OpError(
    ctx.node,
    inferring
      ? `type of input '${what}' is unknown (missing input or failed upstream)`
      : `missing required input '${what}'`,
  );
}
