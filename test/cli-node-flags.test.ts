import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { workerExecArgv } from "../src/backends/cpu/thread-pool.js";
import { REPO } from "./support/fixtures.js";

const CLI = join(REPO, "dist/cli/main.js");

test("CLI under `node --max-old-space-size=4096 --expose-gc`: a parallel-sized demo runs on worker threads", () => {
  // hidden 256, ffn 1024, batch 4 × seq 128: FFN GEMMs of 268 MFLOP run on the pool's workers, which used
  // to inherit these flags and fail with ERR_WORKER_INVALID_EXEC_ARGV.
  const args = ["demo", "--layers", "1", "--hidden", "256", "--heads", "4", "--ffn", "1024"];
  const r = spawnSync(
    process.execPath,
    ["--max-old-space-size=4096", "--expose-gc", "--stack-size=2000", CLI, ...args, "--repeats", "1"],
    { encoding: "utf8", env: { ...process.env, MHAFUSE_THREADS: "2" } },
  );
  assert.equal(r.status, 0, r.stderr);
  const diff = /max \|fused - unfused\| = ([0-9.e+-]+)/.exec(r.stdout);
  assert.ok(diff, r.stdout);
  assert.ok(Number(diff[1]) < 1e-3, `fused and unfused outputs differ by ${diff[1]}`);
});

test("workers get the parent's loader and source-map flags, not V8 or entry flags", () => {
  assert.deepEqual(
    workerExecArgv([
      "--max-old-space-size=4096",
      "--expose-gc",
      "--stack-size",
      "2000",
      "--import",
      "tsx",
      "--enable-source-maps",
      "--input-type=module",
      "-e",
      "console.log(1)",
      "--conditions=dev",
      "--trace-gc",
    ]),
    ["--import", "tsx", "--enable-source-maps", "--conditions=dev"],
  );
});
