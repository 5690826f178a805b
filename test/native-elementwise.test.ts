import assert from "node:assert/strict";
import { test } from "node:test";
import { floatAttr } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import "../src/ops/normalization.js";
import { geluErfFloat32, geluTanh, sigmoid } from "../src/ops/elementwise-util.js";
import { assertClose, forEachConfig, rand, skipNative } from "./native-helpers.js";
import { runOp } from "./support/ops.js";

const specials = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0,
  -0,
  1e30,
  -1e30,
  88,
  -88,
];

/** Random values with the special values sprinkled in. */
function withSpecials(n: number, seed: number): Float32Array {
  const x = rand(n, seed).map((v) => v * 6);
  specials.forEach((s, i) => {
    if (n > 0) x[(i * 37) % n] = s;
  });
  return x;
}

/** Float64 LayerNorm of one row, as src/ops/normalization.ts computes it. */
function layerNormRef(x: ArrayLike<number>, g: Float32Array, b: Float32Array | undefined, eps: number) {
  const d = x.length;
  let mu = 0;
  for (let j = 0; j < d; j++) mu += x[j]!;
  mu /= d;
  let sq = 0;
  for (let j = 0; j < d; j++) sq += (x[j]! - mu) ** 2;
  const inv = 1 / Math.sqrt(sq / d + eps);
  return { y: Array.from(x, (v, j) => (v - mu) * inv * g[j]! + (b ? b[j]! : 0)), mu, inv };
}

test("LayerNorm: odd widths, offsets, statistics, NaN/Inf rows", { skip: skipNative }, () => {
  forEachConfig((nk, label) => {
    for (const [rows, d] of [
      [1, 1],
      [3, 5],
      [17, 768],
      [64, 1000],
      [300, 31],
    ] as const) {
      const x = rand(2 + rows * d, rows + d).map((v) => v * 3 + 0.5);
      if (rows > 2) {
        x[2 + d + 1] = Number.NaN; // row 1 NaN
        x[2 + 2 * d] = Number.POSITIVE_INFINITY; // row 2: inf - inf = NaN
      }
      const g = rand(d, 7);
      const b = rand(d, 8);
      const y = new Float32Array(1 + rows * d);
      const mean = new Float32Array(rows);
      const invStd = new Float32Array(rows);
      nk.layerNorm(x, y, rows, d, g, { beta: b, epsilon: 1e-5, xOffset: 2, yOffset: 1, mean, invStd });
      for (let r = 0; r < rows; r++) {
        const ref = layerNormRef(x.subarray(2 + r * d, 2 + (r + 1) * d), g, b, 1e-5);
        const tol = 2e-6 * Math.max(1, ...ref.y.filter(Number.isFinite).map(Math.abs));
        assertClose(y.subarray(1 + r * d, 1 + (r + 1) * d), ref.y, tol, `LN ${label} ${rows}x${d} row ${r}`);
        assertClose([mean[r]!, invStd[r]!], [ref.mu, ref.inv], 1e-5 * Math.max(1, ref.inv), "stats");
      }
      assert.equal(y[0], 0, "nothing before yOffset is written");
    }
  });
});

test("SkipLayerNorm: skip broadcast over the batch, bias, sum output", { skip: skipNative }, () => {
  forEachConfig((nk, label) => {
    for (const [rows, skipRows, d] of [
      [6, 3, 37],
      [128, 128, 768],
      [5, 1, 16],
    ] as const) {
      const x = rand(rows * d, 1);
      const skip = rand(skipRows * d, 2);
      const bias = rand(d, 3);
      const g = rand(d, 4);
      const y = new Float32Array(rows * d);
      const sum = new Float32Array(rows * d);
      nk.skipLayerNorm({ x, skip, skipRows, bias, gamma: g, y, sum, rows, d, epsilon: 1e-12 });
      const noBeta = new Float32Array(rows * d);
      nk.skipLayerNorm({ x, skip, skipRows, gamma: g, y: noBeta, rows, d });
      for (let r = 0; r < rows; r++) {
        const s = Array.from({ length: d }, (_, j) =>
          Math.fround(x[r * d + j]! + skip[(r % skipRows) * d + j]! + bias[j]!),
        );
        assertClose(sum.subarray(r * d, (r + 1) * d), s, 1e-6, `sum ${label}`);
        assertClose(
          y.subarray(r * d, (r + 1) * d),
          layerNormRef(s, g, undefined, 1e-12).y,
          2e-5,
          `SLN ${label}`,
        );
        const s2 = Array.from({ length: d }, (_, j) => x[r * d + j]! + skip[(r % skipRows) * d + j]!);
        assertClose(
          noBeta.subarray(r * d, (r + 1) * d),
          layerNormRef(s2, g, undefined, 1e-12).y,
          2e-5,
          "no bias",
        );
      }
    }
  });
});

test("SkipLayerNorm: NaN and ±Inf in x, skip and bias propagate as the reference op (sum and output)", {
  skip: skipNative,
}, () => {
  forEachConfig((nk, label) => {
    for (const [batch, seq, d] of [
      [2, 3, 37],
      [1, 8, 768],
      [4, 1, 16],
    ] as const) {
      const rows = batch * seq;
      const x = rand(rows * d, d).map((v) => v * 3);
      const skip = rand(seq * d, d + 1); // [seq, d] broadcast over the batch when batch > 1
      const bias = rand(d, 7);
      const g = rand(d, 8);
      const beta = rand(d, 9);
      x[3] = Number.NaN; // row 0: NaN
      if (rows > 1) x[d] = Number.POSITIVE_INFINITY; // row 1: one +inf (mean inf, inf − inf = NaN)
      if (rows > 2) {
        x[2 * d + 1] = Number.POSITIVE_INFINITY; // row 2: +inf and −inf in one row
        x[2 * d + 2] = Number.NEGATIVE_INFINITY;
      }
      skip[(seq - 1) * d + (d - 1)] = Number.NEGATIVE_INFINITY; // the last skip row: every batch's last row
      const sum = new Float32Array(rows * d).fill(7);
      const y = new Float32Array(rows * d).fill(7);
      nk.skipLayerNorm({ x, skip, skipRows: seq, bias, gamma: g, beta, y, sum, rows, d, epsilon: 1e-5 });
      const t = (data: Float32Array, dims: number[]) => new Tensor("float32", data, dims);
      const [refY, , , refSum] = runOp(
        "SkipLayerNormalization",
        [t(x, [batch, seq, d]), t(skip, [seq, d]), t(g, [d]), t(beta, [d]), t(bias, [d])],
        { epsilon: floatAttr(1e-5) },
        1,
        "com.microsoft",
        4,
      );
      const what = `SLN ${label} ${batch}x${seq}x${d}`;
      assertClose(sum, Array.from(refSum!.data as Float32Array), 1e-6, `${what} sum`);
      assertClose(y, Array.from(refY!.data as Float32Array), 2e-5, `${what} y`);
      // The cases above do reach the output: NaN rows and an infinite sum.
      assert.ok(y.subarray(0, d).every(Number.isNaN), `${what}: the NaN row`);
      assert.equal(sum[(seq - 1) * d + (d - 1)], Number.NEGATIVE_INFINITY);
    }
    // A NaN bias element: that column of every row's sum is NaN, so every row is.
    const d = 24;
    const bias = rand(d, 3);
    bias[5] = Number.NaN;
    const y = new Float32Array(3 * d);
    nk.skipLayerNorm({ x: rand(3 * d, 1), skip: rand(3 * d, 2), bias, gamma: rand(d, 4), y, rows: 3, d });
    assert.ok(y.every(Number.isNaN), `SLN ${label}: NaN bias`);
  });
});

test("LayerNorm, SkipLayerNorm and Softmax with rows = 0 write nothing", { skip: skipNative }, () => {
  forEachConfig((nk, label) => {
    for (const d of [1, 16, 768]) {
      const g = rand(d, 1);
      const y = new Float32Array(d).fill(Number.NaN);
      const mean = new Float32Array(1).fill(Number.NaN);
      const invStd = new Float32Array(1).fill(Number.NaN);
      nk.layerNorm(new Float32Array(0), y, 0, d, g, { beta: rand(d, 2), mean, invStd });
      nk.layerNorm(new Float32Array(0), new Float32Array(0), 0, d, g);
      nk.skipLayerNorm({
        x: new Float32Array(0),
        skip: new Float32Array(0),
        gamma: g,
        y,
        sum: y,
        rows: 0,
        d,
      });
      nk.softmax(new Float32Array(0), y, 0, d);
      nk.softmax(new Float32Array(0), new Float32Array(0), 0, d);
      for (const out of [y, mean, invStd]) assert.ok(out.every(Number.isNaN), `${label} d=${d}: written`);
    }
  });
});

test("Softmax: rows of any width; NaN, +inf and all -inf rows as the reference", { skip: skipNative }, () => {
  forEachConfig((nk, label) => {
    for (const [rows, d] of [
      [1, 1],
      [4, 7],
      [9, 128],
      [33, 1001],
    ] as const) {
      const x = rand(rows * d, d).map((v) => v * 20);
      if (rows >= 4) {
        x[d + (2 % d)] = Number.NaN;
        x[2 * d + (d - 1)] = Number.POSITIVE_INFINITY;
        x.fill(Number.NEGATIVE_INFINITY, 3 * d, 4 * d);
      }
      const y = new Float32Array(rows * d);
      nk.softmax(x, y, rows, d);
      for (let r = 0; r < rows; r++) {
        const row = Array.from(x.subarray(r * d, (r + 1) * d));
        let max = Number.NEGATIVE_INFINITY;
        for (const v of row) if (v > max) max = v;
        const e = row.map((v) => Math.exp(v - max));
        const sum = e.reduce((a, b) => a + b, 0);
        assertClose(
          y.subarray(r * d, (r + 1) * d),
          e.map((v) => v / sum),
          2e-7,
          `softmax ${label} row ${r}`,
        );
      }
    }
  });
});

test("GELU (erf), FastGelu (tanh), bias: element for element the JS reference, ±Inf and NaN included", {
  skip: skipNative,
}, () => {
  forEachConfig((nk, label) => {
    for (const n of [1, 5, 16, 100, 70001]) {
      const x = withSpecials(n, n);
      const y = new Float32Array(n);
      nk.gelu(x, y);
      const tol = Array.from(x, (v) => 3e-7 * Math.max(1, Math.abs(v)));
      assertClose(y, Array.from(x, geluErfFloat32), tol, `gelu ${label} n=${n}`);
      nk.fastGelu(x, y);
      assertClose(y, Array.from(x, geluTanh), tol, `fastGelu ${label} n=${n}`);
      const bias = rand(7, 3);
      nk.gelu(x, y, { bias });
      const xb = Array.from(x, (v, i) => Math.fround(v + bias[i % 7]!));
      assertClose(y, xb.map(geluErfFloat32), tol, `biasGelu ${label} n=${n}`);
    }
    // An offset view: only [xOffset, xOffset + n) is read, [yOffset, yOffset + n) written.
    const x = rand(40, 9);
    const y = new Float32Array(40).fill(7);
    nk.gelu(x, y, { xOffset: 3, yOffset: 5, n: 30 });
    assertClose(y.subarray(5, 35), Array.from(x.subarray(3, 33), geluErfFloat32), 3e-7, "offset");
    assert.deepEqual(Array.from(y.subarray(0, 5)), [7, 7, 7, 7, 7]);
  });
});

// ReLU exactly (Math.max keeps NaN; -0 compares equal to 0); Sigmoid within 3e-7 of the float64 reference (2-3
// float32 ulps of vexp), ±Inf to 1 and 0. Every width, the special values sprinkled in, NaN in NaN out.
const MAPS: ["relu" | "sigmoid", (v: number) => number, number][] = [
  ["relu", (v) => Math.max(v, 0), 0],
  ["sigmoid", sigmoid, 3e-7],
];
for (const [act, reference, tol] of MAPS) {
  test(`${act}: the native map element for element the reference, NaN and ±Inf included, every width`, {
    skip: skipNative,
  }, () => {
    forEachConfig((nk, label) => {
      for (const n of [1, 5, 16, 100, 70001]) {
        const x = withSpecials(n, n + 1);
        const y = new Float32Array(n).fill(9);
        nk.activation(act, x, y);
        assertClose(y, Array.from(x, reference), tol, `${act} ${label} n=${n}`);
      }
    });
  });
}

test("Relu on the CPU backend (the native map for float32): the reference's numbers, NaN and ±Inf included", async () => {
  const { runOp, runOpOnCpu } = await import("./support/ops.js");
  const { Tensor } = await import("../src/ir/tensor.js");
  const x = new Tensor("float32", withSpecials(3 * 1000, 7), [3, 1000]);
  const want = runOp("Relu", [x])[0]!;
  const got = runOpOnCpu({ opType: "Relu" }, [x])[0]!;
  assert.deepEqual([...got.dims], [3, 1000]);
  assertClose(got.data as Float32Array, Array.from(want.data as Float32Array), 0, "relu on the cpu backend");
});

test("Add: same shape and a row broadcast, with NaN/Inf", { skip: skipNative }, () => {
  forEachConfig((nk, label) => {
    for (const [n, bl] of [
      [1, 1],
      [100, 100],
      [768 * 40, 768],
      [99, 9],
    ] as const) {
      const a = withSpecials(n, 1);
      const b = withSpecials(bl, 2);
      const y = new Float32Array(n);
      nk.add(a, b, y);
      assertClose(
        y,
        Array.from(a, (v, i) => Math.fround(v + b[i % bl]!)),
        0,
        `add ${label} ${n}/${bl}`,
      );
    }
  });
});

test("allFinite: NaN and ±Infinity found anywhere in the range, offsets, block edges and pool tasks included", {
  skip: skipNative,
}, () => {
  forEachConfig((nk, label) => {
    // 300 001: split over the pool's tasks (units of 4096), a hit in the first, a middle and the last unit.
    for (const n of [0, 1, 15, 4096, 4097, 10000, 300_001]) {
      const x = rand(n + 3, n).map((v) => v * 1e30);
      assert.equal(nk.allFinite(x), true, `${label} n=${n} finite`);
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])
        for (const at of n > 0 ? [0, n >> 1, n - 1] : []) {
          const y = x.slice();
          y[at + 2] = bad;
          assert.equal(nk.allFinite(y, 2, n), false, `${label} n=${n} ${bad} at ${at}`);
          // Outside [offset, offset + n): not looked at.
          assert.equal(nk.allFinite(y, 0, at + 2), true, `${label} n=${n} ${bad} before its range`);
        }
    }
    assert.equal(nk.allFinite(Float32Array.of(3.4028234663852886e38, -3.4028234663852886e38, 1e-45)), true);
  });
});
