// Engine files load faster than ONNX models build: a 12-layer BERT-base-width model (hidden 768, 12 heads,
// ffn 3072, vocab 1000) as ONNX, created with fusion (load + optimize), against the same model built once
// into a .mhaf and created from it (load only); medians of N, interleaved, one process.
//   node --import tsx bench/engine-file.ts [--reps N]
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { buildEngine } from "../src/engine/engine-file.js";
import { InferenceSession } from "../src/engine/session.js";
import { BERT_BASE, buildBertGraph } from "../src/models/bert.js";
import { loadModelSync, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const args = process.argv.slice(2);
const reps = Number(args[args.indexOf("--reps") + 1] ?? 0) || 5;
const dir = mkdtempSync(join(tmpdir(), "mhafuse-engine-bench-"));
const onnxPath = join(dir, "bert12.onnx");
const enginePath = join(dir, "bert12.mhaf");
writeFileSync(onnxPath, saveModel(modelFromGraph(buildBertGraph({ ...BERT_BASE, vocab: 1000 }))));
const t0 = performance.now();
writeFileSync(enginePath, buildEngine(loadModelSync(onnxPath)));
const buildOnce = performance.now() - t0;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const times = { onnx: [] as number[], engine: [] as number[] };
for (let r = 0; r < reps; r++)
  for (const [kind, path] of [
    ["onnx", onnxPath],
    ["engine", enginePath],
  ] as const) {
    const start = performance.now();
    const s = await InferenceSession.create(path);
    times[kind].push(performance.now() - start);
    await s.release();
  }
const onnx = median(times.onnx);
const engine = median(times.engine);
console.log(`12-layer BERT-base width, ${cpus().length} × ${cpus()[0]?.model}, median of ${reps}`);
console.log(`mhafuse build (once): ${buildOnce.toFixed(0)} ms`);
console.log(`create from ONNX (load + fuse): ${onnx.toFixed(0)} ms`);
console.log(`create from .mhaf (load):       ${engine.toFixed(0)} ms`);
console.log(`ONNX / engine: ${(onnx / engine).toFixed(1)}x`);
