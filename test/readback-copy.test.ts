/**
 * The readback's host copy (src/backends/webgpu/readback.ts copyBytes): large outputs go through the native
 * addon's pooled memcpy (src/native), small ones and addon-less processes through JS — the same bytes either
 * way, at odd sizes and offsets that split unevenly over the threads. No GPU needed: the source is any
 * ArrayBuffer, as the mapped range is.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { copyBytes } from "../src/backends/webgpu/readback.js";
import { loadNativeQuietly } from "../src/native/load.js";
import { skipNative } from "./native-helpers.js";

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

test("readback copyBytes: every byte, below and above the parallel threshold, with a longer source", () => {
  for (const n of [0, 1, 4095, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 12345, 12_582_912]) {
    const src = pattern(n + 64, n);
    const dest = new ArrayBuffer(n + 8);
    new Uint8Array(dest).fill(0xee);
    copyBytes(dest, src.buffer as ArrayBuffer, n);
    const d = new Uint8Array(dest);
    assert.deepEqual(d.subarray(0, n), src.subarray(0, n), `n = ${n}`);
    assert.ok(
      d.subarray(n).every((b) => b === 0xee),
      `n = ${n}: bytes past n untouched`,
    );
  }
});

test("native copyBytes: offsets into views, and a range past either end is a RangeError", {
  skip: skipNative,
}, () => {
  const native = loadNativeQuietly()!;
  assert.ok(native.copyBytes, "this build exports copyBytes");
  const src = pattern(5_000_003, 7);
  const dest = new Uint8Array(5_000_100);
  native.copyBytes!(dest.subarray(13), 7, src, 3, 4_999_990);
  assert.deepEqual(dest.subarray(20, 20 + 4_999_990), src.subarray(3, 3 + 4_999_990));
  assert.ok(dest.subarray(0, 20).every((b) => b === 0));
  assert.throws(
    () => native.copyBytes!(dest, 0, src, 4, 5_000_000),
    (e: NodeJS.ErrnoException) =>
      e instanceof RangeError && e.code === "ERR_MHAFUSE_NATIVE_ARG" && /src/.test(e.message),
  );
  assert.throws(
    () => native.copyBytes!(dest.subarray(0, 10), 0, src, 0, 11),
    (e: NodeJS.ErrnoException) => e.code === "ERR_MHAFUSE_NATIVE_ARG" && /dst/.test(e.message),
  );
  assert.throws(() => native.copyBytes!({} as ArrayBuffer, 0, src, 0, 1), /ArrayBuffer/);
  // Offsets and counts whose sum passes 2^63 are refused, not wrapped (a sum check would pass them).
  const big = 2 ** 62;
  assert.throws(
    () => native.copyBytes!(new ArrayBuffer(8), big, new ArrayBuffer(8), big, big),
    (e: NodeJS.ErrnoException) => e.code === "ERR_MHAFUSE_NATIVE_ARG",
  );
  assert.throws(
    () => native.copyBytes!(new ArrayBuffer(8), 4, new ArrayBuffer(8), 0, 2 ** 53 - 8),
    (e: NodeJS.ErrnoException) => e.code === "ERR_MHAFUSE_NATIVE_ARG",
  );
});

test("native copyBytes: overlapping views of one buffer move as TypedArray.set does", {
  skip: skipNative,
}, () => {
  const native = loadNativeQuietly()!;
  const n = 3_000_000;
  for (const [from, to] of [
    [0, 1000],
    [1000, 0],
  ] as const) {
    const buf = pattern(n + 1000, 11);
    const want = buf.slice();
    want.set(want.subarray(from, from + n), to);
    native.copyBytes!(buf, to, buf, from, n);
    assert.deepEqual(buf, want, `${from} → ${to}`);
  }
});
