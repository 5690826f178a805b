import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { buildEngine, readEngine } from "../../engine/engine-file.js";
import { MhafuseError } from "../../errors.js";
import { loadModel } from "../../onnx/index.js";
import { formatAttentionTable } from "../format.js";
import { progressFor } from "../progress.js";

export function registerBuild(program: Command): void {
  program
    .command("build")
    .description(
      "optimize a model once into an engine file (.mhaf) that loads without re-optimizing, like trtexec --saveEngine",
    )
    .argument("<model>", "ONNX model file")
    .requiredOption("-o, --output <file>", "engine file to write (.mhaf)")
    .option("--provider <name>", "execution provider the engine is for", "cpu")
    .option("--json", "print what was built as JSON")
    .action(async (path: string, opts: { output: string; provider: string; json?: boolean }) => {
      if (opts.provider !== "cpu" && opts.provider !== "webgpu")
        throw new MhafuseError(`--provider must be cpu or webgpu, got '${opts.provider}'`);
      if (!opts.output.endsWith(".mhaf"))
        throw new MhafuseError(`--output must end with .mhaf, got '${opts.output}'`);
      const progress = progressFor(opts.json ? undefined : process.stderr, 3, "build");
      const model = await loadModel(path);
      progress.tick();
      const t0 = performance.now();
      const bytes = buildEngine(model, { backend: opts.provider });
      progress.tick();
      writeFileSync(opts.output, bytes);
      progress.tick();
      progress.stop();
      const { header } = readEngine(bytes);
      const ms = performance.now() - t0;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ output: opts.output, bytes: bytes.length, buildMs: ms, ...header }, null, 2)}\n`,
        );
        return;
      }
      process.stdout.write(
        `${formatAttentionTable(header.report)}\nwrote ${opts.output}: ${(bytes.length / 1e6).toFixed(2)} MB, ` +
          `format ${header.format}, kernel set ${header.kernelSet}, built in ${ms.toFixed(0)} ms\n`,
      );
    });
}
