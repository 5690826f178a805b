import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import type { CpuPreparedGraph } from "../src/backends/cpu/prepared-graph.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor as HostTensor, type Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { FIXTURES, fixtureCases } from "./helpers.js";
import { assertClose } from "./support/compare.js";

/** Every output of `bound` equals `plain`'s bit for bit (NaN payloads aside: Object.is per element). */
function assertIdentical(bound: Record<string, Tensor>, plain: Record<string, Tensor>, what: string): void {
  assert.deepEqual(Object.keys(bound).sort(), Object.keys(plain).sort(), what);
  for (const [name, p] of Object.entries(plain)) {
    const b = bound[name]!;
    assert.equal(b.type, p.type, `${what}: ${name} dtype`);
    assert.deepEqual(b.dims, p.dims, `${what}: ${name} dims`);
    for (let i = 0; i < p.size; i++)
      if (!Object.is(b.data[i], p.data[i]))
        assert.fail(`${what}: ${name}[${i}] bound ${b.data[i]} vs plain ${p.data[i]}`);
  }
}

const small = { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 100 };

test("bound plan: a BERT session gives the plain loop's outputs bit for bit, dense and padded, run after run", async () => {
  const graph = buildBertGraph(small);
  const bound = InferenceSession.fromGraph(graph, { intraOpNumThreads: 2 });
  const plain = InferenceSession.fromGraph(graph, { intraOpNumThreads: 2, replay: false });
  // Full batches (the graph as is, one signature), then masks of one signature whose valid-token count
  // changes from run to run (padding removal: the dims inside the graph change, so bindings are remade).
  const cases = [[16], [16], [16, 16], [16, 9], [5, 16], [16, 9], [16], [3, 3]];
  for (const [i, lengths] of cases.entries()) {
    const feeds = bertInputs(lengths, 16, small.vocab, i);
    for (let rep = 0; rep < 2; rep++)
      assertIdentical(await bound.run(feeds), await plain.run(feeds), `case ${i} [${lengths}] rep ${rep}`);
  }
  await Promise.all([bound.release(), plain.release()]);
});

test("bound plan: GEMM and view steps run from their bindings after the first run (native kernels)", async () => {
  const graph = buildBertGraph(small);
  const backend = new CpuBackend({ threads: 2 });
  const prepared = (await backend.prepare(graph, planGraph(graph))) as CpuPreparedGraph;
  const feeds = bertInputs([16], 16, small.vocab);
  await prepared.run(feeds, ["last_hidden_state"]);
  const stats = prepared.bound!.stats;
  const made = stats.binds;
  assert.ok(made > 0, "the first run binds its views (and its GEMMs where the addon is loaded)");
  assert.equal(stats.boundCalls, 0);
  await prepared.run(feeds, ["last_hidden_state"]);
  assert.equal(stats.binds, made, "same dims: nothing is bound again");
  assert.equal(stats.boundCalls, made, "same dims: every binding is used");
  if (backend.native) {
    // Each layer's four linear layers are bound GEMMs: at least 4 per layer beside the views.
    const gemms = graph.nodes.filter((n) => ["Gemm", "MatMul", "FusedGemm"].includes(n.opType)).length;
    assert.ok(stats.gemmBinds >= 4 * small.layers, `GEMM bindings ${stats.gemmBinds}, linear nodes ${gemms}`);
  }
  await backend.dispose();
});

test("bound plan: the fused graph a session runs (Gemm / FusedGemm with a bias) binds its GEMMs too", async (t) => {
  // Fusion turns each linear layer into a Gemm or FusedGemm whose bias is an initializer row: the binding must
  // see that row as the immutable initializer (a first version got a fresh subarray each run and never bound).
  const { graph } = optimizeGraph(buildBertGraph(small), { level: "all" });
  const backend = new CpuBackend({ threads: 2 });
  if (!backend.native) {
    await backend.dispose();
    return t.skip("no native addon: GEMMs are not bound");
  }
  const linear = graph.nodes.filter((n) => ["Gemm", "FusedGemm"].includes(n.opType)).length;
  assert.ok(linear >= 4 * small.layers, `fusion left ${linear} Gemm/FusedGemm nodes`);
  const prepared = (await backend.prepare(graph, planGraph(graph))) as CpuPreparedGraph;
  const feeds = bertInputs([16, 11], 16, small.vocab);
  const plainBackend = new CpuBackend({ threads: 2, bind: false });
  const plain = (await plainBackend.prepare(graph, planGraph(graph))) as CpuPreparedGraph;
  for (let rep = 0; rep < 3; rep++)
    assertIdentical(
      await prepared.run(feeds, ["last_hidden_state"]),
      await plain.run(feeds, ["last_hidden_state"]),
      `fused rep ${rep}`,
    );
  assert.equal(prepared.bound!.stats.gemmBinds, linear, "every Gemm / FusedGemm bound once");
  await Promise.all([backend.dispose(), plainBackend.dispose()]);
});

test("bound plan: a view's shape input rewritten in place between runs is read again (not the bound dims)", async () => {
  // Reshape(x, shape) with the shape a graph input: the caller reuses one Tensor object and rewrites its data.
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [6]);
  const shape = b.input("shape", "int64", [2]);
  b.output(b.op("Reshape", [x, shape]), "float32");
  const graph = b.build();
  const backends = [new CpuBackend({ threads: 1 }), new CpuBackend({ threads: 1, bind: false })];
  const [bound, plain] = (await Promise.all(backends.map((be) => be.prepare(graph, planGraph(graph))))) as [
    CpuPreparedGraph,
    CpuPreparedGraph,
  ];
  const feeds = {
    x: new HostTensor("float32", Float32Array.from([1, 2, 3, 4, 5, 6]), [6]),
    shape: new HostTensor("int64", BigInt64Array.from([2n, 3n]), [2]),
  };
  const out = graph.outputs[0]!.name;
  for (const dims of [
    [2, 3],
    [2, 3],
    [3, 2],
    [6, 1],
    [6, 1],
  ]) {
    (feeds.shape.data as BigInt64Array).set(dims.map(BigInt));
    const [bo, po] = [await bound.run(feeds, [out]), await plain.run(feeds, [out])];
    assert.deepEqual(bo[out]!.dims, dims, `bound run with shape ${dims}`);
    assertIdentical(bo, po, `shape ${dims}`);
  }
  await Promise.all(backends.map((be) => be.dispose()));
});

test("bound plan: a graph prepared once and run at other dims binds again and matches the plain loop", async () => {
  // The graph as is (dims symbolic, shape arithmetic at run time): one prepared graph sees every shape.
  const graph = buildBertGraph(small);
  const backends = [new CpuBackend({ threads: 2 }), new CpuBackend({ threads: 2, bind: false })];
  const [bound, plain] = (await Promise.all(backends.map((b) => b.prepare(graph, planGraph(graph))))) as [
    CpuPreparedGraph,
    CpuPreparedGraph,
  ];
  assert.equal(plain.bound, undefined);
  let binds = 0;
  let seen = "";
  for (const [batch, seq] of [
    [1, 16],
    [1, 16],
    [2, 16],
    [1, 24],
    [1, 16],
    [3, 7],
  ] as const) {
    const feeds = bertInputs(Array(batch).fill(seq), seq, small.vocab, batch * seq);
    const fetch = ["last_hidden_state"];
    assertIdentical(await bound.run(feeds, fetch), await plain.run(feeds, fetch), `[${batch},${seq}]`);
    // Dims other than the last run's leave the GEMM and view bindings stale: the steps bind again.
    const now = bound.bound!.stats.binds;
    if (seen !== `${batch},${seq}`) assert.ok(now > binds, `[${batch},${seq}]: new dims bind again`);
    else assert.equal(now, binds, `[${batch},${seq}]: the same dims again use the bindings`);
    [binds, seen] = [now, `${batch},${seq}`];
  }
  await Promise.all(backends.map((b) => b.dispose()));
});

test("bound plan: fixture models give the plain loop's outputs bit for bit, and the references", async () => {
  for (const name of ["bert_eager", "bart_eager", "llama_past"]) {
    const { graph } = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    const cases = fixtureCases(name);
    // Padding removed (the default: padded positions come out 0) and kept (every position is the reference's).
    for (const removePadding of [true, false]) {
      const bound = InferenceSession.fromGraph(graph, { removePadding });
      const plain = InferenceSession.fromGraph(graph, { removePadding, replay: false });
      for (let rep = 0; rep < 2; rep++)
        for (const [i, c] of cases.entries()) {
          const [b, p] = [await bound.run(c.inputs), await plain.run(c.inputs)];
          const what = `${name} case ${i} rep ${rep} removePadding ${removePadding}`;
          assertIdentical(b, p, what);
          if (!removePadding)
            for (const [k, ref] of Object.entries(c.outputs))
              if (b[k]) assertClose(b[k]!, ref, 1e-4, `${what}: ${k}`);
        }
      await Promise.all([bound.release(), plain.release()]);
    }
  }
});
