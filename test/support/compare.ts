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

/**
 * For outputs of a padding-removed run: max |a − b| over the token rows a [B, S] attention mask marks valid, and
 * the largest |a| over the padded rows (0 when padding removal wrote them). Tensors whose leading dims are not
 * [B, S] are compared whole.
 */
export function maskedDiff(a: Tensor, b: Tensor, mask: Tensor): { valid: number; padded: number } {
  if (a.dims.join() !== b.dims.join()) throw new Error(`shape mismatch [${a.dims}] vs [${b.dims}]`);
  const [B, S] = mask.dims as [number, number];
  const tokenRows = a.rank >= 2 && a.dims[0] === B && a.dims[1] === S;
  if (!tokenRows) return { valid: maxAbsDiff(a, b), padded: 0 };
  const width = a.size / (B * S);
  let valid = 0;
  let padded = 0;
  for (let i = 0; i < a.size; i++) {
    const isValid = mask.getNumber(Math.floor(i / width)) !== 0;
    const d = isValid ? Math.abs(a.getNumber(i) - b.getNumber(i)) : Math.abs(a.getNumber(i));
    const v = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (isValid) valid = Math.max(valid, v);
    else padded = Math.max(padded, v);
  }
  return { valid, padded };
}
