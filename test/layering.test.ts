import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { REPO } from "./support/fixtures.js";

/** Every .ts file under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The repository-relative files a source file imports (relative specifiers only). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/^\s*(?:import|export)[^"']*from\s+["'](\.[^"']+)["']/gm)].map(
    (m) => m[1]!,
  );
  return specs.map((s) => relative(REPO, resolve(dirname(file), s)).replace(/\.js$/, ".ts"));
}

/** Files allowed to break the rule (none: the packed-QKV op now runs on the backend's attention primitive). */
const KNOWN_EXCEPTIONS = new Set<string>([]);

test("layering: src/ops, src/attention, src/passes, src/ir and src/onnx import neither src/backends nor src/engine", () => {
  const offenders: string[] = [];
  for (const layer of ["src/ops", "src/attention", "src/passes", "src/ir", "src/onnx"]) {
    for (const file of sources(join(REPO, layer))) {
      const rel = relative(REPO, file);
      if (KNOWN_EXCEPTIONS.has(rel)) continue;
      for (const target of importsOf(file)) {
        if (target.startsWith("src/backends/") || target.startsWith("src/engine/"))
          offenders.push(`${rel} → ${target}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});

test("layering: the scan sees imports (a file known to import src/backends is reported)", () => {
  assert.ok(importsOf(join(REPO, "src/engine/executor.ts")).some((t) => t.startsWith("src/backends/")));
});

test("layering: no backend imports another (shared host code lives outside src/backends, e.g. src/native)", () => {
  const offenders: string[] = [];
  const root = join(REPO, "src/backends");
  const backends = readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  for (const name of backends) {
    for (const file of sources(join(root, name))) {
      for (const target of importsOf(file)) {
        const other = backends.find((b) => b !== name && target.startsWith(`src/backends/${b}/`));
        if (other) offenders.push(`${relative(REPO, file)} → ${target}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});
