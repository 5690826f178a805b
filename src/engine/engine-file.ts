/**
 * Engine files (`.mhaf`, like TensorRT's serialized engines): a model optimized once — attention fused, the
 * fusion report, the graph as ONNX bytes with mhafuse's own ops — so that loading skips the optimization.
 *
 *   bytes 0..7   "MHAFUSE\0"
 *   u32 LE       format version
 *   u32 LE       header length N
 *   N bytes      header JSON: format, mhafuse version, backend, kernel set, report, payload sha256 and size
 *   rest         payload: the optimized graph as an ONNX model
 *
 * Loading checks, in order: the magic (else "not an engine file"), the format (a newer one is refused), the
 * header, the payload's size and SHA-256 (corrupt or truncated files are refused), and the kernel set (a file
 * built by an mhafuse with other ops is refused: rebuild it). Weights are packed by the backend when a session
 * prepares the graph, as for an ONNX model (the CPU packs each GEMM's weights once, in milliseconds).
 */
import { createHash } from "node:crypto";
import { ModelLoadError } from "../errors.js";
import type { Model } from "../ir/graph.js";
import { modelFromBytes, modelFromGraph, saveModel } from "../onnx/index.js";
import { registeredOps } from "../ops/index.js";
import { type AttentionReport, type GraphOptimizationLevel, optimizeGraph } from "../passes/index.js";

const MAGIC = new TextEncoder().encode("MHAFUSE\0");
export const ENGINE_FORMAT_VERSION = 1;
const VERSION = "0.1.0";

export interface EngineHeader {
  format: number;
  mhafuse: string;
  backend: string;
  /** Identity of the op set the graph's nodes need (mhafuse ops, opset rules). */
  kernelSet: string;
  level: GraphOptimizationLevel;
  report: AttentionReport[];
  payloadBytes: number;
  payloadSha256: string;
}

export interface EngineFile {
  header: EngineHeader;
  model: Model;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A stable identity of the ops this mhafuse implements: a file built with another set must be rebuilt. */
export function kernelSetId(): string {
  return sha256(new TextEncoder().encode(`${VERSION}\n${registeredOps().join("\n")}`)).slice(0, 16);
}

export function isEngineFile(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/** Optimizes `model` and serializes the result as an engine file. */
export function buildEngine(
  model: Model,
  opts: { level?: GraphOptimizationLevel; backend?: string } = {},
): Uint8Array {
  const level = opts.level ?? "all";
  const { graph, report } = optimizeGraph(model.graph, { level });
  const payload = saveModel(
    modelFromGraph(graph, { producerName: model.producerName, producerVersion: model.producerVersion }),
  );
  const header: EngineHeader = {
    format: ENGINE_FORMAT_VERSION,
    mhafuse: VERSION,
    backend: opts.backend ?? "cpu",
    kernelSet: kernelSetId(),
    level,
    report,
    payloadBytes: payload.length,
    payloadSha256: sha256(payload),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(MAGIC.length + 8 + json.length + payload.length);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(MAGIC.length, ENGINE_FORMAT_VERSION, true);
  view.setUint32(MAGIC.length + 4, json.length, true);
  out.set(json, MAGIC.length + 8);
  out.set(payload, MAGIC.length + 8 + json.length);
  return out;
}

/** Reads and checks an engine file; every refusal is a ModelLoadError (MODEL_INVALID) saying why. */
export function readEngine(bytes: Uint8Array, what = "engine file"): EngineFile {
  if (!isEngineFile(bytes))
    throw new ModelLoadError(`${what} is not an mhafuse engine file (no MHAFUSE magic)`);
  if (bytes.length < MAGIC.length + 8) throw new ModelLoadError(`${what} is truncated (no header)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = view.getUint32(MAGIC.length, true);
  if (format !== ENGINE_FORMAT_VERSION)
    throw new ModelLoadError(
      `${what} has engine format ${format}; this mhafuse reads format ${ENGINE_FORMAT_VERSION}` +
        (format > ENGINE_FORMAT_VERSION ? " (built by a newer mhafuse: upgrade, or rebuild the file)" : ""),
    );
  const headerBytes = view.getUint32(MAGIC.length + 4, true);
  const start = MAGIC.length + 8;
  if (start + headerBytes > bytes.length)
    throw new ModelLoadError(`${what} is truncated (header of ${headerBytes} bytes)`);
  let header: EngineHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(start, start + headerBytes))) as EngineHeader;
  } catch (e) {
    throw new ModelLoadError(`${what} has a corrupt header: ${(e as Error).message}`);
  }
  const payload = bytes.subarray(start + headerBytes);
  if (payload.length !== header.payloadBytes)
    throw new ModelLoadError(
      `${what} is truncated or padded: payload of ${payload.length} bytes, header says ${header.payloadBytes}`,
    );
  if (sha256(payload) !== header.payloadSha256)
    throw new ModelLoadError(`${what} is corrupt: payload checksum mismatch`);
  if (header.kernelSet !== kernelSetId())
    throw new ModelLoadError(
      `${what} was built by mhafuse ${header.mhafuse} with another kernel set (${header.kernelSet}, this one is ` +
        `${kernelSetId()}): rebuild it with \`mhafuse build\``,
    );
  return { header, model: modelFromBytes(payload) };
}
