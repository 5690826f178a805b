/**
 * The fp16 rows of `npm run bench:gpu` (issue 11), kept apart from bench/gpu-bert.ts so that file only wires
 * them in: the model config from the command line (BERT-base by default, `--tiny` or `--layers/--hidden/…` for
 * lavapipe), the mhafuse webgpu fp16 engines, and the PyTorch rows measured by bench/torch_bert.py on the same
 * card (`--torch FILE`, its --json output) printed beside them with the ratios.
 */
import { readFileSync } from "node:fs";
import type { Fallback } from "../src/backends/webgpu/backend.js";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { BERT_BASE, BERT_TINY, type BertConfig } from "../src/models/bert.js";

const argOf = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** gpu-bert's `--quick` model: one small layer, for lavapipe. */
export const QUICK_BERT: BertConfig = { ...BERT_BASE, layers: 1, hidden: 128, heads: 2, ffn: 512 };

/**
 * `base` (BERT-base by default), or `--tiny` (2×128, 4 heads), with any of --layers --hidden --heads --ffn
 * --vocab on top.
 */
export function benchConfig(base: BertConfig = BERT_BASE): BertConfig {
  const cfg = { ...(process.argv.includes("--tiny") ? BERT_TINY : base) };
  for (const k of ["layers", "hidden", "heads", "ffn", "vocab"] as const) {
    const v = argOf(k);
    if (v !== undefined) cfg[k] = Number(v);
  }
  return cfg;
}

export interface Fp16Engine {
  name: string;
  run: (feeds: Record<string, Tensor>) => Promise<unknown>;
  session: InferenceSession;
}

/**
 * mhafuse webgpu fp16 (fused): the default kernels ("auto": tensor-core GEMMs where the adapter has subgroup
 * matrices), and where it has them also the SIMT f16 GEMMs, which were faster on the H200 while the
 * tensor-core GEMM runs one subgroup per workgroup (bench/RESULTS.md). `--no-fp16` leaves them out.
 */
export async function fp16Engines(path: string): Promise<Fp16Engine[]> {
  if (process.argv.includes("--no-fp16")) return [];
  const auto = await InferenceSession.create(path, { executionProviders: ["webgpu"], precision: "fp16" });
  const engines: Fp16Engine[] = [{ name: "mhafuse-webgpu fp16", run: (f) => auto.run(f), session: auto }];
  try {
    const simt = await InferenceSession.create(path, {
      executionProviders: ["webgpu"],
      precision: "fp16",
      f16Kernel: "tensor-core",
    });
    await simt.release();
    // Tensor cores exist here: add the SIMT variant for comparison.
    const s = await InferenceSession.create(path, {
      executionProviders: ["webgpu"],
      precision: "fp16",
      f16Kernel: "simt",
    });
    engines.push({ name: "mhafuse-webgpu fp16 simt", run: (f) => s.run(f), session: s });
  } catch {
    // No tensor cores: "auto" already is the SIMT path.
  }
  return engines;
}

export function fp16Fallbacks(engines: Fp16Engine[]): { name: string; f: Fallback }[] {
  return engines.flatMap((e) => e.session.fallbacks().map((f) => ({ name: e.name, f })));
}

export async function releaseFp16(engines: Fp16Engine[]): Promise<void> {
  for (const e of engines) await e.session.release();
}

/**
 * Each fp16 engine's outputs against mhafuse fp32 on the same feeds (max |diff| over every output): a fast
 * kernel that computes the wrong thing must not go unnoticed in a latency table.
 */
export async function fp16CheckLines(
  B: number,
  S: number,
  fp32: InferenceSession,
  engines: Fp16Engine[],
  feeds: Record<string, Tensor>,
): Promise<string[]> {
  if (!engines.length) return [];
  const want = await fp32.run(feeds);
  const lines: string[] = [];
  for (const e of engines) {
    const got = await e.session.run(feeds);
    let worst = 0;
    for (const [k, w] of Object.entries(want)) {
      const g = got[k]!.data as Float32Array;
      const wd = w.data as Float32Array;
      for (let i = 0; i < wd.length; i++) {
        const d = Math.abs(g[i]! - wd[i]!);
        worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
      }
    }
    lines.push(`[${B},${S}] ${e.name}: max |diff| vs mhafuse fp32 ${worst.toExponential(2)}`);
  }
  return lines;
}

/** One row of bench/torch_bert.py --json. */
export interface TorchRow {
  engine: string;
  batch: number;
  seq: number;
  ms: number;
}

/**
 * The PyTorch rows for `shape` from `--torch FILE`, formatted like gpu-bert's rows, and the ratios:
 * mhafuse fp16 / PyTorch fp16 SDPA (target ≤ 1.0 at [32,128]) and / PyTorch fp32 eager (≤ 1.0 at [1,128]).
 */
export function torchLines(B: number, S: number, mhafuseFp16Ms: number | undefined, flops: number): string[] {
  const file = argOf("torch");
  if (!file) return [];
  const doc = JSON.parse(readFileSync(file, "utf8")) as { rows: TorchRow[] };
  const lines: string[] = [];
  for (const r of doc.rows.filter((x) => x.batch === B && x.seq === S)) {
    const tf = flops / (r.ms * 1e-3) / 1e12;
    const ratio =
      mhafuseFp16Ms === undefined ? "" : `  mhafuse fp16 = ${(mhafuseFp16Ms / r.ms).toFixed(2)}x this`;
    lines.push(
      `[${B},${S}] ${r.engine.padEnd(24)} ${r.ms.toFixed(2).padStart(8)} ms  ${tf.toFixed(2).padStart(6)} TFLOP/s (${file})${ratio}`,
    );
  }
  return lines;
}
