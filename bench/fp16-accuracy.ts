/**
 * fp16 accuracy on every fixture model (issue 11): the webgpu provider in fp32 and fp16 mode against the fp32
 * reference outputs in the fixtures' io.json (onnxruntime, CPU), every case and output. Prints a markdown
 * table (or JSON with --json): max |diff|, the largest |reference|, relative error ‖got − ref‖₂ / ‖ref‖₂,
 * and the fp32 mode's max |diff| as the baseline. test/webgpu-precision.test.ts asserts the bounds.
 *
 *   node --import tsx bench/fp16-accuracy.ts [--models bert_eager,bart_eager] [--json]
 */
import { InferenceSession } from "../src/engine/session.js";
import { FIXTURE_MODELS, FIXTURES, fixtureCases } from "../test/support/fixtures.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

export interface AccuracyRow {
  model: string;
  precision: "fp32" | "fp16";
  maxAbsDiff: number;
  maxAbsRef: number;
  /** ‖got − ref‖₂ / ‖ref‖₂ over every output element of every case. */
  relError: number;
  fallbacks: number;
}

/** Runs `model`'s fixture cases on the webgpu provider at `precision` and compares with the references. */
export async function measure(model: string, precision: "fp32" | "fp16"): Promise<AccuracyRow> {
  const s = await InferenceSession.create(`${FIXTURES}onnx/${model}.onnx`, {
    executionProviders: ["webgpu"],
    precision,
  });
  let maxAbsDiff = 0;
  let maxAbsRef = 0;
  let err2 = 0;
  let ref2 = 0;
  try {
    for (const c of fixtureCases(model)) {
      const got = await s.run(c.inputs, Object.keys(c.outputs));
      for (const [name, want] of Object.entries(c.outputs)) {
        const g = got[name]!.data as Float32Array;
        const w = want.data as Float32Array;
        if (g.length !== w.length) throw new Error(`${model} ${name}: ${g.length} values, want ${w.length}`);
        for (let i = 0; i < w.length; i++) {
          const d = Math.abs(g[i]! - w[i]!);
          // NaN where the reference is finite is the worst diff there is.
          maxAbsDiff = Math.max(maxAbsDiff, Number.isNaN(d) ? Number.POSITIVE_INFINITY : d);
          maxAbsRef = Math.max(maxAbsRef, Math.abs(w[i]!));
          err2 += d * d;
          ref2 += w[i]! * w[i]!;
        }
      }
    }
    return {
      model,
      precision,
      maxAbsDiff,
      maxAbsRef,
      relError: Math.sqrt(err2 / ref2),
      fallbacks: s.fallbacks().length,
    };
  } finally {
    await s.release();
  }
}

export function formatTable(rows: AccuracyRow[]): string {
  const lines = [
    "| model | fp16 max abs diff | max abs ref | fp16 rel. error (L2) | fp32 max abs diff | nodes on CPU |",
    "| ----- | ----------------: | ----------: | -------------------: | ----------------: | -----------: |",
  ];
  for (const m of [...new Set(rows.map((r) => r.model))]) {
    const h = rows.find((r) => r.model === m && r.precision === "fp16");
    const f = rows.find((r) => r.model === m && r.precision === "fp32");
    lines.push(
      `| ${m} | ${h?.maxAbsDiff.toExponential(2) ?? "–"} | ${h?.maxAbsRef.toFixed(2) ?? "–"} | ` +
        `${h?.relError.toExponential(2) ?? "–"} | ${f?.maxAbsDiff.toExponential(2) ?? "–"} | ${h?.fallbacks ?? "–"} |`,
    );
  }
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  const i = process.argv.indexOf("--models");
  const models = i >= 0 ? process.argv[i + 1]!.split(",") : [...FIXTURE_MODELS];
  const rows: AccuracyRow[] = [];
  for (const m of models)
    for (const p of ["fp32", "fp16"] as const) {
      const r = await measure(m, p);
      rows.push(r);
      console.error(
        `${m} ${p}: max |diff| ${r.maxAbsDiff.toExponential(2)}, rel ${r.relError.toExponential(2)}`,
      );
    }
  console.log(process.argv.includes("--json") ? JSON.stringify(rows, null, 1) : formatTable(rows));
}
