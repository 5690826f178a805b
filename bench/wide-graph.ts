import { InferenceSession } from "../src/engine/session.js";
import { modelFromBytes, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { wideGraph } from "../test/hostile-models.js";

const n = Number(process.argv[2] ?? 16384);
const bytes = saveModel(modelFromGraph(wideGraph(n)));
let t = performance.now();
const m = modelFromBytes(bytes);
const load = performance.now() - t;
t = performance.now();
await InferenceSession.create(m);
console.log(`n=${n} load ${load.toFixed(0)} ms, create ${(performance.now() - t).toFixed(0)} ms`);
