import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InferenceSession } from "../src/engine/session.js";
import { tensorFromJson } from "../src/onnx/index.js";
import { FIXTURE_MODELS, FIXTURES, fixtureCases, maxAbsDiff, REPO } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";

const TOLERANCE = 1e-4;

for (const model of FIXTURE_MODELS) {
  const variants = [
    { what: "unfused", options: { graphOptimizationLevel: "disabled" as const } },
    { what: "fused", options: { graphOptimizationLevel: "all" as const } },
    {
      what: "fused, padding kept",
      options: { graphOptimizationLevel: "all" as const, removePadding: false },
    },
  ];
  for (const { what, options } of variants) {
    test(`${model} (${what}) matches onnxruntime's reference outputs`, async () => {
      const session = await InferenceSession.create(`${FIXTURES}onnx/${model}.onnx`, options);
      for (const [k, c] of fixtureCases(model).entries()) {
        const got = await session.run(c.inputs);
        const removal = session.lastPaddingRemoval;
        for (const [name, want] of Object.entries(c.outputs)) {
          if (removal && !("skipped" in removal)) {
            // Padding removed: every valid token as onnxruntime computes it, padded tokens 0.
            const d = maskedDiff(got[name]!, want, c.inputs[removal.mask]!);
            assert.ok(
              d.valid <= TOLERANCE,
              `${model} case ${k} ${name}: max |diff| ${d.valid} on valid tokens`,
            );
            assert.equal(d.padded, 0, `${model} case ${k} ${name}: padded positions`);
          } else {
            const diff = maxAbsDiff(got[name]!, want);
            assert.ok(diff <= TOLERANCE, `${model} case ${k} ${name}: max |diff| ${diff}`);
          }
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
          "--no-remove-padding",
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
