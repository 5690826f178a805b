import { OpError } from "../errors.js";
import type { Dim } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { type OpDef, registerOps } from "./registry.js";

/**
 * mhafuse.SeqLensFromMask: a [B, S] attention mask (any int, bool or float type; 1 = valid token, 0 = padding)
 * to int32 [B] sequence lengths for the packed-QKV op. A row that is not right-padded (a valid token after
 * a padded one), has no valid token, or holds any value other than 0 and 1 gets -1, which tells QKVToContext
 * to fall back to the additive bias for that sequence — the decision is made per run from the actual mask.
 * The value rule keeps the fused graph exact: the model's own bias, (1 − m)·min, is not a key mask for other
 * values (m = 2 adds −min, m = 0.5 half of min, NaN poisons the row), and the fallback bias is that formula.
 */
export function seqLensFromMask(mask: Tensor): Int32Array {
  const [batch, seq] = mask.dims as [number, number];
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let len = 0;
    let ok = true;
    for (let j = 0; j < seq && ok; j++) {
      const v = mask.getNumber(b * seq + j);
      if (v === 1 && len === j) len++;
      else ok = v === 0; // a 1 after padding, or any other value, is not a key mask of this length
    }
    out[b] = ok && len > 0 ? len : -1;
  }
  return out;
}

/** Whether every mask value is 0 or 1 (the only values the packed op and padding removal read as a key mask). */
export function isBinaryMask(mask: Tensor): boolean {
  for (let i = 0; i < mask.size; i++) {
    const v = mask.getNumber(i);
    if (v !== 0 && v !== 1) return false;
  }
  return true;
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
