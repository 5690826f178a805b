import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { Command } from "commander";
import { runGraph } from "../../engine/executor.js";
import { loadModel } from "../../onnx/index.js";
import { optimizeGraph } from "../../passes/index.js";
import { type OpTiming, renderReport } from "../../report/html.js";
import { readFeeds } from "./run.js";

export function registerReport(program: Command): void {
  program
    .command("report")
    .description(
      "write one self-contained HTML page: model summary, attention blocks, a block before/after fusion, op timings",
    )
    .argument("<model>", "ONNX model file")
    .requiredOption("-o, --output <file>", "HTML file to write")
    .option(
      "--inputs <file>",
      "inputs JSON (as for `run`): adds time per op type from one run of the fused graph",
    )
    .option("--case <k>", "case K of a fixture *.io.json given as --inputs")
    .action(async (path: string, opts: { output: string; inputs?: string; case?: string }) => {
      const model = await loadModel(path);
      const { graph: fused, report } = optimizeGraph(model.graph, { level: "all" });
      let timings: OpTiming[] | undefined;
      if (opts.inputs) {
        const feeds = readFeeds(opts.inputs, opts.case);
        runGraph(fused, feeds); // warm-up: JIT and packed-weight caches
        const byType = new Map<string, OpTiming>();
        let last = performance.now();
        runGraph(fused, feeds, {
          onNode(node) {
            const now = performance.now();
            const key = node.domain ? `${node.domain}.${node.opType}` : node.opType;
            const t = byType.get(key) ?? { opType: key, calls: 0, ms: 0 };
            t.calls++;
            t.ms += now - last;
            byType.set(key, t);
            last = now;
          },
        });
        timings = [...byType.values()];
      }
      writeFileSync(
        opts.output,
        renderReport({ title: basename(path), original: model.graph, fused, report, timings }),
      );
      process.stderr.write(
        `wrote ${opts.output}: ${report.length} attention blocks, ${report.filter((b) => b.fused).length} fused\n`,
      );
    });
}
