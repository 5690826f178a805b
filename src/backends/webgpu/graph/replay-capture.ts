/**
 * What a run notes, besides its tape, so that later runs may replay it (./replay-plan.ts). The recorded
 * commands are a function of the feeds' dims and of the host values the kernels' JS reads; the capture sorts
 * every host value that reached a GPU kernel into one of:
 *  - dims-only (an initializer, or a shape chain's output: ShapeChainCache.dimsOnly): the same for every run
 *    with these feed dims, taken as recorded;
 *  - deciding: read on the host by the kernel (its `hostInputs`, or a host input it did not upload as it is)
 *    — lengths that pick a path, cu_seqlens, a padding mask, a reshape target computed from data: a replay
 *    recomputes it and must find the same bytes, else the run is not replayed;
 *  - host data (`GpuKernelDef.hostData`, uploaded with `uploadHostData`): the bytes are all the kernel takes
 *    from it — embedding indices, int32 lengths, rotary rows — so a replay recomputes and rewrites them, and
 *    re-runs the kernel's `accepts` on the new inputs;
 *  - raw: a host tensor the kernel uploaded as it is with `device()` (float feeds such as past_key, additive
 *    masks built on the host): a replay rewrites the bytes.
 * Host steps whose outputs depend on feed data (a mask's Cast → Where chain, SeqLensFromMask) form the
 * prologue a replay evaluates first, on the CPU reference; device values they read (Shape of an activation)
 * are stand-ins that carry the recorded dims.
 *
 * A run that cannot be replayed says why in `refused` (the first reason): a CPU fallback or any read-back
 * in the middle of the run (host code then evaluates device data), a kernel that returned a host value while
 * recording device work, a value a replay could not recompute.
 */
import type { Node } from "../../../ir/graph.js";
import { Tensor } from "../../../ir/tensor.js";
import { CommandTape } from "../tape.js";
import type { GpuKernelDef } from "./kernel-context.js";
import type { Upload } from "./run-state.js";
import { isDevice, LAZY_INPUT, type RunValue } from "./values.js";

/** A step input as a replay gets it: recomputed by name (feed or prologue output), or the recorded value. */
export type SlotSource = { readonly name: string } | { readonly value: RunValue | undefined };

/** A host value's dtype, dims and bytes, copied (callers may refill a feed's array between runs). */
export interface Snapshot {
  readonly type: string;
  readonly dims: string;
  readonly bytes: Uint8Array;
}

export function snapshot(t: Tensor): Snapshot {
  const d = t.data as ArrayBufferView;
  return {
    type: t.type,
    dims: t.dims.join(","),
    bytes: new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice(),
  };
}

/** Whether `t` (a tensor, or another snapshot) has the snapshot's dtype, dims and bytes. */
export function sameSnapshot(s: Snapshot, t: Tensor | Snapshot): boolean {
  const dims = t instanceof Tensor ? t.dims.join(",") : t.dims;
  if (s.type !== t.type || s.dims !== dims) return false;
  let b: Uint8Array;
  if (t instanceof Tensor) {
    const d = t.data as ArrayBufferView;
    b = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  } else b = t.bytes;
  if (b.length !== s.bytes.length) return false;
  for (let i = 0; i < b.length; i++) if (b[i] !== s.bytes[i]) return false;
  return true;
}

export interface PrologueStep {
  readonly step: number;
  readonly inputs: readonly (SlotSource | undefined)[];
}

export interface KernelCheck extends PrologueStep {
  readonly kernel: GpuKernelDef;
}

/** An upload a replay rewrites: its staging buffer (copied into the value's buffer by the tape) and size. */
export interface Rewrite {
  readonly staging: GPUBuffer;
  readonly bytes: number;
}

export interface HostDataUpload extends Rewrite {
  readonly step: number;
  readonly slot: number;
}

export class ReplayCapture {
  readonly tape = new CommandTape();
  /** Why this run cannot become a replay plan (the first reason found); undefined: it can. */
  refused: string | undefined;
  readonly prologue: PrologueStep[] = [];
  /** Deciding host values by name, as they were (see the header). */
  readonly deciding = new Map<string, Snapshot>();
  readonly checks: KernelCheck[] = [];
  readonly hostData: HostDataUpload[] = [];
  /** Raw uploads by the name of the host value uploaded. */
  readonly raw = new Map<string, Rewrite>();
  /** Deferred steps the run never evaluated (kept for `skippedLastRun`). */
  skipped = 0;

  // The step being run: its node, inputs, the host tensors its kernel put on the device, its host-data slots.
  #node: Node | undefined;
  #inputs: readonly (RunValue | undefined)[] = [];
  readonly #touched = new Set<Tensor>();
  readonly #dataSlots = new Set<number>();

  constructor(private readonly dimsOnly: (name: string) => boolean) {}

  refuse(reason: string): void {
    this.refused ??= reason;
  }

  /** The recorded value for dims-only values, device values and absent inputs; the name for the rest. */
  source(name: string, v: RunValue | undefined): SlotSource {
    return v === undefined || isDevice(v) || v === LAZY_INPUT || this.dimsOnly(name)
      ? { value: v }
      : { name };
  }

  #sources(node: Node, inputs: readonly (RunValue | undefined)[]): (SlotSource | undefined)[] {
    return inputs.map((v, i) => (node.inputs[i] ? this.source(node.inputs[i]!, v) : undefined));
  }

  /** Before a kernel's `run`. */
  beginKernel(node: Node, inputs: readonly (RunValue | undefined)[]): void {
    this.#node = node;
    this.#inputs = inputs;
    this.#touched.clear();
    this.#dataSlots.clear();
  }

  /** The kernel asked for host tensor `v` on the device; `up`: a new upload (else one earlier in the run). */
  touched(v: Tensor, up?: Upload): void {
    this.#touched.add(v);
    if (!up?.staging || !this.#node) return;
    const at = this.#inputs.indexOf(v);
    const name = at >= 0 ? this.#node.inputs[at] : undefined;
    // A tensor the kernel built itself derives from its host inputs, which are then deciding: constant bytes.
    if (name && !this.dimsOnly(name)) this.raw.set(name, { staging: up.staging, bytes: up.bytes });
  }

  /**
   * The kernel uploaded its host-data slot `slot` (`GpuKernelDef.hostData`), or with no `up` took an earlier
   * node's upload of the same bytes (`hostDataShare`): the slot is data either way, rewritten by that upload.
   */
  hostDataUploaded(step: number, slot: number, up?: Upload): void {
    const name = this.#node?.inputs[slot];
    if (!name || this.dimsOnly(name)) return;
    this.#dataSlots.add(slot);
    if (up?.staging) this.hostData.push({ step, slot, staging: up.staging, bytes: up.bytes });
  }

  /**
   * After a kernel's `run`: sorts its host inputs (see the header); a step that recorded no device work and
   * returned host values computed from data (Shape of a data-dependent value) joins the prologue.
   */
  endKernel(
    step: number,
    kernel: GpuKernelDef,
    inputs: readonly (RunValue | undefined)[],
    outputs: readonly (RunValue | undefined)[],
    recorded: boolean,
  ): void {
    const node = this.#node!;
    const host = new Set(kernel.hostInputs ?? []);
    inputs.forEach((v, i) => {
      const name = node.inputs[i];
      if (!name || !v || isDevice(v) || v === LAZY_INPUT || this.dimsOnly(name)) return;
      if (this.#dataSlots.has(i)) return;
      if (!host.has(i) && this.#touched.has(v) && this.raw.has(name)) return;
      this.deciding.set(name, snapshot(v));
    });
    if (this.#dataSlots.size > 0) this.checks.push({ step, kernel, inputs: this.#sources(node, inputs) });
    const hostOut = outputs.some((v, i) => v && !isDevice(v) && !this.dimsOnly(node.outputs[i] ?? ""));
    if (hostOut) {
      if (recorded)
        this.refuse(`${node.opType} '${node.name}' returned a host value while recording device work`);
      else this.prologue.push({ step, inputs: this.#sources(node, inputs) });
    }
    this.#node = undefined;
  }

  /** A step run on the CPU reference with host inputs only. */
  hostStep(step: number, node: Node, inputs: readonly (RunValue | undefined)[]): void {
    if (node.outputs.some((o) => o && !this.dimsOnly(o)))
      this.prologue.push({ step, inputs: this.#sources(node, inputs) });
  }
}
