/**
 * Runs the tensor-core kernels' WGSL where there are no subgroup matrices (lavapipe), to test their index
 * arithmetic: every subgroup-matrix value becomes a per-invocation `array<f32, 256>` (element (row, col) at
 * row · 16 + col), subgroupMatrixLoad/Store read and write the whole 16×16 tile by their WGSL definitions
 * (row-major: offset + row · stride + col; column-major: offset + col · stride + row), every invocation of a
 * subgroup computes the same product, and subgroupShuffleXor(x, 16u) goes through workgroup memory (lanes
 * are tid % 32, so only kernels that take the subgroup and lane from local_invocation_index qualify).
 * What it cannot see is how a driver lowers the real builtins: that is what the H200 probes are for.
 */
export function emulateSubgroupMatrices(src: string, workgroupSize: number): string {
  const elemType = (name: string): string => {
    const m = new RegExp(`var<[^>]*>\\s+${name}\\s*:\\s*array<(f16|f32)`).exec(src);
    if (!m) throw new Error(`tc emulation: no f16/f32 array named ${name}`);
    return m[1]!;
  };
  const loads = new Set<string>();
  const stores = new Set<string>();
  let out = src
    .replace("enable chromium_experimental_subgroup_matrix;\n", "")
    .replace("diagnostic(off, subgroup_uniformity);\n", "")
    .replace("enable subgroups;\n", "")
    .replace(
      /subgroupMatrixLoad<subgroup_matrix_(?:left|right|result)<f(?:16|32), 16, 16>, (row_major|col_major)>\(&(\w+), /g,
      (_m, major: string, name: string) => {
        loads.add(name);
        return `smLoad_${name}(${major === "col_major"}, `;
      },
    )
    .replace(/subgroupMatrixStore<row_major>\(&(\w+), /g, (_m, name: string) => {
      stores.add(name);
      return `smStore_${name}(`;
    })
    .replace(/subgroup_matrix_(?:left|right|result)<f(?:16|32), 16, 16>/g, "array<f32, 256>")
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, "smMMA(")
    .replace(/subgroupShuffleXor\((\w+), 16u\)/g, "smShx($1, tid)");
  if (/subgroup/.test(out.replace(/\/\/.*$/gm, "")))
    throw new Error("tc emulation: a subgroup builtin is left that the emulation does not cover");
  const fns: string[] = [
    `var<workgroup> smX: array<f32, ${workgroupSize}>;
fn smShx(x: f32, tid: u32) -> f32 {
  workgroupBarrier();
  smX[tid] = x;
  workgroupBarrier();
  let y = smX[tid ^ 16u];
  workgroupBarrier();
  return y;
}
fn smMMA(a0: array<f32, 256>, b0: array<f32, 256>, c0: array<f32, 256>) -> array<f32, 256> {
  var a = a0; var b = b0; var c = c0;
  for (var i = 0u; i < 16u; i++) {
    for (var j = 0u; j < 16u; j++) {
      var x = c[i * 16u + j];
      for (var k = 0u; k < 16u; k++) { x += a[i * 16u + k] * b[k * 16u + j]; }
      c[i * 16u + j] = x;
    }
  }
  return c;
}`,
  ];
  for (const name of loads)
    fns.push(`fn smLoad_${name}(col: bool, off: u32, stride: u32) -> array<f32, 256> {
  var m: array<f32, 256>;
  for (var r = 0u; r < 16u; r++) {
    for (var c = 0u; c < 16u; c++) { m[r * 16u + c] = f32(${name}[select(off + r * stride + c, off + c * stride + r, col)]); }
  }
  return m;
}`);
  for (const name of stores)
    fns.push(`fn smStore_${name}(off: u32, m0: array<f32, 256>, stride: u32) {
  var m = m0;
  for (var r = 0u; r < 16u; r++) {
    for (var c = 0u; c < 16u; c++) { ${name}[off + r * stride + c] = ${elemType(name)}(m[r * 16u + c]); }
  }
}`);
  const at = out.indexOf("@compute");
  out = `${out.slice(0, at)}${fns.join("\n")}\n${out.slice(at)}`;
  return out;
}
