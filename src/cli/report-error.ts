import { asMhafuseError } from "../errors.js";

/**
 * Prints an error for a person: `mhafuse: CODE: message` (the code is stable, scripts may match it), plus
 * the stack with --verbose; returns the exit code. Raw exceptions are shown as INTERNAL (a bug).
 */
export function reportError(err: unknown, verbose: boolean): number {
  const e = asMhafuseError(err);
  process.stderr.write(`mhafuse: ${e.code}: ${e.message}\n`);
  if (verbose) {
    const original = err instanceof Error ? err : e;
    process.stderr.write(`${original.stack ?? original.message}\n`);
  }
  return 1;
}
