/**
 * Hostile ONNX models, generated (never committed as binaries): each case is a recipe that writes its files
 * into a folder and says which path to load and what must happen. Used by test/hostile.test.ts and by
 * `node --import tsx scripts/gen-hostile.ts DIR` (to try them on the CLI or on onnxruntime).
 */
import { execFileSync } from "node:child_process";
import { symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { ErrorCode } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { onnx } from "../src/onnx/proto.js";
import { modelFromGraph, saveModel } from "../src/onnx/save.js";

export interface HostileCase {
  name: string;
  /** Writes the case's files into `dir`; returns the path to load. */
  make(dir: string): string;
  /** What `InferenceSession.create` must do: refuse with this code, or load ("deferred": a fold bomb left for run time). */
  expect: ErrorCode | "loads";
  /** Bounds on create: CPU milliseconds and growth of the process's peak RSS in MB. */
  maxCpuMs: number;
  maxRssMb: number;
}

function bytesOf(graph: Graph): Uint8Array {
  return saveModel(modelFromGraph(graph));
}

function write(dir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

/** y = ReduceSum(big) + x, where big is a constant-only subgraph of `elements` values (a fold bomb). */
function bomb(kind: "expand" | "range" | "constantOfShape", elements: number): Graph {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [1]);
  let big: string;
  if (kind === "expand") {
    big = b.op("Expand", [b.const("float32", 1.5), b.const("int64", [elements])], {}, { name: "bomb" });
  } else if (kind === "range") {
    big = b.op(
      "Range",
      [b.const("float32", 0), b.const("float32", elements), b.const("float32", 1)],
      {},
      {
        name: "bomb",
      },
    );
  } else {
    big = b.op("ConstantOfShape", [b.const("int64", [elements])], {}, { name: "bomb" });
  }
  const sum = b.op("ReduceSum", [big], { keepdims: 1 });
  b.output(b.op("Add", [sum, x], {}, { outputs: ["y"] }));
  return b.build();
}

function relu(): GraphBuilder {
  const b = new GraphBuilder();
  b.input("x", "float32", [2]);
  return b;
}

/** A model whose weight `w` (float32[4]) lives in external file `location`. */
function externalModel(location: string): Uint8Array {
  const b = relu();
  b.init(new Tensor("float32", new Float32Array(4), [4]), "w");
  b.output(b.op("Add", ["x", "w"], {}, { outputs: ["y"] }));
  const proto = onnx.ModelProto.decode(bytesOf(b.build()));
  const w = proto.graph!.initializer!.find((t) => t.name === "w")!;
  w.rawData = new Uint8Array(0);
  w.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
  w.externalData = [
    { key: "location", value: location },
    { key: "offset", value: "0" },
    { key: "length", value: "16" },
  ];
  return onnx.ModelProto.encode(proto).finish();
}

/** A wide graph: `n` parallel Relu nodes on one input, summed by one Sum node. */
export function wideGraph(n: number): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1]);
  const outs: string[] = [];
  for (let i = 0; i < n; i++) outs.push(b.op("Relu", [x], {}, { name: `r${i}` }));
  b.output(b.op("Sum", outs, {}, { name: "sum", outputs: ["y"] }));
  return b.build();
}

const FAST = { maxCpuMs: 100, maxRssMb: 200 };

export const HOSTILE_CASES: HostileCase[] = [
  // Fold bombs: refused before any work (static size past the memory cap) or left for run time.
  {
    name: "expand-5e8",
    make: (d) => write(d, "m.onnx", bytesOf(bomb("expand", 5e8))),
    expect: "loads",
    ...FAST,
  },
  {
    name: "range-5e8",
    make: (d) => write(d, "m.onnx", bytesOf(bomb("range", 5e8))),
    expect: "loads",
    ...FAST,
  },
  {
    name: "constant-of-shape-1e10",
    make: (d) => write(d, "m.onnx", bytesOf(bomb("constantOfShape", 1e10))),
    expect: "MODEL_TOO_LARGE",
    ...FAST,
  },
  {
    name: "expand-1e12",
    make: (d) => write(d, "m.onnx", bytesOf(bomb("expand", 1e12))),
    expect: "MODEL_TOO_LARGE",
    ...FAST,
  },
  {
    name: "range-1e11",
    make: (d) => write(d, "m.onnx", bytesOf(bomb("range", 1e11))),
    expect: "MODEL_TOO_LARGE",
    ...FAST,
  },
  {
    // An initializer that declares 2^40 floats but carries 4 bytes: refused before any allocation.
    name: "huge-declared-dims",
    make: (d) => {
      const b = relu();
      b.init(new Tensor("float32", new Float32Array(1), [1]), "w");
      b.output(b.op("Add", ["x", "w"], {}, { outputs: ["y"] }));
      const proto = onnx.ModelProto.decode(bytesOf(b.build()));
      proto.graph!.initializer![0]!.dims = [1 << 20, 1 << 20];
      return write(d, "m.onnx", onnx.ModelProto.encode(proto).finish());
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "huge-declared-dims-no-data",
    make: (d) => {
      const b = relu();
      b.init(new Tensor("float32", new Float32Array(1), [1]), "w");
      b.output(b.op("Add", ["x", "w"], {}, { outputs: ["y"] }));
      const proto = onnx.ModelProto.decode(bytesOf(b.build()));
      const w = proto.graph!.initializer![0]!;
      w.dims = [1e6, 1e6, 1e6];
      w.rawData = new Uint8Array(0);
      return write(d, "m.onnx", onnx.ModelProto.encode(proto).finish());
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "cycle",
    make: (d) => {
      const b = relu();
      b.op("Add", ["x", "b"], {}, { name: "A", outputs: ["a"] });
      b.op("Relu", ["a"], {}, { name: "B", outputs: ["b"] });
      b.output("b");
      return write(d, "m.onnx", bytesOf(b.build()));
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "duplicate-producers",
    make: (d) => {
      const b = relu();
      b.op("Relu", ["x"], {}, { name: "one", outputs: ["y"] });
      b.op("Neg", ["x"], {}, { name: "two", outputs: ["y"] });
      b.output("y");
      return write(d, "m.onnx", bytesOf(b.build()));
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "missing-output",
    make: (d) => {
      const b = relu();
      b.output(b.op("Relu", ["x"], {}, { outputs: ["y"] }));
      b.output("nobody_makes_this");
      return write(d, "m.onnx", bytesOf(b.build()));
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "dangling-input",
    make: (d) => {
      const b = relu();
      b.output(b.op("Add", ["x", "ghost"], {}, { outputs: ["y"] }));
      return write(d, "m.onnx", bytesOf(b.build()));
    },
    expect: "MODEL_INVALID",
    ...FAST,
  },
  {
    name: "model-path-fifo",
    make: (d) => {
      const file = path.join(d, "fifo.onnx");
      execFileSync("mkfifo", [file]);
      return file;
    },
    expect: "MODEL_INVALID",
    maxCpuMs: 1000,
    maxRssMb: 200,
  },
  {
    name: "model-path-dev-zero",
    make: () => "/dev/zero",
    expect: "MODEL_INVALID",
    maxCpuMs: 1000,
    maxRssMb: 200,
  },
  {
    name: "external-data-fifo",
    make: (d) => {
      execFileSync("mkfifo", [path.join(d, "w.bin")]);
      return write(d, "m.onnx", externalModel("w.bin"));
    },
    expect: "EXTERNAL_DATA_INVALID",
    maxCpuMs: 1000,
    maxRssMb: 200,
  },
  {
    name: "external-data-dev-zero-symlink",
    make: (d) => {
      symlinkSync("/dev/zero", path.join(d, "w.bin"));
      return write(d, "m.onnx", externalModel("w.bin"));
    },
    expect: "EXTERNAL_DATA_INVALID",
    maxCpuMs: 1000,
    maxRssMb: 200,
  },
  {
    name: "external-data-escapes-dotdot",
    make: (d) => write(d, "m.onnx", externalModel("../w.bin")),
    expect: "EXTERNAL_DATA_INVALID",
    ...FAST,
  },
  {
    name: "external-data-absolute",
    make: (d) => write(d, "m.onnx", externalModel("/etc/passwd")),
    expect: "EXTERNAL_DATA_INVALID",
    ...FAST,
  },
  {
    name: "external-data-symlink-out",
    make: (d) => {
      symlinkSync("/etc/hostname", path.join(d, "w.bin"));
      return write(d, "m.onnx", externalModel("w.bin"));
    },
    expect: "EXTERNAL_DATA_INVALID",
    ...FAST,
  },
  {
    name: "external-data-too-short",
    make: (d) => {
      writeFileSync(path.join(d, "w.bin"), new Uint8Array(8));
      return write(d, "m.onnx", externalModel("w.bin"));
    },
    expect: "EXTERNAL_DATA_INVALID",
    ...FAST,
  },
  {
    // 16k parallel nodes: loading must stay linear (it was quadratic: 17 s).
    name: "wide-16k",
    make: (d) => write(d, "m.onnx", bytesOf(wideGraph(16384))),
    expect: "loads",
    maxCpuMs: 4000,
    maxRssMb: 400,
  },
];
