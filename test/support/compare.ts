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
