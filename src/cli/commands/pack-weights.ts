import type { Command } from "commander";

export function registerPackWeights(program: Command): void {
  program.command("pack-weights").description("(being built)");
}
