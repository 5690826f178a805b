import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));

test("compiled JS (like dist/): the attention worker loads as .js and runs units", () => {
  const out = mkdtempSync(join(tmpdir(), "mhafuse-dist-"));
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(
    process.execPath,
    [
      tsc,
      "--outDir",
      out,
      "--rootDir",
      "src",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2022",
      "--skipLibCheck",
      "--types",
      "node",
      "--strict",
      "src/backends/cpu/attention-core.ts",
      "src/backends/cpu/attention-worker.ts",
    ],
    { cwd: REPO },
  );
  // Q = K = V = ones: every output is 1. Plain node, no tsx: only .js can load.
  const script = `
    const m = await import(${JSON.stringify(`file://${out}/backends/cpu/attention-core.js`)});
    const S = 40, H = 8, N = 3;
    const l = { offset: 0, batchStride: 0, headStride: H, seqStride: N * H };
    const ones = new Float32Array(S * N * H).fill(1);
    const args = { batch: 1, numHeads: N, kvNumHeads: N, seqQ: S, seqKV: S, headSize: H, vHeadSize: H, scale: 0.3,
      q: ones, qLayout: l, k: ones, kLayout: l, v: ones, vLayout: l, out: new Float32Array(S * N * H), outLayout: l };
    const stats = await m.attentionParallel(args, { threads: 2, rowsPerUnit: 4 });
    console.log(JSON.stringify({ workerUnits: stats.workerUnits, all: args.out.every((x) => Math.abs(x - 1) < 1e-6) }));
  `;
  const res = JSON.parse(
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }),
  );
  assert.equal(res.all, true);
  assert.ok(res.workerUnits > 0, "no unit ran on a worker thread");
});
