// `mhafuse bench`: generated inputs from the declared shapes, latency percentiles, and onnxruntime-node beside
// it on the same feeds; run through the built CLI (dist/, as a user runs it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { parseShapes, randomFeeds } from "../src/models/random-feeds.js";
import { loadModelSync } from "../src/onnx/index.js";
import { FIXTURES, REPO } from "./helpers.js";

const CLI = join(REPO, "dist/cli/main.js");
const BERT = join(FIXTURES, "onnx", "bert_eager.onnx");

function mhafuse(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("bench --json --compare onnxruntime: both engines, same iterations, consistent percentiles", () => {
  const r = mhafuse(
    "bench",
    BERT,
    "--shapes",
    "input_ids:2x16,attention_mask:2x16,token_type_ids:2x16",
    "--iterations",
    "6",
    "--warmup",
    "1",
    "--compare",
    "onnxruntime",
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  // Only the fallback notice may be there (MHAFUSE_NO_NATIVE=1 runs of the suite): no progress bar.
  const stderr = r.stderr.replace(/^mhafuse: native CPU kernels unavailable .*\n/m, "");
  assert.equal(stderr, "", "no progress bar when printing JSON or without a TTY");
  const doc = JSON.parse(r.stdout) as {
    shapes: Record<string, number[]>;
    results: {
      engine: string;
      iterations: number;
      min: number;
      p50: number;
      p90: number;
      p99: number;
      max: number;
      mean: number;
      throughput: number;
    }[];
  };
  assert.deepEqual(doc.shapes.input_ids, [2, 16]);
  assert.deepEqual(
    doc.results.map((s) => s.engine),
    ["mhafuse (cpu)", "onnxruntime-node (cpu)"],
  );
  for (const s of doc.results) {
    assert.equal(s.iterations, 6);
    assert.ok(
      s.min > 0 && s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max,
      JSON.stringify(s),
    );
    assert.ok(Math.abs(s.throughput - (2 * 1000) / s.mean) < 1e-6);
  }
});

test("bench explains missing shapes and bad --shapes with a non-zero exit", () => {
  const bad = mhafuse("bench", BERT, "--shapes", "input_ids:2xq");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--shapes: 'input_ids:2xq' is not NAME:AxBx…/);
  const llama = mhafuse("bench", join(FIXTURES, "onnx", "llama_past.onnx"), "--iterations", "1");
  assert.notEqual(llama.code, 0);
  assert.match(llama.stderr, /give its size with --shapes attention_mask:/);
});

test("generated feeds: ids inside the vocabulary, masks right-padded per row, token types zero, seeded", () => {
  const { graph } = loadModelSync(BERT);
  const vocab = graph.initializers.get(
    graph.nodes.find((n) => n.opType === "Gather" && n.inputs[1] === "input_ids")!.inputs[0]!,
  )!.dims[0]!;
  const shapes = parseShapes("input_ids:4x32,attention_mask:4x32,token_type_ids:4x32");
  const feeds = randomFeeds(graph, { shapes, randomPadding: true, seed: 7 });
  const ids = feeds.input_ids!.toNumbers();
  assert.ok(ids.every((v) => Number.isInteger(v) && v >= 0 && v < vocab));
  assert.ok(new Set(ids).size > 20);
  const mask = feeds.attention_mask!.toNumbers();
  for (let b = 0; b < 4; b++) {
    const row = mask.slice(b * 32, b * 32 + 32);
    const len = row.indexOf(0) === -1 ? 32 : row.indexOf(0);
    assert.ok(len >= 1 && row.slice(len).every((v) => v === 0) && row.slice(0, len).every((v) => v === 1));
  }
  assert.ok(feeds.token_type_ids!.toNumbers().every((v) => v === 0));
  assert.deepEqual(
    randomFeeds(graph, { shapes, randomPadding: true, seed: 7 }).attention_mask!.toNumbers(),
    mask,
  );
});
