/**
 * Symbolic values of the small integer tensors that exports compute shapes with: Shape(x) → ["batch", "seq",
 * 64], Gather(·, 0) → "batch", Concat(Unsqueeze(batch), Unsqueeze(seq), [-1], [16]) → [batch, seq, -1, 16].
 * Type inference hands them to type rules (Reshape, Expand) so shapes survive the dynamic-shape chains of
 * decoder exports (rotary embeddings, head splits), where constant folding alone stops at Shape().
 * Elements are Dims: a number, a symbol, or null (unknown). Only exact rules; anything else is undefined.
 */
import type { Dim, Node, ValueType } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";

/** A value's elements and whether it is a scalar (rank 0) rather than a 1-D tensor. */
export interface ShapeValue {
  dims: Dim[];
  scalar: boolean;
}

const MAX_ELEMENTS = 16;

/** A small int constant as a ShapeValue. */
export function fromConstant(t: Tensor): ShapeValue | undefined {
  if ((t.type !== "int64" && t.type !== "int32") || t.rank > 1 || t.size > MAX_ELEMENTS) return undefined;
  return { dims: t.toNumbers(), scalar: t.rank === 0 };
}

function constInts(v: ShapeValue | undefined): number[] | undefined {
  return v?.dims.every((d) => typeof d === "number") ? (v.dims as number[]) : undefined;
}

function arith(op: string, a: Dim, b: Dim): Dim {
  if (typeof a === "number" && typeof b === "number") {
    if (op === "Add") return a + b;
    if (op === "Sub") return a - b;
    if (op === "Mul") return a * b;
    if (op === "Div") return b !== 0 && Number.isInteger(a / b) ? a / b : b !== 0 ? Math.trunc(a / b) : null;
  }
  if ((op === "Mul" || op === "Div") && b === 1) return a;
  if (op === "Mul" && a === 1) return b;
  if ((op === "Add" || op === "Sub") && b === 0) return a;
  if (op === "Add" && a === 0) return b;
  return null;
}

/** The symbolic value of output 0 of `node`, from its inputs' values and types; undefined when unknown. */
export function shapeValueOf(
  node: Node,
  inputs: (ShapeValue | undefined)[],
  types: (ValueType | undefined)[],
  attrInt: (name: string, fallback: number) => number,
  opset: number,
): ShapeValue | undefined {
  const [a, b] = inputs;
  switch (node.opType) {
    case "Shape": {
      const shape = types[0]?.shape;
      if (!shape) return undefined;
      const rank = shape.length;
      const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + rank : i, 0), rank);
      const start = opset >= 15 ? clamp(attrInt("start", 0)) : 0;
      const end = opset >= 15 ? clamp(attrInt("end", rank)) : rank;
      return { dims: shape.slice(start, end), scalar: false };
    }
    case "Identity":
    case "Cast":
      return a;
    case "Gather": {
      const idx = constInts(b);
      if (!a || a.scalar || !idx || attrInt("axis", 0) !== 0) return undefined;
      const pick = idx.map((i) => a.dims[i < 0 ? i + a.dims.length : i]);
      if (pick.some((d) => d === undefined)) return undefined;
      return { dims: pick as Dim[], scalar: b!.scalar };
    }
    case "Unsqueeze":
      return a?.scalar ? { dims: a.dims, scalar: false } : undefined;
    case "Squeeze":
      return a && !a.scalar && a.dims.length === 1 ? { dims: a.dims, scalar: true } : undefined;
    case "Concat": {
      if (inputs.some((v) => !v || v.scalar)) return undefined;
      return { dims: inputs.flatMap((v) => v!.dims), scalar: false };
    }
    case "Slice": {
      const [starts, ends, axes, steps] = [inputs[1], inputs[2], inputs[3], inputs[4]].map(constInts);
      if (!a || a.scalar || !starts || !ends || (axes && axes[0] !== 0) || (steps && steps[0] !== 1))
        return undefined;
      const n = a.dims.length;
      const at = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
      return { dims: a.dims.slice(at(starts[0]!), at(ends[0]!)), scalar: false };
    }
    case "Add":
    case "Sub":
    case "Mul":
    case "Div": {
      if (!a || !b) return undefined;
      const n = Math.max(a.dims.length, b.dims.length);
      if ((a.dims.length !== 1 && a.dims.length !== n) || (b.dims.length !== 1 && b.dims.length !== n))
        return undefined;
      const at = (v: ShapeValue, i: number) => v.dims[v.dims.length === 1 ? 0 : i]!;
      return {
        dims: Array.from({ length: n }, (_, i) => arith(node.opType, at(a, i), at(b, i))),
        scalar: a.scalar && b.scalar,
      };
    }
    default:
      return undefined;
  }
}
