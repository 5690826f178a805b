import { OpError } from "../errors.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf } from "../ir/tensor.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

/**
 * CumSum along one axis. exclusive=1 leaves out the element itself (the first sum is 0); reverse=1 sums
 * from the end. Exporters use it for position ids (cumsum of the attention mask), so int64 matters.
 */
const CumSum: OpDef = {
  opType: "CumSum",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    return [x ? { ...x } : { dtype: "float32" }];
  },
  run(ctx, [x, axisInput]) {
    const node = ctx.node;
    if (!x || !axisInput) throw new OpError(node, "CumSum needs x and axis");
    if (x.type === "bool") throw new OpError(node, "bool input is not supported");
    if (axisInput.size !== 1 || (axisInput.type !== "int32" && axisInput.type !== "int64")) {
      throw new OpError(
        node,
        `axis must be one int32/int64 value, got ${axisInput.type} [${axisInput.dims}]`,
      );
    }
    let axis: number;
    try {
      axis = normalizeAxis(axisInput.getNumber(0), x.rank);
    } catch (e) {
      throw new OpError(node, (e as Error).message);
    }
    const exclusive = attrInt(node, "exclusive", 0) !== 0;
    const reverse = attrInt(node, "reverse", 0) !== 0;
    const outer = sizeOf(x.dims.slice(0, axis));
    const length = x.dims[axis]!;
    const inner = sizeOf(x.dims.slice(axis + 1));
    const src = x.toFloat64();
    const out = new Float64Array(src.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * length * inner + i;
        let acc = 0;
        for (let step = 0; step < length; step++) {
          const p = base + (reverse ? length - 1 - step : step) * inner;
          if (exclusive) {
            out[p] = acc;
            acc += src[p]!;
          } else {
            acc += src[p]!;
            out[p] = acc;
          }
        }
      }
    }
    return [tensorFromFloat64(x.type, out, x.dims)];
  },
};

export const cumsumOps: readonly OpDef[] = [CumSum];
registerOps(cumsumOps);
