/**
 * Reading files named by untrusted input (a model path from the user, an external-data location from the
 * model). Only regular files are read: a FIFO would block `open` forever and `/dev/zero` never ends, so both
 * are refused from `stat` before the file is opened, and the file is opened non-blocking in case it was
 * swapped between the two calls. Reads are bounded by the size `fstat` reported and by `maxBytes`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { ModelLoadError } from "../errors.js";

export interface ReadErrors {
  /** Makes the error for a path that cannot be read (missing, not a regular file). */
  invalid(message: string): ModelLoadError;
  /** Makes the error for a file past `maxBytes`. */
  tooLarge(message: string): ModelLoadError;
}

// O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

function kindOf(s: Stats): string {
  if (s.isFIFO()) return "a FIFO";
  if (s.isCharacterDevice()) return "a character device";
  if (s.isBlockDevice()) return "a block device";
  if (s.isDirectory()) return "a directory";
  if (s.isSocket()) return "a socket";
  return "not a regular file";
}

/** Throws unless `s` is a regular file of at most `maxBytes`. */
export function checkRegularFile(what: string, s: Stats, maxBytes: number, errors: ReadErrors): void {
  if (!s.isFile()) throw errors.invalid(`${what} is ${kindOf(s)}; only regular files are read`);
  if (s.size > maxBytes) {
    throw errors.tooLarge(`${what} has ${s.size} bytes, more than the limit of ${maxBytes}`);
  }
}

function describe(e: unknown): string {
  return (e as Error).message;
}

/** Reads a whole regular file synchronously, refusing anything else before opening it. */
export function readRegularFileSync(
  path: string,
  what: string,
  maxBytes: number,
  errors: ReadErrors,
): Uint8Array {
  let s: Stats;
  try {
    s = statSync(path);
  } catch (e) {
    throw errors.invalid(`cannot read ${what}: ${describe(e)}`);
  }
  checkRegularFile(what, s, maxBytes, errors);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw errors.invalid(`cannot read ${what}: ${describe(e)}`);
  }
  try {
    const again = fstatSync(fd);
    checkRegularFile(what, again, maxBytes, errors);
    return readExactlySync(fd, 0, again.size, what, errors);
  } finally {
    closeSync(fd);
  }
}

/** `length` bytes at `offset` of an open regular file; a short read is an error, never a wait. */
export function readExactlySync(
  fd: number,
  offset: number,
  length: number,
  what: string,
  errors: ReadErrors,
): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, offset + done);
    if (n === 0) throw errors.invalid(`${what}: short read (${done} of ${length} bytes)`);
    done += n;
  }
  return out;
}

/** Async readRegularFileSync. */
export async function readRegularFile(
  path: string,
  what: string,
  maxBytes: number,
  errors: ReadErrors,
): Promise<Uint8Array> {
  let s: Stats;
  try {
    s = await stat(path);
  } catch (e) {
    throw errors.invalid(`cannot read ${what}: ${describe(e)}`);
  }
  checkRegularFile(what, s, maxBytes, errors);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (e) {
    throw errors.invalid(`cannot read ${what}: ${describe(e)}`);
  }
  try {
    const again = await handle.stat();
    checkRegularFile(what, again, maxBytes, errors);
    const out = new Uint8Array(again.size);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await handle.read(out, done, out.length - done, done);
      if (bytesRead === 0) throw errors.invalid(`${what}: short read (${done} of ${out.length} bytes)`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}
