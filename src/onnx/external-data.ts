/**
 * Tensors stored outside the .onnx file (`data_location = EXTERNAL`). A model file is untrusted
 * input, so a `location` may only name a file inside the model's own folder: absolute paths, `..`
 * segments and symlinks that lead out of the folder are refused rather than read.
 */
import { closeSync, constants, fstatSync, openSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { ExternalDataError } from "../errors.js";
import { checkRegularFile, type ReadErrors, readExactlySync } from "./read-file.js";

const ERRORS: ReadErrors = {
  invalid: (m) => new ExternalDataError(m),
  tooLarge: (m) => new ExternalDataError(m),
};

export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Undefined: the tensor runs to the end of the file. */
  length?: number;
}

interface KeyValue {
  key?: string | null;
  value?: string | null;
}

function parseByteCount(tensorName: string, key: string, value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new ExternalDataError(
      `tensor '${tensorName}': external data ${key} '${value}' is not a non-negative integer`,
    );
  }
  return Number(value);
}

/** The location/offset/length entries of a TensorProto's `external_data`. */
export function parseExternalData(tensorName: string, entries: readonly KeyValue[]): ExternalDataRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const { key, value } of entries) {
    if (key === "location") location = value ?? "";
    else if (key === "offset") offset = parseByteCount(tensorName, key, value ?? "");
    else if (key === "length") length = parseByteCount(tensorName, key, value ?? "");
    // "checksum" and unknown keys carry nothing we need.
  }
  if (!location) throw new ExternalDataError(`tensor '${tensorName}': external data has no location`);
  return { location, offset, length };
}

/** Refuses locations that name something outside the model's folder, before touching the disk. */
export function checkRelativeLocation(location: string, what: string): void {
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) {
    throw new ExternalDataError(
      `${what}: external data location '${location}' is an absolute path; only paths inside the model's folder are allowed`,
    );
  }
  if (location.split(/[\\/]/).includes("..")) {
    throw new ExternalDataError(
      `${what}: external data location '${location}' escapes the model's folder ('..' is not allowed)`,
    );
  }
}

/**
 * Absolute path of `location` inside `baseDir`, or a ExternalDataError when it would leave the folder.
 * Checked lexically first (so nothing outside is even touched), then again after resolving symlinks.
 */
export function resolveInsideDir(baseDir: string, location: string, what: string): string {
  checkRelativeLocation(location, what);
  const root = path.resolve(baseDir);
  const full = path.resolve(root, location);
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    throw new ExternalDataError(`${what}: external data file '${location}' not found in ${root}`);
  }
  const realRoot = realpathSync(root);
  const rel = path.relative(realRoot, real);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
    throw new ExternalDataError(
      `${what}: external data location '${location}' resolves outside the model's folder (symlink?)`,
    );
  }
  return full;
}

/** Reads the tensor's bytes; `expectedBytes` is what its dtype and dims require. */
export function readExternalData(
  tensorName: string,
  ref: ExternalDataRef,
  baseDir: string | undefined,
  expectedBytes: number,
): Uint8Array {
  const what = `tensor '${tensorName}'`;
  if (baseDir === undefined) {
    throw new ExternalDataError(
      `${what} is stored in external file '${ref.location}', but the model was loaded from bytes without a baseDir`,
    );
  }
  const file = resolveInsideDir(baseDir, ref.location, what);
  const label = `${what}: external data '${ref.location}'`;
  // Checked before opening: opening a FIFO blocks until a writer comes, /dev/zero never ends.
  checkRegularFile(label, statSync(file), Number.POSITIVE_INFINITY, ERRORS);
  const fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const stat = fstatSync(fd);
    checkRegularFile(label, stat, Number.POSITIVE_INFINITY, ERRORS);
    const fileSize = stat.size;
    const length = ref.length ?? fileSize - ref.offset;
    if (length !== expectedBytes) {
      throw new ExternalDataError(
        `${what}: external data length ${length} does not match the ${expectedBytes} bytes its dtype and shape need`,
      );
    }
    if (ref.offset + length > fileSize) {
      throw new ExternalDataError(
        `${what}: external data '${ref.location}' is too short (needs bytes ${ref.offset}..${ref.offset + length}, file has ${fileSize})`,
      );
    }
    return readExactlySync(fd, ref.offset, length, label, ERRORS);
  } finally {
    closeSync(fd);
  }
}
