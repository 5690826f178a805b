/**
 * Replay on the webgpu backend (src/backends/webgpu/graph/replay-plans.ts): from the second equal recording
 * on, a run replays the recorded dispatches and only rewrites the bytes that come from the feeds. Every
 * replayed run here gets new feed data and is checked against the same run with `replay: false` (the same
 * kernels node by node: equal to 1e-6) and against the CPU provider (1e-4; fp16: 1e-2): fixtures with fresh
 * token ids and masks, alternating signatures, padding removal with masks of equal shapes but other valid
 * tokens (never a stale cu_seqlens), the llama_past KV-cache loop, fp16. Then what must not replay — a CPU
 * fallback, a data-dependent reshape target, profiled and verify runs — and the option, the pool reservation
 * and release.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { hoistUploads, submitTape, type TapeCommand } from "../src/backends/webgpu/tape.js";
import { planGraph, runGraph } from "../src/engine/executor.js";
import { InferenceSession, type SessionOptions } from "../src/engine/session.js";
import { OptionError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { disposeGpuContext, gpuContext, llamaPastFeeds, rand } from "./webgpu-helpers.js";

after(disposeGpuContext);

const BERT = `${FIXTURES}onnx/bert_eager.onnx`;
const LLAMA = `${FIXTURES}onnx/llama_past.onnx`;
const VOCAB = 1000;

type Feeds = Record<string, Tensor>;

/** Deterministic integers in [0, n) (xorshift through rand()). */
function ints(count: number, n: number, seed: number): number[] {
  return Array.from(rand(count, seed), (x) => Math.min(n - 1, Math.floor(((x + 1) / 2) * n)));
}

/** BERT feeds [B, S]: random ids and token types, each row right-padded to its length. */
function bertFeeds(lengths: number[], S: number, seed: number): Feeds {
  const B = lengths.length;
  const mask = lengths.flatMap((l) => Array.from({ length: S }, (_, s) => (s < l ? 1 : 0)));
  return {
    input_ids: new Tensor("int64", ints(B * S, VOCAB, seed), [B, S]),
    token_type_ids: new Tensor("int64", ints(B * S, 2, seed + 1), [B, S]),
    attention_mask: new Tensor("int64", mask, [B, S]),
  };
}

/** Every output within `tol` of the reference's (same names, shapes). */
function expectClose(got: Feeds, want: Feeds, tol: number, what: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${what}: outputs`);
  for (const [k, w] of Object.entries(want)) {
    const d = maxAbsDiff(got[k]!, w);
    assert.ok(d <= tol, `${what} ${k}: max |diff| ${d} > ${tol}`);
  }
}

const webgpu = (extra: SessionOptions = {}): SessionOptions => ({ executionProviders: ["webgpu"], ...extra });

async function sessions(path: string, extra: SessionOptions = {}) {
  const on = await InferenceSession.create(path, webgpu(extra));
  const off = await InferenceSession.create(path, webgpu({ ...extra, replay: false }));
  const cpu = await InferenceSession.create(path, { removePadding: false, ...extra });
  return {
    on,
    /** Runs `feeds` on the three sessions; checks replay against node by node and the CPU. */
    async check(feeds: Feeds, what: string, tol = 1e-4): Promise<Feeds> {
      const got = await on.run(feeds);
      expectClose(got, await off.run(feeds), 1e-6, `${what} vs replay: false`);
      expectClose(got, await cpu.run(feeds), tol, `${what} vs cpu`);
      return got;
    },
    async release() {
      await Promise.all([on.release(), off.release(), cpu.release()]);
    },
  };
}

test("webgpu replay: bert_eager with new ids, token types and masks every run replays from the third run, as node by node and the CPU", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const s = await sessions(BERT);
  try {
    const S = 16;
    // One feed object whose arrays are refilled in place: a replay must read them afresh each run.
    const feeds = bertFeeds([16, 16, 16], S, 1);
    const seen: string[] = [];
    let previous: Float32Array | undefined;
    for (let r = 0; r < 6; r++) {
      const next = bertFeeds([S - r, S - 2 * r, S], S, 10 + r);
      for (const k of Object.keys(feeds))
        (feeds[k]!.data as BigInt64Array).set(next[k]!.data as BigInt64Array);
      const got = await s.check(feeds, `run ${r}`);
      seen.push(s.on.lastReplay!.last);
      const hidden = got.last_hidden_state!.data as Float32Array;
      if (previous)
        assert.ok(
          hidden.some((v, i) => Math.abs(v - previous![i]!) > 1e-3),
          `run ${r}: stale outputs`,
        );
      previous = hidden.slice();
      // Outputs belong to the caller: writing to one must not reach the next replay.
      hidden.fill(Number.NaN);
    }
    assert.deepEqual(seen, ["recorded", "captured", "replayed", "replayed", "replayed", "replayed"]);
    assert.equal(s.on.lastReplay!.plans, 1);

    // A left-padded row: the packed op takes its fallback-bias path on the CPU, so the plan does not fit (its
    // kernel check) and the recording is refused; right-padded rows replay again afterwards.
    const left = bertFeeds([16, 12, 16], S, 99);
    const mask = left.attention_mask!.data as BigInt64Array;
    mask.set(
      Array.from({ length: S }, (_, i) => (i < 4 ? 0n : 1n)),
      S,
    );
    await s.check(left, "left-padded");
    assert.equal(s.on.lastReplay!.last, "refused");
    assert.match(s.on.lastReplay!.reason!, /QKVToContext .* runs on the CPU/);
    await s.check(bertFeeds([9, 16, 3], S, 7), "right-padded again");
    assert.equal(s.on.lastReplay!.last, "replayed");
  } finally {
    await s.release();
  }
});

test("webgpu replay: alternating signatures keep a plan each; no data-dependent value keys bert_eager's plans", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const model = await loadModel(BERT);
  const { graph } = optimizeGraph(model.graph, { level: "all" });
  const on = new WebGpuBackend();
  const off = new WebGpuBackend({ replay: false });
  const cpu = await InferenceSession.create(BERT, { removePadding: false });
  try {
    const p = (await on.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    const q = await off.prepare(graph, planGraph(graph));
    const names = graph.outputs.map((o) => o.name);
    const shapes: [number[], number][] = [
      [[16, 7], 16],
      [[37, 30, 1], 37],
    ];
    for (let r = 0; r < 8; r++) {
      const [lengths, S] = shapes[r % 2]!;
      const feeds = bertFeeds(
        lengths.map((l) => Math.max(1, l - r)),
        S,
        100 + r,
      );
      const got = await p.run(feeds, names);
      expectClose(got, await q.run(feeds, names), 1e-6, `run ${r} vs replay: false`);
      expectClose(got, await cpu.run(feeds), 1e-4, `run ${r} vs cpu`);
      assert.equal(p.replay.status.last, r < 2 ? "recorded" : r < 4 ? "captured" : "replayed", `run ${r}`);
    }
    const plans = p.replay.describe();
    assert.equal(plans.length, 2);
    for (const plan of plans) {
      t.diagnostic(`${plan.key}: ${plan.dispatches} dispatches in ${plan.passes} compute pass(es)`);
      assert.deepEqual(plan.deciding, [], "token ids, types and lengths are rewritten, not keyed");
      assert.ok(plan.hostData >= 3, `${plan.hostData} host-data uploads (2 embedding gathers, lengths)`);
      assert.ok(plan.dispatches > 10);
    }
  } finally {
    await on.dispose();
    await off.dispose();
    await cpu.release();
  }
});

test("webgpu replay: padding removal keys its plans by the mask — same shapes, other valid tokens never replay a stale cu_seqlens", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const s = await sessions(BERT, { removePadding: true });
  try {
    const S = 16;
    const m1 = [16, 10];
    const m2 = [12, 16];
    // Same number of valid tokens as m1 (26), other positions: the same dims everywhere after removal.
    const m3 = [10, 16];
    const steps: [number[], string][] = [
      [m1, "recorded"],
      [m1, "captured"],
      [m1, "replayed"],
      [m2, "recorded"],
      [m2, "captured"],
      [m2, "replayed"],
      [m3, "recorded"],
      [m1, "replayed"],
      [m3, "captured"],
      [m2, "replayed"],
      [m3, "replayed"],
    ];
    for (const [r, [lengths, status]] of steps.entries()) {
      await s.check(bertFeeds(lengths, S, 200 + r), `run ${r} [${lengths}]`);
      const removal = s.on.lastPaddingRemoval;
      assert.ok(removal && !("skipped" in removal), JSON.stringify(removal));
      assert.equal(s.on.lastReplay!.last, status, `run ${r} [${lengths}]: ${s.on.lastReplay!.reason}`);
      if (status === "recorded" && r > 0) assert.match(s.on.lastReplay!.reason!, /'attention_mask' differs/);
    }
    assert.equal(s.on.lastReplay!.plans, 3);
  } finally {
    await s.release();
  }
});

test("webgpu replay: padding removal on, batches without padding run the graph as is and replay whatever their ids", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const s = await sessions(BERT, { removePadding: true });
  try {
    const S = 16;
    const steps: [number[], string, boolean][] = [
      [[16, 16], "recorded", false],
      [[16, 16], "captured", false],
      // A padded batch of the same dims in between: removal, its own recording.
      [[16, 9], "recorded", true],
      [[16, 16], "replayed", false],
      [[16, 16], "replayed", false],
    ];
    for (const [r, [lengths, status, removed]] of steps.entries()) {
      await s.check(bertFeeds(lengths, S, 300 + r), `run ${r} [${lengths}]`);
      const removal = s.on.lastPaddingRemoval;
      if (removed) assert.ok(removal && !("skipped" in removal), JSON.stringify(removal));
      else assert.match(JSON.stringify(removal), /no padding in this batch/);
      assert.equal(s.on.lastReplay!.last, status, `run ${r} [${lengths}]: ${s.on.lastReplay!.reason}`);
    }
  } finally {
    await s.release();
  }
});

test("webgpu replay: llama_past decoding loops (KV cache fed back) replay every step from the third loop, as the CPU", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const gpu = await InferenceSession.create(LLAMA, webgpu());
  const cpu = await InferenceSession.create(LLAMA);
  const feeds = llamaPastFeeds;
  try {
    for (let loop = 0; loop < 3; loop++) {
      const prompt = ints(6, VOCAB, 300 + loop);
      let [pastG, pastC]: (Feeds | undefined)[] = [undefined, undefined];
      let next = prompt;
      for (let step = 0; step <= 3; step++) {
        const total = prompt.length + step;
        const g = await gpu.run(feeds(next, total, pastG));
        const c = await cpu.run(feeds(next, total, pastC));
        expectClose(g, c, 1e-4, `loop ${loop} step ${step}`);
        const want = ["recorded", "captured", "replayed"][loop];
        assert.equal(gpu.lastReplay!.last, want, `loop ${loop} step ${step}: ${gpu.lastReplay!.reason}`);
        [pastG, pastC] = [g, c];
        next = ints(1, VOCAB, 17 * loop + step);
      }
    }
    assert.deepEqual(gpu.fallbacks(), []);
  } finally {
    await gpu.release();
    await cpu.release();
  }
});

test("webgpu replay: fp16 replays equal fp16 node by node (bert_eager, llama_past with new past values)", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const on = new WebGpuBackend({ precision: "fp16" });
  const off = new WebGpuBackend({ precision: "fp16", replay: false });
  try {
    for (const name of ["bert_eager", "llama_past"]) {
      const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
      const { graph } = optimizeGraph(model.graph, { level: "all" });
      const p = (await on.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
      const q = await off.prepare(graph, planGraph(graph));
      const cpu = await InferenceSession.create(`${FIXTURES}onnx/${name}.onnx`, { removePadding: false });
      const [c] = fixtureCases(name);
      const names = Object.keys(c!.outputs);
      for (let r = 0; r < 4; r++) {
        // New data in every input: ids within the vocabulary, float inputs (the KV cache) perturbed.
        const feeds: Feeds = {};
        for (const [k, v] of Object.entries(c!.inputs)) {
          if (k === "attention_mask") feeds[k] = v;
          else if (v.type === "int64")
            feeds[k] = new Tensor(
              "int64",
              ints(v.size, k.includes("type") ? 2 : VOCAB, r + k.length),
              v.dims,
            );
          else feeds[k] = new Tensor("float32", rand(v.size, 40 + r), v.dims);
        }
        const got = await p.run(feeds, names);
        expectClose(got, await q.run(feeds, names), 1e-6, `${name} run ${r} vs replay: false`);
        expectClose(got, await cpu.run(feeds, names), 1e-2, `${name} run ${r} vs cpu fp32`);
        if (r >= 2) assert.equal(p.replay.status.last, "replayed", `${name} run ${r}`);
      }
      await cpu.release();
    }
  } finally {
    await on.dispose();
    await off.dispose();
  }
});

/** x [2, 8] → Relu → `middle` → Relu → y; `middle` builds the nodes in between from the Relu's output. */
function tinyGraph(middle: (b: GraphBuilder, x: string) => string, extraInput?: [string, number]): Graph {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [2, 8]);
  if (extraInput) b.input(extraInput[0], "int64", [extraInput[1]]);
  const y = b.op("Relu", [middle(b, b.op("Relu", [x]))], {}, { outputs: ["y"] });
  b.output(y);
  return b.build();
}

test("webgpu replay: what must not replay — a CPU fallback, a data-dependent reshape target, profiled and verify runs", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const x = (seed: number) => new Tensor("float32", rand(16, seed), [2, 8]);

  // CumSum has no webgpu kernel: it reads the device value back, so the run is never recorded as a plan.
  const fallback = tinyGraph((b, v) => b.op("CumSum", [v, b.const("int64", 1)]));
  const gpu = InferenceSession.fromGraph(fallback, webgpu());
  const cpu = InferenceSession.fromGraph(fallback);
  for (let r = 0; r < 3; r++) {
    expectClose(await gpu.run({ x: x(r) }), await cpu.run({ x: x(r) }), 1e-5, `fallback run ${r}`);
    assert.equal(gpu.lastReplay!.last, "refused");
    assert.match(gpu.lastReplay!.reason!, /CumSum .* runs on the CPU with device inputs/);
  }
  assert.equal(gpu.fallbacks().length, 1);
  await gpu.release();
  await cpu.release();

  // A reshape target given as an input: its values decide the output dims, so they key the plan.
  const reshape = tinyGraph((b, v) => b.op("Reshape", [v, "shape"]), ["shape", 2]);
  const g2 = InferenceSession.fromGraph(reshape, webgpu());
  const c2 = InferenceSession.fromGraph(reshape);
  const shapes = [
    [4, 4],
    [4, 4],
    [4, 4],
    [8, 2],
    [8, 2],
    [8, 2],
    [4, 4],
  ];
  const want = ["recorded", "captured", "replayed", "recorded", "captured", "replayed", "replayed"];
  for (const [r, dims] of shapes.entries()) {
    const feeds = { x: x(10 + r), shape: new Tensor("int64", dims, [2]) };
    const got = await g2.run(feeds);
    assert.deepEqual([...got.y!.dims], dims);
    expectClose(got, await c2.run(feeds), 1e-6, `reshape run ${r}`);
    assert.equal(g2.lastReplay!.last, want[r], `reshape run ${r}`);
  }
  assert.equal(g2.lastReplay!.plans, 2);
  await g2.release();
  await c2.release();

  // Profiled runs time every dispatch; verify runs keep every value: neither replays.
  const model = await loadModel(BERT);
  const { graph } = optimizeGraph(model.graph, { level: "all" });
  const backend = new WebGpuBackend();
  const p = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
  const [c] = fixtureCases("bert_eager");
  const names = Object.keys(c!.outputs);
  for (let r = 0; r < 3; r++) await p.run(c!.inputs, names);
  assert.equal(p.replay.status.last, "replayed");
  expectClose(await p.run(c!.inputs, names, { profile: true }), c!.outputs, 1e-4, "profiled");
  assert.equal(p.replay.status.last, "bypassed");
  await backend.dispose();
  const verify = await InferenceSession.create(BERT, webgpu({ verify: true }));
  await verify.run(c!.inputs);
  assert.equal(verify.lastReplay!.last, "bypassed");
  await verify.release();
});

test("webgpu replay: the option (and MHAFUSE_WEBGPU_REPLAY=0), pool reservation, release", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  await assert.rejects(
    InferenceSession.create(BERT, webgpu({ replay: "yes" as never })),
    (e: unknown) => e instanceof OptionError && e.code === "OPTION_INVALID",
  );
  const saved = process.env.MHAFUSE_WEBGPU_REPLAY;
  process.env.MHAFUSE_WEBGPU_REPLAY = "0";
  const offByEnv = new WebGpuBackend();
  const onByOption = new WebGpuBackend({ replay: true });
  if (saved === undefined) delete process.env.MHAFUSE_WEBGPU_REPLAY;
  else process.env.MHAFUSE_WEBGPU_REPLAY = saved;
  const model = await loadModel(BERT);
  const { graph } = optimizeGraph(model.graph, { level: "all" });
  const [c] = fixtureCases("bert_eager");
  const names = Object.keys(c!.outputs);
  try {
    const a = (await offByEnv.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (let r = 0; r < 3; r++) await a.run(c!.inputs, names);
    assert.equal(a.replay.status.last, "off");
    assert.match(a.replay.status.reason!, /MHAFUSE_WEBGPU_REPLAY/);

    const b = (await onByOption.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (let r = 0; r < 2; r++) await b.run(c!.inputs, names);
    const [plan] = b.replay.describe();
    assert.ok(plan && plan.buffers > 0 && plan.bytes > 0, JSON.stringify(plan));
    await b.release();
    assert.equal(b.replay.size, 0);
    for (let r = 0; r < 3; r++)
      expectClose(await b.run(c!.inputs, names), c!.outputs, 1e-4, `after release ${r}`);
    assert.equal(b.replay.status.last, "replayed", "a released graph records and replays anew");
  } finally {
    await offByEnv.dispose();
    await onByOption.dispose();
  }

  // BufferPool.reserve: an idle buffer leaves its bucket until released; a held one cannot be reserved.
  const held = ctx.pool.acquire(4096);
  assert.equal(ctx.pool.reserve(held), false);
  ctx.pool.release(held);
  assert.equal(ctx.pool.reserve(held), true);
  const other = ctx.pool.acquire(4096);
  assert.notEqual(other, held);
  ctx.pool.release(other);
  ctx.pool.release(held);
  const again = [ctx.pool.acquire(4096), ctx.pool.acquire(4096)];
  assert.ok(again.includes(held));
  for (const b of again) ctx.pool.release(b);
});

test("hoistUploads: copies out of staging move to the front unless an earlier command touches their destination", () => {
  const buf = (name: string, staging = false) => ({ name, staging }) as unknown as GPUBuffer;
  const [s1, s2, s3] = [buf("s1", true), buf("s2", true), buf("s3", true)];
  const [a, b, c, out] = [buf("a"), buf("b"), buf("c"), buf("out")];
  const copy = (src: GPUBuffer, dst: GPUBuffer): TapeCommand => ({
    op: "copy",
    src,
    srcOffset: 0,
    dst,
    dstOffset: 0,
    size: 4,
  });
  const dispatch = (...buffers: GPUBuffer[]): TapeCommand =>
    ({ op: "dispatch", buffers, x: 1, y: 1, z: 1 }) as unknown as TapeCommand;
  const tape = [
    copy(s1, a),
    dispatch(a, b),
    copy(s2, b), // b held another value before: stays where it was recorded
    copy(s3, c),
    dispatch(b, c),
    copy(c, out), // a read-back copy, not an upload
  ];
  const hoisted = hoistUploads(tape, (x) => (x as unknown as { staging: boolean }).staging);
  assert.deepEqual(hoisted, [tape[0], tape[3], tape[1], tape[2], tape[4], tape[5]]);
});

test("submitTape: command buffers of growing size, every command once and in order", () => {
  // A fake device logging what each command buffer holds: dispatches by name, pass ends, copies.
  const log: string[][] = [];
  let current: string[] = [];
  const pass = {
    setPipeline: () => {},
    setBindGroup: () => {},
    dispatchWorkgroups: (x: number) => current.push(`d${x}`),
    end: () => current.push("end"),
  };
  const device = {
    createCommandEncoder: () => {
      current = [];
      return {
        beginComputePass: () => pass,
        copyBufferToBuffer: () => current.push("copy"),
        clearBuffer: () => current.push("clear"),
        finish: () => current,
      };
    },
    queue: { submit: (buffers: string[][]) => log.push(...buffers) },
  } as unknown as GPUDevice;
  const dispatch = (i: number): TapeCommand =>
    ({ op: "dispatch", pipeline: {}, group: {}, buffers: [], x: i, y: 1, z: 1 }) as unknown as TapeCommand;
  const copy = {
    op: "copy",
    src: {},
    srcOffset: 0,
    dst: {},
    dstOffset: 0,
    size: 4,
  } as unknown as TapeCommand;
  const commands = [copy, ...Array.from({ length: 5 }, (_, i) => dispatch(i)), copy];
  commands.push(...Array.from({ length: 9 }, (_, i) => dispatch(5 + i)));
  submitTape(device, commands, "t", 2);
  // 2, 4 and 8 dispatches: 14 in 3 command buffers, the pass ended at each split, the copies where they were.
  assert.deepEqual(log, [
    ["copy", "d0", "d1", "end"],
    ["d2", "d3", "d4", "end", "copy", "d5", "end"],
    ["d6", "d7", "d8", "d9", "d10", "d11", "d12", "d13", "end"],
  ]);
  log.length = 0;
  submitTape(device, commands, "t", 0);
  assert.equal(log.length, 1, "firstSubmit 0: one command buffer");
  assert.equal(log[0]!.filter((c) => c.startsWith("d")).length, 14);
});

test("webgpu replay: packed attention ops reading one mask upload its lengths once", async (t) => {
  // (A lengths feed keys the signature by its values; the BERT replay test above changes the lengths between
  // replays of two packed ops that share them.)
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const [S, B, N, H] = [9, 3, 2, 8];
  const E = N * H;
  const b = new GraphBuilder({ opset: 17, opsets: { mhafuse: 1 } });
  const q1 = b.input("qkv1", "float32", [S, B, 3 * E, 1, 1]);
  const q2 = b.input("qkv2", "float32", [S, B, 3 * E, 1, 1]);
  const mask = b.input("lengths", "int32", [B]);
  for (const [i, q] of [q1, q2].entries())
    b.output(
      b.op("QKVToContext", [q, mask], { num_heads: N }, { outputs: [`y${i}`], domain: "mhafuse" }),
      "float32",
    );
  const graph = b.build();
  const gpu = new WebGpuBackend();
  try {
    const p = (await gpu.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    for (let r = 0; r < 6; r++) {
      const feeds = {
        qkv1: new Tensor("float32", rand(S * B * 3 * E, 10 + r), [S, B, 3 * E, 1, 1]),
        qkv2: new Tensor("float32", rand(S * B * 3 * E, 20 + r), [S, B, 3 * E, 1, 1]),
        lengths: new Tensor("int32", Int32Array.from([9, 1, 5]), [B]),
      };
      const got = await p.run(feeds, ["y0", "y1"]);
      const want = runGraph(graph, feeds);
      for (const y of ["y0", "y1"])
        assert.ok(maxAbsDiff(got[y]!, want.get(y)!) <= 1e-5, `${y}, run ${r} (${p.replay.status.last})`);
    }
    assert.equal(p.replay.status.last, "replayed");
    const [plan] = p.replay.describe();
    assert.equal(plan!.hostData, 1, "one lengths upload for both ops");
  } finally {
    await gpu.dispose();
  }
});
