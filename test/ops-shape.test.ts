import assert from "node:assert/strict";
import { describe, test } from "node:test";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { OpError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { type DType, dtypeToOnnx } from "../src/ir/dtype.js";
import type { ValueType } from "../src/ir/graph.js";
import { sizeOf, stridesOf, Tensor } from "../src/ir/tensor.js";
import "../src/ops/concat-split.js";
import "../src/ops/gather.js";
import "../src/ops/generators.js";
import "../src/ops/reshape.js";
import "../src/ops/transpose.js";
import { findOp } from "../src/ops/registry.js";

type AttrValue = Parameters<GraphBuilder["op"]>[2] extends Record<string, infer V> | undefined ? V : never;

interface Call {
  attrs?: Record<string, AttrValue>;
  opset?: number;
  outputs?: number;
}

/** A node of `opType` with one input name per given input ("" where omitted). */
function makeNode(opType: string, inputCount: boolean[], call: Call) {
  const b = new GraphBuilder({ opset: call.opset ?? 17 });
  const names = inputCount.map((present, i) => (present ? `in${i}` : ""));
  b.opN(opType, names, call.attrs ?? {}, { name: `test_${opType}`, outputs: call.outputs ?? 1 });
  return b.graph.nodes[0]!;
}

function run(opType: string, inputs: (Tensor | undefined)[], call: Call = {}): Tensor[] {
  const node = makeNode(
    opType,
    inputs.map((t) => t !== undefined),
    call,
  );
  const op = findOp("", opType);
  assert.ok(op, `${opType} is registered`);
  return op.run({ node, opset: call.opset ?? 17 }, inputs);
}

const run1 = (opType: string, inputs: (Tensor | undefined)[], call: Call = {}) =>
  run(opType, inputs, call)[0]!;

function infer(
  opType: string,
  inputs: (ValueType | undefined)[],
  call: Call & { constants?: Record<number, Tensor>; present?: boolean[] } = {},
): ValueType[] {
  const node = makeNode(opType, call.present ?? inputs.map((t) => t !== undefined), call);
  return findOp("", opType)!.inferTypes({
    node,
    opset: call.opset ?? 17,
    inputs,
    constant: (i) => call.constants?.[i],
  });
}

const f32 = (data: number[], dims: number[]) => new Tensor("float32", data, dims);
const i64 = (data: (number | bigint)[], dims = [data.length]) =>
  new Tensor(
    "int64",
    BigInt64Array.from(data, (v) => BigInt(v)),
    dims,
  );
const arange = (n: number, dims = [n], type: DType = "float32") =>
  new Tensor(
    type,
    Array.from({ length: n }, (_, i) => i),
    dims,
  );
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** dims and values of a tensor as plain data, for deepEqual against hand-computed results. */
const values = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint>);
const plain = (t: Tensor) => ({ dims: [...t.dims], data: values(t) });

function expectOpError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof OpError && pattern.test(e.message) && /node 'test_/.test(e.message),
  );
}

/** Deterministic pseudo-random integers for property-style checks. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

// ---- Reshape family ---------------------------------------------------------------------------------

describe("Reshape", () => {
  test("0 copies the input dim and -1 takes the rest", () => {
    const y = run1("Reshape", [arange(24, [2, 3, 4]), i64([0, -1])]);
    assert.deepEqual(y.dims, [2, 12]);
    assert.deepEqual(values(y), values(arange(24)));
  });

  test("allowzero=1 keeps a literal 0; allowzero=0 copies the input dim instead", () => {
    const empty = Tensor.zeros("float32", [0, 3]);
    assert.deepEqual(run1("Reshape", [empty, i64([3, 0])], { attrs: { allowzero: 1 } }).dims, [3, 0]);
    // Without allowzero the 0 means "dim 1 of the input" (3), so [3,3] holds 9 != 0 elements.
    expectOpError(() => run1("Reshape", [empty, i64([3, 0])]), /cannot reshape/);
    expectOpError(() => run1("Reshape", [empty, i64([0, -1])], { attrs: { allowzero: 1 } }), /allowzero/);
  });

  test("int64 data moves unchanged; opset 4 takes the shape attribute", () => {
    const x = i64([1n, -2n, INT64_MAX, INT64_MIN, 5n, 6n], [2, 3]);
    assert.deepEqual(plain(run1("Reshape", [x, i64([3, -1])])), {
      dims: [3, 2],
      data: [1n, -2n, INT64_MAX, INT64_MIN, 5n, 6n],
    });
    assert.deepEqual(run1("Reshape", [x], { opset: 4, attrs: { shape: [6] } }).dims, [6]);
  });

  test("bad targets are OpErrors naming the node", () => {
    expectOpError(() => run1("Reshape", [arange(6), i64([-1, -1])]), /more than one -1/);
    expectOpError(() => run1("Reshape", [arange(6), i64([4, -1])]), /cannot reshape/);
  });

  test("symbolic inference resolves 0 and -1 when it can, null otherwise", () => {
    const x: ValueType = { dtype: "float32", shape: ["batch", "seq", 768] };
    const shapeOf = (target: number[], input: ValueType = x) =>
      infer("Reshape", [input, { dtype: "int64", shape: [target.length] }], {
        constants: { 1: i64(target) },
      })[0]!.shape;
    assert.deepEqual(shapeOf([0, 0, 12, 64]), ["batch", "seq", 12, 64]);
    assert.deepEqual(shapeOf([0, 0, -1], { dtype: "float32", shape: ["batch", "seq", 12, 64] }), [
      "batch",
      "seq",
      768,
    ]);
    assert.deepEqual(shapeOf([-1, 768]), [null, 768]); // batch*seq has no name
    assert.deepEqual(shapeOf([0, -1, 64]), ["batch", null, 64]); // seq*12
    assert.deepEqual(shapeOf([-1, 2, 4], { dtype: "float32", shape: ["batch", 8] }), ["batch", 2, 4]);
    assert.deepEqual(shapeOf([0, -1], { dtype: "float32", shape: ["batch", "seq", null] }), ["batch", null]);
    // Unknown target values: only the rank is known.
    assert.deepEqual(infer("Reshape", [x, { dtype: "int64", shape: [3] }])[0], {
      dtype: "float32",
      shape: [null, null, null],
    });
  });
});

describe("Squeeze / Unsqueeze / Flatten", () => {
  test("Squeeze: attribute before opset 13, input from 13, negative axes, all 1s when no axes", () => {
    const x = arange(6, [1, 2, 1, 3]);
    assert.deepEqual(run1("Squeeze", [x], { opset: 11, attrs: { axes: [-2] } }).dims, [1, 2, 3]);
    assert.deepEqual(run1("Squeeze", [x, i64([0, -2])], { opset: 13 }).dims, [2, 3]);
    assert.deepEqual(run1("Squeeze", [x], { opset: 13 }).dims, [2, 3]);
    expectOpError(() => run1("Squeeze", [x, i64([1])]), /cannot squeeze axis 1 of size 2/);
    expectOpError(() => run1("Squeeze", [x, i64([4])]), /out of range/);
  });

  test("Unsqueeze: axes index the output, attribute before opset 13", () => {
    const x = arange(6, [2, 3]);
    assert.deepEqual(run1("Unsqueeze", [x], { opset: 11, attrs: { axes: [0, -1] } }).dims, [1, 2, 3, 1]);
    assert.deepEqual(run1("Unsqueeze", [x, i64([1])], { opset: 13 }).dims, [2, 1, 3]);
    assert.deepEqual(run1("Unsqueeze", [new Tensor("int64", [7], []), i64([0])]).dims, [1]);
    expectOpError(() => run1("Unsqueeze", [x, i64([1, -3])]), /duplicates/);
  });

  test("Flatten with positive, zero and negative axis", () => {
    const x = arange(24, [2, 3, 4]);
    assert.deepEqual(run1("Flatten", [x]).dims, [2, 12]);
    assert.deepEqual(run1("Flatten", [x], { attrs: { axis: 0 } }).dims, [1, 24]);
    assert.deepEqual(run1("Flatten", [x], { attrs: { axis: -1 } }).dims, [6, 4]);
    assert.deepEqual(run1("Flatten", [x], { attrs: { axis: 3 } }).dims, [24, 1]);
    expectOpError(() => run1("Flatten", [x], { attrs: { axis: 4 } }), /out of range/);
  });

  test("symbolic inference", () => {
    const x: ValueType = { dtype: "float32", shape: ["batch", 1, "seq"] };
    assert.deepEqual(
      infer("Squeeze", [x, undefined], { constants: { 1: i64([1]) }, present: [true, true] })[0]!.shape,
      ["batch", "seq"],
    );
    // Without axes a symbolic dim might be 1: the result rank is unknown.
    assert.equal(infer("Squeeze", [x])[0]!.shape, undefined);
    assert.deepEqual(infer("Squeeze", [{ dtype: "int64", shape: [1, 3, 1] }])[0]!.shape, [3]);
    assert.deepEqual(
      infer("Unsqueeze", [x, { dtype: "int64", shape: [2] }], { constants: { 1: i64([0, -1]) } })[0]!.shape,
      [1, "batch", 1, "seq", 1],
    );
    assert.deepEqual(infer("Flatten", [x], { attrs: { axis: 2 } })[0]!.shape, ["batch", "seq"]);
    assert.deepEqual(infer("Flatten", [{ dtype: "float32", shape: ["b", 4, 8] }])[0]!.shape, ["b", 32]);
    assert.deepEqual(infer("Flatten", [{ dtype: "float32", shape: ["b", "s", 8] }])[0]!.shape, ["b", null]);
  });
});

describe("Expand / Shape / Size / Identity / Dropout", () => {
  test("Expand broadcasts both ways", () => {
    // [3,1] to [2,1,4]: the input's 3 wins over the target's 1, the target's 4 and 2 win over 1s.
    const y = run1("Expand", [f32([1, 2, 3], [3, 1]), i64([2, 1, 4])]);
    assert.deepEqual(y.dims, [2, 3, 4]);
    const row = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    assert.deepEqual(values(y), [...row, ...row]);
    const z = run1("Expand", [i64([5, 6, 7, 8], [1, 4]), i64([3, 1])]);
    assert.deepEqual(plain(z), { dims: [3, 4], data: [5n, 6n, 7n, 8n, 5n, 6n, 7n, 8n, 5n, 6n, 7n, 8n] });
    assert.deepEqual(plain(run1("Expand", [new Tensor("bool", [1], []), i64([2])])), {
      dims: [2],
      data: [1, 1],
    });
    expectOpError(() => run1("Expand", [arange(3), i64([2])]), /cannot expand/);
  });

  test("Expand inference", () => {
    const t = infer(
      "Expand",
      [
        { dtype: "float32", shape: ["batch", 1, "seq"] },
        { dtype: "int64", shape: [3] },
      ],
      {
        constants: { 1: i64([1, 4, 1]) },
      },
    );
    assert.deepEqual(t[0]!.shape, ["batch", 4, "seq"]);
  });

  test("Shape with opset-15 start/end, Size", () => {
    const x = Tensor.zeros("float16", [2, 3, 4, 5]);
    assert.deepEqual(plain(run1("Shape", [x])), { dims: [4], data: [2n, 3n, 4n, 5n] });
    assert.deepEqual(plain(run1("Shape", [x], { opset: 15, attrs: { start: 1, end: -1 } })), {
      dims: [2],
      data: [3n, 4n],
    });
    assert.deepEqual(plain(run1("Shape", [x], { opset: 15, attrs: { start: -10, end: 10 } })).data, [
      2n,
      3n,
      4n,
      5n,
    ]);
    assert.deepEqual(plain(run1("Shape", [x], { opset: 15, attrs: { start: 3, end: 1 } })), {
      dims: [0],
      data: [],
    });
    assert.deepEqual(plain(run1("Shape", [x], { opset: 14, attrs: { start: 1 } })).dims, [4]);
    assert.deepEqual(plain(run1("Size", [x])), { dims: [], data: [120n] });
  });

  test("Shape inference of a symbolic shape is int64 [rank]", () => {
    const x: ValueType = { dtype: "float32", shape: ["batch", "seq", 64] };
    assert.deepEqual(infer("Shape", [x]), [{ dtype: "int64", shape: [3] }]);
    assert.deepEqual(infer("Shape", [x], { opset: 15, attrs: { start: -2 } }), [
      { dtype: "int64", shape: [2] },
    ]);
    assert.deepEqual(infer("Size", [x]), [{ dtype: "int64", shape: [] }]);
  });

  test("Identity and inference Dropout pass data through; the mask is all true", () => {
    const x = f32([1.5, -2, 3], [3]);
    assert.deepEqual(plain(run1("Identity", [x])), plain(x));
    const [y, mask] = run("Dropout", [x, f32([0.3], []), undefined], { outputs: 2 });
    assert.deepEqual(plain(y!), plain(x));
    assert.equal(mask!.type, "bool");
    assert.deepEqual(plain(mask!), { dims: [3], data: [1, 1, 1] });
    const training = new Tensor("bool", [1], []);
    expectOpError(() => run("Dropout", [x, f32([0.3], []), training]), /training_mode/);
    // ratio 0 in training mode is still the identity.
    assert.deepEqual(plain(run1("Dropout", [x, f32([0], []), training])), plain(x));
  });
});

// ---- Transpose --------------------------------------------------------------------------------------

/** Straightforward per-element transpose, the reference for the blocked kernels. */
function naiveTranspose(x: Tensor, perm: number[]): { dims: number[]; data: (number | bigint)[] } {
  const dims = perm.map((p) => x.dims[p]!);
  const inStrides = stridesOf(x.dims);
  const src = Array.from(x.data as ArrayLike<number | bigint>);
  const data: (number | bigint)[] = [];
  for (let o = 0; o < sizeOf(dims); o++) {
    let rem = o;
    let s = 0;
    for (let a = dims.length - 1; a >= 0; a--) {
      s += (rem % dims[a]!) * inStrides[perm[a]!]!;
      rem = Math.floor(rem / dims[a]!);
    }
    data.push(src[s]!);
  }
  return { dims, data };
}

function randomTensor(type: DType, dims: number[], rnd: (n: number) => number): Tensor {
  const n = sizeOf(dims);
  if (type === "int64")
    return new Tensor(
      "int64",
      BigInt64Array.from({ length: n }, () => BigInt(rnd(1e9)) - 500000000n),
      dims,
    );
  if (type === "bool")
    return new Tensor(
      "bool",
      Uint8Array.from({ length: n }, () => rnd(2)),
      dims,
    );
  if (type === "float16")
    return new Tensor(
      "float16",
      Uint16Array.from({ length: n }, () => rnd(0x7c00)),
      dims,
    );
  return new Tensor(
    type,
    Array.from({ length: n }, () => rnd(2001) - 1000 + 0.25),
    dims,
  );
}

describe("Transpose", () => {
  test("2-D by hand and the default reversed perm", () => {
    const x = f32([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.deepEqual(plain(run1("Transpose", [x])), { dims: [3, 2], data: [1, 4, 2, 5, 3, 6] });
    const y = run1("Transpose", [arange(24, [2, 3, 4])]);
    assert.deepEqual(y.dims, [4, 3, 2]);
    // y[k][j][i] = x[i][j][k] = 12i + 4j + k
    assert.deepEqual(values(y).slice(0, 6), [0, 12, 4, 16, 8, 20]);
  });

  test("attention head perms match the per-element reference", () => {
    const rnd = lcg(7);
    const x = randomTensor("float32", [2, 37, 4, 33], rnd);
    for (const perm of [
      [0, 2, 1, 3],
      [0, 2, 3, 1],
      [0, 1, 3, 2],
      [0, 3, 1, 2],
      [3, 2, 1, 0],
    ]) {
      assert.deepEqual(
        plain(run1("Transpose", [x], { attrs: { perm } })),
        naiveTranspose(x, perm),
        `perm ${perm}`,
      );
    }
  });

  test("random shapes, perms and every dtype match the reference", () => {
    const rnd = lcg(42);
    const types: DType[] = ["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"];
    for (let trial = 0; trial < 60; trial++) {
      const rank = 1 + rnd(5);
      const dims = Array.from({ length: rank }, () => (rnd(4) === 0 ? 1 : 1 + rnd(40 >> rank)));
      const perm = Array.from({ length: rank }, (_, i) => i);
      for (let i = rank - 1; i > 0; i--) {
        const j = rnd(i + 1);
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      const x = randomTensor(types[trial % types.length]!, dims, rnd);
      const y = run1("Transpose", [x], { attrs: { perm } });
      assert.equal(y.type, x.type);
      assert.deepEqual(plain(y), naiveTranspose(x, perm), `dims ${dims} perm ${perm} ${x.type}`);
    }
  });

  test("a tensor with a zero dim and a scalar", () => {
    assert.deepEqual(
      run1("Transpose", [Tensor.zeros("float32", [2, 0, 3])], { attrs: { perm: [2, 0, 1] } }).dims,
      [3, 2, 0],
    );
    assert.deepEqual(plain(run1("Transpose", [f32([5], [])])), { dims: [], data: [5] });
  });

  test("invalid perms and symbolic inference", () => {
    expectOpError(
      () => run1("Transpose", [arange(6, [2, 3])], { attrs: { perm: [0, 0] } }),
      /not a permutation/,
    );
    expectOpError(() => run1("Transpose", [arange(6, [2, 3])], { attrs: { perm: [1, 0, 2] } }), /rank 2/);
    const t = infer("Transpose", [{ dtype: "float16", shape: ["batch", "seq", 4, 16] }], {
      attrs: { perm: [0, 2, 1, 3] },
    });
    assert.deepEqual(t, [{ dtype: "float16", shape: ["batch", 4, "seq", 16] }]);
  });
});

// ---- Gather family ----------------------------------------------------------------------------------

describe("Gather", () => {
  test("axis 0 with negative indices and a 2-D index tensor", () => {
    const data = f32([1, 2, 3, 4, 5, 6], [3, 2]);
    const y = run1("Gather", [data, i64([0, -1, 1, -3], [2, 2])]);
    assert.deepEqual(plain(y), { dims: [2, 2, 2], data: [1, 2, 5, 6, 3, 4, 1, 2] });
  });

  test("negative axis, int32 indices, scalar index, int64 data", () => {
    const data = i64([10, 11, 12, 20, 21, 22], [2, 3]);
    assert.deepEqual(
      plain(run1("Gather", [data, new Tensor("int32", [2, -3], [2])], { attrs: { axis: -1 } })),
      {
        dims: [2, 2],
        data: [12n, 10n, 22n, 20n],
      },
    );
    assert.deepEqual(plain(run1("Gather", [data, i64([1], [])])), { dims: [3], data: [20n, 21n, 22n] });
    expectOpError(() => run1("Gather", [data, i64([2])]), /index 2 is out of bounds/);
    expectOpError(
      () => run1("Gather", [data, i64([-4])], { attrs: { axis: 1 } }),
      /index -4 is out of bounds/,
    );
    expectOpError(() => run1("Gather", [data, i64([0])], { attrs: { axis: 2 } }), /out of range/);
  });

  test("Gather inference on a shape tensor and on symbolic data", () => {
    assert.deepEqual(
      infer("Gather", [
        { dtype: "int64", shape: [3] },
        { dtype: "int64", shape: [] },
      ]),
      [{ dtype: "int64", shape: [] }],
    );
    assert.deepEqual(
      infer("Gather", [
        { dtype: "float32", shape: [1000, 64] },
        { dtype: "int64", shape: ["batch", "seq"] },
      ])[0]!.shape,
      ["batch", "seq", 64],
    );
  });

  test("GatherElements", () => {
    const data = f32([1, 2, 3, 4], [2, 2]);
    assert.deepEqual(
      plain(run1("GatherElements", [data, i64([0, 0, 1, 0], [2, 2])], { attrs: { axis: 1 } })),
      {
        dims: [2, 2],
        data: [1, 1, 4, 3],
      },
    );
    const d3 = f32([1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3]);
    // out[i][j] = data[idx[i][j]][j], with -1 meaning the last row.
    assert.deepEqual(plain(run1("GatherElements", [d3, i64([1, 2, 0, 2, -1, -3], [2, 3])])), {
      dims: [2, 3],
      data: [4, 8, 3, 7, 8, 3],
    });
    expectOpError(() => run1("GatherElements", [d3, i64([3], [1, 1])]), /out of bounds/);
  });

  test("GatherND with batch_dims 0 and 1", () => {
    const d2 = i64([0, 1, 2, 3], [2, 2]);
    assert.deepEqual(plain(run1("GatherND", [d2, i64([0, 0, 1, 1], [2, 2])])), { dims: [2], data: [0n, 3n] });
    assert.deepEqual(plain(run1("GatherND", [d2, i64([1, 0], [2, 1])])), {
      dims: [2, 2],
      data: [2n, 3n, 0n, 1n],
    });
    const d3 = arange(8, [2, 2, 2]);
    assert.deepEqual(plain(run1("GatherND", [d3, i64([1, 0], [2, 1])], { attrs: { batch_dims: 1 } })), {
      dims: [2, 2],
      data: [2, 3, 4, 5],
    });
    // batch_dims=1 with full tuples: picks d3[b][i][j] per batch, negative index wraps.
    assert.deepEqual(
      plain(run1("GatherND", [d3, i64([0, 1, -1, 0], [2, 1, 2])], { attrs: { batch_dims: 1 } })),
      {
        dims: [2, 1],
        data: [1, 6],
      },
    );
    expectOpError(() => run1("GatherND", [d2, i64([0, 2], [1, 2])]), /out of bounds/);
    assert.deepEqual(
      infer(
        "GatherND",
        [
          { dtype: "float32", shape: ["b", 5, 7] },
          { dtype: "int64", shape: ["b", 3, 1] },
        ],
        {
          attrs: { batch_dims: 1 },
        },
      )[0]!.shape,
      ["b", 3, 7],
    );
  });

  test("ScatterND: replace and every reduction", () => {
    const data = f32([1, 2, 3, 4, 5, 6, 7, 8], [8]);
    const idx = i64([4, 3, 1, 7], [4, 1]);
    assert.deepEqual(
      values(run1("ScatterND", [data, idx, f32([9, 10, 11, 12], [4])])),
      [1, 11, 3, 10, 9, 6, 7, 12],
    );
    assert.deepEqual(values(data), [1, 2, 3, 4, 5, 6, 7, 8], "input untouched");
    const dup = i64([0, 0, 2], [3, 1]);
    const upd = f32([10, 20, 30], [3]);
    const base = f32([1, 2, 3, 4], [4]);
    const scatter = (reduction: string, opset = 18) =>
      values(run1("ScatterND", [base, dup, upd], { opset, attrs: { reduction } }));
    assert.deepEqual(scatter("add", 16), [31, 2, 33, 4]);
    assert.deepEqual(scatter("mul", 16), [200, 2, 90, 4]);
    assert.deepEqual(scatter("max"), [20, 2, 30, 4]);
    assert.deepEqual(
      values(
        run1("ScatterND", [base, dup, f32([-1, 0.5, -2], [3])], { opset: 18, attrs: { reduction: "min" } }),
      ),
      [-1, 2, -2, 4],
    );
    // Slice updates into a 2-D int64 tensor with add.
    const y = run1(
      "ScatterND",
      [i64([1, 2, 3, 4, 5, 6], [3, 2]), i64([-1, 0], [2, 1]), i64([10, 20, 30, 40], [2, 2])],
      {
        attrs: { reduction: "add" },
      },
    );
    assert.deepEqual(plain(y), { dims: [3, 2], data: [31n, 42n, 3n, 4n, 15n, 26n] });
    expectOpError(() => run1("ScatterND", [base, dup, f32([1, 2], [2])]), /updates shape/);
  });
});

// ---- Concat / Split / Slice / Tile ------------------------------------------------------------------

describe("Concat / Split", () => {
  test("Concat along a negative axis and axis 0, int64", () => {
    const a = f32([1, 2, 3, 4], [2, 2]);
    const b = f32([5, 6], [2, 1]);
    assert.deepEqual(plain(run1("Concat", [a, b, a], { attrs: { axis: -1 } })), {
      dims: [2, 5],
      data: [1, 2, 5, 1, 2, 3, 4, 6, 3, 4],
    });
    assert.deepEqual(plain(run1("Concat", [i64([1, 2]), i64([]), i64([-1])], { attrs: { axis: 0 } })), {
      dims: [3],
      data: [1n, 2n, -1n],
    });
    expectOpError(() => run1("Concat", [a, b], { attrs: { axis: 0 } }), /differ off axis/);
  });

  test("Concat inference adds numbers or leaves null", () => {
    const c = (shapes: ValueType["shape"][], axis: number) =>
      infer(
        "Concat",
        shapes.map((shape) => ({ dtype: "float32", shape })),
        { attrs: { axis } },
      )[0]!.shape;
    assert.deepEqual(
      c(
        [
          ["batch", 3],
          ["batch", 5],
        ],
        -1,
      ),
      ["batch", 8],
    );
    assert.deepEqual(
      c(
        [
          ["batch", 3],
          [2, 3],
        ],
        0,
      ),
      [null, 3],
    );
    assert.deepEqual(
      c(
        [
          ["s", 4],
          [1, 4],
        ],
        1,
      ),
      [1, 8],
    );
  });

  test("Split: attribute before 13, input from 13, num_outputs in 18 with a short last chunk", () => {
    const x = arange(14, [2, 7]);
    const sizes = (ts: Tensor[]) => ts.map((t) => t.dims[1]);
    const attr = run("Split", [x], { opset: 11, attrs: { axis: 1, split: [2, 5] }, outputs: 2 });
    assert.deepEqual(sizes(attr), [2, 5]);
    assert.deepEqual(values(attr[0]!), [0, 1, 7, 8]);
    assert.deepEqual(
      sizes(run("Split", [x, i64([3, 4])], { opset: 13, attrs: { axis: -1 }, outputs: 2 })),
      [3, 4],
    );
    const n = run("Split", [x], { opset: 18, attrs: { axis: 1, num_outputs: 3 }, outputs: 3 });
    assert.deepEqual(sizes(n), [3, 3, 1]);
    assert.deepEqual(values(n[2]!), [6, 13]);
    const even = run("Split", [x], { outputs: 2 });
    assert.deepEqual(
      even.map((t) => plain(t)),
      [
        { dims: [1, 7], data: [0, 1, 2, 3, 4, 5, 6] },
        { dims: [1, 7], data: [7, 8, 9, 10, 11, 12, 13] },
      ],
    );
    expectOpError(() => run("Split", [x], { attrs: { axis: 1 }, outputs: 2 }), /evenly/);
    expectOpError(
      () => run("Split", [arange(2)], { opset: 18, attrs: { num_outputs: 3 }, outputs: 3 }),
      /exceeds/,
    );
    expectOpError(() => run("Split", [x, i64([3, 3])], { attrs: { axis: 1 }, outputs: 2 }), /add up/);
  });

  test("Split inference", () => {
    const x: ValueType = { dtype: "float32", shape: ["batch", 12] };
    assert.deepEqual(
      infer("Split", [x], { attrs: { axis: 1 }, outputs: 3 }).map((t) => t.shape),
      [
        ["batch", 4],
        ["batch", 4],
        ["batch", 4],
      ],
    );
    assert.deepEqual(
      infer("Split", [x], { outputs: 2 }).map((t) => t.shape),
      [
        [null, 12],
        [null, 12],
      ],
    );
    assert.deepEqual(
      infer("Split", [x, { dtype: "int64", shape: [2] }], {
        attrs: { axis: 1 },
        outputs: 2,
        constants: { 1: i64([5, 7]) },
      }).map((t) => t.shape),
      [
        ["batch", 5],
        ["batch", 7],
      ],
    );
  });
});

describe("Slice", () => {
  const x10 = arange(10);

  test("opset 9 attributes vs opset 10+ inputs", () => {
    const x = arange(12, [3, 4]);
    const byAttr = run1("Slice", [x], { opset: 9, attrs: { starts: [1, 0], ends: [3, -1] } });
    assert.deepEqual(plain(byAttr), { dims: [2, 3], data: [4, 5, 6, 8, 9, 10] });
    const byAttrAxes = run1("Slice", [x], { opset: 1, attrs: { starts: [1], ends: [1000], axes: [1] } });
    assert.deepEqual(plain(byAttrAxes), { dims: [3, 3], data: [1, 2, 3, 5, 6, 7, 9, 10, 11] });
    const byInput = run1("Slice", [x, i64([1]), i64([INT64_MAX]), i64([-1])]);
    assert.deepEqual(plain(byInput), plain(byAttrAxes));
  });

  test("negative steps, INT64 min/max and clamping", () => {
    const s = (starts: bigint[] | number[], ends: bigint[] | number[], steps: number[]) =>
      values(run1("Slice", [x10, i64(starts), i64(ends), undefined, i64(steps)]));
    assert.deepEqual(s([-1], [INT64_MIN], [-1]), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual(s([8], [1], [-3]), [8, 5, 2]);
    assert.deepEqual(s([100], [-100], [-4]), [9, 5, 1]);
    assert.deepEqual(s([-3], [INT64_MAX], [1]), [7, 8, 9]);
    assert.deepEqual(s([INT64_MIN], [3], [2]), [0, 2]);
    assert.deepEqual(s([5], [2], [1]), []);
    assert.deepEqual(s([2], [5], [-1]), []);
    expectOpError(() => s([0], [5], [0]), /steps must not be 0/);
  });

  test("several axes with steps in 3-D, int64 data", () => {
    const x = arange(24, [2, 3, 4], "int64");
    const y = run1("Slice", [x, i64([-1, 0]), i64([-4, 4]), i64([2, 0]), i64([-2, 1])]);
    // x[0:2, :, 3:-4:-2] → columns 3 and 1
    assert.deepEqual(plain(y), {
      dims: [2, 3, 2],
      data: [3n, 1n, 7n, 5n, 11n, 9n, 15n, 13n, 19n, 17n, 23n, 21n],
    });
    expectOpError(() => run1("Slice", [x, i64([0, 0]), i64([1, 1]), i64([1, -2])]), /duplicates/);
  });

  test("inference keeps symbols only for whole-dim slices", () => {
    const x: ValueType = { dtype: "float32", shape: ["batch", "seq", 64] };
    const shapeOf = (starts: bigint[], ends: bigint[], axes: number[]) =>
      infer("Slice", [x, undefined, undefined, undefined], {
        present: [true, true, true, true],
        constants: { 1: i64(starts), 2: i64(ends), 3: i64(axes) },
      })[0]!.shape;
    assert.deepEqual(shapeOf([0n, 0n], [INT64_MAX, 32n], [1, -1]), ["batch", "seq", 32]);
    assert.deepEqual(shapeOf([0n], [5n], [1]), ["batch", null, 64]);
    assert.deepEqual(shapeOf([-1n], [INT64_MAX], [2]), ["batch", "seq", 1]);
    const unknownValues = infer("Slice", [x, undefined, undefined, undefined], {
      present: [true, true, true, true],
      constants: { 3: i64([1]) },
    });
    assert.deepEqual(unknownValues[0]!.shape, ["batch", null, 64]);
  });
});

describe("Tile", () => {
  test("2-D repeats by hand", () => {
    const y = run1("Tile", [f32([1, 2, 3, 4], [2, 2]), i64([2, 3])]);
    assert.deepEqual(y.dims, [4, 6]);
    const r0 = [1, 2, 1, 2, 1, 2];
    const r1 = [3, 4, 3, 4, 3, 4];
    assert.deepEqual(values(y), [...r0, ...r1, ...r0, ...r1]);
  });

  test("3-D int64 repeats against index arithmetic, zero repeats", () => {
    const x = arange(6, [1, 2, 3], "int64");
    const y = run1("Tile", [x, i64([2, 2, 1])]);
    assert.deepEqual(y.dims, [2, 4, 3]);
    const want: bigint[] = [];
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < 4; b++) for (let c = 0; c < 3; c++) want.push(BigInt((b % 2) * 3 + c));
    assert.deepEqual(values(y), want);
    assert.deepEqual(run1("Tile", [x, i64([1, 0, 2])]).dims, [1, 0, 6]);
    assert.deepEqual(
      infer(
        "Tile",
        [
          { dtype: "float32", shape: ["b", 3] },
          { dtype: "int64", shape: [2] },
        ],
        { constants: { 1: i64([1, 2]) } },
      )[0]!.shape,
      ["b", 6],
    );
  });
});

// ---- generators -------------------------------------------------------------------------------------

describe("Constant / ConstantOfShape / Range / Trilu", () => {
  test("Constant from each value attribute", () => {
    const t = f32([1, 2], [2]);
    assert.deepEqual(plain(run1("Constant", [], { attrs: { value: t } })), plain(t));
    const vf = run1("Constant", [], { attrs: { value_float: { type: "float", value: 2 } } });
    assert.deepEqual([vf.type, plain(vf)], ["float32", { dims: [], data: [2] }]);
    assert.deepEqual(plain(run1("Constant", [], { attrs: { value_floats: [0.5, 1.5] } })), {
      dims: [2],
      data: [0.5, 1.5],
    });
    assert.deepEqual(plain(run1("Constant", [], { attrs: { value_int: 7 } })), { dims: [], data: [7n] });
    assert.deepEqual(plain(run1("Constant", [], { attrs: { value_ints: [1, -1] } })), {
      dims: [2],
      data: [1n, -1n],
    });
    expectOpError(
      () => run1("Constant", [], { attrs: { value_string: "hi" } }),
      /string tensors are not supported/,
    );
    expectOpError(() => run1("Constant", []), /exactly one value attribute/);
    assert.deepEqual(infer("Constant", [], { attrs: { value_ints: [1, 2, 3] } }), [
      { dtype: "int64", shape: [3] },
    ]);
  });

  test("ConstantOfShape: default float zero, typed value, scalar shape", () => {
    assert.deepEqual(plain(run1("ConstantOfShape", [i64([2, 2])])), { dims: [2, 2], data: [0, 0, 0, 0] });
    const v = run1("ConstantOfShape", [i64([3])], { attrs: { value: i64([-5], [1]) } });
    assert.deepEqual([v.type, plain(v)], ["int64", { dims: [3], data: [-5n, -5n, -5n] }]);
    assert.deepEqual(plain(run1("ConstantOfShape", [i64([])], { attrs: { value: f32([4], [1]) } })), {
      dims: [],
      data: [4],
    });
    assert.deepEqual(
      infer("ConstantOfShape", [{ dtype: "int64", shape: [2] }], { attrs: { value: i64([1], [1]) } }),
      [{ dtype: "int64", shape: [null, null] }],
    );
  });

  test("Range for floats and ints, up and down", () => {
    const r = (type: DType, s: number, l: number, d: number) =>
      plain(run1("Range", [new Tensor(type, [s], []), new Tensor(type, [l], []), new Tensor(type, [d], [])]));
    assert.deepEqual(r("float32", 1, 5, 1.5), { dims: [3], data: [1, 2.5, 4] });
    assert.deepEqual(r("float64", 0, -1, -0.25), { dims: [4], data: [0, -0.25, -0.5, -0.75] });
    assert.deepEqual(r("int32", 10, 4, -3), { dims: [2], data: [10, 7] });
    assert.deepEqual(r("int64", 0, 7, 3), { dims: [3], data: [0n, 3n, 6n] });
    assert.deepEqual(r("int64", -5, -13, -4), { dims: [2], data: [-5n, -9n] });
    assert.deepEqual(r("int32", 3, 3, 1), { dims: [0], data: [] });
    assert.deepEqual(r("float32", 5, 1, 1), { dims: [0], data: [] });
    // float32 accumulates in float32: 0.1 steps land on rounded values.
    const tenths = run1("Range", [f32([0], []), f32([0.35], []), f32([0.1], [])]);
    let acc = 0;
    const want = [0, 1, 2, 3].map(() => {
      const v = acc;
      acc = Math.fround(acc + Math.fround(0.1));
      return v;
    });
    assert.deepEqual(values(tenths), want);
    expectOpError(() => r("int32", 0, 5, 0), /delta must not be 0/);
    assert.deepEqual(
      infer(
        "Range",
        [
          { dtype: "int64", shape: [] },
          { dtype: "int64", shape: [] },
          { dtype: "int64", shape: [] },
        ],
        {
          constants: { 0: i64([0], []), 1: i64([10], []), 2: i64([4], []) },
        },
      ),
      [{ dtype: "int64", shape: [3] }],
    );
  });

  test("Trilu upper/lower with k, batched", () => {
    const x = arange(24, [2, 3, 4]);
    const m0 = (t: Tensor) => values(t).slice(0, 12);
    assert.deepEqual(m0(run1("Trilu", [x])), [0, 1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11]);
    assert.deepEqual(m0(run1("Trilu", [x, i64([1], [])])), [0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11]);
    assert.deepEqual(
      m0(run1("Trilu", [x, i64([-1], [])], { attrs: { upper: 0 } })),
      [0, 0, 0, 0, 4, 0, 0, 0, 8, 9, 0, 0],
    );
    assert.deepEqual(m0(run1("Trilu", [x, i64([-5], [])])), values(x).slice(0, 12));
    // The second matrix follows the same pattern (lower, k=0).
    const lower = run1("Trilu", [x], { attrs: { upper: 0 } });
    assert.deepEqual(values(lower).slice(12), [12, 0, 0, 0, 16, 17, 0, 0, 20, 21, 22, 0]);
    const b = run1("Trilu", [new Tensor("bool", [1, 1, 1, 1], [2, 2]), i64([0], [])], {
      attrs: { upper: 0 },
    });
    assert.deepEqual(plain(b), { dims: [2, 2], data: [1, 0, 1, 1] });
  });
});

// ---- onnxruntime cross-checks -------------------------------------------------------------------------

type OrtAttr = { name: string; ints?: number[]; i?: number };

/** A one-node ONNX model whose inputs are all graph inputs, serialised with the raw protobuf classes. */
function oneNodeModel(
  opType: string,
  inputs: Tensor[],
  attrs: OrtAttr[],
  opset: number,
  outputs = 1,
): Uint8Array {
  const { onnx } = onnxProto;
  const elem = (t: DType) => dtypeToOnnx(t);
  const outNames = Array.from({ length: outputs }, (_, i) => `y${i}`);
  const graph = onnx.GraphProto.create({
    name: "g",
    node: [
      onnx.NodeProto.create({
        opType,
        input: inputs.map((_, i) => `x${i}`),
        output: outNames,
        attribute: attrs.map((a) =>
          a.ints
            ? onnx.AttributeProto.create({
                name: a.name,
                type: onnx.AttributeProto.AttributeType.INTS,
                ints: a.ints,
              })
            : onnx.AttributeProto.create({
                name: a.name,
                type: onnx.AttributeProto.AttributeType.INT,
                i: a.i,
              }),
        ),
      }),
    ],
    input: inputs.map((t, i) =>
      onnx.ValueInfoProto.create({
        name: `x${i}`,
        type: {
          tensorType: { elemType: elem(t.type), shape: { dim: t.dims.map((d) => ({ dimValue: d })) } },
        },
      }),
    ),
    output: outNames.map((name) =>
      onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: elem(inputs[0]!.type) } } }),
    ),
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: opset }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

async function ortRun(
  opType: string,
  inputs: Tensor[],
  attrs: OrtAttr[] = [],
  opset = 18,
  outputs = 1,
): Promise<{ dims: number[]; data: (number | bigint)[] }[]> {
  const session = await ort.InferenceSession.create(oneNodeModel(opType, inputs, attrs, opset, outputs));
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach((t, i) => {
    feeds[`x${i}`] = new ort.Tensor(t.type, t.data as Float32Array, [...t.dims]);
  });
  const result = await session.run(feeds);
  await session.release();
  return Array.from({ length: outputs }, (_, i) => {
    const r = result[`y${i}`]!;
    return { dims: [...r.dims], data: Array.from(r.data as ArrayLike<number | bigint>) };
  });
}

const toNodeAttrs = (attrs: OrtAttr[]) => Object.fromEntries(attrs.map((a) => [a.name, a.ints ?? a.i!]));

describe("agrees with onnxruntime", () => {
  test("Slice with random starts, ends, axes and steps", async () => {
    const rnd = lcg(2024);
    for (let trial = 0; trial < 40; trial++) {
      const dims = [1 + rnd(5), 1 + rnd(6), 1 + rnd(7)];
      const x = randomTensor("float32", dims, rnd);
      const axes = [0, 1, 2].filter(() => rnd(2) === 0);
      if (axes.length === 0) axes.push(rnd(3));
      const bound = (d: number): bigint => {
        const pick = rnd(10);
        if (pick === 0) return INT64_MAX;
        if (pick === 1) return INT64_MIN;
        return BigInt(rnd(2 * d + 7) - d - 3);
      };
      const starts = axes.map((a) => bound(dims[a]!));
      const ends = axes.map((a) => bound(dims[a]!));
      const steps = axes.map(() => (rnd(2) ? 1 : -1) * (1 + rnd(3)));
      const signedAxes = axes.map((a) => (rnd(2) ? a : a - 3));
      const inputs = [x, i64(starts), i64(ends), i64(signedAxes), i64(steps)];
      const [want] = await ortRun("Slice", inputs, [], 13);
      assert.deepEqual(
        plain(run1("Slice", inputs, { opset: 13 })),
        want,
        `dims ${dims} ${starts} ${ends} ${steps}`,
      );
    }
  });

  test("Transpose, Tile, Expand, Gather, GatherND, Trilu, Split on random inputs", async () => {
    const rnd = lcg(99);
    for (let trial = 0; trial < 8; trial++) {
      const dims = [1 + rnd(3), 1 + rnd(4), 2 + rnd(5)];
      const x = randomTensor("float32", dims, rnd);
      const cases: [string, Tensor[], OrtAttr[], number][] = [
        ["Transpose", [x], [{ name: "perm", ints: [1, 2, 0] }], 1],
        ["Tile", [x, i64(dims.map(() => rnd(3)))], [], 1],
        ["Expand", [x.reshape([dims[0]!, 1, dims[1]!, dims[2]!]), i64([1, 3, 1, 1])], [], 1],
        ["Gather", [x, i64([-1, 0, dims[1]! - 1], [3, 1])], [{ name: "axis", i: 1 }], 1],
        [
          "GatherND",
          [
            x,
            i64(
              Array.from({ length: dims[0]! }, () => -1 - rnd(dims[1]!)),
              [dims[0]!, 1],
            ),
          ],
          [{ name: "batch_dims", i: 1 }],
          1,
        ],
        ["Trilu", [x, i64([rnd(5) - 2], [])], [{ name: "upper", i: rnd(2) }], 1],
        [
          "Split",
          [x],
          [
            { name: "axis", i: -1 },
            { name: "num_outputs", i: 2 },
          ],
          2,
        ],
      ];
      for (const [opType, inputs, attrs, outputs] of cases) {
        const want = await ortRun(opType, inputs, attrs, 18, outputs);
        const got = run(opType, inputs, { opset: 18, attrs: toNodeAttrs(attrs), outputs }).map(plain);
        assert.deepEqual(got, want, `${opType} on [${dims}]`);
      }
    }
  });

  test("Range in float32 accumulates like onnxruntime", async () => {
    for (const [s, l, d] of [
      [0, 1, 0.1],
      [-3.3, 7.7, 0.7],
      [5, -5, -0.3],
    ] as const) {
      const inputs = [f32([s], []), f32([l], []), f32([d], [])];
      const [want] = await ortRun("Range", inputs, [], 11);
      assert.deepEqual(plain(run1("Range", inputs, { opset: 11 })), want, `${s}..${l} by ${d}`);
    }
  });
});
