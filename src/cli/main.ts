#!/usr/bin/env node
import { Command } from "commander";
import { registerBench } from "./commands/bench.js";
import { registerBuild } from "./commands/build.js";
import { registerDemo } from "./commands/demo.js";
import { registerInspect } from "./commands/inspect.js";
import { registerOptimize } from "./commands/optimize.js";
import { registerPackWeights } from "./commands/pack-weights.js";
import { registerReport } from "./commands/report.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { reportError } from "./report-error.js";

const program = new Command();
program
  .name("mhafuse")
  .description("Transformer inference engine with TensorRT-style fused multi-head attention")
  .version("0.1.0")
  .option("--verbose", "print stack traces for errors")
  .showHelpAfterError();

registerDemo(program);
registerRun(program);
registerInspect(program);
registerOptimize(program);
registerPackWeights(program);
registerBench(program);
registerBuild(program);
registerServe(program);
registerReport(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.exitCode = reportError(err, program.opts<{ verbose?: boolean }>().verbose ?? false);
});
