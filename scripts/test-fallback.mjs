#!/usr/bin/env node
/**
 * `npm run test:fallback` (the last step of `npm test`): the test files that run the CPU engine end to end —
 * fixture models through sessions, fusion and its fused ops, padding removal, decoders, the .mhaf engine file,
 * the bound plan — again with MHAFUSE_NO_NATIVE=1, so they check the WebAssembly kernels a machine without the
 * native addon runs, not only the addon. The op suite already runs every op on the fallback ("cpu-wasm",
 * test/support/backends.ts), and the native kernel tests skip here (test/native-helpers.ts), so neither is
 * repeated; nor are the WebGPU files, which do not touch the CPU kernels. test/cpu-kernels-native.test.ts
 * asserts that this run really has no addon.
 *
 * Left out on purpose: session-async.test.ts (event-loop timing, no kernel coverage of its own), and the CLI-only
 * files (cli*, fusion-cli, serve), which run the same engine through a subprocess; models/remove-padding/
 * engine-file run it once that way. runtime-memory.test.ts is in: it found SkipLayerNormalization's unused `sum`
 * output taking a pooled buffer every run on this path (fixed in src/ops/normalization.ts).
 *
 * About 55 s of CPU time on two cores. Arguments, if any, replace the list (e.g. one file to re-run).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const FALLBACK_TEST_FILES = [
  // Fixture models (PyTorch / onnxruntime references) through sessions, the API and the CLI.
  "fusion-fixtures",
  "models",
  "session",
  "cpu-kernels-native",
  // Automatic padding removal and decoders (KV cache, rotary, GQA).
  "remove-padding",
  "decode-loop",
  // Fused graphs run: epilogues, GELU, linear bias, the packed op's forms, RMSNorm, attention variants.
  "fusion-epilogues",
  "fusion-gelu",
  "fusion-linear-bias",
  "fusion-packed-forms",
  "fusion-rms-norm",
  "fusion-variants",
  "fusion-imported",
  "qkv-op",
  "qkv-batch-first",
  "attention-ops",
  // The engine file, the bound plan, and non-finite inputs through the engine.
  "engine-file",
  "cpu-bound-plan",
  "runtime-memory",
  "numerics-hostile",
].map((name) => join("test", `${name}.test.ts`));

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const missing = FALLBACK_TEST_FILES.filter((f) => !existsSync(join(root, f)));
  if (missing.length > 0) {
    console.error(`test-fallback: listed test files not found (renamed?): ${missing.join(", ")}`);
    process.exit(1);
  }
  const extra = process.argv.slice(2);
  const files = extra.length > 0 ? extra : FALLBACK_TEST_FILES;
  console.error(
    `test-fallback: ${files.length} test files with MHAFUSE_NO_NATIVE=1 (the WebAssembly kernels)`,
  );
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", ...files], {
    cwd: root,
    env: { ...process.env, MHAFUSE_NO_NATIVE: "1" },
    stdio: "inherit",
  });
  process.exit(r.status ?? 1);
}
