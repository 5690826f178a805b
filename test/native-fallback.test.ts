import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { REPO } from "./helpers.js";
import { skipNative } from "./native-helpers.js";

// The paths a user without the addon takes: the loader's fallback (MHAFUSE_NO_NATIVE=1 forces it) with its
// one-line notice, and the install step that must not fail the install when nothing can be compiled.

function runTs(code: string, env: Record<string, string>) {
  return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    cwd: REPO,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
}

const probe = `
import { nativeKernels } from "./src/backends/cpu/native/index.ts";
const a = nativeKernels();
const b = nativeKernels();
console.log(JSON.stringify({ loaded: a !== undefined, same: a === b, isa: a?.isa ?? null }));
`;

test("MHAFUSE_NO_NATIVE=1: no addon, one notice line on stderr, the WebAssembly kernels are used", () => {
  const r = runTs(probe, { MHAFUSE_NO_NATIVE: "1" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { loaded: false, same: true, isa: null });
  const notice = r.stderr.split("\n").filter((l) => l.startsWith("mhafuse:"));
  assert.equal(notice.length, 1, r.stderr);
  assert.match(
    notice[0]!,
    /native CPU kernels unavailable \(disabled by MHAFUSE_NO_NATIVE=1\); using the WebAssembly kernels/,
  );
});

test("the built addon loads without a notice", { skip: skipNative }, () => {
  const r = runTs(probe, { MHAFUSE_NO_NATIVE: "" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { loaded: boolean; isa: string };
  assert.equal(out.loaded, true);
  assert.ok(["avx512", "avx2", "portable"].includes(out.isa));
  assert.ok(!r.stderr.includes("mhafuse:"), r.stderr);
});

test("install step without a compiler: one line on stderr and exit 0, so the package still installs", () => {
  const r = spawnSync(process.execPath, ["scripts/build-native.mjs", "--optional"], {
    cwd: REPO,
    env: { ...process.env, CXX: "/nonexistent/c++" },
    encoding: "utf8",
  });
  assert.equal(r.status, 0);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0]!,
    /^mhafuse: native kernels not built \(no C\+\+ compiler found .*\); the WebAssembly kernels will be used$/,
  );
  // Without --optional (npm run build:native) the same failure is an error.
  const strict = spawnSync(process.execPath, ["scripts/build-native.mjs"], {
    cwd: REPO,
    env: { ...process.env, CXX: "/nonexistent/c++" },
    encoding: "utf8",
  });
  assert.equal(strict.status, 1);
});
