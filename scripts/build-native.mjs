#!/usr/bin/env node
/**
 * Builds the native CPU kernels (native/src, C++ on node-addon-api) into native/build/mhafuse_native.node by
 * calling the C++ compiler directly: node-gyp would download Node's headers, while the N-API headers come from
 * the npm packages node-addon-api and node-api-headers, so no network beyond the npm registry is needed.
 *
 * The kernel files are compiled once per instruction set (AVX-512, AVX2+FMA, portable) with per-file flags and
 * the addon picks one at run time (native/src/dispatch.cc); nothing uses -march=native, so the binary runs on
 * any x86-64. Nothing is compiled when the .node file is newer than every source and header (so --pack reuses
 * the addon the install step built); else objects are rebuilt only when a source or header is newer.
 *
 *   node scripts/build-native.mjs              build; exit 1 on failure
 *   node scripts/build-native.mjs --optional   build; on failure print one line and exit 0 (npm install, npm run build)
 *   node scripts/build-native.mjs --pack       build, then make the per-platform package folder
 *                                              native/build/npm/native-<platform>-<arch> (esbuild/sharp style)
 *   ... --pack --out DIR                       the same folder under DIR instead of native/build/npm
 *
 * CXX picks the compiler (default g++, then c++, then clang++). MHAFUSE_SKIP_NATIVE_BUILD=1 skips the build.
 * MHAFUSE_REQUIRE_NATIVE=1 (set by CI, .ci/run) makes --optional strict: a failed build fails the install.
 */
import { execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const srcDir = join(root, "native", "src");
const buildDir = join(root, "native", "build");
const objDir = join(buildDir, "obj");
const output = join(buildDir, "mhafuse_native.node");
const argv = process.argv.slice(2);
const args = new Set(argv);
/** `--out DIR` / `--out=DIR`: where --pack writes the package folder (default native/build/npm). */
function outDir() {
  const i = argv.indexOf("--out");
  const value =
    i >= 0 ? (argv[i + 1] ?? "") : argv.find((a) => a.startsWith("--out="))?.slice("--out=".length);
  if (value === undefined) return join(buildDir, "npm");
  if (value === "" || value.startsWith("--")) throw new BuildError("--out needs a directory");
  return resolve(value);
}
// CI must not go green on the fallback because the compile failed: there --optional is ignored.
const optional = args.has("--optional") && process.env.MHAFUSE_REQUIRE_NATIVE !== "1";

class BuildError extends Error {}

function findCompiler() {
  const candidates = process.env.CXX ? [process.env.CXX] : ["g++", "c++", "clang++"];
  for (const cxx of candidates) {
    try {
      execFileSync(cxx, ["--version"], { stdio: "ignore" });
      return cxx;
    } catch {}
  }
  throw new BuildError(`no C++ compiler found (tried ${candidates.join(", ")}; set CXX to choose one)`);
}

function includeDirs() {
  const require = createRequire(join(root, "package.json"));
  try {
    const addonApi = dirname(require.resolve("node-addon-api/package.json"));
    const headers = join(dirname(require.resolve("node-api-headers/package.json")), "include");
    return [addonApi, headers];
  } catch {
    throw new BuildError("the npm packages node-addon-api and node-api-headers are not installed");
  }
}

const x64 = process.arch === "x64";
/** Kernel sources compiled once per ISA, with the flags that ISA needs. */
const isaFlags = {
  avx512: ["-DMHF_ISA_AVX512", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
  avx2: ["-DMHF_ISA_AVX2", "-mavx2", "-mfma"],
  portable: ["-DMHF_ISA_PORTABLE"],
};
const isas = x64 ? ["avx512", "avx2", "portable"] : ["portable"];
const kernelSources = ["gemm_kernel.cc", "elementwise.cc", "attention_kernel.cc"];
const commonSources = ["addon.cc", "dispatch.cc", "threadpool.cc", "gemm.cc", "parallel.cc"];

function run(cmd, argv) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, argv, { stdio: ["ignore", "inherit", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", (e) => fail(new BuildError(`${cmd}: ${e.message}`)));
    child.on("close", (code) => {
      if (code === 0) {
        if (err) process.stderr.write(err);
        ok();
      } else fail(new BuildError(`${cmd} ${argv.join(" ")}\n${err}`));
    });
  });
}

/** Runs the jobs with at most `limit` at a time. */
async function pool(jobs, limit) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, jobs.length) }, async () => {
    while (next < jobs.length) await jobs[next++]();
  });
  await Promise.all(lanes);
}

async function build() {
  const cxx = findCompiler();
  const includes = includeDirs().map((d) => `-I${d}`);
  const base = [
    "-O3",
    "-std=gnu++17",
    "-fPIC",
    "-fvisibility=hidden",
    "-ffp-contract=fast",
    "-Wno-psabi",
    "-pthread",
    "-DNAPI_VERSION=8",
    "-DNAPI_CPP_EXCEPTIONS",
    "-DNODE_ADDON_API_DISABLE_DEPRECATED",
    ...includes,
  ];
  const sourceFiles = readdirSync(srcDir).filter((f) => f.endsWith(".h") || f.endsWith(".cc"));
  const newestSource = Math.max(...sourceFiles.map((f) => statSync(join(srcDir, f)).mtimeMs));
  // Linked after the last edit of any source: up to date, even where the objects are gone (a copied build).
  if (existsSync(output) && statSync(output).mtimeMs >= newestSource) return 0;
  mkdirSync(objDir, { recursive: true });
  const headersTime = Math.max(
    ...sourceFiles.filter((f) => f.endsWith(".h")).map((f) => statSync(join(srcDir, f)).mtimeMs),
  );
  const units = [
    ...commonSources.map((f) => ({ src: f, obj: f.replace(/\.cc$/, ".o"), flags: [] })),
    ...isas.flatMap((isa) =>
      kernelSources.map((f) => ({ src: f, obj: f.replace(/\.cc$/, `.${isa}.o`), flags: isaFlags[isa] })),
    ),
  ];
  const stale = (obj, src) => {
    const o = join(objDir, obj);
    return !existsSync(o) || statSync(o).mtimeMs < Math.max(statSync(join(srcDir, src)).mtimeMs, headersTime);
  };
  const todo = units.filter((u) => stale(u.obj, u.src));
  await pool(
    todo.map(
      (u) => () => run(cxx, [...base, ...u.flags, "-c", join(srcDir, u.src), "-o", join(objDir, u.obj)]),
    ),
    availableParallelism(),
  );
  if (todo.length > 0 || !existsSync(output)) {
    // libstdc++ linked statically so a prebuilt .node runs on other Linux distributions too.
    const link = process.platform === "linux" ? ["-static-libstdc++", "-static-libgcc"] : [];
    const dylib = process.platform === "darwin" ? ["-undefined", "dynamic_lookup"] : [];
    await run(cxx, [
      "-shared",
      "-pthread",
      ...link,
      ...dylib,
      ...units.map((u) => join(objDir, u.obj)),
      "-o",
      output,
    ]);
  }
  return todo.length;
}

/** The per-platform package (like @esbuild/linux-x64): package.json with os/cpu (and libc) + the .node file. */
function pack(into) {
  const own = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const platform = `${process.platform}-${process.arch}`;
  const dir = join(into, `native-${platform}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(output, join(dir, "mhafuse_native.node"));
  const manifest = {
    name: `@mhafuse/native-${platform}`,
    version: own.version,
    description: `Prebuilt native CPU kernels of mhafuse for ${platform}`,
    license: own.license,
    os: [process.platform],
    cpu: [process.arch],
    ...(process.platform === "linux" ? { libc: ["glibc"] } : {}),
    main: "mhafuse_native.node",
    files: ["mhafuse_native.node"],
  };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}

try {
  if (process.env.MHAFUSE_SKIP_NATIVE_BUILD) {
    console.error(
      "mhafuse: native kernels not built (MHAFUSE_SKIP_NATIVE_BUILD set); the WebAssembly kernels will be used",
    );
    process.exit(0);
  }
  const packInto = args.has("--pack") ? outDir() : undefined;
  const started = Date.now();
  const compiled = await build();
  if (compiled > 0)
    console.error(
      `mhafuse: built ${output} (${compiled} files, ${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  if (packInto) console.error(`mhafuse: per-platform package in ${pack(packInto)}`);
} catch (e) {
  const message = e instanceof BuildError ? e.message : String(e?.stack ?? e);
  if (!optional) {
    console.error(`mhafuse: native build failed: ${message}`);
    process.exit(1);
  }
  // One line: the package still installs and runs on the WebAssembly kernels.
  console.error(
    `mhafuse: native kernels not built (${message.split("\n")[0]}); the WebAssembly kernels will be used`,
  );
  process.exit(0);
}
