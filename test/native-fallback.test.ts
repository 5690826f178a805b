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
  const noCompiler = { CXX: "/nonexistent/c++", MHAFUSE_REQUIRE_NATIVE: "" };
  const r = spawnSync(process.execPath, ["scripts/build-native.mjs", "--optional"], {
    cwd: REPO,
    env: { ...process.env, ...noCompiler },
    encoding: "utf8",
  });
  assert.equal(r.status, 0);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0]!,
    /^mhafuse: native kernels not built \(no C\+\+ compiler found .*\); the WebAssembly kernels will be used$/,
  );
  // Without --optional (npm run build:native) the same failure is an error; so it is with --optional under
  // MHAFUSE_REQUIRE_NATIVE=1 (CI), where a failed build must fail the install rather than fall back.
  for (const [argv, require] of [
    [[], ""],
    [["--optional"], "1"],
  ] as const) {
    const strict = spawnSync(process.execPath, ["scripts/build-native.mjs", ...argv], {
      cwd: REPO,
      env: { ...process.env, ...noCompiler, MHAFUSE_REQUIRE_NATIVE: require },
      encoding: "utf8",
    });
    assert.equal(strict.status, 1, `${argv.join(" ")} MHAFUSE_REQUIRE_NATIVE=${require}: ${strict.stderr}`);
    assert.match(strict.stderr, /^mhafuse: native build failed: no C\+\+ compiler found/);
  }
});

test("MHAFUSE_REQUIRE_NATIVE=1: the native test helper fails, not skips, when the addon does not load", () => {
  // A broken addon simulated in a child process: every dlopen throws, so neither the prebuilt package nor
  // native/build loads (MHAFUSE_NO_NATIVE=1 is the fallback run, where skipping is right).
  const helper = `
process.dlopen = () => { throw new Error("simulated dlopen failure"); };
const { skipNative } = await import("./test/native-helpers.ts");
console.log(JSON.stringify(skipNative));`;
  const local = runTs(helper, { MHAFUSE_NO_NATIVE: "", MHAFUSE_REQUIRE_NATIVE: "" });
  assert.equal(local.status, 0, local.stderr);
  assert.match(JSON.parse(local.stdout), /^native addon not built/);
  const ci = runTs(helper, { MHAFUSE_NO_NATIVE: "", MHAFUSE_REQUIRE_NATIVE: "1" });
  assert.notEqual(ci.status, 0);
  assert.equal(ci.stdout, "");
  assert.match(
    ci.stderr,
    /MHAFUSE_REQUIRE_NATIVE=1 but the native addon did not load: .*simulated dlopen failure/,
  );
  const fallback = runTs(helper, { MHAFUSE_NO_NATIVE: "1", MHAFUSE_REQUIRE_NATIVE: "1" });
  assert.equal(fallback.status, 0, fallback.stderr);
  assert.equal(JSON.parse(fallback.stdout), "native kernels disabled by MHAFUSE_NO_NATIVE=1");
});
