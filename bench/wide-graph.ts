// Load and session-create time of a very wide graph (test/hostile-models.ts wideGraph: N parallel nodes), to
// check that graph passes stay near linear in the node count.
//   node --import tsx bench/wide-graph.ts [N]   (default 16384)
import { InferenceSession } from "../src/engine/session.js";
import { modelFromBytes, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { wideGraph } from "../test/hostile-models.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const n = Number(process.argv[2] ?? 16384);
const bytes = saveModel(modelFromGraph(wideGraph(n)));
let t = performance.now();
const m = modelFromBytes(bytes);
const load = performance.now() - t;
t = performance.now();
await InferenceSession.create(m);
console.log(`n=${n} load ${load.toFixed(0)} ms, create ${(performance.now() - t).toFixed(0)} ms`);
