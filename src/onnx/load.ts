/**
 * .onnx bytes → our IR (Model/Graph). The file is untrusted: every failure to make sense of it
 * surfaces as a ModelLoadError with a readable message, never as a protobuf stack.
 */
import path from "node:path";
import {
  GraphError,
  guard,
  guardAsync,
  MhafuseError,
  ModelLoadError,
  ModelTooLargeError,
} from "../errors.js";
import { checkGraph } from "../graph-check.js";
import type { Attribute, Graph, Model, Node, ValueInfo } from "../ir/graph.js";
import { normalizeDomain } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { DEFAULT_MAX_MODEL_BYTES } from "../limits.js";
import { attributeFromProto } from "./attribute.js";
import { dataTypeName, type Int64Like, int64ToNumber, onnx } from "./proto.js";
import { type ReadErrors, readRegularFile, readRegularFileSync } from "./read-file.js";
import { tensorFromProto } from "./tensor-proto.js";
import { declaredElemType, valueInfoFromProto } from "./value-info.js";

/** Default-domain opsets the engine's op implementations cover. */
export const MIN_OPSET = 1;
export const MAX_OPSET = 23;

export interface LoadOptions {
  /**
   * Folder that external data locations are relative to. Defaults to the model file's folder when
   * loading from a path; required to load bytes whose tensors live in external files.
   */
  baseDir?: string;
  /** Largest model file read (default 2 GiB, protobuf's own limit); larger is MODEL_TOO_LARGE. */
  maxModelBytes?: number;
  /**
   * Bytes all tensors of the model (initializers, constant attributes, external data) may take; checked
   * before each tensor is allocated or read. Exceeding it is MODEL_TOO_LARGE. Default: no cap.
   */
  memoryLimitBytes?: number;
}

const MODEL_FILE_ERRORS: ReadErrors = {
  invalid: (m) => new ModelLoadError(m),
  tooLarge: (m) => new ModelTooLargeError(m),
};

// The model path must be a regular file (a FIFO would block, /dev/zero never ends), read with a size bound.
function withBaseDir(source: string, opts: LoadOptions): LoadOptions {
  return { ...opts, baseDir: opts.baseDir ?? path.dirname(path.resolve(source)) };
}

export async function loadModel(source: string | Uint8Array, opts: LoadOptions = {}): Promise<Model> {
  return guardAsync("loadModel", async () => {
    if (typeof source !== "string") return modelFromBytes(source, opts);
    const max = opts.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES;
    const bytes = await readRegularFile(source, `model file '${source}'`, max, MODEL_FILE_ERRORS);
    return modelFromBytes(bytes, withBaseDir(source, opts));
  });
}

export function loadModelSync(source: string | Uint8Array, opts: LoadOptions = {}): Model {
  return guard("loadModelSync", () => {
    if (typeof source !== "string") return modelFromBytes(source, opts);
    const max = opts.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES;
    const bytes = readRegularFileSync(source, `model file '${source}'`, max, MODEL_FILE_ERRORS);
    return modelFromBytes(bytes, withBaseDir(source, opts));
  });
}

/** Protobuf-decodes the bytes; garbage or truncation becomes ModelLoadError. */
export function decodeModelProto(bytes: Uint8Array): onnx.ModelProto {
  let proto: onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelLoadError(
      `not a valid ONNX model: ${(e as Error).message} (truncated or corrupted file?)`,
    );
  }
  if (!proto.graph) {
    throw new ModelLoadError(
      bytes.length === 0
        ? "not a valid ONNX model: the file is empty"
        : "not a valid ONNX model: it has no graph",
    );
  }
  if (int64ToNumber(proto.irVersion as Int64Like) <= 0) {
    throw new ModelLoadError("not a valid ONNX model: ir_version is missing");
  }
  return proto;
}

export function modelFromBytes(bytes: Uint8Array, opts: LoadOptions = {}): Model {
  const proto = decodeModelProto(bytes);
  try {
    return modelFromProto(proto, opts);
  } catch (e) {
    if (e instanceof MhafuseError) throw e;
    // Random bytes sometimes decode into a structurally odd message; say so instead of crashing.
    throw new ModelLoadError(`not a valid ONNX model: ${(e as Error).message}`, { cause: e });
  }
}

function opsetsFromProto(proto: onnx.IModelProto): Map<string, number> {
  const opsets = new Map<string, number>();
  for (const o of proto.opsetImport ?? []) {
    opsets.set(normalizeDomain(o.domain), int64ToNumber((o.version ?? 0) as Int64Like));
  }
  const version = opsets.get("");
  if (version !== undefined && (version < MIN_OPSET || version > MAX_OPSET)) {
    throw new ModelLoadError(
      `the model uses ai.onnx opset ${version}; mhafuse supports opsets ${MIN_OPSET} to ${MAX_OPSET} (re-export the model with a supported opset)`,
    );
  }
  return opsets;
}

export function modelFromProto(proto: onnx.IModelProto, opts: LoadOptions = {}): Model {
  const opsets = opsetsFromProto(proto);
  const reader = new GraphReader(opts.baseDir, opsets, opts.memoryLimitBytes);
  const graph = reader.graph(proto.graph!, true);
  const domains = reader.domainsUsed;
  for (const d of domains) {
    if (!opsets.has(d)) {
      throw new ModelLoadError(
        `nodes use domain '${d || "ai.onnx"}', but the model has no opset_import for it`,
      );
    }
  }
  const metadata: Record<string, string> = {};
  for (const p of proto.metadataProps ?? []) metadata[p.key ?? ""] = p.value ?? "";
  const model: Model = {
    graph,
    irVersion: int64ToNumber(proto.irVersion as Int64Like),
    producerName: proto.producerName ?? "",
    producerVersion: proto.producerVersion ?? "",
    metadata,
  };
  if (opts.baseDir !== undefined) model.baseDir = opts.baseDir;
  try {
    checkGraph(graph);
  } catch (e) {
    if (e instanceof GraphError)
      throw new ModelLoadError(`the model's graph is invalid: ${e.message}`, { cause: e });
    throw e;
  }
  return model;
}

/** Converts a GraphProto and its subgraphs; remembers which operator domains the nodes use. */
class GraphReader {
  readonly domainsUsed = new Set<string>();
  private bytesLeft: number;

  constructor(
    private readonly baseDir: string | undefined,
    private readonly opsets: Map<string, number>,
    memoryLimitBytes = Number.POSITIVE_INFINITY,
  ) {
    this.bytesLeft = memoryLimitBytes;
  }

  tensor(proto: onnx.ITensorProto, fallbackName: string): Tensor {
    return tensorFromProto(
      proto,
      { baseDir: this.baseDir, reserve: (n, b) => this.reserve(n, b) },
      fallbackName,
    );
  }

  /** Counts a tensor's bytes against the memory cap before it is allocated or read. */
  private reserve(name: string, bytes: number): void {
    this.bytesLeft -= bytes;
    if (this.bytesLeft < 0) {
      throw new ModelTooLargeError(
        `tensor '${name}' (${bytes} bytes) takes the model past its memory limit`,
        {
          input: name,
          expected: "memoryLimitBytes or less for all tensors",
        },
      );
    }
  }

  graph(g: onnx.IGraphProto, topLevel: boolean): Graph {
    if ((g.sparseInitializer ?? []).length > 0) {
      throw new ModelLoadError(`graph '${g.name ?? ""}': sparse initializers are not supported`);
    }
    const initializers = new Map<string, Tensor>();
    for (const [i, t] of (g.initializer ?? []).entries()) {
      if (!t.name) throw new ModelLoadError(`graph '${g.name ?? ""}': initializer #${i} has no name`);
      initializers.set(t.name, this.tensor(t, t.name));
    }
    // An input that is also an initializer is a default value (IR < 4 listed every weight as an
    // input); our IR keeps it only as an initializer so callers never have to feed it.
    const inputs = (g.input ?? []).filter((v) => !initializers.has(v.name ?? ""));
    if (topLevel) for (const v of inputs) this.checkFeedable(v);
    const valueInfo = new Map<string, ValueInfo>();
    for (const v of g.valueInfo ?? []) valueInfo.set(v.name ?? "", valueInfoFromProto(v));
    return {
      name: g.name ?? "",
      nodes: this.nodes(g.node ?? []),
      inputs: inputs.map(valueInfoFromProto),
      outputs: (g.output ?? []).map(valueInfoFromProto),
      initializers,
      valueInfo,
      opsets: this.opsets,
    };
  }

  /** A model input we cannot represent could never be fed, so refuse the model up front. */
  private checkFeedable(v: onnx.IValueInfoProto): void {
    const elemType = declaredElemType(v);
    if (elemType === undefined) {
      if (v.type)
        throw new ModelLoadError(`graph input '${v.name}' is not a tensor; only tensor inputs are supported`);
      return;
    }
    if (!valueInfoFromProto(v).dtype) {
      throw new ModelLoadError(
        `graph input '${v.name}' has data type ${dataTypeName(elemType)}, which mhafuse does not support`,
      );
    }
  }

  private nodes(protos: onnx.INodeProto[]): Node[] {
    const taken = new Set<string>();
    for (const n of protos) if (n.name) taken.add(n.name);
    const seen = new Set<string>();
    let counter = 0;
    const freshName = (opType: string): string => {
      let name: string;
      do name = `${opType}_${counter++}`;
      while (taken.has(name));
      taken.add(name);
      return name;
    };
    return protos.map((n) => {
      const opType = n.opType ?? "";
      if (!opType) throw new ModelLoadError("not a valid ONNX model: a node has no op_type");
      // Anonymous nodes (and repeats of a name) get a generated name: passes and error messages
      // refer to nodes by name, so names must be unique within the graph.
      const name = n.name && !seen.has(n.name) ? n.name : freshName(opType);
      seen.add(name);
      const domain = normalizeDomain(n.domain);
      this.domainsUsed.add(domain);
      const where = `node '${name}' (${opType})`;
      const attrs: Record<string, Attribute> = {};
      for (const a of n.attribute ?? []) {
        attrs[a.name ?? ""] = attributeFromProto(a, where, {
          tensor: (t, fallback) => this.tensor(t, fallback),
          graph: (g) => this.graph(g, false),
        });
      }
      return { name, opType, domain, inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs };
    });
  }
}
