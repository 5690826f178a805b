import type { Node } from "./ir/graph.js";

/** Base class: every error mhafuse raises on purpose is one of these (CLI prints them without a stack). */
export class MhafuseError extends Error {
  override name = "MhafuseError";
}

/** The model file cannot be read: truncated, corrupt, unsafe external data path, missing data file. */
export class ModelLoadError extends MhafuseError {
  override name = "ModelLoadError";
}

/** A graph that cannot run as built: a value nobody produces, a cycle, two producers of one value. */
export class GraphError extends MhafuseError {
  override name = "GraphError";
}

/** Feeds that do not fit the model: missing input, wrong dtype, contradicting shape. */
export class InputError extends MhafuseError {
  override name = "InputError";
}

/** An op's contract is broken: bad attribute, bad input rank or dtype, unsupported op. */
export class OpError extends MhafuseError {
  override name = "OpError";
  readonly opType: string;
  readonly nodeName: string;
  constructor(node: Pick<Node, "opType" | "name" | "domain"> | string, message: string) {
    const op = typeof node === "string" ? node : `${node.domain ? `${node.domain}.` : ""}${node.opType}`;
    const nodeName = typeof node === "string" ? "" : node.name;
    super(`${op}${nodeName ? ` (node '${nodeName}')` : ""}: ${message}`);
    this.opType = op;
    this.nodeName = nodeName;
  }
}

/** An op the engine has no implementation for. */
export class UnsupportedOpError extends OpError {
  override name = "UnsupportedOpError";
}

/** Internal invariant; a failure is a bug in mhafuse, not in the user's input. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`mhafuse internal error: ${message}`);
}

/**
 * A backend cannot start on this machine: its runtime package is not installed, or it finds no adapter or
 * device (WebGPU without the optional `webgpu` package, or without a driver). Callers may fall back to the CPU.
 */
export class BackendUnavailableError extends MhafuseError {
  override name = "BackendUnavailableError";
  /** Stable for callers that branch on it (fall back to "cpu"), whatever the message says. */
  readonly code = "BACKEND_UNAVAILABLE";
  readonly backend: string;
  constructor(backend: string, message: string) {
    super(`${backend}: ${message}`);
    this.backend = backend;
  }
}
