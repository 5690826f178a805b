/**
 * NumPy .npz archives: a zip of .npy files, read and written with fflate (STORED and DEFLATED entries, the
 * zip64 extra fields numpy's savez writes). Only `.npy` entries are arrays; other entries are ignored.
 */
import { unzipSync, zipSync } from "fflate";
import { InputError } from "../errors.js";
import type { Tensor } from "../ir/tensor.js";
import { readNpy, writeNpy } from "./npy.js";

/** Arrays by name (without the .npy suffix), in archive order. */
export function readNpz(bytes: Uint8Array, what = "npz"): Map<string, Tensor> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (e) {
    throw new InputError(`${what}: not a readable zip/.npz file (${(e as Error).message})`, { cause: e });
  }
  const out = new Map<string, Tensor>();
  for (const [name, content] of Object.entries(entries)) {
    if (!name.endsWith(".npy")) continue;
    out.set(name.slice(0, -4), readNpy(content, `${what}:${name}`));
  }
  return out;
}

/** An .npz with one DEFLATED .npy per array (what np.savez_compressed writes). */
export function writeNpz(arrays: Map<string, Tensor> | Record<string, Tensor>): Uint8Array {
  const entries = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  return zipSync(Object.fromEntries(entries.map(([key, tensor]) => [`${key}.npy`, writeNpy(tensor)])), {
    level: 6,
  });
}
