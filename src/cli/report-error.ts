import { MhafuseError } from "../errors.js";

/** Prints an error for a person: message only, unless --verbose; returns the exit code. */
export function reportError(err: unknown, verbose: boolean): number {
  if (verbose && err instanceof Error) process.stderr.write(`${err.stack ?? err.message}\n`);
  else if (err instanceof MhafuseError) process.stderr.write(`mhafuse: ${err.message}\n`);
  else if (err instanceof Error)
    process.stderr.write(`mhafuse: ${err.name === "Error" ? "" : `${err.name}: `}${err.message}\n`);
  else process.stderr.write(`mhafuse: ${String(err)}\n`);
  return 1;
}
