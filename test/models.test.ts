import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InferenceSession } from "../src/engine/session.js";
import { tensorFromJson } from "../src/onnx/index.js";
import { FIXTURE_MODELS, FIXTURES, fixtureCases, maxAbsDiff, REPO } from "./helpers.js";

const TOLERANCE = 1e-4;

for (const model of FIXTURE_MODELS) {
  for (const level of ["disabled", "all"] as const) {
    test(`${model} (${level === "all" ? "fused" : "unfused"}) matches onnxruntime's reference outputs`, async () => {
      const session = await InferenceSession.create(`${FIXTURES}onnx/${model}.onnx`, {
        graphOptimizationLevel: level,
      });
      for (const [k, c] of fixtureCases(model).entries()) {
        const got = await session.run(c.inputs);
        for (const [name, want] of Object.entries(c.outputs)) {
          const diff = maxAbsDiff(got[name]!, want);
          assert.ok(diff <= TOLERANCE, `${model} case ${k} ${name}: max |diff| ${diff}`);
        }
      }
    });
  }
}

test("mhafuse run reproduces the references from the command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "mhafuse-run-"));
  for (const model of FIXTURE_MODELS) {
    const cases = fixtureCases(model);
    for (let k = 0; k < cases.length; k++) {
      const out = join(dir, `${model}-${k}.json`);
      execFileSync(
        process.execPath,
        [
          join(REPO, "dist/cli/main.js"),
          "run",
          `${FIXTURES}onnx/${model}.onnx`,
          "--inputs",
          `${FIXTURES}onnx/${model}.io.json`,
          "--case",
          String(k),
          "--output",
          out,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const doc = JSON.parse(readFileSync(out, "utf8"));
      for (const [name, want] of Object.entries(cases[k]!.outputs)) {
        const diff = maxAbsDiff(tensorFromJson(doc[name]), want);
        assert.ok(diff <= TOLERANCE, `${model} case ${k} ${name}: max |diff| ${diff}`);
      }
    }
  }
});
