import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { InferenceSession } from "../../engine/session.js";
import { InputError, MhafuseError, OptionError } from "../../errors.js";
import type { Tensor } from "../../ir/tensor.js";
import { type JsonTensor, tensorFromJson, tensorToJson } from "../../onnx/index.js";
import { formatVerify } from "../format.js";
import { progressFor } from "../progress.js";

interface RunOptions {
  inputs: string;
  output?: string;
  case?: string;
  fuse: boolean;
  verify?: boolean;
  tolerance?: string;
  provider: string;
  removePadding: boolean;
  precision?: string;
}

/** Reads `{name: {dtype, shape, data}}`, or case K of a fixture `{cases: [{inputs, outputs}]}`. */
export function readFeeds(path: string, caseIndex: string | undefined): Record<string, Tensor> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new MhafuseError(`cannot read inputs from '${path}': ${(err as Error).message}`, {
      code: "IO_FAILED",
      input: path,
    });
  }
  let feeds = doc as Record<string, JsonTensor>;
  if (doc && typeof doc === "object" && Array.isArray((doc as { cases?: unknown }).cases)) {
    const cases = (doc as { cases: { inputs: Record<string, JsonTensor> }[] }).cases;
    const k = Number(caseIndex ?? 0);
    if (!Number.isInteger(k) || k < 0 || k >= cases.length) {
      throw new OptionError(`--case ${caseIndex}: '${path}' has cases 0..${cases.length - 1}`);
    }
    feeds = cases[k]!.inputs;
  } else if (caseIndex !== undefined) {
    throw new OptionError(`--case given, but '${path}' is not a fixture file with a "cases" list`);
  }
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(feeds)) {
    try {
      out[name] = tensorFromJson(value);
    } catch (err) {
      throw new InputError(`input '${name}' in '${path}': ${(err as Error).message}`, { input: name });
    }
  }
  return out;
}

function summarize(name: string, t: Tensor): string {
  const head = Array.from(t.data.slice(0, 4) as ArrayLike<number | bigint>, (v) =>
    typeof v === "bigint" ? v.toString() : Number(v).toPrecision(5),
  );
  return `${name}: ${t.type}[${t.dims.join(",")}] ${head.join(" ")}${t.size > 4 ? " …" : ""}`;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a model on inputs from a JSON file and write every output")
    .argument("<model>", "ONNX model file")
    .requiredOption(
      "-i, --inputs <file>",
      "inputs: {name: {dtype, shape, data(base64)}} or a fixture *.io.json",
    )
    .option("-o, --output <file>", "write outputs as JSON in the same encoding (default: print a summary)")
    .option("--case <k>", "with a fixture *.io.json: which case's inputs to use (default 0)")
    .option("--no-fuse", "run the graph as imported, without attention fusion")
    .option("--verify", "also run the unfused graph and compare each fused attention block's output")
    .option(
      "--tolerance <abs>",
      "verify: largest allowed |diff| per block (float16 values: at least 1e-2)",
      "1e-3",
    )
    .option("--provider <name>", "execution provider: cpu or webgpu", "cpu")
    .option(
      "--no-remove-padding",
      "compute padded tokens as the model does (by default, on the cpu provider, the encoder runs on the valid tokens only and its outputs are 0 at padded positions)",
    )
    .option(
      "--precision <p>",
      "fp32 or fp16 (webgpu: f16 storage, f32 accumulation; cpu runs fp32). Default fp32; on webgpu, fp16 for float16 models",
    )
    .addHelpText(
      "after",
      "\nExample:\n  mhafuse run ../shared/fixtures/onnx/bert_eager.onnx --inputs ../shared/fixtures/onnx/bert_eager.io.json --case 1 -o out.json",
    )
    .action(async (model: string, opts: RunOptions) => {
      const feeds = readFeeds(opts.inputs, opts.case);
      const verify = opts.verify ? { tolerance: Number(opts.tolerance) } : undefined;
      // Loading and optimizing a large model takes seconds: a bar on a terminal, nothing in pipes.
      const progress = progressFor(process.stderr, 2, "load");
      const session = await InferenceSession.create(model, {
        graphOptimizationLevel: opts.fuse ? "all" : "disabled",
        verify,
        executionProviders: [opts.provider],
        removePadding: opts.removePadding ? undefined : false,
        precision: opts.precision as "fp32" | "fp16" | undefined,
      });
      progress.tick();
      progress.stop();
      const started = performance.now();
      const outputs = await session.run(feeds);
      const ms = performance.now() - started;
      if (session.lastVerify) process.stderr.write(`${formatVerify(session.lastVerify)}\n`);
      const removal = session.lastPaddingRemoval;
      if (removal && !("skipped" in removal)) {
        const mask = feeds[removal.mask]!;
        const padded = mask.toNumbers().filter((v) => v === 0).length;
        if (padded > 0)
          process.stderr.write(
            `padding removal: ${padded} of ${mask.size} tokens are padding; ${removal.exits.join(", ")} ` +
              "hold 0 at those positions (--no-remove-padding computes them)\n",
          );
      }
      for (const f of session.fallbacks())
        process.stderr.write(`webgpu: ${f.op} '${f.node}' ran on the CPU (${f.reason})\n`);
      if (opts.output) {
        const doc = Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, tensorToJson(t)]));
        writeFileSync(opts.output, `${JSON.stringify(doc)}\n`);
        process.stderr.write(
          `wrote ${Object.keys(doc).length} outputs to ${opts.output} (${ms.toFixed(1)} ms)\n`,
        );
      } else {
        for (const [k, t] of Object.entries(outputs)) process.stdout.write(`${summarize(k, t)}\n`);
        process.stdout.write(`ran in ${ms.toFixed(1)} ms\n`);
      }
    });
}
