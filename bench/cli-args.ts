/**
 * Command-line edges shared by the bench scripts: `--help` / `-h` prints the script's usage — its header
 * comment, the one place each script documents its flags — and exits 0; a flag parseArgs rejects prints the
 * reason and that usage to stderr and exits 2 instead of a stack trace.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The leading comment of the script at `scriptUrl` (import.meta.url) — a block comment or a run of line
 * comments — without its comment markers.
 */
export function usageOf(scriptUrl: string): string {
  const source = readFileSync(fileURLToPath(scriptUrl), "utf8");
  const block = /^\/\*\*([\s\S]*?)\*\//.exec(source);
  const lines = block
    ? block[1]!.split("\n").map((l) => l.replace(/^\s*\* ?/, ""))
    : (/^(?:\/\/.*\n)+/.exec(source)?.[0] ?? "").split("\n").map((l) => l.replace(/^\/\/ ?/, ""));
  const text = lines.join("\n").trim();
  return `${text || `usage: node --import tsx ${fileURLToPath(scriptUrl)}`}\n`;
}

/**
 * Runs the script's argument parsing (`parse`, e.g. a parseArgs call) behind the shared edges: --help first
 * (so it works whatever the script's own options are), then parse errors as usage errors.
 */
export function benchArgs<T>(scriptUrl: string, parse: () => T): T {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usageOf(scriptUrl));
    process.exit(0);
  }
  try {
    return parse();
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw e;
    process.stderr.write(`${(e as Error).message}\n\n${usageOf(scriptUrl)}`);
    process.exit(2);
  }
}
