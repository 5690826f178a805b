import type { Command } from "commander";
import { OptionError } from "../../errors.js";
import { loadModel, saveModelFile } from "../../onnx/index.js";
import { type GraphOptimizationLevel, optimizeGraph } from "../../passes/index.js";
import { toFloat16 } from "../../passes/to-float16.js";
import { toOnnxruntime } from "../../passes/to-onnxruntime.js";
import { formatAttentionTable } from "../format.js";
import { progressFor } from "../progress.js";

interface OptimizeOptions {
  output: string;
  target: string;
  level: string;
  json?: boolean;
  float16?: boolean;
  keepIoTypes?: boolean;
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
    .option(
      "--float16",
      "convert the model to float16 first (weights and compute; --level disabled: only that)",
    )
    .option("--keep-io-types", "with --float16: keep float32 graph inputs and outputs, cast at the edges")
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
      if (opts.keepIoTypes && !opts.float16) throw new OptionError("--keep-io-types needs --float16");
      const loaded = await loadModel(path);
      const model = opts.float16
        ? { ...loaded, graph: toFloat16(loaded.graph, { keepIoTypes: opts.keepIoTypes }) }
        : loaded;
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
