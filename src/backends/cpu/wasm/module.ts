/**
 * What every WebAssembly SIMD kernel of the CPU backend shares: instantiating an embedded module once per
 * thread, growing its memory, and copying strided rows of JS arrays into it.
 */

/** The parts of the WebAssembly JS API used here (lib ES2022 and @types/node 20 do not declare them). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/**
 * An instance of the base64-embedded module, or null when this runtime has no WebAssembly SIMD, the module
 * does not validate, or `disabled` (MHAFUSE_NO_WASM=1 and friends: to compare, or to rule the kernel out).
 */
export function instantiateKernel<K>(base64: string, disabled: boolean): K | null {
  try {
    const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    const bytes = Buffer.from(base64, "base64");
    if (!wasm || disabled || !wasm.validate(bytes)) return null;
    return new wasm.Instance(new wasm.Module(bytes), {}).exports as K;
  } catch {
    return null;
  }
}

/** The float32 view of the module's memory after making it at least `bytes` long. */
export function heap(memory: WasmMemory, bytes: number): Float32Array {
  const have = memory.buffer.byteLength;
  if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
  return new Float32Array(memory.buffer);
}

/**
 * Copies `rows` rows of `cols` floats (row stride ld, starting at src[off]) compactly (row stride cols) into
 * dst at `at`: one copy when the block is contiguous, a copy per row when rows are long, else per element.
 */
export function copyRows(
  src: Float32Array,
  off: number,
  ld: number,
  rows: number,
  cols: number,
  dst: Float32Array,
  at: number,
): void {
  if (ld === cols || rows === 1) {
    dst.set(src.subarray(off, off + rows * cols), at);
  } else if (cols >= 16) {
    for (let r = 0; r < rows; r++, off += ld, at += cols) dst.set(src.subarray(off, off + cols), at);
  } else {
    for (let r = 0; r < rows; r++, off += ld) for (let c = 0; c < cols; c++) dst[at++] = src[off + c]!;
  }
}
