import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { Tensor } from "../src/ir/tensor.js";
import { type JsonTensor, loadModel, tensorFromJson } from "../src/onnx/index.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases, REPO } from "./support/fixtures.js";

// The CLI on the decoder fixtures and on float16 models: `run --verify` (fused blocks and outputs against the
// unfused graph), `optimize --float16`, and `optimize --target onnxruntime` of a float16 model.

/** Runs the CLI; a non-zero exit (a verify mismatch is one: FUSION_MISMATCH) throws. Returns stdout. */
function cli(args: string[]): string {
  return execFileSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: REPO,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function readOutputs(file: string): Record<string, Tensor> {
  const doc = JSON.parse(readFileSync(file, "utf8")) as Record<string, JsonTensor>;
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, tensorFromJson(v)]));
}

async function ortRun(model: string, inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(model);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(inputs))
    feeds[k] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as BigInt64Array, [...t.dims]);
  const result = await session.run(feeds);
  await session.release();
  return Object.fromEntries(
    Object.entries(result).map(([k, v]) => [
      k,
      new Tensor(v.type as "float16", v.data as Uint16Array, v.dims),
    ]),
  );
}

for (const name of ["phi3_eager", "qwen3_sdpa", "gpt_neox_sdpa", "llama_past"]) {
  test(`run --verify: ${name} fused blocks match the unfused graph, outputs match the references`, () => {
    const dir = mkdtempSync(join(tmpdir(), "mhafuse-verify-"));
    try {
      const out = join(dir, "out.json");
      const cases = fixtureCases(name);
      const k = cases.length - 1;
      cli([
        "run",
        `${FIXTURES}onnx/${name}.onnx`,
        "--inputs",
        `${FIXTURES}onnx/${name}.io.json`,
        "--case",
        String(k),
        "--verify",
        "-o",
        out,
      ]);
      const got = readOutputs(out);
      for (const [o, ref] of Object.entries(cases[k]!.outputs)) {
        const d = maxAbsDiff(got[o]!, ref);
        assert.ok(d <= 1e-4, `${name} ${o}: max |diff| ${d}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("optimize --float16, run --verify on the float16 model, optimize --target onnxruntime of it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-f16-"));
  try {
    const half = join(dir, "half.onnx");
    cli(["optimize", `${FIXTURES}onnx/bert_eager.onnx`, "--float16", "--level", "disabled", "-o", half]);
    const model = await loadModel(half);
    assert.deepEqual(
      model.graph.outputs.map((o) => o.dtype),
      ["float16", "float16"],
    );
    const c = fixtureCases("bert_eager")[1]!;
    const want = await ortRun(half, c.inputs);

    const out = join(dir, "out.json");
    cli([
      "run",
      half,
      "--inputs",
      `${FIXTURES}onnx/bert_eager.io.json`,
      "--case",
      "1",
      "--verify",
      "-o",
      out,
    ]);
    const got = readOutputs(out);
    for (const [o, ref] of Object.entries(want)) {
      assert.equal(got[o]!.type, "float16");
      const d = maxAbsDiff(got[o]!, ref);
      assert.ok(d <= 1e-2, `run ${o}: max |diff| ${d}`);
    }

    const forOrt = join(dir, "ort.onnx");
    const doc = JSON.parse(cli(["optimize", half, "--target", "onnxruntime", "--json", "-o", forOrt])) as {
      attention: { fused: boolean; path: string }[];
    };
    assert.deepEqual(
      doc.attention.map((b) => [b.fused, b.path]),
      [
        [true, "packed-qkv"],
        [true, "packed-qkv"],
      ],
    );
    const converted = await ortRun(forOrt, c.inputs);
    for (const [o, ref] of Object.entries(want)) {
      const d = maxAbsDiff(converted[o]!, ref);
      assert.ok(d <= 1e-2, `--target onnxruntime ${o}: max |diff| ${d}`);
    }

    const kept = join(dir, "kept.onnx");
    cli(["optimize", `${FIXTURES}onnx/bert_eager.onnx`, "--float16", "--keep-io-types", "-o", kept]);
    const keptModel = await loadModel(kept);
    assert.deepEqual(
      keptModel.graph.outputs.map((o) => o.dtype),
      ["float32", "float32"],
    );
    assert.ok(keptModel.graph.nodes.some((n) => n.opType === "QKVToContext"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
