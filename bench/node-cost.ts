/**
 * What one node of a simple op costs in a CPU session: a chain of `--nodes` Relu, Sigmoid (or Add of a row) nodes on a
 * [rows, cols] float32 tensor, run through InferenceSession, time per node (median of the runs). Shows the
 * per-node host overhead at small shapes and the elementwise kernels' rate at larger ones.
 *
 *   node --import tsx bench/node-cost.ts [--shape 128x768] [--nodes 200] [--runs 20]
 */
import { parseArgs } from "node:util";
import { InferenceSession } from "../src/engine/session.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      shape: { type: "string", default: "128x768" },
      nodes: { type: "string", default: "200" },
      runs: { type: "string", default: "20" },
    },
  }),
);
const [rows, cols] = values.shape!.split("x").map(Number) as [number, number];
const N = Number(values.nodes);
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
for (const op of ["Relu", "Sigmoid", "Add"]) {
  const b = new GraphBuilder({ opset: 17 });
  let v = b.input("x", "float32", [rows, cols]);
  const row = b.init(new Tensor("float32", new Float32Array(cols).fill(0.001), [cols]));
  for (let i = 0; i < N; i++) v = op === "Add" ? b.op("Add", [v, row]) : b.op(op, [v]);
  b.output(b.op("Identity", [v], {}, { outputs: ["y"] }), "float32");
  const session = InferenceSession.fromGraph(b.build(), { intraOpNumThreads: 2 });
  const feeds = { x: new Tensor("float32", new Float32Array(rows * cols).fill(1), [rows, cols]) };
  for (let r = 0; r < 5; r++) await session.run(feeds);
  const times: number[] = [];
  for (let r = 0; r < Number(values.runs); r++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(((performance.now() - t0) / N) * 1000);
  }
  console.log(
    `${op} [${rows},${cols}]: ${median(times).toFixed(1)} µs per node (${N} nodes, median of ${times.length} runs)`,
  );
  await session.release();
}
