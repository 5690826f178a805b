/**
 * Writes the hostile models of test/hostile-models.ts into DIR (one folder per case), to try them on the
 * CLI (`mhafuse inspect DIR/expand-5e8/m.onnx`) or on onnxruntime:
 *   node --import tsx scripts/gen-hostile.ts DIR
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { HOSTILE_CASES } from "../test/hostile-models.js";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node --import tsx scripts/gen-hostile.ts DIR");
  process.exit(2);
}
for (const c of HOSTILE_CASES) {
  const caseDir = path.join(dir, c.name);
  mkdirSync(caseDir, { recursive: true });
  const file = c.make(caseDir);
  console.log(`${c.name}\t${c.expect}\t${file}`);
}
