import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, test } from "node:test";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { InferenceSession } from "../src/engine/session.js";
import { loadNativeQuietly } from "../src/native/load.js";
import { loadModel } from "../src/onnx/index.js";
import { REPO } from "./helpers.js";
import { skipNative } from "./native-helpers.js";
import { maxAbsDiff } from "./support/compare.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";

// The CPU backend on its native kernels against the same backend on the fallback kernels and the fixtures'
// PyTorch outputs: whole models, so GEMM (packed weights, bias epilogue), attention, norms and GELU all run.

const MODELS = ["bert_eager", "bert_ort_fused", "bart_eager"] as const;
const sessions: InferenceSession[] = [];
after(() => Promise.all(sessions.map((s) => s.release())));

for (const name of MODELS) {
  test(`${name}: native kernels match the fallback kernels and the fixture outputs`, async () => {
    const { graph } = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
    // Padded tokens computed, so every position compares with the fixture (padding removal: remove-padding.test.ts).
    const opts = { intraOpNumThreads: 2, removePadding: false };
    const native = InferenceSession.fromGraph(graph, { cpuKernels: "native", ...opts });
    const wasm = InferenceSession.fromGraph(graph, { cpuKernels: "wasm", ...opts });
    sessions.push(native, wasm);
    for (const c of fixtureCases(name)) {
      const [a, b] = [await native.run(c.inputs), await wasm.run(c.inputs)];
      for (const [out, ref] of Object.entries(c.outputs)) {
        const both = maxAbsDiff(a[out]!, b[out]!);
        assert.ok(both <= 1e-4, `${name} ${out}: native vs fallback max |diff| ${both}`);
        const d = maxAbsDiff(a[out]!, ref);
        assert.ok(d <= 1e-4, `${name} ${out}: native vs fixture max |diff| ${d}`);
      }
    }
  });
}

test("cpuKernels selects the kernel family; wasm and js never use the addon", { skip: skipNative }, () => {
  assert.ok(new CpuBackend({ cpuKernels: "native" }).native, "native backend without the addon");
  assert.equal(new CpuBackend({ cpuKernels: "wasm" }).native, undefined);
  const js = new CpuBackend({ cpuKernels: "js" });
  assert.equal(js.native, undefined);
  assert.equal(js.gemmKernel, "js");
  assert.throws(
    () => InferenceSession.fromGraph({} as never, { cpuKernels: "fast" as never }),
    /cpuKernels must be one of "native", "wasm", "js"/,
  );
});

test("MHAFUSE_NO_NATIVE=1: a native backend falls back to the WebAssembly kernels, with one notice", () => {
  const code = `
import { CpuBackend } from "./src/backends/cpu/backend.ts";
const b = new CpuBackend({ cpuKernels: "native" });
console.log(JSON.stringify({ native: b.native !== undefined, gemm: b.gemmKernel }));
await b.dispose();`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    cwd: REPO,
    env: { ...process.env, MHAFUSE_NO_NATIVE: "1", MHAFUSE_NO_WASM: "" },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { native: false, gemm: "auto" });
  assert.equal(r.stderr.split("\n").filter((l) => l.startsWith("mhafuse:")).length, 1, r.stderr);
});

test("this process runs the kernels it was asked for: no addon under MHAFUSE_NO_NATIVE=1 (npm run test:fallback)", async () => {
  // The fallback run (scripts/test-fallback.mjs) would prove nothing if the addon still loaded: this is where
  // it shows. Without the variable, a backend asking for native kernels gets them exactly when the addon is built.
  const backend = new CpuBackend({ threads: 1, cpuKernels: "native" });
  try {
    if (process.env.MHAFUSE_NO_NATIVE === "1") {
      assert.equal(loadNativeQuietly(), undefined, "the addon loaded under MHAFUSE_NO_NATIVE=1");
      assert.equal(backend.native, undefined, "a native CPU backend got the addon under MHAFUSE_NO_NATIVE=1");
    } else {
      assert.equal(backend.native !== undefined, skipNative === false);
    }
  } finally {
    await backend.dispose();
  }
});
