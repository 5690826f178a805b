import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { InferenceSession } from "../src/engine/session.js";
import { MhafuseError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { HOSTILE_CASES } from "./hostile-models.js";

// Each hostile model must be refused with its code (or load, for fold bombs left for run time) within its
// CPU-time bound and without growing the process's peak memory past its bound. CPU time, not wall time,
// so that a loaded machine does not make the bounds flaky; peak RSS (maxRSS) catches a transient 2 GB
// allocation that a before/after heap reading would miss.

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

for (const c of HOSTILE_CASES) {
  test(`hostile model '${c.name}': ${c.expect === "loads" ? "loads (nothing huge computed)" : c.expect}, < ${c.maxCpuMs} ms CPU, < ${c.maxRssMb} MB`, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), "mhafuse-hostile-"));
    try {
      const file = c.make(dir);
      const rssBefore = process.resourceUsage().maxRSS;
      const cpu = process.cpuUsage();
      const wall = performance.now();
      let outcome: unknown;
      try {
        outcome = await InferenceSession.create(file);
      } catch (err) {
        outcome = err;
      }
      const ms = cpuMs(cpu);
      const wallMs = performance.now() - wall;
      const grewMb = (process.resourceUsage().maxRSS - rssBefore) / 1024;
      t.diagnostic(
        `${ms.toFixed(1)} ms CPU, ${wallMs.toFixed(1)} ms wall, peak RSS +${grewMb.toFixed(0)} MB`,
      );
      if (c.expect === "loads") {
        assert.ok(outcome instanceof InferenceSession, `expected to load, got ${String(outcome)}`);
      } else {
        assert.ok(outcome instanceof MhafuseError, `expected ${c.expect}, got ${String(outcome)}`);
        assert.equal(outcome.code, c.expect, outcome.message);
      }
      assert.ok(ms < c.maxCpuMs, `took ${ms.toFixed(1)} ms CPU (bound ${c.maxCpuMs})`);
      // Wall time too, loosely: a FIFO that blocks burns no CPU but would hang here.
      assert.ok(wallMs < 10 * c.maxCpuMs + 5000, `took ${wallMs.toFixed(0)} ms wall`);
      assert.ok(grewMb < c.maxRssMb, `peak RSS grew ${grewMb.toFixed(0)} MB (bound ${c.maxRssMb})`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("a fold bomb allowed past the memory cap fails at run time with LIMIT_EXCEEDED naming the node", async () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1]);
  const big = b.op("Expand", [x, b.const("int64", [1e10])], {}, { name: "bomb" });
  b.output(b.op("ReduceSum", [big], { keepdims: 1 }, { outputs: ["y"] }));
  const s = await InferenceSession.create(saveModel(modelFromGraph(b.build())), {
    memoryLimitBytes: Number.POSITIVE_INFINITY,
  });
  const cpu = process.cpuUsage();
  await assert.rejects(
    () => s.run({ x: new Tensor("float32", new Float32Array([1]), [1]) }),
    (e: unknown) => e instanceof MhafuseError && e.code === "LIMIT_EXCEEDED" && e.node === "bomb",
  );
  assert.ok(cpuMs(cpu) < 100, `took ${cpuMs(cpu)} ms`);
});

test("the session memory cap refuses weights past it with MODEL_TOO_LARGE, before running", async () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [256]);
  const w = b.init(new Tensor("float32", new Float32Array(256), [256]), "w");
  b.output(b.op("Add", [x, w], {}, { outputs: ["y"] }));
  const bytes = saveModel(modelFromGraph(b.build()));
  await assert.rejects(
    () => InferenceSession.create(bytes, { memoryLimitBytes: 512 }),
    (e: unknown) => e instanceof MhafuseError && e.code === "MODEL_TOO_LARGE" && e.input === "w",
  );
  const ok = await InferenceSession.create(bytes, { memoryLimitBytes: 4096 });
  assert.deepEqual(ok.outputNames, ["y"]);
});

test("the CLI refuses hostile models with the code printed, and inspects a fold bomb without computing it", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mhafuse-hostile-cli-"));
  try {
    const cli = (file: string) =>
      spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "inspect", file], {
        encoding: "utf8",
        timeout: 60_000,
      });
    const fifo = HOSTILE_CASES.find((c) => c.name === "model-path-fifo")!;
    const r = cli(fifo.make(dir));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^mhafuse: MODEL_INVALID: model file .* is a FIFO/);
    const zero = cli("/dev/zero");
    assert.match(zero.stderr, /^mhafuse: MODEL_INVALID: .*character device/);
    const bomb = HOSTILE_CASES.find((c) => c.name === "expand-5e8")!;
    const ok = cli(bomb.make(dir));
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /Expand/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
