/**
 * Uniform structs declared once, as data: the same field list generates the WGSL struct and packs the bytes,
 * so shader and host cannot disagree on the layout. Every field is a 4-byte scalar (struct alignment 4, size
 * rounded up to 16 as uniform buffers require). Shapes, strides, offsets and scalars like epsilon travel here,
 * so one compiled pipeline serves every shape.
 */
export type UniformType = "u32" | "i32" | "f32";
export type UniformFields = readonly (readonly [name: string, type: UniformType])[];

export function uniformStruct(fields: UniformFields, name = "Params"): string {
  return `struct ${name} {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join("\n")}\n}\n`;
}

export function packUniforms(fields: UniformFields, values: Record<string, number>): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buf);
  fields.forEach(([n, t], i) => {
    const v = values[n];
    if (v === undefined) throw new Error(`mhafuse internal error: uniform '${n}' has no value`);
    if (t === "f32") view.setFloat32(i * 4, v, true);
    else if (t === "i32") view.setInt32(i * 4, v, true);
    else view.setUint32(i * 4, v, true);
  });
  return buf;
}
