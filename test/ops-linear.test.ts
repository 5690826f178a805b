import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { gemm } from "../src/backends/cpu/gemm.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { floatToHalf, halfToFloat } from "../src/ir/float16.js";
import type { Attribute, Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import "../src/ops/conv.js";
import "../src/ops/einsum.js";
import "../src/ops/matmul.js";
import { getOp } from "../src/ops/registry.js";
import { assertValues } from "./support/compare.js";
import { runOp } from "./support/ops.js";

// ---- helpers ------------------------------------------------------------------------------------------

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const randTensor = (dims: number[], seed: number, type: "float32" | "float64" = "float32") =>
  new Tensor(type, rand(size(dims), seed), dims);

const int = (value: number): Attribute => ({ type: "int", value });
const ints = (value: number[]): Attribute => ({ type: "ints", value });
const float = (value: number): Attribute => ({ type: "float", value });
const str = (value: string): Attribute => ({ type: "string", value });

/** Row-major flat index → multi-index. */
function unravel(flat: number, dims: readonly number[]): number[] {
  const idx = new Array<number>(dims.length);
  for (let d = dims.length - 1; d >= 0; d--) {
    idx[d] = flat % dims[d]!;
    flat = Math.floor(flat / dims[d]!);
  }
  return idx;
}
const ravel = (idx: readonly number[], dims: readonly number[]) =>
  idx.reduce((acc, v, d) => acc * dims[d]! + v, 0);

/** numpy.matmul in float64, written from the definition (promotion, broadcast, then per-element dot). */
function refMatmul(a: Tensor, b: Tensor): { dims: number[]; data: number[] } {
  const A = a.toFloat64();
  const B = b.toFloat64();
  const ad = a.rank === 1 ? [1, a.dims[0]!] : [...a.dims];
  const bd = b.rank === 1 ? [b.dims[0]!, 1] : [...b.dims];
  const rank = Math.max(ad.length, bd.length);
  const pad = (d: number[]) => [...new Array(rank - d.length).fill(1), ...d];
  const ap = pad(ad);
  const bp = pad(bd);
  const batch = ap.slice(0, -2).map((x, i) => Math.max(x, bp[i]!));
  const [M, K, N] = [ap[rank - 2]!, ap[rank - 1]!, bp[rank - 1]!];
  const full = [...batch, M, N];
  const data: number[] = [];
  for (let f = 0; f < size(full); f++) {
    const idx = unravel(f, full);
    const [i, j] = [idx[rank - 2]!, idx[rank - 1]!];
    const bIdx = idx.slice(0, -2);
    let acc = 0;
    for (let k = 0; k < K; k++) {
      const ai = [...bIdx.map((v, d) => (ap[d] === 1 ? 0 : v)), i, k];
      const bi = [...bIdx.map((v, d) => (bp[d] === 1 ? 0 : v)), k, j];
      acc += A[ravel(ai, ap)]! * B[ravel(bi, bp)]!;
    }
    data.push(acc);
  }
  const dims = [...batch];
  if (a.rank > 1) dims.push(M);
  if (b.rank > 1) dims.push(N);
  return { dims, data };
}

// ---- GEMM kernel ----------------------------------------------------------------------------------------

test("gemm kernel matches a naive float64 product for odd sizes, transposes, alpha and beta", () => {
  const sizes = [1, 3, 17, 65, 130];
  let seed = 1;
  for (const M of sizes) {
    for (const N of [1, 17, 130]) {
      for (const K of [1, 3, 65, 300]) {
        for (const [transA, transB] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          const alpha = 0.75;
          const beta = M % 2 ? 0 : -1.5;
          const A = Float32Array.from(rand(M * K, seed++));
          const B = Float32Array.from(rand(K * N, seed++));
          const C0 = Float32Array.from(rand(M * N, seed++));
          const lda = transA ? M : K;
          const ldb = transB ? K : N;
          const C = C0.slice();
          gemm({
            transA,
            transB,
            M,
            N,
            K,
            alpha,
            A,
            aOffset: 0,
            lda,
            B,
            bOffset: 0,
            ldb,
            beta,
            C,
            cOffset: 0,
            ldc: N,
          });
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              let acc = 0;
              for (let k = 0; k < K; k++) {
                acc += A[transA ? k * lda + i : i * lda + k]! * B[transB ? j * ldb + k : k * ldb + j]!;
              }
              const want = alpha * acc + beta * C0[i * N + j]!;
              const got = C[i * N + j]!;
              assert.ok(
                Math.abs(got - want) <= 1e-5 * (1 + Math.abs(want)) * Math.sqrt(K),
                `M=${M} N=${N} K=${K} tA=${transA} tB=${transB} (${i},${j}): ${got} vs ${want}`,
              );
            }
          }
        }
      }
    }
  }
});

test("gemm kernel works on sub-blocks addressed by offset and leading dimension", () => {
  // A 5×7 window at (2,3) of a 10×12 A, times a 7×4 window of a 9×6 B, into a 5×4 window of an 8×9 C.
  const Abig = Float32Array.from(rand(10 * 12, 7));
  const Bbig = Float32Array.from(rand(9 * 6, 8));
  const C = new Float32Array(8 * 9).fill(42);
  gemm({
    ...{ transA: false, transB: false, M: 5, N: 4, K: 7, alpha: 1, A: Abig, aOffset: 2 * 12 + 3, lda: 12 },
    ...{ B: Bbig, bOffset: 1 * 6 + 2, ldb: 6, beta: 0, C, cOffset: 1 * 9 + 4, ldc: 9 },
  });
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 9; c++) {
      const inside = r >= 1 && r < 6 && c >= 4 && c < 8;
      if (!inside) {
        assert.equal(C[r * 9 + c], 42, `untouched element (${r},${c})`);
        continue;
      }
      let acc = 0;
      for (let k = 0; k < 7; k++) acc += Abig[(2 + r - 1) * 12 + 3 + k]! * Bbig[(1 + k) * 6 + 2 + c - 4]!;
      assert.ok(Math.abs(C[r * 9 + c]! - acc) < 1e-5);
    }
  }
});

test("gemm split into row blocks (as worker threads would) equals one call, also with transA", () => {
  const [M, N, K] = [37, 21, 19];
  for (const transA of [false, true]) {
    const A = Float32Array.from(rand(M * K, 11));
    const B = Float32Array.from(rand(K * N, 12));
    const lda = transA ? M : K;
    const whole = new Float32Array(M * N);
    gemm({
      transA,
      transB: false,
      M,
      N,
      K,
      alpha: 1,
      A,
      aOffset: 0,
      lda,
      B,
      bOffset: 0,
      ldb: N,
      beta: 0,
      C: whole,
      cOffset: 0,
      ldc: N,
    });
    const split = new Float32Array(M * N);
    for (const [i0, i1] of [
      [0, 10],
      [10, 11],
      [11, 37],
    ] as const) {
      gemm({
        ...{ transA, transB: false, M: i1 - i0, N, K, alpha: 1, A, aOffset: transA ? i0 : i0 * lda, lda },
        ...{ B, bOffset: 0, ldb: N, beta: 0, C: split, cOffset: i0 * N, ldc: N },
      });
    }
    assert.deepEqual(split, whole);
  }
});

test("gemm with beta = 0 ignores NaN already in C", () => {
  const C = new Float32Array([Number.NaN, Number.NaN]);
  gemm({
    ...{
      transA: false,
      transB: false,
      M: 1,
      N: 2,
      K: 1,
      alpha: 1,
      A: new Float32Array([2]),
      aOffset: 0,
      lda: 1,
    },
    ...{ B: new Float32Array([3, 4]), bOffset: 0, ldb: 2, beta: 0, C, cOffset: 0, ldc: 2 },
  });
  assert.deepEqual([...C], [6, 8]);
});

// ---- MatMul ---------------------------------------------------------------------------------------------

test("MatMul follows numpy semantics: 1-D operands and batch broadcasting", () => {
  const cases: [number[], number[]][] = [
    [[3], [3]],
    [[3], [3, 4]],
    [[2, 3], [3]],
    [
      [4, 5, 6],
      [6, 7],
    ],
    [
      [2, 1, 3, 5],
      [4, 5, 2],
    ],
    [
      [1, 3, 5],
      [2, 5, 2],
    ],
    [[5], [2, 5, 3]],
    [[2, 3, 4], [4]],
  ];
  cases.forEach(([ad, bd], i) => {
    const a = randTensor(ad, 10 + i);
    const b = randTensor(bd, 50 + i);
    const ref = refMatmul(a, b);
    assertValues(runOp("MatMul", [a, b])[0]!, ref.dims, ref.data);
  });
});

test("MatMul hand-computed values and non-float32 dtypes", () => {
  const a = new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]);
  const b = new Tensor("float32", [7, 8, 9, 10, 11, 12], [3, 2]);
  assertValues(runOp("MatMul", [a, b])[0]!, [2, 2], [58, 64, 139, 154]);

  const a64 = new Tensor("float64", [1e-10, 1, 2, 3], [2, 2]);
  const b64 = new Tensor("float64", [1, 1e-10, 1, 1], [2, 2]);
  const r64 = runOp("MatMul", [a64, b64])[0]!;
  assert.equal(r64.type, "float64");
  assert.deepEqual([...r64.data], [1e-10 + 1, 1e-20 + 1, 5, 2e-10 + 3]);

  const ai = new Tensor("int64", [1, -2, 3, 4], [2, 2]);
  const bi = new Tensor("int64", [5, 6, 7, 8], [2, 2]);
  const ri = runOp("MatMul", [ai, bi])[0]!;
  assert.equal(ri.type, "int64");
  assert.deepEqual(ri.toNumbers(), [-9, -10, 43, 50]);

  const a32 = new Tensor("int32", [2, 3], [1, 2]);
  assert.deepEqual(runOp("MatMul", [a32, new Tensor("int32", [4, 5], [2, 1])])[0]!.toNumbers(), [23]);
});

test("MatMul float16 computes in float32 and rounds the result to half precision", () => {
  const half = (xs: number[], dims: number[]) =>
    new Tensor("float16", Uint16Array.from(xs.map(floatToHalf)), dims);
  const a = half([0.1, 0.2], [1, 2]);
  const b = half([3, 5], [2, 1]);
  const r = runOp("MatMul", [a, b])[0]!;
  assert.equal(r.type, "float16");
  const exact = halfToFloat(floatToHalf(0.1)) * 3 + halfToFloat(floatToHalf(0.2)) * 5;
  assert.deepEqual(r.toNumbers(), [halfToFloat(floatToHalf(exact))]);
});

test("MatMul rejects mismatched inner dimensions", () => {
  assert.throws(() => runOp("MatMul", [randTensor([2, 3], 1), randTensor([4, 2], 2)]), /inner dimensions/);
});

test("MatMul and Gemm infer symbolic shapes", () => {
  const node = (opType: string, attrs: Record<string, Attribute> = {}): Node => ({
    name: "n",
    opType,
    domain: "",
    inputs: ["a", "b"],
    outputs: ["y"],
    attrs,
  });
  const infer = (n: Node, a: (number | string | null)[], b: (number | string | null)[]) =>
    getOp(n).inferTypes({
      node: n,
      opset: 17,
      inputs: [
        { dtype: "float32", shape: a },
        { dtype: "float32", shape: b },
      ],
      constant: () => undefined,
    })[0];
  assert.deepEqual(infer(node("MatMul"), ["batch", "seq", 64], [64, 256]), {
    dtype: "float32",
    shape: ["batch", "seq", 256],
  });
  assert.deepEqual(infer(node("MatMul"), ["b", 4, "s", 16], ["b", 4, 16, "t"])?.shape, ["b", 4, "s", "t"]);
  assert.deepEqual(infer(node("MatMul"), [64], [1, 64, 8])?.shape, [1, 8]);
  assert.deepEqual(infer(node("Gemm", { transB: int(1) }), ["n", 64], [32, 64])?.shape, ["n", 32]);
});

test("Conv and Einsum infer symbolic shapes", () => {
  const infer = (opType: string, attrs: Record<string, Attribute>, shapes: (number | string | null)[][]) => {
    const n: Node = {
      name: "n",
      opType,
      domain: "",
      inputs: shapes.map((_, i) => `i${i}`),
      outputs: ["y"],
      attrs,
    };
    return getOp(n).inferTypes({
      node: n,
      opset: 17,
      inputs: shapes.map((shape) => ({ dtype: "float32", shape })),
      constant: () => undefined,
    })[0]?.shape;
  };
  // ViT patch embedding.
  const patch = { strides: ints([16, 16]), kernel_shape: ints([16, 16]) };
  assert.deepEqual(
    infer("Conv", patch, [
      ["batch", 3, 224, 224],
      [768, 3, 16, 16],
    ]),
    ["batch", 768, 14, 14],
  );
  assert.deepEqual(
    infer("Conv", { auto_pad: str("SAME_UPPER"), strides: ints([2]) }, [
      ["n", 4, 9],
      [8, 4, 3],
    ]),
    ["n", 8, 5],
  );
  assert.deepEqual(
    infer("Conv", {}, [
      ["n", 4, "len"],
      [8, 4, 3],
    ]),
    ["n", 8, null],
  );
  assert.deepEqual(
    infer("Einsum", { equation: str("bhid,bhjd->bhij") }, [
      ["b", 4, "s", 16],
      ["b", 4, "t", 16],
    ]),
    ["b", 4, "s", "t"],
  );
  assert.deepEqual(
    infer("Einsum", { equation: str("...ij,jk") }, [
      ["b", 1, "s", 8],
      [8, 3],
    ]),
    ["b", 1, "s", 3],
  );
});

// ---- Gemm -----------------------------------------------------------------------------------------------

test("Gemm: every transA/transB/alpha/beta combination, C broadcast forms and no C", () => {
  const [M, N, K] = [5, 7, 9];
  let seed = 100;
  const cShapes: (number[] | undefined)[] = [undefined, [M, N], [N], [1, N], [M, 1], [], [1], [1, 1]];
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      for (const [alpha, beta] of [
        [1, 1],
        [0.5, 2],
        [-1.25, 0],
      ] as const) {
        for (const cShape of cShapes) {
          const a = randTensor(transA ? [K, M] : [M, K], seed++);
          const b = randTensor(transB ? [N, K] : [K, N], seed++);
          const c = cShape ? randTensor(cShape, seed++) : undefined;
          const A = a.toFloat64();
          const B = b.toFloat64();
          const Cv = c?.toFloat64();
          const want: number[] = [];
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              let acc = 0;
              for (let k = 0; k < K; k++) {
                acc += A[transA ? k * M + i : i * K + k]! * B[transB ? j * K + k : k * N + j]!;
              }
              let cv = 0;
              if (c && Cv) {
                const ci =
                  c.rank === 2
                    ? (c.dims[0] === 1 ? 0 : i) * c.dims[1]! + (c.dims[1] === 1 ? 0 : j)
                    : c.rank === 1
                      ? c.dims[0] === 1
                        ? 0
                        : j
                      : 0;
                cv = Cv[ci]!;
              }
              want.push(alpha * acc + beta * cv);
            }
          }
          const attrs = { transA: int(transA), transB: int(transB), alpha: float(alpha), beta: float(beta) };
          assertValues(runOp("Gemm", [a, b, c], attrs)[0]!, [M, N], want);
        }
      }
    }
  }
});

test("Gemm float64 path and C that does not broadcast", () => {
  const a = new Tensor("float64", [1, 2, 3, 4], [2, 2]);
  const b = new Tensor("float64", [1, 0, 0, 1], [2, 2]);
  const c = new Tensor("float64", [10, 20], [2]);
  const r = runOp("Gemm", [a, b, c], { alpha: float(2), beta: float(0.5) })[0]!;
  assert.deepEqual([...r.data], [7, 14, 11, 18]);
  assert.throws(() => runOp("Gemm", [a, b, new Tensor("float64", [1, 2, 3], [3])]), /broadcast/);
});

// ---- Conv -----------------------------------------------------------------------------------------------

/** Direct-definition N-d convolution in float64 with explicit pads (begin…, end…). */
function refConv(
  x: Tensor,
  w: Tensor,
  bias: Tensor | undefined,
  o: { strides: number[]; dilations: number[]; pads: number[]; group: number },
): { dims: number[]; data: number[] } {
  const X = x.toFloat64();
  const W = w.toFloat64();
  const B = bias?.toFloat64();
  const [N, C] = [x.dims[0]!, x.dims[1]!];
  const sp = x.dims.slice(2);
  const ks = w.dims.slice(2);
  const n = sp.length;
  const M = w.dims[0]!;
  const cg = C / o.group;
  const mg = M / o.group;
  const out = sp.map(
    (s, i) =>
      Math.floor((s + o.pads[i]! + o.pads[i + n]! - o.dilations[i]! * (ks[i]! - 1) - 1) / o.strides[i]!) + 1,
  );
  const dims = [N, M, ...out];
  const data: number[] = [];
  for (let f = 0; f < size(dims); f++) {
    const [bn, m, ...op] = unravel(f, dims) as [number, number, ...number[]];
    const g = Math.floor(m / mg);
    let acc = B ? B[m]! : 0;
    for (let c = 0; c < cg; c++) {
      for (let kf = 0; kf < size(ks); kf++) {
        const kp = unravel(kf, ks);
        const ip = op.map((v, i) => v * o.strides[i]! - o.pads[i]! + kp[i]! * o.dilations[i]!);
        if (ip.some((v, i) => v < 0 || v >= sp[i]!)) continue;
        acc += X[ravel([bn, g * cg + c, ...ip], x.dims)]! * W[ravel([m, c, ...kp], w.dims)]!;
      }
    }
    data.push(acc);
  }
  return { dims, data };
}

test("Conv 1-D and 2-D with pads, strides, dilations, group and bias match the direct definition", () => {
  const cases: {
    x: number[];
    w: number[];
    strides: number[];
    dilations: number[];
    pads: number[];
    group: number;
    bias: boolean;
  }[] = [
    { x: [2, 3, 11], w: [4, 3, 3], strides: [1], dilations: [1], pads: [0, 0], group: 1, bias: false },
    { x: [1, 4, 13], w: [6, 2, 3], strides: [2], dilations: [2], pads: [1, 2], group: 2, bias: true },
    {
      x: [2, 3, 7, 8],
      w: [5, 3, 3, 3],
      strides: [1, 1],
      dilations: [1, 1],
      pads: [1, 1, 1, 1],
      group: 1,
      bias: true,
    },
    {
      x: [1, 4, 9, 7],
      w: [4, 1, 3, 2],
      strides: [2, 1],
      dilations: [1, 2],
      pads: [0, 1, 2, 0],
      group: 4,
      bias: false,
    },
    // ViT patch embedding: stride = kernel, no padding.
    {
      x: [2, 3, 8, 8],
      w: [6, 3, 4, 4],
      strides: [4, 4],
      dilations: [1, 1],
      pads: [0, 0, 0, 0],
      group: 1,
      bias: true,
    },
    // 3-D for the N-d path.
    {
      x: [1, 2, 4, 5, 3],
      w: [3, 2, 2, 3, 2],
      strides: [1, 2, 1],
      dilations: [1, 1, 2],
      pads: [1, 0, 1, 0, 1, 1],
      group: 1,
      bias: true,
    },
  ];
  cases.forEach((c, i) => {
    const x = randTensor(c.x, 200 + i);
    const w = randTensor(c.w, 300 + i);
    const bias = c.bias ? randTensor([c.w[0]!], 400 + i) : undefined;
    const ref = refConv(x, w, bias, c);
    const attrs = {
      strides: ints(c.strides),
      dilations: ints(c.dilations),
      pads: ints(c.pads),
      group: int(c.group),
      kernel_shape: ints(c.w.slice(2)),
    };
    assertValues(runOp("Conv", [x, w, bias], attrs)[0]!, ref.dims, ref.data);
  });
});

test("Conv hand-computed 1-D example", () => {
  const x = new Tensor("float32", [1, 2, 3, 4, 5], [1, 1, 5]);
  const w = new Tensor("float32", [1, 0, -1], [1, 1, 3]);
  // pads 1,1: [0,1,2,3,4,5,0] → 0-2, 1-3, 2-4, 3-5, 4-0
  assertValues(runOp("Conv", [x, w], { pads: ints([1, 1]) })[0]!, [1, 1, 5], [-2, -2, -2, -2, 4]);
});

test("Conv auto_pad SAME_UPPER / SAME_LOWER / VALID pick the spec's padding", () => {
  // Spatial 6×7, kernel 3×2, stride 2: SAME output 3×4; total pad rows (3-1)·2+3-6 = 1, cols (4-1)·2+2-7 = 1.
  const x = randTensor([1, 2, 6, 7], 500);
  const w = randTensor([3, 2, 3, 2], 501);
  const base = { strides: [2, 2], dilations: [1, 1], group: 1 };
  const upper = refConv(x, w, undefined, { ...base, pads: [0, 0, 1, 1] });
  const lower = refConv(x, w, undefined, { ...base, pads: [1, 1, 0, 0] });
  const valid = refConv(x, w, undefined, { ...base, pads: [0, 0, 0, 0] });
  const run = (autoPad: string) =>
    runOp("Conv", [x, w], { auto_pad: str(autoPad), strides: ints([2, 2]) })[0]!;
  assertValues(run("SAME_UPPER"), [1, 3, 3, 4], upper.data);
  assertValues(run("SAME_LOWER"), [1, 3, 3, 4], lower.data);
  assertValues(run("VALID"), valid.dims, valid.data);
  assert.deepEqual(valid.dims, [1, 3, 2, 3]);
});

test("Conv float64 keeps double precision and validates group", () => {
  const x = new Tensor("float64", [1 + 1e-12, 2], [1, 1, 2]);
  const w = new Tensor("float64", [1, 1], [1, 1, 2]);
  assert.deepEqual([...runOp("Conv", [x, w])[0]!.data], [3 + 1e-12]);
  assert.throws(
    () => runOp("Conv", [randTensor([1, 3, 4], 1), randTensor([2, 3, 2], 2)], { group: int(2) }),
    /group/,
  );
});

// ---- Einsum ---------------------------------------------------------------------------------------------

/** Einsum in float64 straight from the definition, for explicit equations without "...". */
function refEinsum(eq: string, ts: Tensor[]): { dims: number[]; data: number[] } {
  const [lhs, rhs] = eq.split("->") as [string, string];
  const terms = lhs.split(",");
  const sizes = new Map<string, number>();
  terms.forEach((t, i) => {
    [...t].forEach((ch, d) => {
      sizes.set(ch, ts[i]!.dims[d]!);
    });
  });
  const letters = [...sizes.keys()];
  const outDims = [...rhs].map((ch) => sizes.get(ch)!);
  const data = new Array<number>(size(outDims)).fill(0);
  const vals = ts.map((t) => t.toFloat64());
  const all = letters.map((l) => sizes.get(l)!);
  for (let f = 0; f < size(all); f++) {
    const idx = unravel(f, all);
    const at = (ch: string) => idx[letters.indexOf(ch)]!;
    let p = 1;
    terms.forEach((t, i) => {
      p *= vals[i]![ravel([...t].map(at), ts[i]!.dims)]!;
    });
    data[ravel([...rhs].map(at), outDims)] += p;
  }
  return { dims: outDims, data };
}

test("Einsum explicit equations match the definition (GEMM-routed and general)", () => {
  const cases: [string, number[][]][] = [
    [
      "bij,bjk->bik",
      [
        [2, 3, 4],
        [2, 4, 5],
      ],
    ],
    [
      "bhid,bhjd->bhij",
      [
        [2, 3, 4, 5],
        [2, 3, 6, 5],
      ],
    ],
    [
      "bhij,bhjd->bhid",
      [
        [2, 3, 4, 6],
        [2, 3, 6, 5],
      ],
    ],
    [
      "ij,kj->ik",
      [
        [3, 4],
        [5, 4],
      ],
    ],
    [
      "ji,jk->ik",
      [
        [4, 3],
        [4, 5],
      ],
    ],
    [
      "bij,bjk->kbi",
      [
        [2, 3, 4],
        [2, 4, 5],
      ],
    ],
    [
      "ij,jk->ki",
      [
        [3, 4],
        [4, 2],
      ],
    ],
    ["i,j->ij", [[3], [4]]],
    ["ij->ji", [[3, 4]]],
    ["ij->j", [[3, 4]]],
    ["ii->i", [[4, 4]]],
    ["ii->", [[4, 4]]],
    [
      "ij,ij->",
      [
        [3, 4],
        [3, 4],
      ],
    ],
    [
      "ij,jk,kl->il",
      [
        [2, 3],
        [3, 4],
        [4, 2],
      ],
    ],
    [
      "bij,jk->bik",
      [
        [2, 3, 4],
        [4, 5],
      ],
    ],
    [
      "abc,cb->a",
      [
        [2, 3, 4],
        [4, 3],
      ],
    ],
  ];
  cases.forEach(([eq, shapes], i) => {
    const ts = shapes.map((s, j) => randTensor(s, 600 + 10 * i + j));
    const ref = refEinsum(eq, ts);
    assertValues(runOp("Einsum", ts, { equation: str(eq) })[0]!, ref.dims, ref.data);
  });
});

test("Einsum implicit output, ellipsis and hand-computed trace", () => {
  const a = randTensor([3, 4], 700);
  const b = randTensor([4, 5], 701);
  // Implicit: "ij,jk" sums j, output letters used once in alphabetical order → "ik".
  const ik = refEinsum("ij,jk->ik", [a, b]);
  assertValues(runOp("Einsum", [a, b], { equation: str("ij,jk") })[0]!, ik.dims, ik.data);
  // Implicit "ba" transposes into alphabetical order "ab".
  const t = runOp("Einsum", [a], { equation: str("ba") })[0]!;
  assertValues(t, [4, 3], refEinsum("ba->ab", [a]).data);
  // Trace, hand computed.
  const m = new Tensor("float32", [1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3]);
  assertValues(runOp("Einsum", [m], { equation: str("ii") })[0]!, [], [15]);
  // Ellipsis as batch, explicit and implicit, with broadcasting of a size-1 batch dim.
  const x = randTensor([2, 3, 4, 5], 702);
  const y = randTensor([2, 3, 5, 6], 703);
  const xy = refEinsum("abij,abjk->abik", [x, y]);
  assertValues(runOp("Einsum", [x, y], { equation: str("...ij,...jk->...ik") })[0]!, xy.dims, xy.data);
  assertValues(runOp("Einsum", [x, y], { equation: str("...ij,...jk") })[0]!, xy.dims, xy.data);
  const y1 = randTensor([1, 3, 5, 6], 704);
  const y1full = new Tensor("float32", Float32Array.from([...y1.data, ...y1.data]), [2, 3, 5, 6]);
  const bc = refEinsum("abij,abjk->abik", [x, y1full]);
  assertValues(runOp("Einsum", [x, y1], { equation: str("...ij,...jk->...ik") })[0]!, bc.dims, bc.data);
  // Ellipsis in the middle.
  const z = randTensor([3, 2, 2, 4], 705);
  const zr = refEinsum("iabj->ji", [z]);
  assertValues(runOp("Einsum", [z], { equation: str("i...j->ji") })[0]!, zr.dims, zr.data);
});

test("Einsum int64 and error cases", () => {
  const a = new Tensor("int64", [1, 2, 3, 4], [2, 2]);
  assert.deepEqual(runOp("Einsum", [a, a], { equation: str("ij,jk->ik") })[0]!.toNumbers(), [7, 10, 15, 22]);
  assert.throws(() => runOp("Einsum", [a], { equation: str("ij,jk->ik") }), /operands/);
  assert.throws(
    () => runOp("Einsum", [a, randTensor([2, 2], 1)], { equation: str("ij,jk->ik") }),
    /types differ/,
  );
  assert.throws(() => runOp("Einsum", [a, a], { equation: str("ij,jk->iz") }), /not in any input/);
});

// ---- cross-check against onnxruntime -------------------------------------------------------------------

async function ortRun(b: GraphBuilder, feeds: Record<string, Tensor>): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(b.graph)));
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [
      k,
      new ort.Tensor("float32", t.data as Float32Array, [...t.dims]),
    ]),
  );
  const result = await session.run(ortFeeds);
  return result[session.outputNames[0]!]!;
}

test("Conv auto_pad and Einsum with ellipsis agree with onnxruntime", async () => {
  const x = randTensor([1, 2, 7, 6], 1000);
  const w = randTensor([4, 2, 3, 2], 1001);
  for (const autoPad of ["SAME_UPPER", "SAME_LOWER", "VALID"]) {
    // (onnxruntime rejects dilations together with SAME_*, so none here.)
    const attrs = { auto_pad: autoPad, strides: [2, 2] };
    const b = new GraphBuilder({ opset: 17 });
    b.input("x", "float32", [1, 2, 7, 6]);
    b.output(b.op("Conv", ["x", b.init(w)], attrs));
    const want = await ortRun(b, { x });
    const got = runOp("Conv", [x, w], { auto_pad: str(autoPad), strides: ints([2, 2]) })[0]!;
    assertValues(got, [...want.dims], want.data as Float32Array);
  }
  const p = randTensor([2, 3, 4, 5], 1002);
  const q = randTensor([2, 3, 5], 1003);
  const b = new GraphBuilder({ opset: 17 });
  b.input("p", "float32", [2, 3, 4, 5]);
  b.input("q", "float32", [2, 3, 5]);
  b.output(b.op("Einsum", ["p", "q"], { equation: "...ij,...j->...i" }));
  const want = await ortRun(b, { p, q });
  const got = runOp("Einsum", [p, q], { equation: str("...ij,...j->...i") })[0]!;
  assertValues(got, [...want.dims], want.data as Float32Array);
});
