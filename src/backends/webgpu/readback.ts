/**
 * How a run's outputs leave the device: a copy into a MAP_READ staging buffer, `mapAsync`, then the bytes into
 * JS memory. Taking them with `getMappedRange().slice()` makes a fresh ArrayBuffer and page-faults it while
 * copying: 12.6 MB (BERT-base [32,128]'s last_hidden_state) took 2.85 ms on the H200's host, 1.4 GB/s at 50 MB
 * (`node --import tsx bench/gpu-readback.ts`, bench/RESULTS.md), while copying into memory already written ran
 * 7× faster on lavapipe's host. So the destination is allocated and touched while the GPU still works (the
 * host waits for it anyway), and the mapped bytes are copied into it at memory speed. One thread's memory
 * speed, that is: above PARALLEL_COPY_MIN_BYTES the copy runs on the native addon's thread pool where the addon
 * loads (the CPU backend's; without it, or with MHAFUSE_NO_NATIVE=1, JS copies).
 */
import { loadNativeQuietly } from "../../native/load.js";

const PAGE = 4096;
/** Below this a thread hand-off is not repaid. */
const PARALLEL_COPY_MIN_BYTES = 1 << 20;

/** Copies `n` bytes of `src` into the start of `dest`: on the native pool when large and available. */
export function copyBytes(dest: ArrayBuffer, src: ArrayBuffer, n: number): void {
  const native = n >= PARALLEL_COPY_MIN_BYTES ? loadNativeQuietly() : undefined;
  if (native?.copyBytes) native.copyBytes(dest, 0, src, 0, n);
  else new Uint8Array(dest, 0, n).set(new Uint8Array(src, 0, n));
}

/** A fresh ArrayBuffer of `bytes` with every page written once (so a later copy into it does not fault). */
export function prefaultedBuffer(bytes: number): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes);
  const u8 = new Uint8Array(buffer);
  for (let i = 0; i < bytes; i += PAGE) u8[i] = 0;
  return buffer;
}

/**
 * Maps `staging` (its first `dest.byteLength` bytes are the outputs), copies them into `dest`, unmaps; `timing`
 * gets when the map resolved (performance.now()) and the milliseconds of the copy, when given.
 */
export async function copyMappedInto(
  staging: GPUBuffer,
  dest: ArrayBuffer,
  timing?: { mappedAt: number; copyMs: number },
): Promise<void> {
  try {
    await staging.mapAsync(1 /* GPUMapMode.READ */, 0, staging.size);
    const t1 = performance.now();
    copyBytes(dest, staging.getMappedRange(0, staging.size), dest.byteLength);
    if (timing) {
      timing.mappedAt = t1;
      timing.copyMs = performance.now() - t1;
    }
  } finally {
    if (staging.mapState === "mapped") staging.unmap();
  }
}
