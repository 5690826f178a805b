// Engine files: build → load → run equals the ONNX run exactly for every fixture; corrupt, truncated, foreign
// and future-version files are coded errors; `mhafuse build` and `mhafuse run x.mhaf` from the CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { buildEngine, ENGINE_FORMAT_VERSION, readEngine } from "../src/engine/engine-file.js";
import { InferenceSession } from "../src/engine/session.js";
import { ModelLoadError } from "../src/errors.js";
import { loadModelSync } from "../src/onnx/index.js";
import { FIXTURE_MODELS, FIXTURES, fixtureCases, REPO } from "./helpers.js";

const onnx = (m: string) => `${FIXTURES}onnx/${m}.onnx`;

for (const model of FIXTURE_MODELS) {
  test(`${model}: engine file round trip runs exactly as the ONNX model`, async () => {
    const bytes = buildEngine(loadModelSync(onnx(model)));
    const fromEngine = await InferenceSession.create(bytes);
    const fromOnnx = await InferenceSession.create(onnx(model));
    assert.deepEqual(fromEngine.attentionReport, fromOnnx.attentionReport);
    assert.equal(fromEngine.graph.nodes.length, fromOnnx.graph.nodes.length);
    for (const c of fixtureCases(model)) {
      const a = await fromEngine.run(c.inputs);
      const b = await fromOnnx.run(c.inputs);
      for (const name of Object.keys(b)) assert.deepEqual(a[name]!.data, b[name]!.data, `${model} ${name}`);
    }
    await fromEngine.release();
    await fromOnnx.release();
  });
}

test("corrupt, truncated, foreign and future-version engine files are MODEL_INVALID with the reason", () => {
  const good = buildEngine(loadModelSync(onnx("bert_eager")));
  const refuse = (bytes: Uint8Array, re: RegExp) =>
    assert.throws(
      () => readEngine(bytes),
      (e: unknown) => e instanceof ModelLoadError && e.code === "MODEL_INVALID" && re.test(e.message),
    );
  const flipped = good.slice();
  flipped[flipped.length - 100]! ^= 0xff;
  refuse(flipped, /corrupt: payload checksum mismatch/);
  refuse(good.subarray(0, good.length - 10), /truncated or padded/);
  refuse(good.subarray(0, 12), /truncated/);
  refuse(new Uint8Array(readFileSync(onnx("bert_eager"))), /not an mhafuse engine file/);
  const future = good.slice();
  new DataView(future.buffer).setUint32(8, ENGINE_FORMAT_VERSION + 1, true);
  refuse(future, /built by a newer mhafuse/);
  const header = JSON.parse(
    new TextDecoder().decode(good.subarray(16, 16 + new DataView(good.buffer).getUint32(12, true))),
  );
  const foreign = JSON.stringify({ ...header, kernelSet: "0000000000000000" });
  const rebuilt = new Uint8Array(16 + foreign.length + header.payloadBytes);
  rebuilt.set(good.subarray(0, 12));
  new DataView(rebuilt.buffer).setUint32(12, foreign.length, true);
  rebuilt.set(new TextEncoder().encode(foreign), 16);
  rebuilt.set(good.subarray(good.length - header.payloadBytes), 16 + foreign.length);
  refuse(rebuilt, /another kernel set .* rebuild it/);
});

test("an engine built for one provider is refused by a session of another, with the rebuild command", async () => {
  const bytes = buildEngine(loadModelSync(onnx("bert_eager")), { backend: "webgpu" });
  await assert.rejects(
    InferenceSession.create(bytes),
    (e: unknown) =>
      e instanceof Error && /built for the webgpu provider, the session asks for cpu/.test(e.message),
  );
});

test("CLI: mhafuse build, then mhafuse run on the .mhaf", () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-engine-"));
  const out = join(dir, "bert.mhaf");
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(REPO, "dist/cli/main.js"), ...args], { encoding: "utf8" });
  const b = cli("build", onnx("bert_eager"), "-o", out, "--json");
  assert.equal(b.status, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout).report.length, 2);
  const inputs = join(dir, "in.json");
  writeFileSync(inputs, readFileSync(`${FIXTURES}onnx/bert_eager.io.json`));
  const r = cli("run", out, "--inputs", inputs, "--case", "0", "--output", join(dir, "out.json"));
  assert.equal(r.status, 0, r.stderr);
  const corrupt = join(dir, "bad.mhaf");
  writeFileSync(corrupt, Buffer.from("MHAFUSE\0garbage"));
  const bad = cli("run", corrupt, "--inputs", inputs);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /MODEL_INVALID/);
});
