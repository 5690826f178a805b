/**
 * How a run's outputs leave the device: a copy into a MAP_READ staging buffer, `mapAsync`, then the bytes into
 * JS memory. Taking them with `getMappedRange().slice()` makes a fresh ArrayBuffer and page-faults it while
 * copying: 12.6 MB (BERT-base [32,128]'s last_hidden_state) took 2.85 ms on the H200's host, 1.4 GB/s at 50 MB
 * (`node --import tsx bench/gpu-readback.ts`, bench/RESULTS.md), while copying into memory already written ran
 * 7× faster on lavapipe's host. So the destination is allocated and touched while the GPU still works (the
 * host waits for it anyway), and the mapped bytes are copied into it at memory speed.
 */

const PAGE = 4096;

/** A fresh ArrayBuffer of `bytes` with every page written once (so a later copy into it does not fault). */
export function prefaultedBuffer(bytes: number): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes);
  const u8 = new Uint8Array(buffer);
  for (let i = 0; i < bytes; i += PAGE) u8[i] = 0;
  return buffer;
}

/** Maps `staging` (its first `dest.byteLength` bytes are the outputs), copies them into `dest`, unmaps. */
export async function copyMappedInto(staging: GPUBuffer, dest: ArrayBuffer): Promise<void> {
  try {
    await staging.mapAsync(1 /* GPUMapMode.READ */, 0, staging.size);
    new Uint8Array(dest).set(new Uint8Array(staging.getMappedRange(0, staging.size), 0, dest.byteLength));
  } finally {
    if (staging.mapState === "mapped") staging.unmap();
  }
}
