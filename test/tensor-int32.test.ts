import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../src/ir/tensor.js";

test("Tensor.toInt32: int64 through its words (negatives, the int32 limits), undefined past int32 or for floats", () => {
  const ids = [0n, 1n, -1n, 30521n, 2147483647n, -2147483648n, -5n];
  assert.deepEqual(
    [...new Tensor("int64", BigInt64Array.from(ids), [7]).toInt32()!],
    ids.map((v) => Number(v)),
  );
  for (const big of [2147483648n, -2147483649n, 1n << 40n, -(1n << 40n)])
    assert.equal(new Tensor("int64", BigInt64Array.from([3n, big]), [2]).toInt32(), undefined, `${big}`);
  // A view into a larger buffer (an offset tensor) reads its own elements.
  const backing = BigInt64Array.from([9n, -7n, 8n, 123n]);
  assert.deepEqual([...new Tensor("int64", backing.subarray(1, 3), [2]).toInt32()!], [-7, 8]);
  const i32 = new Tensor("int32", Int32Array.from([4, -2]), [2]);
  const copy = i32.toInt32()!;
  assert.deepEqual([...copy], [4, -2]);
  copy[0] = 0;
  assert.equal(i32.data[0], 4, "a copy, not the tensor's own data");
  assert.deepEqual([...new Tensor("uint8", Uint8Array.from([255, 0]), [2]).toInt32()!], [255, 0]);
  assert.equal(new Tensor("float32", Float32Array.from([1]), [1]).toInt32(), undefined);
  assert.equal(new Tensor("float16", Uint16Array.from([0x3c00]), [1]).toInt32(), undefined);
});
