/**
 * NumPy .npz archives: a zip of .npy files. Written with DEFLATE through node:zlib; read with STORED or
 * DEFLATED entries, including the zip64 extra fields numpy's savez always writes (force_zip64).
 */
import { crc32, deflateRawSync, inflateRawSync } from "node:zlib";
import { InputError } from "../errors.js";
import type { Tensor } from "../ir/tensor.js";
import { readNpy, writeNpy } from "./npy.js";

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;

/** Arrays by name (without the .npy suffix), in archive order. */
export function readNpz(bytes: Uint8Array, what = "npz"): Map<string, Tensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--)
    if (view.getUint32(i, true) === END) {
      end = i;
      break;
    }
  if (end < 0) throw new InputError(`${what}: not a zip/.npz file (no end of central directory)`);
  const count = view.getUint16(end + 10, true);
  let p = view.getUint32(end + 16, true);
  const out = new Map<string, Tensor>();
  for (let e = 0; e < count; e++) {
    if (view.getUint32(p, true) !== CENTRAL) throw new InputError(`${what}: corrupt central directory`);
    const method = view.getUint16(p + 10, true);
    let compressed = view.getUint32(p + 20, true);
    let size = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    let local = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64: fields saturated at 0xFFFFFFFF live in extra field 0x0001, in this order.
    for (let x = p + 46 + nameLen; x < p + 46 + nameLen + extraLen; ) {
      const id = view.getUint16(x, true);
      const len = view.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        const next = () => {
          const v = Number(view.getBigUint64(q, true));
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressed === 0xffffffff) compressed = next();
        if (local === 0xffffffff) local = next();
      }
      x += 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;
    if (view.getUint32(local, true) !== LOCAL)
      throw new InputError(`${what}: corrupt local header for ${name}`);
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(dataStart, dataStart + compressed);
    let content: Uint8Array;
    if (method === 0) content = raw;
    else if (method === 8) content = new Uint8Array(inflateRawSync(raw));
    else
      throw new InputError(
        `${what}: entry ${name} uses compression method ${method} (only STORED and DEFLATED)`,
      );
    if (content.length !== size)
      throw new InputError(`${what}: entry ${name} has ${content.length} bytes, expected ${size}`);
    if (!name.endsWith(".npy")) continue;
    out.set(name.slice(0, -4), readNpy(content, `${what}:${name}`));
  }
  return out;
}

/** An .npz with one DEFLATED .npy per array (what np.savez_compressed writes). */
export function writeNpz(arrays: Map<string, Tensor> | Record<string, Tensor>): Uint8Array {
  const entries = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [key, tensor] of entries) {
    const name = new TextEncoder().encode(`${key}.npy`);
    const data = writeNpy(tensor);
    const packed = new Uint8Array(deflateRawSync(data));
    const crc = crc32(data) >>> 0;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, LOCAL, true);
    lv.setUint16(4, 20, true); // version needed
    lv.setUint16(8, 8, true); // deflate
    lv.setUint32(14, crc, true);
    lv.setUint32(18, packed.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const central = new Uint8Array(46 + name.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, CENTRAL, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, 8, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, packed.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    central.set(name, 46);
    locals.push(local, packed);
    centrals.push(central);
    offset += local.length + packed.length;
  }
  const dirSize = centrals.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, END, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, dirSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + dirSize + 22);
  let p = 0;
  for (const part of [...locals, ...centrals, end]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
