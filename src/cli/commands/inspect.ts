import type { Command } from "commander";
import { webgpuOpsWithoutKernel } from "../../backends/webgpu/graph/kernels.js";
import { loadModel } from "../../onnx/index.js";
import { optimizeGraph } from "../../passes/index.js";
import { describeGraph, formatAttentionTable, formatGraphSummary } from "../format.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a model's inputs, outputs, opsets, op histogram and the attention blocks fusion finds")
    .argument("<model>", "ONNX model file")
    .option("--json", "machine-readable output")
    .action(async (path: string, opts: { json?: boolean }) => {
      const model = await loadModel(path);
      const { graph, report } = optimizeGraph(model.graph, { level: "all" });
      // Ops of the fused graph the webgpu backend has no kernel for: the CPU runs them (a fallback, with a
      // read-back, when their data is on the GPU; by design for the host shape chains).
      const webgpuCpuOps = webgpuOpsWithoutKernel(graph);
      if (opts.json) {
        const doc = {
          model: path,
          producer: model.producerName,
          ...describeGraph(model.graph),
          attention: report,
          webgpu: { opsWithoutKernel: webgpuCpuOps },
        };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${formatGraphSummary(model.graph)}\nattention:\n${formatAttentionTable(report)}\n` +
          `webgpu: ops without a GPU kernel (run on the CPU): ${webgpuCpuOps.join(", ") || "none"}\n`,
      );
    });
}
