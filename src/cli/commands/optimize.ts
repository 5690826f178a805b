import type { Command } from "commander";
import { OptionError } from "../../errors.js";
import { loadModel, saveModelFile } from "../../onnx/index.js";
import { type GraphOptimizationLevel, optimizeGraph } from "../../passes/index.js";
import { toOnnxruntime } from "../../passes/to-onnxruntime.js";
import { formatAttentionTable } from "../format.js";
import { progressFor } from "../progress.js";

interface OptimizeOptions {
  output: string;
  target: string;
  level: string;
  json?: boolean;
}

const TARGETS = ["mhafuse", "onnxruntime"] as const;
const LEVELS: GraphOptimizationLevel[] = ["disabled", "basic", "extended", "all"];

/**
 * `mhafuse optimize MODEL.onnx -o OUT.onnx [--target mhafuse|onnxruntime]`: fold, fuse attention and
 * write the result. With --target onnxruntime the fused blocks become com.microsoft / ONNX Attention
 * nodes so that onnxruntime can run the file.
 */
export function registerOptimize(program: Command): void {
  program
    .command("optimize")
    .description("fuse the attention blocks of an ONNX model and write the optimized model")
    .argument("<model>", "ONNX model file")
    .requiredOption("-o, --output <file>", "where to write the optimized model")
    .option("--target <runtime>", `runtime the output is for: ${TARGETS.join(" | ")}`, "mhafuse")
    .option("--level <level>", `optimisation level: ${LEVELS.join(" | ")}`, "all")
    .option("--json", "print the fusion report as JSON instead of a table")
    .addHelpText(
      "after",
      "\nExample:\n  mhafuse optimize ../shared/fixtures/onnx/bert_eager.onnx -o bert_fused.onnx --target onnxruntime",
    )
    .action(async (path: string, opts: OptimizeOptions) => {
      if (!(TARGETS as readonly string[]).includes(opts.target))
        throw new OptionError(`unknown --target '${opts.target}' (use ${TARGETS.join(" or ")})`);
      if (!(LEVELS as string[]).includes(opts.level))
        throw new OptionError(`unknown --level '${opts.level}' (use ${LEVELS.join(", ")})`);
      const progress = progressFor(opts.json ? undefined : process.stderr, 3, "optimize");
      const model = await loadModel(path);
      progress.tick();
      const level = opts.level as GraphOptimizationLevel;
      const { graph, report, stats } = optimizeGraph(model.graph, {
        level,
        target: opts.target as "mhafuse",
      });
      progress.tick();
      let out = graph;
      const notes: string[] = [];
      if (opts.target === "onnxruntime") {
        const converted = toOnnxruntime(graph);
        out = converted.graph;
        notes.push(...converted.notes);
      }
      saveModelFile({ ...model, graph: out, producerName: "mhafuse", producerVersion: "0.1.0" }, opts.output);
      progress.tick();
      progress.stop();
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ model: path, output: opts.output, attention: report, stats, notes }, null, 2)}\n`,
        );
        return;
      }
      const before = model.graph.nodes.length;
      process.stdout.write(
        `${formatAttentionTable(report)}\n${before} → ${out.nodes.length} nodes; wrote ${opts.output} (target ${opts.target})\n`,
      );
      for (const n of notes) process.stdout.write(`note: ${n}\n`);
    });
}
