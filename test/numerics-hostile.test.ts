import assert from "node:assert/strict";
import { test } from "node:test";
import { InferenceSession } from "../src/engine/session.js";
import { compareOutput } from "../src/engine/verify.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { geluErf, geluErfFloat32, geluTanh } from "../src/ops/elementwise-util.js";

// [x, x·Φ(x), tanh-GELU(x)], float32 x, references from mpmath at 50 digits (x·ncdf(x) and
// x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2): independent of the code under test.
const REFERENCE: [number, number, number][] = [
  [-1000000.0, -0.0, 0.0],
  [-10000.0, -0.0, 0.0],
  [-100.0, -0.0, 0.0],
  [-40.0, -0.0, 0.0],
  [-30.0, -1.472014178144456e-196, 0.0],
  [-15.0, -5.5064492989691265e-50, 0.0],
  [-13.0, -7.952313719414843e-38, 0.0],
  [-12.0, -2.1317785344932147e-32, 0.0],
  [-10.0, -7.619853024160526e-23, -1.2040923482098107e-37],
  [-8.0, -4.976768459417427e-15, -3.1077829375011112e-21],
  [-6.0, -5.9195258702261885e-9, -8.439646700762297e-11],
  [-5.0, -1.4332578593959695e-6, -2.291796196629506e-7],
  [-4.0, -0.0001266849673324797, -7.024594819237268e-5],
  [-3.0, -0.0040496940948902835, -0.003637392081773019],
  [-2.5, -0.015524163314440337, -0.015084266089998582],
  [-2.0, -0.04550026389635842, -0.04540230591222498],
  [-1.0, -0.15865525393145705, -0.1588080093917233],
  [-0.5, -0.15426876936299344, -0.15428599017485609],
  [-0.0010000000474974513, -0.0004996010814969171, -0.0004996010814972463],
  [-9.999999682655225e-21, -4.999999841327613e-21, -4.999999841327613e-21],
  [0.0, 0.0, 0.0],
  [0.0010000000474974513, 0.0005003989660005342, 0.0005003989660002051],
  [0.5, 0.34573123063700656, 0.34571400982514394],
  [1.0, 0.8413447460685429, 0.8411919906082767],
  [2.0, 1.9544997361036416, 1.954597694087775],
  [5.0, 4.999998566742141, 4.999999770820381],
  [100.0, 100.0, 100.0],
  [1000000.0, 1000000.0, 1000000.0],
  [3.3999999521443642e38, 3.3999999521443642e38, 3.3999999521443642e38],
  [-3.3999999521443642e38, -0.0, 0.0],
];

/** Spacing of float32 values around v (subnormal spacing at the bottom). */
function ulp32(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/**
 * float32 GELU against its reference: 4 ulps of the reference, plus 2e-7 absolute where |x| < 3 (the
 * rational erf's 1e-7 error, halved by 0.5·x); exact in sign class: NaN, ±Infinity, -0/0.
 */
function assertClose(x: number, got: number, want: number, what: string): void {
  const g = Math.fround(got);
  const w = Math.fround(want);
  if (Number.isNaN(w) || !Number.isFinite(w)) {
    assert.ok(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)), `${what}(${x}) = ${g}, want ${w}`);
    return;
  }
  const bound = 4 * ulp32(w) + (Math.abs(x) < 3 ? 2e-7 : 0);
  assert.ok(
    Math.abs(g - w) <= bound,
    `${what}(${x}) = ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${bound})`,
  );
}

function geluSession(build: (b: GraphBuilder, x: string) => string, opset = 20): Promise<InferenceSession> {
  const b = new GraphBuilder({ opset, opsets: { "com.microsoft": 1 } });
  const x = b.input("x", "float32", ["n"]);
  b.output(build(b, x));
  return InferenceSession.create({
    graph: b.build(),
    irVersion: 9,
    producerName: "",
    producerVersion: "",
    metadata: {},
  });
}

const XS = Float32Array.from([
  ...REFERENCE.map((r) => r[0]),
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
]);
// -Infinity gives NaN: 0.5·x·(1 + erf(x/√2)) is −∞·0 there, in the unfused graph and in onnxruntime alike.
const SPECIAL: [number, number][] = [
  [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
  [Number.NEGATIVE_INFINITY, Number.NaN],
  [Number.NaN, Number.NaN],
];

test("GELU scalar functions match the 50-digit reference over the whole float32 range, ±1e6, ±Inf, NaN", () => {
  for (const [x, erfRef, tanhRef] of REFERENCE) {
    assertClose(x, geluErfFloat32(x), erfRef, "geluErfFloat32");
    assertClose(x, geluErf(x), erfRef, "geluErf");
    assertClose(x, geluTanh(x), tanhRef, "geluTanh");
  }
  for (const [x, want] of SPECIAL) {
    for (const f of [geluErfFloat32, geluErf, geluTanh]) assertClose(x, f(x), want, f.name);
  }
  // x = -1e6 gave 0.025 (the rational erf's error times x): now -0 or 0.
  assert.equal(Math.abs(geluErfFloat32(-1e6)), 0);
});

test("geluErfFloat32 agrees with float64 geluErf on a dense sweep of float32 magnitudes, both signs", () => {
  for (let e = -40; e <= 38; e += 0.01) {
    for (const s of [1, -1]) {
      const x = Math.fround(s * 10 ** e);
      assertClose(x, geluErfFloat32(x), geluErf(x), "geluErfFloat32 vs geluErf");
    }
  }
});

test("every GELU op (contrib Gelu, BiasGelu, FastGelu, ONNX Gelu none/tanh) gives the reference", async () => {
  const ms = { domain: "com.microsoft" };
  const zero = (b: GraphBuilder) => b.init(new Tensor("float32", new Float32Array(XS.length), [XS.length]));
  const cases: [string, (b: GraphBuilder, x: string) => string, 1 | 2][] = [
    ["com.microsoft.Gelu", (b, x) => b.op("Gelu", [x], {}, { ...ms, outputs: ["y"] }), 1],
    ["com.microsoft.BiasGelu", (b, x) => b.op("BiasGelu", [x, zero(b)], {}, { ...ms, outputs: ["y"] }), 1],
    ["com.microsoft.FastGelu", (b, x) => b.op("FastGelu", [x], {}, { ...ms, outputs: ["y"] }), 2],
    ["Gelu(none)", (b, x) => b.op("Gelu", [x], {}, { outputs: ["y"] }), 1],
    ["Gelu(tanh)", (b, x) => b.op("Gelu", [x], { approximate: "tanh" }, { outputs: ["y"] }), 2],
  ];
  for (const [name, build, col] of cases) {
    const s = await geluSession(build);
    const y = (await s.run({ x: new Tensor("float32", XS, [XS.length]) })).y!.data as Float32Array;
    REFERENCE.forEach((r, i) => {
      assertClose(r[0], y[i]!, r[col], name);
    });
    SPECIAL.forEach(([x, want], i) => {
      assertClose(x, y[REFERENCE.length + i]!, want, name);
    });
  }
});

/** Runs a graph fused and unfused; asserts NaN at the same places and close numbers elsewhere. */
async function assertFusedMatchesUnfused(graph: Graph, feeds: Record<string, Tensor>, what: string) {
  // Padded positions are compared too, so they are computed (padding removal would write 0 there).
  const fused = await InferenceSession.fromGraph(graph, {
    graphOptimizationLevel: "all",
    removePadding: false,
  });
  assert.ok(
    fused.attentionReport.some((r) => r.fused),
    `${what}: attention was not fused`,
  );
  const plain = await InferenceSession.fromGraph(graph, { graphOptimizationLevel: "basic" });
  const a = await fused.run(feeds);
  const b = await plain.run(feeds);
  let nans = 0;
  for (const name of plain.outputNames) {
    const x = a[name]!.data as Float32Array;
    const y = b[name]!.data as Float32Array;
    for (let i = 0; i < y.length; i++) {
      if (Number.isNaN(y[i]!)) nans++;
      assert.equal(
        Number.isNaN(x[i]!),
        Number.isNaN(y[i]!),
        `${what}: ${name}[${i}] fused ${x[i]} unfused ${y[i]}`,
      );
      if (!Number.isNaN(y[i]!))
        assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-3 * (1 + Math.abs(y[i]!)), `${what}: ${name}[${i}]`);
    }
  }
  return nans;
}

test("fused attention propagates NaN/Inf as the unfused graph: NaN weights, NaN in valid and padded tokens, all-masked rows", async () => {
  const config = { layers: 1, hidden: 32, heads: 2, intermediate: 64, vocab: 50 };
  const feeds = bertInputs([6, 4], 6, config.vocab, 3);
  const ids = feeds.input_ids.data as BigInt64Array;
  const poison = (g: Graph, token: number, value: number) => {
    const w = g.initializers.get("embeddings.word_embeddings.weight")!;
    const data = Float32Array.from(w.data as Float32Array);
    data.fill(value, token * config.hidden, (token + 1) * config.hidden);
    g.initializers.set("embeddings.word_embeddings.weight", new Tensor("float32", data, w.dims));
  };
  // NaN in a valid token (batch 0, position 2): its row is NaN in both, and what it spreads to.
  {
    const g = buildBertGraph(config);
    poison(g, Number(ids[2]), Number.NaN);
    assert.ok((await assertFusedMatchesUnfused(g, feeds, "NaN valid token")) > 0);
  }
  // NaN in a padded token (batch 1, position 5; mask 0): unfused MatMul(P, V) still reads its V.
  {
    const g = buildBertGraph(config);
    const f = bertInputs([6, 4], 6, config.vocab, 3);
    (f.input_ids.data as BigInt64Array)[6 + 5] = 49n;
    for (let i = 0; i < 12; i++)
      if (i !== 11 && (f.input_ids.data as BigInt64Array)[i] === 49n)
        (f.input_ids.data as BigInt64Array)[i] = 48n;
    poison(g, 49, Number.NaN);
    await assertFusedMatchesUnfused(g, f, "NaN padded token");
  }
  // +Inf embedding: Inf scores give NaN through Softmax in both.
  {
    const g = buildBertGraph(config);
    poison(g, Number(ids[1]), Number.POSITIVE_INFINITY);
    await assertFusedMatchesUnfused(g, feeds, "Inf valid token");
  }
  // NaN in a weight of the query projection: every score NaN, every row NaN (the fused kernel gave 0).
  {
    const g = buildBertGraph(config);
    for (const [name, t] of g.initializers) {
      if (/query/.test(name) && /weight/.test(name)) {
        const data = Float32Array.from(t.data as Float32Array);
        data[0] = Number.NaN;
        g.initializers.set(name, new Tensor("float32", data, t.dims));
      }
    }
    assert.ok((await assertFusedMatchesUnfused(g, feeds, "NaN weight")) > 0);
  }
  // An all-masked row (valid length 0).
  await assertFusedMatchesUnfused(
    buildBertGraph(config),
    bertInputs([6, 0], 6, config.vocab, 3),
    "all masked",
  );
});

test("--verify compares every output value: NaN against a number and an infinity against a number are mismatches", async () => {
  const t = (v: number[]) => new Tensor("float32", Float32Array.from(v), [v.length]);
  assert.equal(compareOutput("y", t([1, Number.NaN, 3]), t([1, Number.NaN, 3]), 1e-3).ok, true);
  const nan = compareOutput("y", t([1, 2, 3]), t([1, Number.NaN, 3]), 1e-3);
  assert.equal(nan.ok, false);
  assert.equal(nan.first, 1);
  assert.equal(compareOutput("y", t([1, Number.NaN]), t([1, 0]), 1e-3).ok, false);
  assert.equal(compareOutput("y", t([Number.POSITIVE_INFINITY]), t([1e30]), 1e-3).ok, false);
  assert.equal(compareOutput("y", t([1000]), t([1000.5]), 1e-3).ok, true, "relative to the value's size");
  assert.equal(compareOutput("y", t([1]), t([1.01]), 1e-3).ok, false);
  // A whole session in verify mode over NaN inputs: fused and unfused agree value by value.
  const config = { layers: 1, hidden: 32, heads: 2, intermediate: 64, vocab: 50 };
  const g = buildBertGraph(config);
  const feeds = bertInputs([6, 3], 6, config.vocab, 3);
  const w = g.initializers.get("embeddings.word_embeddings.weight")!;
  const data = Float32Array.from(w.data as Float32Array);
  const tok = Number((feeds.input_ids.data as BigInt64Array)[1]);
  data.fill(Number.NaN, tok * 32, tok * 32 + 32);
  g.initializers.set("embeddings.word_embeddings.weight", new Tensor("float32", data, w.dims));
  const s = InferenceSession.fromGraph(g, { verify: true });
  await s.run(feeds);
  assert.equal(s.lastVerify?.ok, true);
  assert.ok(s.lastVerify!.outputs.length > 0 && s.lastVerify!.outputs.every((o) => o.mismatches === 0));
});
