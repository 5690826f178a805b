import assert from "node:assert/strict";
import { test } from "node:test";
import { NativeKernelError } from "../src/backends/cpu/native/index.js";
import { native, skipNative } from "./native-helpers.js";

// The native pool's hand-off probe (bench/pool-handoff.ts times it; no timing is asserted here): every pool
// thread takes a task of every job, or the job would never finish (each task waits for all to start).
test("pool hand-off probe: every thread takes part, at 1 and 2 threads; bad arguments throw a coded error", {
  skip: skipNative,
}, () => {
  const nk = native!;
  try {
    for (const threads of [1, 2]) {
      nk.setThreads(threads);
      for (const pause of [0, 400]) {
        const r = nk.measureHandoff(20, pause);
        assert.equal(r.threads, threads);
        assert.ok(Number.isFinite(r.medianUs) && r.medianUs > 0, `median ${r.medianUs}`);
        assert.ok(r.p90Us >= r.medianUs);
      }
    }
    assert.throws(
      () => nk.measureHandoff(0, 0),
      (e: unknown) => e instanceof NativeKernelError && e.code === "ERR_MHAFUSE_NATIVE_ARG",
    );
  } finally {
    nk.setThreads(2);
  }
});
