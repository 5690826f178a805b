import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { loadModel } from "../src/onnx/index.js";
import { FIXTURE_MODELS } from "./helpers.js";

// `mhafuse optimize` end to end: the written model, converted for onnxruntime, runs in onnxruntime-node
// and reproduces the fixture references; the mhafuse-target file keeps the fused ops.

const repo = fileURLToPath(new URL("../", import.meta.url));
const fixtures = fileURLToPath(new URL("../../shared/fixtures/onnx/", import.meta.url));

interface JsonTensor {
  dtype: "int64" | "float32";
  shape: number[];
  data: string;
}

function toOrt(t: JsonTensor): ort.Tensor {
  const bytes = Buffer.from(t.data, "base64");
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  return t.dtype === "int64"
    ? new ort.Tensor("int64", new BigInt64Array(buffer), t.shape)
    : new ort.Tensor("float32", new Float32Array(buffer), t.shape);
}

function optimize(model: string, out: string, target: string): string {
  return execFileSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "src/cli/main.ts",
      "optimize",
      `${fixtures}${model}.onnx`,
      "-o",
      out,
      "--target",
      target,
      "--json",
    ],
    { cwd: repo, encoding: "utf8" },
  );
}

for (const name of FIXTURE_MODELS) {
  test(`optimize --target onnxruntime: ${name} runs in onnxruntime-node and matches the references`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "mhafuse-optimize-"));
    try {
      const out = join(dir, `${name}.onnx`);
      const doc = JSON.parse(optimize(name, out, "onnxruntime")) as { attention: { fused: boolean }[] };
      assert.ok(doc.attention.length > 0 && doc.attention.every((b) => b.fused));
      const session = await ort.InferenceSession.create(out);
      const io = JSON.parse(readFileSync(`${fixtures}${name}.io.json`, "utf8")) as {
        cases: { inputs: Record<string, JsonTensor>; outputs: Record<string, JsonTensor> }[];
      };
      for (const c of io.cases) {
        const feeds = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, toOrt(v)]));
        const results = await session.run(feeds);
        for (const [k, ref] of Object.entries(c.outputs)) {
          const want = toOrt(ref).data as Float32Array;
          const got = results[k]!.data as Float32Array;
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i]! - got[i]!));
          assert.ok(worst <= 1e-4, `${name} ${k}: max |diff| ${worst}`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("optimize --target mhafuse keeps the fused ops in the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-optimize-"));
  try {
    const out = join(dir, "bert.onnx");
    optimize("bert_eager", out, "mhafuse");
    const ops = (await loadModel(out)).graph.nodes.map((n) => `${n.domain}.${n.opType}`);
    assert.equal(ops.filter((o) => o === "mhafuse.QKVToContext").length, 2);
    assert.equal(
      ops.filter((o) => o === "mhafuse.SeqLensFromMask").length,
      1,
      "one mask-to-lengths for both layers",
    );
    assert.ok(!ops.includes(".Softmax"), "no Softmax left");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("optimize rejects an unknown target", () => {
  assert.throws(
    () =>
      execFileSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "src/cli/main.ts",
          "optimize",
          `${fixtures}bert_eager.onnx`,
          "-o",
          "/dev/null",
          "--target",
          "tensorrt",
        ],
        { cwd: repo, stdio: "pipe" },
      ),
    (err: { stderr: Buffer }) => /unknown --target 'tensorrt'/.test(err.stderr.toString()),
  );
});
