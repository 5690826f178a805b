/**
 * The FusedGemm epilogue forms of test/fusion-gemm-epilogues.test.ts and test/webgpu-fused-gemm.test.ts: small
 * graphs with a linear layer and its tanh GELU and/or residual Add, as exporters write them, and their feeds.
 */
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";

export const S = 5;
export const K = 16;
export const N = 40;

export const values = (n: number, seed: number, scale = 1) =>
  Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 0.37 * seed) * scale);

export interface Form {
  /** The activation after the linear layer (none: the Add reads the layer directly). */
  act?: "onnx-tanh" | "fastgelu" | "fastgelu-bias" | "erf";
  /** A residual Add of the activation (or of the layer) with the graph input `h`. */
  residual?: boolean;
  /** The residual as the Add's first input (default second). */
  residualFirst?: boolean;
  /** x [7, K] straight into a Gemm node (default: [2, S, K] through MatMul + Add, which linear-bias fuses). */
  flat?: boolean;
  /** h's shape (default: the layer output's). */
  hShape?: number[];
  dtype?: "float32" | "float16";
}

/** y = [h +] act(x·W + b), as exporters write it; "fastgelu-bias": Gemm(x, Wᵀ) then FastGelu(·, b). */
export function graphOf(f: Form): Graph {
  const dt = f.dtype ?? "float32";
  const b = new GraphBuilder({ opset: f.act === "onnx-tanh" ? 20 : 17 });
  const xShape = f.flat ? [7, K] : [2, S, K];
  const outShape = [...xShape.slice(0, -1), N];
  const x = b.input("x", dt, xShape);
  const h = f.residual ? b.input("h", dt, f.hShape ?? outShape) : undefined;
  const bias = b.init(new Tensor(dt, values(N, 11, 0.5), [N]));
  let y: string;
  if (f.act === "fastgelu-bias") {
    // A Gemm with no C (transB: the weight stored [N, K]); FastGelu adds the bias.
    const Wt = b.init(new Tensor(dt, values(N * K, 7, 0.4), [N, K]));
    y = b.op("FastGelu", [b.op("Gemm", [x, Wt], { transB: 1 }), bias], {}, { domain: "com.microsoft" });
  } else {
    const W = b.init(new Tensor(dt, values(K * N, 7, 0.4), [K, N]));
    const pre = f.flat ? b.op("Gemm", [x, W, bias]) : b.op("Add", [b.op("MatMul", [x, W]), bias]);
    y =
      f.act === "onnx-tanh"
        ? b.op("Gelu", [pre], { approximate: "tanh" })
        : f.act === "fastgelu"
          ? b.op("FastGelu", [pre], {}, { domain: "com.microsoft" })
          : f.act === "erf"
            ? b.op("Gelu", [pre], {}, { domain: "com.microsoft" })
            : pre;
  }
  if (h) y = b.op("Add", f.residualFirst ? [h, y] : [y, h]);
  b.graph.nodes.at(-1)!.outputs[0] = "y";
  b.output("y", dt);
  return b.build();
}

export function feedsOf(f: Form): Record<string, Tensor> {
  const dt = f.dtype ?? "float32";
  const xShape = f.flat ? [7, K] : [2, S, K];
  const hShape = f.hShape ?? [...xShape.slice(0, -1), N];
  const size = (d: number[]) => d.reduce((a, c) => a * c, 1);
  const feeds: Record<string, Tensor> = { x: new Tensor(dt, values(size(xShape), 13, 2), xShape) };
  if (f.residual) feeds.h = new Tensor(dt, values(size(hShape), 17, 3), hShape);
  return feeds;
}

export const FUSED: [string, Form, { activation?: string; residual: boolean; bias: boolean }][] = [
  [
    "ONNX Gelu approximate = tanh",
    { act: "onnx-tanh" },
    { activation: "FastGelu", residual: false, bias: true },
  ],
  ["com.microsoft.FastGelu", { act: "fastgelu" }, { activation: "FastGelu", residual: false, bias: true }],
  [
    "com.microsoft.FastGelu with its bias over a Gemm without C (2-D, transB)",
    { act: "fastgelu-bias", flat: true },
    { activation: "FastGelu", residual: false, bias: true },
  ],
  ["a residual Add of the layer", { residual: true }, { residual: true, bias: true }],
  ["a residual Add, residual first", { residual: true, residualFirst: true }, { residual: true, bias: true }],
  ["a residual Add of a 2-D Gemm", { residual: true, flat: true }, { residual: true, bias: true }],
  [
    "a residual Add of an erf GELU",
    { act: "erf", residual: true },
    { activation: "Gelu", residual: true, bias: true },
  ],
  [
    "a residual Add of a tanh GELU",
    { act: "fastgelu", residual: true },
    { activation: "FastGelu", residual: true, bias: true },
  ],
];
