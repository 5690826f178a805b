import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { OpError } from "../src/errors.js";
import { type AttrInput, floatAttr, GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import { floatToHalf, halfToFloat } from "../src/ir/float16.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { referenceCompute } from "../src/ops/compute.js";
import { findOp } from "../src/ops/index.js";

// ---- helpers -----------------------------------------------------------------------------------------

/** Deterministic uniform numbers in [-amp, amp). */
function random(n: number, seed: number, amp = 1): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 * amp - amp;
  });
}

interface RefSpec {
  batch: number;
  numHeads: number;
  kvNumHeads: number;
  seqQ: number;
  seqKV: number;
  headSize: number;
  vHeadSize: number;
  scale?: number;
  /** Dense [B, Sq, Nq·H], [B, Skv, Nkv·H], [B, Skv, Nkv·Hv]. */
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  bias?: (b: number, n: number, i: number, j: number) => number;
  allowed?: (b: number, n: number, i: number, j: number) => boolean;
  softcap?: number;
}

/** Float64 textbook attention; output [B, Sq, Nq·Hv]; a row with no finite score is zeros. */
function referenceAttention(s: RefSpec): Float64Array {
  const scale = s.scale ?? 1 / Math.sqrt(s.headSize);
  const group = s.numHeads / s.kvNumHeads;
  const out = new Float64Array(s.batch * s.seqQ * s.numHeads * s.vHeadSize);
  for (let b = 0; b < s.batch; b++) {
    for (let n = 0; n < s.numHeads; n++) {
      const g = Math.floor(n / group);
      for (let i = 0; i < s.seqQ; i++) {
        const scores: number[] = [];
        for (let j = 0; j < s.seqKV; j++) {
          if (s.allowed && !s.allowed(b, n, i, j)) {
            scores.push(Number.NEGATIVE_INFINITY);
            continue;
          }
          let dot = 0;
          for (let h = 0; h < s.headSize; h++) {
            dot +=
              s.q[(b * s.seqQ + i) * s.numHeads * s.headSize + n * s.headSize + h]! *
              s.k[(b * s.seqKV + j) * s.kvNumHeads * s.headSize + g * s.headSize + h]!;
          }
          let score = dot * scale;
          if (s.softcap) score = s.softcap * Math.tanh(score / s.softcap);
          scores.push(score + (s.bias ? s.bias(b, n, i, j) : 0));
        }
        const max = Math.max(...scores);
        if (max === Number.NEGATIVE_INFINITY) continue;
        const w = scores.map((x) => Math.exp(x - max));
        const z = w.reduce((a, c) => a + c, 0);
        for (let h = 0; h < s.vHeadSize; h++) {
          let acc = 0;
          for (let j = 0; j < s.seqKV; j++) {
            acc += (w[j]! / z) * s.v[(b * s.seqKV + j) * s.kvNumHeads * s.vHeadSize + g * s.vHeadSize + h]!;
          }
          out[(b * s.seqQ + i) * s.numHeads * s.vHeadSize + n * s.vHeadSize + h] = acc;
        }
      }
    }
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(
      Math.abs(a - e) <= atol + rtol * Math.abs(e),
      `element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`,
    );
  }
}

function f32(data: number[], dims: number[]): Tensor {
  return new Tensor("float32", data, dims);
}

/** Runs a graph with our engine; returns its first output. */
function runOurs(graph: Graph, feeds: Record<string, Tensor>, output = graph.outputs[0]!.name): Tensor {
  const result = runGraph(graph, feeds).get(output);
  assert.ok(result, `no value for ${output}`);
  return result;
}

/** Writes a GraphBuilder graph as an ONNX file in memory for onnxruntime-node. */
async function runOrt(graph: Graph, feeds: Record<string, Tensor>): Promise<Record<string, ort.Tensor>> {
  const { saveModel, modelFromGraph } = await import("../src/onnx/index.js");
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    ortFeeds[name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]);
  }
  return session.run(ortFeeds);
}

interface FusedCase {
  B: number;
  Sq: number;
  Skv: number;
  Nq: number;
  Nkv: number;
  H: number;
  Hv: number;
  seed: number;
}

function fusedInputs(c: FusedCase) {
  return {
    q: random(c.B * c.Sq * c.Nq * c.H, c.seed, 2),
    k: random(c.B * c.Skv * c.Nkv * c.H, c.seed + 1, 2),
    v: random(c.B * c.Skv * c.Nkv * c.Hv, c.seed + 2),
  };
}

/** A graph with one mhafuse.Attention node; optional bias / key_lengths inputs. */
function fusedGraph(
  c: FusedCase,
  attrs: Record<string, number>,
  extra: { biasDims?: number[]; lengths?: boolean; dtype?: DType } = {},
): Graph {
  const dtype = extra.dtype ?? "float32";
  const b = new GraphBuilder();
  const inputs = [
    b.input("q", dtype, [c.B, c.Sq, c.Nq * c.H]),
    b.input("k", dtype, [c.B, c.Skv, c.Nkv * c.H]),
    b.input("v", dtype, [c.B, c.Skv, c.Nkv * c.Hv]),
    extra.biasDims ? b.input("bias", dtype, extra.biasDims) : "",
    extra.lengths ? b.input("lengths", "int32", [c.B]) : "",
  ];
  while (inputs.at(-1) === "") inputs.pop();
  const y = b.op("Attention", inputs, attrs, { domain: "mhafuse" });
  b.output(y, dtype);
  return b.build();
}

function refFor(c: FusedCase, x: ReturnType<typeof fusedInputs>, rest: Partial<RefSpec> = {}): Float64Array {
  return referenceAttention({
    batch: c.B,
    numHeads: c.Nq,
    kvNumHeads: c.Nkv,
    seqQ: c.Sq,
    seqKV: c.Skv,
    headSize: c.H,
    vHeadSize: c.Hv,
    q: x.q,
    k: x.k,
    v: x.v,
    ...rest,
  });
}

// ---- mhafuse.Attention -------------------------------------------------------------------------------

test("mhafuse.Attention: cross attention (Sq ≠ Skv) matches float64 reference", () => {
  const c = { B: 2, Sq: 3, Skv: 5, Nq: 2, Nkv: 2, H: 4, Hv: 4, seed: 11 };
  const x = fusedInputs(c);
  const y = runOurs(fusedGraph(c, { num_heads: 2 }), {
    q: f32(x.q, [2, 3, 8]),
    k: f32(x.k, [2, 5, 8]),
    v: f32(x.v, [2, 5, 8]),
  });
  assert.deepEqual(y.dims, [2, 3, 8]);
  assertClose(y.data as Float32Array, refFor(c, x));
});

test("mhafuse.Attention: GQA with Hv ≠ H and an explicit scale", () => {
  const c = { B: 1, Sq: 4, Skv: 4, Nq: 6, Nkv: 2, H: 4, Hv: 3, seed: 21 };
  const x = fusedInputs(c);
  const y = runOurs(fusedGraph(c, { num_heads: 6, kv_num_heads: 2, scale: 0.3 }), {
    q: f32(x.q, [1, 4, 24]),
    k: f32(x.k, [1, 4, 8]),
    v: f32(x.v, [1, 4, 6]),
  });
  assert.deepEqual(y.dims, [1, 4, 18]);
  assertClose(y.data as Float32Array, refFor(c, x, { scale: 0.3 }));
});

test("mhafuse.Attention: causal with Sq < Skv is bottom-right aligned", () => {
  const c = { B: 2, Sq: 3, Skv: 5, Nq: 2, Nkv: 1, H: 4, Hv: 4, seed: 31 };
  const x = fusedInputs(c);
  const y = runOurs(fusedGraph(c, { num_heads: 2, kv_num_heads: 1, causal: 1 }), {
    q: f32(x.q, [2, 3, 8]),
    k: f32(x.k, [2, 5, 4]),
    v: f32(x.v, [2, 5, 4]),
  });
  assertClose(y.data as Float32Array, refFor(c, x, { allowed: (_b, _n, i, j) => j <= i + 2 }));
});

test("mhafuse.Attention: a KV cache is prepended, causal is offset by the past, present is the grown cache", () => {
  // B=2, Sq=S=2 new tokens, P=3 cached, GQA 4:2, Hv ≠ H: keys are past ++ new, T = 5.
  const [B, S, P, Nq, Nkv, H, Hv] = [2, 2, 3, 4, 2, 4, 3];
  const T = P + S;
  // Float32-representable inputs, so that the float64 reference sees exactly what the op sees.
  const r32 = (n: number, seed: number, amp = 1) => Array.from(Float32Array.from(random(n, seed, amp)));
  const q = r32(B * S * Nq * H, 301, 2);
  const k = r32(B * S * Nkv * H, 302, 2);
  const v = r32(B * S * Nkv * Hv, 303);
  const pk = r32(B * Nkv * P * H, 304, 2);
  const pv = r32(B * Nkv * P * Hv, 305);
  const b = new GraphBuilder();
  const inputs = [
    b.input("q", "float32", [B, S, Nq * H]),
    b.input("k", "float32", [B, S, Nkv * H]),
    b.input("v", "float32", [B, S, Nkv * Hv]),
    b.input("bias", "float32", [B, 1, 1, T]),
    "",
    b.input("pk", "float32", [B, Nkv, P, H]),
    b.input("pv", "float32", [B, Nkv, P, Hv]),
  ];
  const outs = b.opN(
    "Attention",
    inputs,
    { num_heads: Nq, kv_num_heads: Nkv, causal: 1 },
    {
      domain: "mhafuse",
      outputs: 3,
    },
  );
  for (const o of outs) b.output(o, "float32");
  const graph = b.build();
  // Batch 1 masks its first cached key (a padded prompt).
  const biasData = [0, 0, 0, 0, 0, -1e9, 0, 0, 0, 0];
  const feeds = {
    q: f32(q, [B, S, Nq * H]),
    k: f32(k, [B, S, Nkv * H]),
    v: f32(v, [B, S, Nkv * Hv]),
    bias: f32(biasData, [B, 1, 1, T]),
    pk: f32(pk, [B, Nkv, P, H]),
    pv: f32(pv, [B, Nkv, P, Hv]),
  };
  const values = runGraph(graph, feeds);
  // The cache as the textbook reference reads it: [B, T, Nkv·size], past rows first.
  const joined = (past: number[], cur: number[], size: number) => {
    const out: number[] = [];
    for (let bb = 0; bb < B; bb++)
      for (let t = 0; t < T; t++)
        for (let n = 0; n < Nkv; n++)
          for (let h = 0; h < size; h++)
            out.push(
              t < P
                ? past[((bb * Nkv + n) * P + t) * size + h]!
                : cur[((bb * S + t - P) * Nkv + n) * size + h]!,
            );
    return out;
  };
  const expected = referenceAttention({
    batch: B,
    numHeads: Nq,
    kvNumHeads: Nkv,
    seqQ: S,
    seqKV: T,
    headSize: H,
    vHeadSize: Hv,
    q,
    k: joined(pk, k, H),
    v: joined(pv, v, Hv),
    bias: (bb, _n, _i, j) => biasData[bb * T + j]!,
    allowed: (_b, _n, i, j) => j <= i + P,
  });
  assertClose(values.get(outs[0]!)!.data as Float32Array, expected);
  // present = [B, Nkv, T, size]: batch 1, kv head 1 holds its 3 cached rows then the 2 new ones.
  const present = values.get(outs[1]!)!;
  assert.deepEqual(present.dims, [B, Nkv, T, H]);
  const row = (bb: number, n: number, t: number) => [
    ...(present.data as Float32Array).slice(((bb * Nkv + n) * T + t) * H, ((bb * Nkv + n) * T + t + 1) * H),
  ];
  assertClose(row(1, 1, 2), pk.slice(((1 * Nkv + 1) * P + 2) * H, ((1 * Nkv + 1) * P + 3) * H), 0, 0);
  assertClose(row(1, 1, 4), k.slice(((1 * S + 1) * Nkv + 1) * H, ((1 * S + 1) * Nkv + 2) * H), 0, 0);
  assert.deepEqual(values.get(outs[2]!)!.dims, [B, Nkv, T, Hv]);
  // A past of the wrong head count is refused with the expected shape.
  assert.throws(
    () => runGraph(graph, { ...feeds, pk: f32(pk, [B, 1, 2 * P, H]) }),
    (e: unknown) => e instanceof OpError && /past_key must be \[B, 2, P, 4\]/.test(e.message),
  );
});

test("mhafuse.Attention: a one-token decoding step allocates only its output and the grown cache", () => {
  // Sq = 1 over P = 300 cached keys, GQA 8:2: the work is one score row per head, never [B,N,T,T] or
  // repeated K/V heads; the primitives are spied on to see exactly what the op asks for.
  const [B, P, Nq, Nkv, H] = [1, 300, 8, 2, 4];
  const T = P + 1;
  const op = findOp("mhafuse", "Attention")!;
  const node = {
    name: "step",
    opType: "Attention",
    domain: "mhafuse",
    inputs: ["q", "k", "v", "", "", "pk", "pv"],
    outputs: ["y", "present_key", "present_value"],
    attrs: { num_heads: { type: "int", value: Nq }, kv_num_heads: { type: "int", value: Nkv } },
  } as const;
  const allocations: number[] = [];
  const problems: { seqQ: number; seqKV: number; kvNumHeads: number }[] = [];
  const compute = {
    ...referenceCompute,
    allocFloat32: (n: number) => {
      allocations.push(n);
      return new Float32Array(n);
    },
    attention: (a: Parameters<typeof referenceCompute.attention>[0]) => {
      problems.push({ seqQ: a.seqQ, seqKV: a.seqKV, kvNumHeads: a.kvNumHeads });
      referenceCompute.attention(a);
    },
  };
  const inputs = [
    f32(random(B * Nq * H, 401), [B, 1, Nq * H]),
    f32(random(B * Nkv * H, 402), [B, 1, Nkv * H]),
    f32(random(B * Nkv * H, 403), [B, 1, Nkv * H]),
    undefined,
    undefined,
    f32(random(B * Nkv * P * H, 404), [B, Nkv, P, H]),
    f32(random(B * Nkv * P * H, 405), [B, Nkv, P, H]),
  ];
  const [y, presentKey] = op.run({ node: node as never, opset: 1, compute }, inputs);
  assert.deepEqual(y!.dims, [B, 1, Nq * H]);
  assert.deepEqual(presentKey!.dims, [B, Nkv, T, H]);
  assert.deepEqual(problems, [{ seqQ: 1, seqKV: T, kvNumHeads: Nkv }]);
  // Two caches of B·Nkv·T·H and the output B·Nq·H: nothing of size T·T or Nq·T·H.
  assert.deepEqual(
    allocations.sort((a, b) => a - b),
    [B * Nq * H, B * Nkv * T * H, B * Nkv * T * H],
  );
});

test("mhafuse.Attention: additive bias broadcasting in every supported form", () => {
  const c = { B: 2, Sq: 3, Skv: 4, Nq: 2, Nkv: 2, H: 4, Hv: 4, seed: 41 };
  const x = fusedInputs(c);
  const feeds = { q: f32(x.q, [2, 3, 8]), k: f32(x.k, [2, 4, 8]), v: f32(x.v, [2, 4, 8]) };
  const forms: { dims: number[]; index: (b: number, n: number, i: number, j: number) => number }[] = [
    { dims: [2, 2, 3, 4], index: (b, n, i, j) => ((b * 2 + n) * 3 + i) * 4 + j },
    { dims: [2, 1, 1, 4], index: (b, _n, _i, j) => b * 4 + j },
    { dims: [2, 3, 4], index: (_b, n, i, j) => (n * 3 + i) * 4 + j },
    { dims: [4], index: (_b, _n, _i, j) => j },
    { dims: [1, 1, 3, 1], index: (_b, _n, i) => i },
  ];
  for (const form of forms) {
    const values = random(
      form.dims.reduce((a, d) => a * d, 1),
      99,
      3,
    );
    const y = runOurs(fusedGraph(c, { num_heads: 2 }, { biasDims: form.dims }), {
      ...feeds,
      bias: f32(values, form.dims),
    });
    const expected = refFor(c, x, { bias: (b, n, i, j) => values[form.index(b, n, i, j)]! });
    assertClose(y.data as Float32Array, expected);
  }
});

test("mhafuse.Attention: key_lengths ignore trailing keys; rows with all scores -inf are zeros", () => {
  const c = { B: 3, Sq: 2, Skv: 4, Nq: 1, Nkv: 1, H: 4, Hv: 2, seed: 51 };
  const x = fusedInputs(c);
  const lengths = [4, 2, 0];
  // Row 0 of batch 0 has every key at -inf; finfo.min-like values elsewhere stay ordinary numbers.
  const bias = Array.from({ length: 3 * 2 * 4 }, (_, idx) =>
    idx < 4 ? Number.NEGATIVE_INFINITY : -3.4e38 * (idx % 2),
  );
  const y = runOurs(fusedGraph(c, { num_heads: 1 }, { biasDims: [3, 1, 2, 4], lengths: true }), {
    q: f32(x.q, [3, 2, 4]),
    k: f32(x.k, [3, 4, 4]),
    v: f32(x.v, [3, 4, 2]),
    bias: f32(bias, [3, 1, 2, 4]),
    lengths: new Tensor("int32", lengths, [3]),
  });
  const expected = refFor(c, x, {
    bias: (b, _n, i, j) => bias[(b * 2 + i) * 4 + j]!,
    allowed: (b, _n, _i, j) => j < lengths[b]!,
  });
  assertClose(y.data as Float32Array, expected);
  assert.deepEqual([...(y.data as Float32Array).slice(0, 2)], [0, 0], "fully -inf row gives zeros");
  assert.deepEqual([...(y.data as Float32Array).slice(8)], [0, 0, 0, 0], "length 0 gives zeros");
});

test("mhafuse.Attention: float16 in, float16 out, computed in float32", () => {
  const c = { B: 1, Sq: 3, Skv: 5, Nq: 2, Nkv: 2, H: 8, Hv: 8, seed: 61 };
  const x = fusedInputs(c);
  const half = (v: number[], dims: number[]) => new Tensor("float16", Uint16Array.from(v, floatToHalf), dims);
  const decoded = (v: number[]) => v.map((a) => halfToFloat(floatToHalf(a)));
  const y = runOurs(fusedGraph(c, { num_heads: 2, causal: 1 }, { dtype: "float16" }), {
    q: half(x.q, [1, 3, 16]),
    k: half(x.k, [1, 5, 16]),
    v: half(x.v, [1, 5, 16]),
  });
  assert.equal(y.type, "float16");
  const expected = refFor(
    c,
    { q: decoded(x.q), k: decoded(x.k), v: decoded(x.v) },
    { allowed: (_b, _n, i, j) => j <= i + 2 },
  );
  assertClose(y.toNumbers(), expected, 2e-3, 2e-3);
});

test("mhafuse.Attention: invalid inputs raise OpErrors that say what is wrong", () => {
  const c = { B: 1, Sq: 2, Skv: 3, Nq: 2, Nkv: 2, H: 2, Hv: 2, seed: 71 };
  const x = fusedInputs(c);
  const feeds = { q: f32(x.q, [1, 2, 4]), k: f32(x.k, [1, 3, 4]), v: f32(x.v, [1, 3, 4]) };
  const cases: [Graph, Record<string, Tensor>, RegExp][] = [
    [fusedGraph(c, { num_heads: 2, kv_num_heads: 3 }), feeds, /multiple of kv_num_heads/],
    [fusedGraph(c, { num_heads: 3 }), feeds, /not divisible by num_heads 3/],
    [fusedGraph(c, { num_heads: 2 }), { ...feeds, q: f32(x.q, [2, 4]) }, /Q must have rank 3/],
    [
      fusedGraph(c, { num_heads: 2 }, { biasDims: [1, 2, 2, 2] }),
      { ...feeds, bias: f32([0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 2, 2]) },
      /does not broadcast to \[B,N,Sq,Skv\] = \[1,2,2,3\]/,
    ],
    [
      fusedGraph(c, { num_heads: 2 }, { lengths: true }),
      { ...feeds, lengths: new Tensor("int32", [4], [1]) },
      /key_lengths\[0\] = 4 is outside \[0, 3\]/,
    ],
    [fusedGraph(c, { num_heads: 2, causal: 2 }), feeds, /'causal' must be 0 or 1/],
  ];
  for (const [graph, f, message] of cases) {
    assert.throws(
      () => runOurs(graph, f),
      (e: unknown) => e instanceof OpError && message.test(e.message),
    );
  }
});

test("mhafuse.Attention: inferTypes keeps symbolic dims and computes Nq·Hv", () => {
  const op = findOp("mhafuse", "Attention");
  assert.ok(op);
  const node = fusedGraph(
    { B: 1, Sq: 1, Skv: 1, Nq: 4, Nkv: 2, H: 2, Hv: 3, seed: 1 },
    {
      num_heads: 4,
      kv_num_heads: 2,
    },
  ).nodes[0]!;
  const types = op.inferTypes({
    node,
    opset: 1,
    inputs: [
      { dtype: "float16", shape: ["batch", "q_len", 8] },
      { dtype: "float16", shape: ["batch", "kv_len", 4] },
      { dtype: "float16", shape: ["batch", "kv_len", 6] },
    ],
    constant: () => undefined,
  });
  assert.deepEqual(types, [{ dtype: "float16", shape: ["batch", "q_len", 12] }]);
});

// ---- onnxruntime comparisons ------------------------------------------------------------------------

/** Runs the graph in both engines and compares every graph output. */
async function compareWithOrt(graph: Graph, feeds: Record<string, Tensor>, atol = 2e-5): Promise<void> {
  const ours = runGraph(graph, feeds);
  const theirs = await runOrt(graph, feeds);
  for (const { name } of graph.outputs) {
    const a = ours.get(name);
    const b = theirs[name];
    assert.ok(a && b, `output ${name} missing`);
    assert.deepEqual([...a.dims], [...b.dims], `${name} dims`);
    assertClose(a.toNumbers(), [...(b.data as Float32Array)], 1e-4, atol);
  }
}

interface ContribCase {
  B: number;
  S: number;
  Din: number;
  N: number;
  sizes: [number, number, number];
}

function contribAttentionGraph(
  c: ContribCase,
  attrs: Record<string, AttrInput>,
  opts: { mask?: { dtype: DType; dims: number[] }; attentionBias?: number[]; noBias?: boolean } = {},
) {
  const b = new GraphBuilder({ opsets: { "com.microsoft": 1 } });
  const width = c.sizes[0] + c.sizes[1] + c.sizes[2];
  b.input("x", "float32", [c.B, c.S, c.Din]);
  const w = b.init(f32(random(c.Din * width, 5, 0.5), [c.Din, width]), "w");
  const bias = opts.noBias ? "" : b.init(f32(random(width, 6, 0.5), [width]), "b");
  const mask = opts.mask ? b.input("mask", opts.mask.dtype, opts.mask.dims) : "";
  const attnBias = opts.attentionBias ? b.input("attn_bias", "float32", opts.attentionBias) : "";
  const inputs = ["x", w, bias, mask, "", attnBias];
  while (inputs.at(-1) === "") inputs.pop();
  const y = b.op("Attention", inputs, { num_heads: c.N, ...attrs }, { domain: "com.microsoft" });
  b.output(y, "float32");
  return b.build();
}

test("com.microsoft Attention: projection + attention matches a float64 reference", () => {
  const c: ContribCase = { B: 2, S: 3, Din: 5, N: 2, sizes: [4, 4, 6] };
  for (const noBias of [false, true]) {
    const graph = contribAttentionGraph(c, { qkv_hidden_sizes: [4, 4, 6] }, { noBias });
    const x = random(2 * 3 * 5, 7);
    const y = runOurs(graph, { x: f32(x, [2, 3, 5]) });
    const w = graph.initializers.get("w")!.toFloat64();
    const bias = noBias ? new Float64Array(14) : graph.initializers.get("b")!.toFloat64();
    const proj = (col0: number, cols: number) => {
      const out: number[] = [];
      for (let r = 0; r < 6; r++)
        for (let cc = 0; cc < cols; cc++) {
          let acc = bias[col0 + cc]!;
          for (let i = 0; i < 5; i++) acc += x[r * 5 + i]! * w[i * 14 + col0 + cc]!;
          out.push(acc);
        }
      return out;
    };
    const expected = referenceAttention({
      batch: 2,
      numHeads: 2,
      kvNumHeads: 2,
      seqQ: 3,
      seqKV: 3,
      headSize: 2,
      vHeadSize: 3,
      q: proj(0, 4),
      k: proj(4, 4),
      v: proj(8, 6),
    });
    assert.deepEqual(y.dims, [2, 3, 6]);
    assertClose(y.data as Float32Array, expected);
  }
});

test("com.microsoft Attention: every mask_index form, unidirectional and attention_bias match onnxruntime", async () => {
  const c: ContribCase = { B: 2, S: 4, Din: 6, N: 2, sizes: [8, 8, 8] };
  const x = f32(random(2 * 4 * 6, 8, 2), [2, 4, 6]);
  const masks: [number[], number[]][] = [
    [[2], [4, 3]], // right-padding lengths
    [[4], [3, 4, 1, 0]], // [2B]: end positions then start positions
    [
      [2, 4],
      [1, 0, 1, 1, 0, 1, 1, 0],
    ], // raw 0/1 key mask
    [[2, 4, 4], random(32, 9).map((v, i) => (v > -0.3 || i % 4 === 0 ? 1 : 0))], // [B,S,T]
  ];
  for (const [dims, values] of masks) {
    const graph = contribAttentionGraph(c, {}, { mask: { dtype: "int32", dims } });
    await compareWithOrt(graph, { x, mask: new Tensor("int32", values, dims) });
  }
  // A fully masked row is not zeros: -10000 is added to every score, which leaves the softmax unchanged.
  // (onnxruntime adds -10000 in float32 and loses ~1e-3 of score precision there, hence the looser check.)
  const unmasked = runOurs(contribAttentionGraph(c, {}), { x });
  for (const [dims, values] of [
    [[2], [0, 0]],
    [
      [2, 4],
      [0, 0, 0, 0, 0, 0, 0, 0],
    ],
  ] as [number[], number[]][]) {
    const graph = contribAttentionGraph(c, {}, { mask: { dtype: "int32", dims } });
    const feeds = { x, mask: new Tensor("int32", values, dims) };
    assertClose(runOurs(graph, feeds).data as Float32Array, unmasked.data as Float32Array);
    await compareWithOrt(graph, feeds, 1e-3);
  }
  const graph = contribAttentionGraph(
    c,
    { unidirectional: 1, mask_filter_value: floatAttr(-50), scale: 0.7 },
    { mask: { dtype: "int32", dims: [2] }, attentionBias: [1, 2, 4, 4] },
  );
  await compareWithOrt(graph, {
    x,
    mask: new Tensor("int32", [3, 2], [2]),
    attn_bias: f32(random(32, 10, 3), [1, 2, 4, 4]),
  });
  const perBatch = contribAttentionGraph(c, {}, { attentionBias: [2, 1, 4, 4] });
  await compareWithOrt(perBatch, { x, attn_bias: f32(random(32, 12, 3), [2, 1, 4, 4]) });
});

test("com.microsoft Attention: unsupported inputs and bad masks raise OpErrors", () => {
  const c: ContribCase = { B: 1, S: 2, Din: 2, N: 1, sizes: [2, 2, 2] };
  const x = f32([1, 2, 3, 4], [1, 2, 2]);
  const b = new GraphBuilder({ opsets: { "com.microsoft": 1 } });
  b.input("x", "float32", [1, 2, 2]);
  b.input("past", "float32", [2, 1, 1, 1, 2]);
  const w = b.init(f32(random(12, 1), [2, 6]));
  b.output(b.op("Attention", ["x", w, "", "", "past"], { num_heads: 1 }, { domain: "com.microsoft" }));
  assert.throws(
    () => runOurs(b.build(), { x, past: Tensor.zeros("float32", [2, 1, 1, 1, 2]) }),
    /past \(KV cache\) is not supported/,
  );
  const masked = contribAttentionGraph(c, {}, { mask: { dtype: "int32", dims: [1] } });
  assert.throws(
    () => runOurs(masked, { x, mask: new Tensor("int32", [3], [1]) }),
    /mask_index\[0\] = 3 is outside/,
  );
  const odd = contribAttentionGraph(c, {}, { mask: { dtype: "int32", dims: [3] } });
  assert.throws(
    () => runOurs(odd, { x, mask: new Tensor("int32", [1, 1, 1], [3]) }),
    /is not one of \[B\]=\[1\]/,
  );
});

function mhaGraph(
  shapes: Record<string, number[]>,
  attrs: Record<string, number>,
  inputs: string[],
  outputs = 1,
  maskDtype: DType = "int32",
) {
  const b = new GraphBuilder({ opsets: { "com.microsoft": 1 } });
  for (const name of inputs) {
    if (name) b.input(name, name === "mask" ? maskDtype : "float32", shapes[name]!);
  }
  const outs = b.opN("MultiHeadAttention", inputs, attrs, { domain: "com.microsoft", outputs });
  for (const o of outs) b.output(o, "float32");
  return b.build();
}

function randomFeeds(shapes: Record<string, number[]>, seed: number): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [name, dims] of Object.entries(shapes)) {
    feeds[name] = f32(
      random(
        dims.reduce((a, d) => a * d, 1),
        seed++,
        2,
      ),
      dims,
    );
  }
  return feeds;
}

test("com.microsoft MultiHeadAttention: cross attention with bias, key_padding_mask forms, attention_bias", async () => {
  const shapes = { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 6], bias: [22], attn_bias: [2, 1, 3, 5] };
  const feeds = randomFeeds(shapes, 20);
  for (const [dims, values, atol] of [
    [[2], [5, 2], 2e-5],
    [[2, 5], [1, 1, 0, 1, 0, 0, 1, 0, 0, 0], 2e-5],
    [[2], [0, 3], 1e-3], // batch 0 fully masked: onnxruntime's float32 "score - 10000" loses precision
  ] as [number[], number[], number][]) {
    const graph = mhaGraph({ ...shapes, mask: dims }, { num_heads: 2 }, [
      "q",
      "k",
      "v",
      "bias",
      "mask",
      "attn_bias",
    ]);
    await compareWithOrt(graph, { ...feeds, mask: new Tensor("int32", values, dims) }, atol);
  }
  const plain = mhaGraph(shapes, { num_heads: 2, scale: 0.25 }, ["q", "k", "v"]);
  await compareWithOrt(plain, feeds);
});

test("com.microsoft MultiHeadAttention: BNSH key/value, packed KV, packed QKV, unidirectional, present outputs", async () => {
  const bnsh = { q: [2, 3, 8], k: [2, 2, 4, 4], v: [2, 2, 4, 4], bias: [24] };
  await compareWithOrt(mhaGraph(bnsh, { num_heads: 2 }, ["q", "k", "v", "bias"]), randomFeeds(bnsh, 30));
  // onnxruntime has no CPU kernel for packed KV: check it against the same K/V given separately.
  const packedKv = { q: [1, 3, 8], k: [1, 5, 2, 2, 4] };
  const kvFeeds = randomFeeds(packedKv, 40);
  const kv = kvFeeds.k!.data as Float32Array;
  const part = (p: number) =>
    f32(
      Array.from({ length: 5 * 2 * 4 }, (_, i) => kv[Math.floor(i / 4) * 8 + p * 4 + (i % 4)]!),
      [1, 5, 8],
    );
  const separate = runOurs(
    mhaGraph({ q: [1, 3, 8], k: [1, 5, 8], v: [1, 5, 8] }, { num_heads: 2 }, ["q", "k", "v"]),
    {
      q: kvFeeds.q!,
      k: part(0),
      v: part(1),
    },
  );
  const packed = runOurs(mhaGraph(packedKv, { num_heads: 2 }, ["q", "k"]), kvFeeds);
  assertClose(packed.data as Float32Array, separate.data as Float32Array, 0, 0);
  const packedQkv = { q: [2, 4, 2, 3, 4] };
  const qkvFeeds = randomFeeds(packedQkv, 50);
  const qkv = qkvFeeds.q!.data as Float32Array;
  // [B,S,N,3,H] → three [B,S,N·H] tensors.
  const unpack = (p: number) =>
    f32(
      Array.from({ length: 2 * 4 * 8 }, (_, i) => {
        const [token, n, h] = [Math.floor(i / 8), Math.floor(i / 4) % 2, i % 4];
        return qkv[((token * 2 + n) * 3 + p) * 4 + h]!;
      }),
      [2, 4, 8],
    );
  const threeShapes = { q: [2, 4, 8], k: [2, 4, 8], v: [2, 4, 8] };
  const fromParts = runOurs(mhaGraph(threeShapes, { num_heads: 2 }, ["q", "k", "v"]), {
    q: unpack(0),
    k: unpack(1),
    v: unpack(2),
  });
  const fromPacked = runOurs(mhaGraph(packedQkv, { num_heads: 2 }, ["q"]), qkvFeeds);
  assertClose(fromPacked.data as Float32Array, fromParts.data as Float32Array, 0, 0);
  const self = { q: [2, 4, 8], k: [2, 4, 8], v: [2, 4, 8] };
  await compareWithOrt(
    mhaGraph(self, { num_heads: 2, unidirectional: 1 }, ["q", "k", "v"], 3),
    randomFeeds(self, 60),
  );
});

test("com.microsoft MultiHeadAttention: past state and ambiguous unidirectional are rejected", () => {
  const shapes = { q: [1, 2, 4], k: [1, 3, 4], v: [1, 3, 4], pk: [1, 1, 2, 4], pv: [1, 1, 2, 4] };
  const feeds = randomFeeds(shapes, 70);
  const past = mhaGraph(shapes, { num_heads: 1 }, ["q", "k", "v", "", "", "", "pk", "pv"]);
  assert.throws(() => runOurs(past, feeds), /past_key\/past_value \(KV cache\) is not supported/);
  const uni = mhaGraph(shapes, { num_heads: 1, unidirectional: 1 }, ["q", "k", "v"]);
  assert.throws(() => runOurs(uni, feeds), /unidirectional=1 needs query length == key length/);
});

// ---- ONNX Attention (opset 23) --------------------------------------------------------------------------

function attention23Graph(
  shapes: Record<string, number[]>,
  attrs: Record<string, AttrInput>,
  inputs: string[],
  outputs = 1,
  maskDtype: DType = "float32",
) {
  const b = new GraphBuilder({ opset: 23 });
  for (const name of inputs) if (name) b.input(name, name === "mask" ? maskDtype : "float32", shapes[name]!);
  for (const o of b.opN("Attention", inputs, attrs, { outputs })) b.output(o, "float32");
  return b.build();
}

test("Attention-23: 3-D GQA with a boolean mask equals the additive mask and onnxruntime", async () => {
  const shapes = { q: [2, 3, 16], k: [2, 5, 8], v: [2, 5, 6], mask: [3, 5] };
  const feeds = randomFeeds({ q: shapes.q, k: shapes.k, v: shapes.v }, 80);
  // Row 2 has no key at all: it must come out as zeros.
  const allowed = [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0];
  const attrs = { q_num_heads: 4, kv_num_heads: 2 };
  const boolGraph = attention23Graph(shapes, attrs, ["q", "k", "v", "mask"], 1, "bool");
  const boolFeeds = { ...feeds, mask: new Tensor("bool", allowed, [3, 5]) };
  const additive = {
    ...feeds,
    mask: f32(
      allowed.map((a) => (a ? 0 : Number.NEGATIVE_INFINITY)),
      [3, 5],
    ),
  };
  const y = runOurs(boolGraph, boolFeeds);
  assertClose(
    y.data as Float32Array,
    runOurs(attention23Graph(shapes, attrs, ["q", "k", "v", "mask"]), additive).data as Float32Array,
    0,
    0,
  );
  const expected = referenceAttention({
    batch: 2,
    numHeads: 4,
    kvNumHeads: 2,
    seqQ: 3,
    seqKV: 5,
    headSize: 4,
    vHeadSize: 3,
    q: feeds.q!.data as Float32Array,
    k: feeds.k!.data as Float32Array,
    v: feeds.v!.data as Float32Array,
    allowed: (_b, _n, i, j) => allowed[i * 5 + j] === 1,
  });
  assertClose(y.data as Float32Array, expected);
  await compareWithOrt(boolGraph, boolFeeds);
});

test("Attention-23: 4-D causal (top-left without past), softcap and scale match onnxruntime", async () => {
  const shapes = { q: [2, 2, 3, 4], k: [2, 2, 5, 4], v: [2, 2, 5, 3], mask: [2, 1, 3, 5] };
  const feeds = randomFeeds(shapes, 90);
  await compareWithOrt(attention23Graph(shapes, { is_causal: 1 }, ["q", "k", "v"]), feeds);
  const y = runOurs(attention23Graph(shapes, { is_causal: 1 }, ["q", "k", "v"]), feeds);
  // Top-left: query 0 sees only key 0, so its output is V's row 0 for each (batch, head).
  const v = feeds.v!.data as Float32Array;
  assertClose((y.data as Float32Array).slice(0, 3), v.slice(0, 3), 0, 0);
  await compareWithOrt(
    attention23Graph(shapes, { softcap: floatAttr(0.8), scale: 0.4 }, ["q", "k", "v", "mask"]),
    feeds,
  );
});

test("Attention-23: past_key/past_value are concatenated; causal is offset by the past length", async () => {
  const shapes = {
    q: [1, 4, 2, 4],
    k: [1, 2, 2, 4],
    v: [1, 2, 2, 4],
    pk: [1, 2, 3, 4],
    pv: [1, 2, 3, 4],
    mask: [2, 5],
  };
  const feeds = randomFeeds(shapes, 100);
  const graph = attention23Graph(shapes, { is_causal: 1 }, ["q", "k", "v", "", "pk", "pv"], 3);
  await compareWithOrt(graph, feeds);
  const present = runGraph(graph, feeds).get(graph.outputs[1]!.name)!;
  assert.deepEqual(present.dims, [1, 2, 5, 4]);
  const pk = feeds.pk!.data as Float32Array;
  const k = feeds.k!.data as Float32Array;
  const head1 = [...pk.slice(12, 24), ...k.slice(8, 16)];
  assertClose((present.data as Float32Array).slice(20, 40), head1, 0, 0);
  await compareWithOrt(attention23Graph(shapes, {}, ["q", "k", "v", "mask", "pk", "pv"], 3), feeds);
});

test("Attention-23: a mask shorter than the keys is padded with -inf; unsupported modes are rejected", () => {
  const shapes = { q: [1, 1, 2, 4], k: [1, 1, 4, 4], v: [1, 1, 4, 2], mask: [2, 2] };
  const feeds = randomFeeds(shapes, 110);
  const y = runOurs(attention23Graph(shapes, {}, ["q", "k", "v", "mask"]), feeds);
  const m = feeds.mask!.data as Float32Array;
  const expected = referenceAttention({
    batch: 1,
    numHeads: 1,
    kvNumHeads: 1,
    seqQ: 2,
    seqKV: 4,
    headSize: 4,
    vHeadSize: 2,
    q: feeds.q!.data as Float32Array,
    k: feeds.k!.data as Float32Array,
    v: feeds.v!.data as Float32Array,
    bias: (_b, _n, i, j) => (j < 2 ? m[i * 2 + j]! : 0),
    allowed: (_b, _n, _i, j) => j < 2,
  });
  assertClose(y.data as Float32Array, expected);
  assert.throws(
    () => runOurs(attention23Graph(shapes, { qk_matmul_output_mode: 1 }, ["q", "k", "v"]), feeds),
    /qk_matmul_output_mode 1 is not supported/,
  );
  assert.throws(
    () => runOurs(attention23Graph(shapes, {}, ["q", "k", "v"], 4), feeds),
    /'qk_matmul_output' is not supported/,
  );
});

test("inferTypes: Attention-23 present shapes add the past length; MHA infers from BNSH value", () => {
  const a23 = findOp("", "Attention")!;
  const node = attention23Graph(
    { q: [1, 2, 1, 4], k: [1, 1, 1, 4], v: [1, 1, 1, 3], pk: [1, 1, 5, 4], pv: [1, 1, 5, 3] },
    {},
    ["q", "k", "v", "", "pk", "pv"],
    3,
  ).nodes[0]!;
  const types = a23.inferTypes({
    node,
    opset: 23,
    inputs: [
      { dtype: "float32", shape: ["b", 2, 1, 4] },
      { dtype: "float32", shape: ["b", 1, 1, 4] },
      { dtype: "float32", shape: ["b", 1, 1, 3] },
      undefined,
      { dtype: "float32", shape: ["b", 1, 5, 4] },
      { dtype: "float32", shape: ["b", 1, 5, 3] },
    ],
    constant: () => undefined,
  });
  assert.deepEqual(
    types.map((t) => t.shape),
    [
      ["b", 2, 1, 3],
      ["b", 1, 6, 4],
      ["b", 1, 6, 3],
    ],
  );
  const mha = findOp("com.microsoft", "MultiHeadAttention")!;
  const mhaNode = mhaGraph({ q: [1, 1, 8], k: [1, 2, 3, 4], v: [1, 2, 3, 5] }, { num_heads: 2 }, [
    "q",
    "k",
    "v",
  ]).nodes[0]!;
  const mhaTypes = mha.inferTypes({
    node: mhaNode,
    opset: 1,
    inputs: [
      { dtype: "float16", shape: ["b", "s", 8] },
      { dtype: "float16", shape: ["b", 2, "l", 4] },
      { dtype: "float16", shape: ["b", 2, "l", 5] },
    ],
    constant: () => undefined,
  });
  assert.deepEqual(mhaTypes, [{ dtype: "float16", shape: ["b", "s", 10] }]);
});
