/**
 * A recording kept for replay: the device commands one CommandRecorder encoded, in order, as the objects
 * Dawn needs to encode them again — pipeline, bind group, workgroup counts; copies and clears — and every
 * buffer they name. Encoding a tape is three Dawn calls per dispatch and nothing else: no kernel choice,
 * shape check, uniform packing or bind-group lookup — the per-node host work that dominates small models on a
 * fast GPU (BERT-base fp32 [1,128] on the H200: 12.7 ms wall for 3.7 ms of GPU work, ~48 µs of host time per
 * dispatch).
 *
 * A tape is only valid while what it names is unchanged: the owner (graph/replay-plan.ts) keeps its buffers
 * out of the pool and relies on the uniform arenas holding the bytes written when the recording was submitted.
 */

export type TapeCommand =
  | {
      readonly op: "dispatch";
      readonly pipeline: GPUComputePipeline;
      readonly group: GPUBindGroup;
      /** The buffers its bind group names. */
      readonly buffers: readonly GPUBuffer[];
      readonly x: number;
      readonly y: number;
      readonly z: number;
    }
  | {
      readonly op: "copy";
      readonly src: GPUBuffer;
      readonly srcOffset: number;
      readonly dst: GPUBuffer;
      readonly dstOffset: number;
      readonly size: number;
    }
  | { readonly op: "clear"; readonly buffer: GPUBuffer; readonly offset: number; readonly size: number };

export class CommandTape {
  readonly commands: TapeCommand[] = [];
  /** Every buffer a command binds, reads or writes (uniform arenas included). */
  readonly buffers = new Set<GPUBuffer>();

  get dispatches(): number {
    let n = 0;
    for (const c of this.commands) if (c.op === "dispatch") n++;
    return n;
  }

  dispatch(
    pipeline: GPUComputePipeline,
    group: GPUBindGroup,
    buffers: readonly GPUBuffer[],
    x: number,
    y: number,
    z: number,
  ): void {
    this.commands.push({ op: "dispatch", pipeline, group, buffers, x, y, z });
    for (const b of buffers) this.buffers.add(b);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.commands.push({ op: "copy", src, srcOffset, dst, dstOffset, size });
    this.buffers.add(src);
    this.buffers.add(dst);
  }

  clear(buffer: GPUBuffer, offset: number, size: number): void {
    this.commands.push({ op: "clear", buffer, offset, size });
    this.buffers.add(buffer);
  }
}

/** The buffers a command reads or writes. */
function touches(c: TapeCommand): readonly GPUBuffer[] {
  return c.op === "dispatch" ? c.buffers : c.op === "copy" ? [c.src, c.dst] : [c.buffer];
}

/**
 * `commands` with each copy out of a host-written staging buffer (`isStaging`) moved to the front when no
 * command before it touches its destination: a recording uploads where a kernel first needs the bytes (a
 * per-layer lengths upload ends the compute pass there), a replay writes every staging buffer before its
 * submit, so those copies can all run first and the dispatches share one pass. A destination used earlier
 * (a pooled buffer that held another value) keeps its copy in place.
 */
export function hoistUploads(
  commands: readonly TapeCommand[],
  isStaging: (b: GPUBuffer) => boolean,
): TapeCommand[] {
  const front: TapeCommand[] = [];
  const rest: TapeCommand[] = [];
  const touched = new Set<GPUBuffer>();
  for (const c of commands) {
    if (c.op === "copy" && isStaging(c.src) && !touched.has(c.dst)) front.push(c);
    else rest.push(c);
    for (const b of touches(c)) touched.add(b);
  }
  return [...front, ...rest];
}

/**
 * Dispatches in the first command buffer of a replay; each later one holds twice as many as the one before
 * (8, 16, 32, … — four submits for BERT-base's 90): the GPU starts on the first layers while the host encodes
 * the rest, instead of waiting for all of it (encoding is ~10 µs a dispatch through dawn.node).
 * MHAFUSE_REPLAY_FIRST_SUBMIT=0 encodes everything into one command buffer (A/B in benches).
 */
export const REPLAY_FIRST_SUBMIT = envCount("MHAFUSE_REPLAY_FIRST_SUBMIT", 8);

function envCount(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

/**
 * Encodes `commands` — consecutive dispatches in one compute pass, as the recorder did — and submits them in
 * command buffers of growing size (`firstSubmit` dispatches first, doubling; 0: one command buffer). No error
 * scope: the same commands on the same objects passed validation when the tape was recorded, and an error
 * scope costs a round trip to the device per run. Should an encoder call throw (a lost device), the command
 * buffers before it are already submitted: the caller's run fails with that error, not as a declined replay.
 */
export function submitTape(
  device: GPUDevice,
  commands: readonly TapeCommand[],
  label?: string,
  firstSubmit = REPLAY_FIRST_SUBMIT,
): void {
  let encoder = device.createCommandEncoder({ label });
  let pass: GPUComputePassEncoder | undefined;
  let pipeline: GPUComputePipeline | undefined;
  let budget = firstSubmit > 0 ? firstSubmit : Number.POSITIVE_INFINITY;
  let inBuffer = 0;
  for (const c of commands) {
    if (c.op === "dispatch") {
      if (inBuffer === budget) {
        pass?.end();
        pass = undefined;
        device.queue.submit([encoder.finish()]);
        encoder = device.createCommandEncoder({ label });
        inBuffer = 0;
        budget *= 2;
      }
      if (!pass) {
        pass = encoder.beginComputePass();
        pipeline = undefined;
      }
      // Consecutive dispatches of one kernel (split-K halves, per-batch copies) set the pipeline once.
      if (c.pipeline !== pipeline) {
        pass.setPipeline(c.pipeline);
        pipeline = c.pipeline;
      }
      pass.setBindGroup(0, c.group);
      pass.dispatchWorkgroups(c.x, c.y, c.z);
      inBuffer++;
      continue;
    }
    pass?.end();
    pass = undefined;
    if (c.op === "copy") encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
    else encoder.clearBuffer(c.buffer, c.offset, c.size);
  }
  pass?.end();
  device.queue.submit([encoder.finish()]);
}
