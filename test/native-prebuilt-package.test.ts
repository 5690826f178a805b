import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { NativeKernels } from "../src/backends/cpu/native/index.js";
import { findNative, LOCAL_BUILD, PREBUILT_PACKAGE } from "../src/native/load.js";
import { REPO } from "./helpers.js";
import { assertClose, rand, skipNative } from "./native-helpers.js";

// The path users of the published package take: `npm run build:native -- --pack` makes the per-platform package
// (@mhafuse/native-<platform>-<arch>, esbuild/sharp style), npm installs it into node_modules, and the loader
// finds it before any local build. Here the package is packed into a temporary folder, installed into a
// temporary node_modules, and loaded from there with findNative's resolveFrom. --pack reuses the addon the
// install step built (nothing is compiled when the .node file is newer than every source).

const tmp = mkdtempSync(join(tmpdir(), "mhafuse-prebuilt-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const platform = `${process.platform}-${process.arch}`;
const own = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  version: string;
  license: string;
};

/** packs into tmp/out once; the package folder. */
function packOnce(): string {
  const dir = join(tmp, "out", `native-${platform}`);
  if (existsSync(dir)) return dir;
  const r = spawnSync(process.execPath, ["scripts/build-native.mjs", "--pack", "--out", join(tmp, "out")], {
    cwd: REPO,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`per-platform package in ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  return dir;
}

/** A project folder with the package installed the way npm lays it out. */
function installInto(project: string, pkgDir: string): string {
  const at = join(project, "node_modules", ...PREBUILT_PACKAGE.split("/"));
  mkdirSync(at, { recursive: true });
  cpSync(pkgDir, at, { recursive: true });
  return at;
}

test("--pack --out: the per-platform package has the name, os/cpu/libc, main and the .node file", {
  skip: skipNative,
}, () => {
  const dir = packOnce();
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  assert.equal(manifest.name, `@mhafuse/native-${platform}`);
  assert.equal(manifest.name, PREBUILT_PACKAGE, "the name the loader asks for");
  assert.equal(manifest.version, own.version);
  assert.equal(manifest.license, own.license);
  assert.deepEqual(manifest.os, [process.platform]);
  assert.deepEqual(manifest.cpu, [process.arch]);
  if (process.platform === "linux") assert.deepEqual(manifest.libc, ["glibc"]);
  assert.equal(manifest.main, "mhafuse_native.node");
  assert.deepEqual(manifest.files, ["mhafuse_native.node"]);
  // The addon itself, byte for byte the local build.
  const node = join(dir, manifest.main);
  assert.ok(existsSync(node), `${node} missing`);
  assert.deepEqual(readFileSync(node), readFileSync(LOCAL_BUILD));
  assert.ok(statSync(node).size > 0);
});

test("the loader loads the addon from the installed package, before the local build, and it computes", {
  skip: skipNative,
}, () => {
  const project = join(tmp, "app");
  const at = installInto(project, packOnce());
  // Nothing else provides the package: an empty project finds nothing (the local build left out).
  const empty = join(tmp, "empty");
  mkdirSync(empty, { recursive: true });
  const none = findNative({ resolveFrom: empty, localBuild: null });
  assert.equal(none.binding, undefined);
  assert.match(none.source, /^not built/);

  const found = findNative({ resolveFrom: project, localBuild: null });
  assert.equal(found.source, PREBUILT_PACKAGE);
  assert.ok(found.binding, "no binding from the installed package");
  // The package wins over the local build, which exists here.
  assert.equal(findNative({ resolveFrom: project }).source, PREBUILT_PACKAGE);
  assert.ok(existsSync(join(at, "mhafuse_native.node")));

  // One small GEMM against float64: C[M×N] = A[M×K]·B[K×N].
  const nk = new NativeKernels(found.binding!);
  const [M, N, K] = [5, 37, 19];
  const a = rand(M * K, 1);
  const b = rand(K * N, 2);
  const c = new Float32Array(M * N).fill(Number.NaN);
  nk.gemm(M, a, nk.packWeights(b, K, N), c);
  const want = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) want[i * N + j] += a[i * K + k]! * b[k * N + j]!;
  assertClose(c, want, 1e-5, `prebuilt ${nk.isa} GEMM`);
});

test("a prebuilt package that does not load is reported, and the local build is used instead", {
  skip: skipNative,
}, () => {
  const project = join(tmp, "broken");
  const at = installInto(project, packOnce());
  writeFileSync(join(at, "mhafuse_native.node"), "not an ELF file");
  const failed = findNative({ resolveFrom: project, localBuild: null });
  assert.equal(failed.binding, undefined);
  assert.ok(failed.source.startsWith(`${PREBUILT_PACKAGE}: `), failed.source);
  const local = findNative({ resolveFrom: project });
  assert.equal(local.source, LOCAL_BUILD);
  assert.ok(local.binding);
});
