import { OpError } from "../errors.js";
import type { Dim } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { type OpDef, registerOps } from "./registry.js";

/**
 * mhafuse.SeqLensFromMask: a [B, S] attention mask (any int, bool or float type; non-zero = valid token)
 * to int32 [B] sequence lengths for the packed-QKV op. A row that is not right-padded (a valid token after
 * a padded one) or has no valid token gets -1, which tells QKVToContext to fall back to the additive
 * bias for that sequence — the decision is made per run from the actual mask.
 */
export function seqLensFromMask(mask: Tensor): Int32Array {
  const [batch, seq] = mask.dims as [number, number];
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let len = 0;
    while (len < seq && mask.getNumber(b * seq + len) !== 0) len++;
    let rightPadded = true;
    for (let j = len; j < seq; j++) {
      if (mask.getNumber(b * seq + j) !== 0) {
        rightPadded = false;
        break;
      }
    }
    out[b] = rightPadded && len > 0 ? len : -1;
  }
  return out;
}

const seqLensFromMaskOp: OpDef = {
  opType: "SeqLensFromMask",
  domain: "mhafuse",
  inferTypes(ctx) {
    const shape = ctx.inputs[0]?.shape;
    if (shape && shape.length !== 2)
      throw new OpError(ctx.node, `mask must be 2-D [batch, seq], got rank ${shape.length}`);
    const batch: Dim = shape ? shape[0]! : null;
    return [{ dtype: "int32", shape: [batch] }];
  },
  run(ctx, [mask]) {
    if (!mask) throw new OpError(ctx.node, "input 0 (mask) is required");
    if (mask.rank !== 2)
      throw new OpError(ctx.node, `mask must be 2-D [batch, seq], got dims [${mask.dims}]`);
    return [new Tensor("int32", seqLensFromMask(mask), [mask.dims[0]!])];
  },
};

registerOps([seqLensFromMaskOp]);
