/** Comparing tensors against references: the one copy of these helpers for every test file. */
import assert from "node:assert/strict";
import type { Tensor } from "../../src/ir/tensor.js";

/** Largest |a − b| over two tensors of the same shape (a NaN on either side counts as infinite). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.dims.join() !== b.dims.join()) throw new Error(`shape mismatch [${a.dims}] vs [${b.dims}]`);
  let m = 0;
  for (let i = 0; i < a.size; i++) {
    const d = Math.abs(a.getNumber(i) - b.getNumber(i));
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/** Asserts `actual` has `expected`'s dtype and shape and is within `tolerance` of it everywhere. */
export function assertClose(actual: Tensor, expected: Tensor, tolerance: number, what = "tensor"): void {
  assert.equal(actual.type, expected.type, `${what}: dtype`);
  assert.deepEqual([...actual.dims], [...expected.dims], `${what}: shape`);
  const d = maxAbsDiff(actual, expected);
  assert.ok(d <= tolerance, `${what}: max |diff| ${d} > ${tolerance}`);
}

/** Asserts `actual` has shape `dims` and |actual − expected| ≤ tol·(1 + |expected|) element by element. */
export function assertValues(
  actual: Tensor,
  dims: readonly number[],
  expected: ArrayLike<number>,
  tol = 1e-5,
): void {
  assert.deepEqual([...actual.dims], [...dims]);
  assert.equal(actual.size, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual.getNumber(i);
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `element ${i}: got ${a}, expected ${e}`);
  }
}
