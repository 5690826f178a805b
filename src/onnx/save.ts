/** Our IR → .onnx bytes that onnxruntime (and the ONNX checker) accept. */
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { Graph, Model } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { attributeToProto } from "./attribute.js";
import { checkRelativeLocation } from "./external-data.js";
import { bytesOf } from "./little-endian.js";
import { onnx, toInt64 } from "./proto.js";
import { externalTensorProto, tensorToProto } from "./tensor-proto.js";
import { valueInfoToProto } from "./value-info.js";

export interface SaveOptions {
  /**
   * Store large initializers in a separate file next to the model (as exporters do for models over
   * 2 GB). `location` is relative to the model's folder.
   */
  externalData?: {
    location: string /** bytes; smaller tensors stay inline (default 1024) */;
    sizeThreshold?: number;
  };
}

/**
 * Lowest IR version that the ONNX release introducing each opset wrote (opset 18 ↔ IR 8,
 * 19–20 ↔ 9, 21–22 ↔ 10, 23 ↔ 11); runtimes check opsets against the file's IR version.
 */
export function minIrVersionForOpset(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

const PRODUCER = "mhafuse";
const PRODUCER_VERSION = "0.1.0";
/** Offsets in the external data file are aligned so the data can be mapped and viewed in place. */
const EXTERNAL_ALIGNMENT = 64;

/** Wraps a graph (e.g. from GraphBuilder) in a Model ready for saveModel. */
export function modelFromGraph(
  graph: Graph,
  opts: {
    irVersion?: number;
    producerName?: string;
    producerVersion?: string;
    metadata?: Record<string, string>;
  } = {},
): Model {
  return {
    graph,
    irVersion: opts.irVersion ?? minIrVersionForOpset(graph.opsets.get("") ?? 17),
    producerName: opts.producerName ?? PRODUCER,
    producerVersion: opts.producerVersion ?? PRODUCER_VERSION,
    metadata: { ...(opts.metadata ?? {}) },
  };
}

/** Collects the bytes of initializers that go to the external file, assigning their offsets. */
class ExternalDataWriter {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  constructor(
    readonly location: string,
    readonly sizeThreshold: number,
  ) {}

  /** A proto pointing into the external file, or undefined when the tensor is small enough to inline. */
  place(tensor: Tensor, name: string): onnx.TensorProto | undefined {
    if (tensor.data.byteLength < this.sizeThreshold) return undefined;
    const padding = (EXTERNAL_ALIGNMENT - (this.size % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
    if (padding) this.push(new Uint8Array(padding));
    const proto = externalTensorProto(tensor, name, this.location, this.size);
    this.push(bytesOf(tensor.data));
    return proto;
  }

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.byteLength;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

function graphToProto(graph: Graph, external?: ExternalDataWriter): onnx.GraphProto {
  const encoders = {
    tensor: (t: Tensor) => tensorToProto(t),
    // Subgraph weights stay inline: they are small (If/Loop bodies) and rarely shared.
    graph: (g: Graph) => graphToProto(g),
  };
  return onnx.GraphProto.create({
    name: graph.name,
    node: graph.nodes.map((n) =>
      onnx.NodeProto.create({
        name: n.name,
        opType: n.opType,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attributeToProto(k, a, encoders)),
      }),
    ),
    initializer: [...graph.initializers].map(
      ([name, t]) => external?.place(t, name) ?? tensorToProto(t, name),
    ),
    input: graph.inputs.map(valueInfoToProto),
    output: graph.outputs.map(valueInfoToProto),
    valueInfo: [...graph.valueInfo.values()].filter((v) => v.dtype).map(valueInfoToProto),
  });
}

function modelToProto(model: Model, external?: ExternalDataWriter): onnx.ModelProto {
  const opsets = model.graph.opsets;
  return onnx.ModelProto.create({
    irVersion: toInt64(Math.max(model.irVersion, minIrVersionForOpset(opsets.get("") ?? 17))),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    opsetImport: [...opsets].map(([domain, version]) => ({ domain, version: toInt64(version) })),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: graphToProto(model.graph, external),
  });
}

/** The model as .onnx bytes, every tensor inline. */
export function saveModel(model: Model): Uint8Array {
  return onnx.ModelProto.encode(modelToProto(model)).finish();
}

/** Writes the model to `filePath` (and, with `externalData`, its weights file next to it). */
export function saveModelFile(model: Model, filePath: string, opts: SaveOptions = {}): void {
  if (!opts.externalData) {
    writeFileSync(filePath, saveModel(model));
    return;
  }
  const { location, sizeThreshold = 1024 } = opts.externalData;
  checkRelativeLocation(location, "saveModelFile");
  const external = new ExternalDataWriter(location, sizeThreshold);
  const bytes = onnx.ModelProto.encode(modelToProto(model, external)).finish();
  writeFileSync(path.join(path.dirname(filePath), location), external.bytes());
  writeFileSync(filePath, bytes);
}
