/**
 * Signal windows (opset 17): HannWindow, HammingWindow, BlackmanWindow of length `size` (an int scalar input),
 * periodic (default, denominator N) or symmetric (N - 1), with the spec's coefficients, in output_datatype.
 */
import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import { requireInput } from "./elementwise-util.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

const OUTPUT_TYPES: Record<number, DType> = {
  1: "float32",
  10: "float16",
  11: "float64",
  6: "int32",
  7: "int64",
  3: "int8",
  2: "uint8",
};

function windowOp(opType: string, w: (phase: number) => number): OpDef {
  return {
    opType,
    inferTypes: (ctx) => [
      {
        dtype: OUTPUT_TYPES[attrInt(ctx.node, "output_datatype", 1)] ?? "float32",
        shape: [ctx.constant(0)?.getNumber(0) ?? null],
      },
    ],
    run(ctx, inputs) {
      const node = ctx.node;
      const N = requireInput(node, inputs, 0).getNumber(0);
      const dtype = OUTPUT_TYPES[attrInt(node, "output_datatype", 1)];
      if (!dtype)
        throw new OpError(node, `output_datatype ${attrInt(node, "output_datatype", 1)} is not supported`);
      if (!Number.isInteger(N) || N < 0)
        throw new OpError(node, `size must be a non-negative integer, got ${N}`);
      const denominator = attrInt(node, "periodic", 1) !== 0 ? N : N - 1;
      const out = Float64Array.from({ length: N }, (_, n) => w((2 * Math.PI * n) / denominator));
      return [tensorFromFloat64(dtype, out, [N])];
    },
  };
}

const HAMMING_ALPHA = 25 / 46;

export const windowOps: readonly OpDef[] = [
  windowOp("HannWindow", (p) => 0.5 - 0.5 * Math.cos(p)),
  windowOp("HammingWindow", (p) => HAMMING_ALPHA - (1 - HAMMING_ALPHA) * Math.cos(p)),
  windowOp("BlackmanWindow", (p) => 0.42 - 0.5 * Math.cos(p) + 0.08 * Math.cos(2 * p)),
];
registerOps(windowOps);
