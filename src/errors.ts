import type { Node } from "./ir/graph.js";

/**
 * Stable error codes, one line each in docs/errors.md. Callers match on `err.code`, never on class names or
 * message text: messages are for people and may be reworded, codes are part of the API.
 */
export const ERROR_CODES = [
  /** The model file or graph is malformed: bad protobuf, cycle, dangling input, two producers of a value. */
  "MODEL_INVALID",
  /** The model needs more memory than the session's cap, or its file is larger than allowed. */
  "MODEL_TOO_LARGE",
  /** An op (or op version / attribute value) mhafuse has no implementation for. */
  "OP_UNSUPPORTED",
  /** An op's contract is broken: bad attribute, input rank, dtype or shape. */
  "OP_INVALID",
  /** Feeds (or requested outputs) that do not fit the model. */
  "INPUT_INVALID",
  /** A tensor whose dims do not match its data (a Tensor built by the caller). */
  "TENSOR_INVALID",
  /** External data: unsafe location, missing/short/special file, length that does not match the tensor. */
  "EXTERNAL_DATA_INVALID",
  /** A size limit was hit while running: an allocation larger than the engine (or JS) allows. */
  "LIMIT_EXCEEDED",
  /** An option that is not known or not available (execution provider, optimisation level, CLI option). */
  "OPTION_INVALID",
  /** A file the CLI had to read or write could not be. */
  "IO_FAILED",
  /** Verify mode: a fused attention block differs from the unfused graph. */
  "FUSION_MISMATCH",
  /** A backend cannot start here: its optional package is missing, or it finds no adapter / device. */
  "BACKEND_UNAVAILABLE",
  /** A worker thread of the CPU backend failed or stopped responding. */
  "WORKER_FAILED",
  /** A bug in mhafuse: an invariant failed or a raw exception escaped a kernel. */
  "INTERNAL",
  /** Native kernels (src/backends/cpu/native/errors.ts). */
  "ERR_MHAFUSE_NATIVE_ARG",
  "ERR_MHAFUSE_NATIVE_UNAVAILABLE",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorDetails {
  /** Overrides the class's default code. */
  code?: ErrorCode;
  /** The node the error is about. */
  node?: string;
  /** The graph input / value / tensor / file the error is about. */
  input?: string;
  /** What was expected instead (a dtype and shape, a size bound, a kind of file). */
  expected?: string;
  cause?: unknown;
}

/** Base class: every error that leaves mhafuse's API or CLI is one of these (CLI prints code + message). */
export class MhafuseError extends Error {
  override name = "MhafuseError";
  /** The code a class gives its errors unless the thrower names another. */
  static readonly defaultCode: ErrorCode = "INTERNAL";
  readonly code: ErrorCode;
  /** Filled in by the executor when a kernel error did not name its node. */
  readonly node?: string;
  readonly input?: string;
  readonly expected?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = details.code ?? (new.target as typeof MhafuseError).defaultCode;
    if (details.node !== undefined) this.node = details.node;
    if (details.input !== undefined) this.input = details.input;
    if (details.expected !== undefined) this.expected = details.expected;
  }
}

/** The model file cannot be read: truncated, corrupt, not a regular file, invalid graph. */
export class ModelLoadError extends MhafuseError {
  override name = "ModelLoadError";
  static override readonly defaultCode: ErrorCode = "MODEL_INVALID";
}

/** External data that cannot be used: unsafe location, not a regular file, wrong length. */
export class ExternalDataError extends ModelLoadError {
  override name = "ExternalDataError";
  static override readonly defaultCode: ErrorCode = "EXTERNAL_DATA_INVALID";
}

/** The model (its tensors, its file) is larger than the session's memory cap allows. */
export class ModelTooLargeError extends ModelLoadError {
  override name = "ModelTooLargeError";
  static override readonly defaultCode: ErrorCode = "MODEL_TOO_LARGE";
}

/** A graph that cannot run as built: a value nobody produces, a cycle, two producers of one value. */
export class GraphError extends MhafuseError {
  override name = "GraphError";
  static override readonly defaultCode: ErrorCode = "MODEL_INVALID";
}

/** Feeds that do not fit the model: missing input, wrong dtype, contradicting shape, unknown output. */
export class InputError extends MhafuseError {
  override name = "InputError";
  static override readonly defaultCode: ErrorCode = "INPUT_INVALID";
}

/** A Tensor whose dims and data disagree. */
export class TensorError extends MhafuseError {
  override name = "TensorError";
  static override readonly defaultCode: ErrorCode = "TENSOR_INVALID";
}

/** A size limit hit while running (allocation past what the engine or the JS engine allows). */
export class LimitError extends MhafuseError {
  override name = "LimitError";
  static override readonly defaultCode: ErrorCode = "LIMIT_EXCEEDED";
}

/** An unknown or unavailable option. */
export class OptionError extends MhafuseError {
  override name = "OptionError";
  static override readonly defaultCode: ErrorCode = "OPTION_INVALID";
}

/** A bug in mhafuse, not in the user's input. */
export class InternalError extends MhafuseError {
  override name = "InternalError";
  static override readonly defaultCode: ErrorCode = "INTERNAL";
}

/** An op's contract is broken: bad attribute, bad input rank or dtype, unsupported op. */
export class OpError extends MhafuseError {
  override name = "OpError";
  static override readonly defaultCode: ErrorCode = "OP_INVALID";
  readonly opType: string;
  readonly nodeName: string;
  constructor(
    node: Pick<Node, "opType" | "name" | "domain"> | string,
    message: string,
    details: ErrorDetails = {},
  ) {
    const op = typeof node === "string" ? node : `${node.domain ? `${node.domain}.` : ""}${node.opType}`;
    const nodeName = typeof node === "string" ? "" : node.name;
    super(`${op}${nodeName ? ` (node '${nodeName}')` : ""}: ${message}`, {
      ...details,
      node: details.node ?? (nodeName || undefined),
    });
    this.opType = op;
    this.nodeName = nodeName;
  }
}

/** An op the engine has no implementation for. */
export class UnsupportedOpError extends OpError {
  override name = "UnsupportedOpError";
  static override readonly defaultCode: ErrorCode = "OP_UNSUPPORTED";
}

/** Internal invariant; a failure is a bug in mhafuse, not in the user's input. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new InternalError(`mhafuse internal error: ${message}`);
}

// V8's messages when an allocation is refused: a typed array / ArrayBuffer / string / array too large.
const ALLOCATION_FAILED =
  /Array buffer allocation failed|Invalid (typed )?array length|Invalid string length|Invalid array buffer length|Maximum call stack size exceeded|out of memory/i;

/**
 * Any thrown value as a MhafuseError, for the API edges: ours pass through; an allocation the JS engine
 * refused becomes LIMIT_EXCEEDED; anything else is a bug (INTERNAL), the original kept as `cause`.
 * `where` names what was running ("node 'x' (Expand)", "load"), so the message says where it happened.
 */
export function asMhafuseError(err: unknown, where = "", details: ErrorDetails = {}): MhafuseError {
  if (err instanceof MhafuseError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const at = where ? `${where}: ` : "";
  // A file the caller named that cannot be opened or written (ENOENT, EACCES, EISDIR, ENOSPC…).
  const sysCode = (e as { code?: unknown; syscall?: unknown }).syscall
    ? (e as { code?: unknown }).code
    : undefined;
  if (typeof sysCode === "string" && /^E[A-Z]+$/.test(sysCode)) {
    return new MhafuseError(`${at}${e.message}`, { ...details, code: "IO_FAILED", cause: e });
  }
  if (e instanceof RangeError && ALLOCATION_FAILED.test(e.message)) {
    return new LimitError(`${at}allocation refused (${e.message}); a tensor is too large`, {
      ...details,
      cause: e,
    });
  }
  return new InternalError(`mhafuse internal error: ${at}${e.name}: ${e.message}`, { ...details, cause: e });
}

/** Runs `fn`, re-throwing whatever it throws as a MhafuseError (see asMhafuseError). */
export function guard<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw asMhafuseError(err, where);
  }
}

/** `fn` with guard() around every call: for the package's public functions (see src/index.ts). */
// biome-ignore lint/suspicious/noExplicitAny: any function signature passes through unchanged.
export function guarded<F extends (...args: any[]) => any>(name: string, fn: F): F {
  return ((...args: Parameters<F>) => guard(name, () => fn(...args))) as F;
}

/** Async guard. */
export async function guardAsync<T>(where: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asMhafuseError(err, where);
  }
}

/** "node 'x' (Op)", the prefix errors use to say where they happened. */
export function nodeLabel(node: Pick<Node, "name" | "opType" | "domain">): string {
  return `node '${node.name}' (${node.domain ? `${node.domain}.` : ""}${node.opType})`;
}

/**
 * Runs one node's kernel so that whatever escapes names the node: a MhafuseError without a node gets it,
 * a refused allocation becomes LIMIT_EXCEEDED and any other raw exception INTERNAL (see asMhafuseError).
 * Used by the executor and by constant folding, the two places kernels run.
 */
export function runNodeGuarded<T>(node: Pick<Node, "name" | "opType" | "domain">, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MhafuseError) {
      if (err.node === undefined) (err as { node?: string }).node = node.name;
      throw err;
    }
    throw asMhafuseError(err, nodeLabel(node), { node: node.name });
  }
}

/**
 * A backend cannot start on this machine: its runtime package is not installed, or it finds no adapter or
 * device (WebGPU without the optional `webgpu` package, or without a driver). Callers may fall back to the CPU.
 */
export class BackendUnavailableError extends MhafuseError {
  override name = "BackendUnavailableError";
  /** Stable for callers that branch on it (fall back to "cpu"), whatever the message says. */
  static override readonly defaultCode: ErrorCode = "BACKEND_UNAVAILABLE";
  readonly backend: string;
  constructor(backend: string, message: string) {
    super(`${backend}: ${message}`);
    this.backend = backend;
  }
}
