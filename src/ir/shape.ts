import type { Dim } from "./graph.js";

/** Numpy-style broadcast of concrete shapes; undefined when incompatible. */
export function broadcastDims(a: readonly number[], b: readonly number[]): number[] | undefined {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x === y || y === 1) out[i] = x;
    else if (x === 1) out[i] = y;
    else return undefined;
  }
  return out;
}

/** Broadcast of symbolic shapes: equal symbols stay, 1 yields to the other, unknown when undecidable. */
export function broadcastSymbolic(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const n = Math.max(a.length, b.length);
  const out = new Array<Dim>(n);
  for (let i = 0; i < n; i++) {
    const x = i - (n - a.length) >= 0 ? a[i - (n - a.length)]! : 1;
    const y = i - (n - b.length) >= 0 ? b[i - (n - b.length)]! : 1;
    if (x === y) out[i] = x;
    else if (y === 1) out[i] = x;
    else if (x === 1) out[i] = y;
    else if (typeof x === "number" && typeof y === "number") return undefined;
    else out[i] = typeof x === "number" ? x : typeof y === "number" ? y : null;
  }
  return out;
}

/** Negative axis → positive; throws RangeError outside [-rank, rank). */
export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export function isConcrete(shape: readonly Dim[] | undefined): shape is number[] {
  return !!shape && shape.every((d) => typeof d === "number");
}
