import type { Command } from "commander";

export function registerOptimize(program: Command): void {
  program.command("optimize").description("(being built)");
}
