import type { Command } from "commander";
import { webgpuOpsWithoutKernel } from "../../backends/webgpu/graph/kernels.js";
import type { Fallback } from "../../backends/webgpu/graph/prepared-graph.js";
import { InferenceSession } from "../../engine/session.js";
import { OptionError } from "../../errors.js";
import type { Tensor } from "../../ir/tensor.js";
import { parseShapes, randomFeeds } from "../../models/random-feeds.js";
import { loadModel } from "../../onnx/index.js";
import { optimizeGraph } from "../../passes/index.js";
import { describeGraph, formatAttentionTable, formatGraphSummary } from "../format.js";
import { readFeeds } from "./run.js";

interface InspectOptions {
  json?: boolean;
  provider?: string;
  shapes?: string;
  inputs?: string;
  case?: string;
  precision?: string;
}

/** What one run on the webgpu provider showed: the feeds' shapes and every node that fell back to the CPU. */
interface WebGpuRunReport {
  feeds: Record<string, number[]>;
  precision: string;
  fallbacks: Fallback[];
}

/**
 * Runs the model once on the webgpu provider (generated feeds, or the given ones) and lists the nodes that ran
 * on the CPU with GPU values read back — the real fallbacks. The static list of op types without a GPU kernel
 * also holds the host shape and mask chains, which run on the CPU by design and move nothing.
 */
async function webgpuRun(path: string, opts: InspectOptions): Promise<WebGpuRunReport> {
  // InferenceSession checks the value (an OptionError naming fp32 and fp16); unset, the model decides (fp32, or
  // fp16 for a float16 model).
  const precision = opts.precision as "fp32" | "fp16" | undefined;
  const session = await InferenceSession.create(path, { executionProviders: ["webgpu"], precision });
  try {
    let feeds: Record<string, Tensor>;
    if (opts.inputs) feeds = readFeeds(opts.inputs, opts.case);
    else {
      const model = await loadModel(path);
      feeds = randomFeeds(model.graph, { shapes: opts.shapes ? parseShapes(opts.shapes) : undefined });
    }
    await session.run(feeds);
    return {
      feeds: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, [...t.dims]])),
      precision: precision ?? "default",
      fallbacks: session.fallbacks(),
    };
  } finally {
    await session.release();
  }
}

function formatWebGpuRun(r: WebGpuRunReport): string {
  const shapes = Object.entries(r.feeds)
    .map(([k, d]) => `${k} ${d.join("x")}`)
    .join(", ");
  const head = `webgpu run (${r.precision}; ${shapes}):`;
  if (r.fallbacks.length === 0)
    return `${head} every node with GPU inputs ran on the GPU (no CPU fallback)\n`;
  return `${head} ${r.fallbacks.length} node(s) fell back to the CPU (GPU values read back):\n${r.fallbacks
    .map((f) => `  ${f.op} '${f.node}': ${f.reason}`)
    .join("\n")}\n`;
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a model's inputs, outputs, opsets, op histogram and the attention blocks fusion finds")
    .argument("<model>", "ONNX model file")
    .option("--json", "machine-readable output")
    .option(
      "--provider <name>",
      "webgpu: also run the model once on the GPU and list the nodes that fall back to the CPU",
    )
    .option("--shapes <spec>", "with --provider: input shapes for the generated feeds, e.g. input_ids:8x128")
    .option("-i, --inputs <file>", "with --provider: run on these inputs instead (as `run --inputs`)")
    .option("--case <k>", "with --inputs and a fixture *.io.json: which case (default 0)")
    .option(
      "--precision <p>",
      "with --provider webgpu: fp32 or fp16 (default: fp32, fp16 for a float16 model)",
    )
    .addHelpText(
      "after",
      "\nWithout --provider nothing runs: the webgpu line lists op types with no GPU kernel, which includes host\n" +
        "shape and mask chains that run on the CPU by design. --provider webgpu runs the model once and lists\n" +
        "only the nodes that really fell back (their GPU inputs read back to the host).",
    )
    .action(async (path: string, opts: InspectOptions) => {
      const runOnly = (["shapes", "inputs", "case", "precision"] as const).filter(
        (k) => opts[k] !== undefined,
      );
      if (opts.provider === undefined && runOnly.length > 0)
        throw new OptionError(`--${runOnly[0]} needs --provider webgpu (nothing runs without it)`);
      if (opts.provider !== undefined && opts.provider !== "webgpu")
        throw new OptionError(
          `--provider must be webgpu (inspect runs only that provider), got '${opts.provider}'`,
        );
      const model = await loadModel(path);
      const { graph, report } = optimizeGraph(model.graph, { level: "all" });
      // Op types of the fused graph the webgpu backend has no kernel for: the CPU runs them (a fallback, with a
      // read-back, when their data is on the GPU; by design for the host shape chains).
      const webgpuCpuOps = webgpuOpsWithoutKernel(graph);
      const run = opts.provider === "webgpu" ? await webgpuRun(path, opts) : undefined;
      if (opts.json) {
        const doc = {
          model: path,
          producer: model.producerName,
          ...describeGraph(model.graph),
          attention: report,
          webgpu: { opsWithoutKernel: webgpuCpuOps, ...(run ? { run } : {}) },
        };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${formatGraphSummary(model.graph)}\nattention:\n${formatAttentionTable(report)}\n` +
          `webgpu: op types without a GPU kernel (run on the CPU; host shape/mask chains by design): ${webgpuCpuOps.join(", ") || "none"}\n` +
          (run ? formatWebGpuRun(run) : ""),
      );
    });
}
