import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GraphBuilder } from "../src/ir/builder.js";
import { modelFromGraph, saveModelFile } from "../src/onnx/save.js";
import { FIXTURES, REPO } from "./helpers.js";
import { gpuContext } from "./webgpu-helpers.js";

const CLI = join(REPO, "dist/cli/main.js");

function mhafuse(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("every command has --help", () => {
  for (const cmd of [
    "run",
    "inspect",
    "optimize",
    "pack-weights",
    "demo",
    "bench",
    "serve",
    "report",
    "build",
  ]) {
    const r = mhafuse(cmd, "--help");
    assert.equal(r.code, 0, `${cmd} --help exited ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: mhafuse ${cmd}`));
  }
  const top = mhafuse("--help");
  assert.equal(top.code, 0);
  for (const cmd of [
    "run",
    "inspect",
    "optimize",
    "pack-weights",
    "demo",
    "bench",
    "serve",
    "report",
    "build",
  ])
    assert.match(top.stdout, new RegExp(cmd));
});

test("errors go to stderr with a non-zero exit and no stack unless --verbose", () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-cli-"));
  const bad = join(dir, "bad.onnx");
  writeFileSync(bad, Buffer.from("this is not a model"));
  const r = mhafuse("inspect", bad);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^mhafuse: .*not a valid ONNX model/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const v = mhafuse("--verbose", "inspect", bad);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /\n\s+at /);
});

test("run reports a missing input by name with the expected shape", () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-cli-"));
  const inputs = join(dir, "in.json");
  const ids = { dtype: "int64", shape: [1, 2], data: Buffer.alloc(16).toString("base64") };
  writeFileSync(inputs, JSON.stringify({ input_ids: ids, token_type_ids: ids }));
  const r = mhafuse("run", `${FIXTURES}onnx/bert_eager.onnx`, "--inputs", inputs);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /missing input 'attention_mask' \(expected int64\[batch,seq\]\)/);
});

test("inspect shows inputs, opsets, the op histogram and the attention blocks", () => {
  const r = mhafuse("inspect", `${FIXTURES}onnx/bert_eager.onnx`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /input_ids: int64\[batch,seq\]/);
  assert.match(r.stdout, /ai\.onnx 17/);
  assert.match(r.stdout, /\d+\s+MatMul/);
  assert.match(r.stdout, /2 of 2 attention blocks fused/);
  const j = JSON.parse(mhafuse("inspect", `${FIXTURES}onnx/bert_eager.onnx`, "--json").stdout);
  assert.deepEqual(
    j.inputs.map((i: { name: string }) => i.name),
    ["input_ids", "attention_mask", "token_type_ids"],
  );
  assert.ok(j.ops.MatMul >= 12);
  assert.equal(j.attention.length, 2);
  // Run options without --provider would be silently ignored: they are refused.
  const bad = mhafuse("inspect", `${FIXTURES}onnx/bert_eager.onnx`, "--precision", "fp16");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /OPTION_INVALID: --precision needs --provider webgpu/);
});

test("inspect --provider webgpu runs the model once and lists only real CPU fallbacks", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // bert_eager: its mask chain (Range, Equal, Where …) has no GPU kernel but runs on the host by design.
  const bert = JSON.parse(
    mhafuse(
      "inspect",
      `${FIXTURES}onnx/bert_eager.onnx`,
      "--json",
      "--provider",
      "webgpu",
      "--shapes",
      "input_ids:2x16,attention_mask:2x16,token_type_ids:2x16",
    ).stdout,
  );
  assert.ok(bert.webgpu.opsWithoutKernel.includes("Range"));
  assert.deepEqual(bert.webgpu.run.fallbacks, []);
  assert.deepEqual(bert.webgpu.run.feeds.input_ids, [2, 16]);
  // Floor has no GPU kernel and its input is on the GPU (Relu's output): a real fallback, with its reason.
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [2, 3]);
  const floor = b.op("Floor", [b.op("Relu", [x], {}, { outputs: ["r"] })], {}, { outputs: ["f"] });
  b.output(b.op("Relu", [floor], {}, { outputs: ["y"] }), "float32");
  const file = join(mkdtempSync(join(tmpdir(), "mhafuse-inspect-")), "floor.onnx");
  saveModelFile(modelFromGraph(b.build()), file);
  const r = mhafuse("inspect", file, "--provider", "webgpu");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /op types without a GPU kernel .*: Floor/);
  assert.match(r.stdout, /webgpu run \(default; x 2x3\): 1 node\(s\) fell back to the CPU/);
  assert.match(r.stdout, /Floor '[^']+': no webgpu kernel/);
  const bad = mhafuse("inspect", file, "--provider", "cpu");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /OPTION_INVALID: --provider must be webgpu/);
});

test("demo builds, fuses and runs a small BERT", () => {
  const r = mhafuse(
    "demo",
    "--layers",
    "1",
    "--hidden",
    "32",
    "--heads",
    "2",
    "--ffn",
    "64",
    "--seq",
    "16",
    "--batch",
    "2",
    "--repeats",
    "1",
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 of 1 attention blocks fused/);
  const diff = Number(/max \|fused - unfused\| = ([\d.e+-]+)/.exec(r.stdout)?.[1]);
  assert.ok(diff < 1e-4, `fused vs unfused: ${diff}`);
  const valid = Number(/valid tokens with padding removed: ([\d.e+-]+)/.exec(r.stdout)?.[1]);
  assert.ok(valid < 1e-4, `padding removed vs unfused on valid tokens: ${valid}`);
  const bad = mhafuse("demo", "--heads", "0");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--heads must be a positive integer/);
});
