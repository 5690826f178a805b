/** Where the shared fixtures and the repository live, seen from the tests, and how to read fixture cases. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Tensor } from "../../src/ir/tensor.js";
import { type JsonTensor, tensorFromJson } from "../../src/onnx/index.js";

/** /work/shared/fixtures seen from a worktree next to shared/ (the repository's ../shared). */
export const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/", import.meta.url));
export const REPO = fileURLToPath(new URL("../../", import.meta.url));

export const FIXTURE_MODELS = [
  "bert_eager",
  "bert_sdpa",
  "distilbert_eager",
  "bart_eager",
  "bart_sdpa",
  "bert_ort_fused",
  // Decoder families (added 11-28): rotary, GQA, fused qkv_proj, head-interleaved weights, a KV-cache step.
  "phi3_eager",
  "qwen3_sdpa",
  "gpt_neox_sdpa",
  "llama_past",
] as const;

export interface FixtureCase {
  inputs: Record<string, Tensor>;
  outputs: Record<string, Tensor>;
}

export function fixtureCases(model: string): FixtureCase[] {
  const doc = JSON.parse(readFileSync(`${FIXTURES}onnx/${model}.io.json`, "utf8")) as {
    cases: { inputs: Record<string, JsonTensor>; outputs: Record<string, JsonTensor> }[];
  };
  const decode = (o: Record<string, JsonTensor>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, tensorFromJson(v)]));
  return doc.cases.map((c) => ({ inputs: decode(c.inputs), outputs: decode(c.outputs) }));
}
