/**
 * Runs the tensor-core kernels' WGSL where there are no subgroup matrices (lavapipe), to test their index
 * arithmetic: every subgroup-matrix value becomes a per-invocation array (see `frag`), subgroupMatrixLoad/Store
 * read and write the whole tile by their WGSL definitions
 * (row-major: offset + row · stride + col; column-major: offset + col · stride + row), every invocation of a
 * subgroup computes the same product, and subgroupShuffleXor(x, 16u) goes through workgroup memory (lanes
 * are tid % 32, so only kernels that take the subgroup and lane from local_invocation_index qualify).
 * What it cannot see is how a driver lowers the real builtins: that is what the H200 probes are for.
 * `frag`: the fragment shape of the kernel (left M×K, right K×N, result M×N; 16×16×16 by default, 8×8×8 for
 * Apple's config): loads read the rows and columns their type names, products and stores use `frag`; every
 * value is a D×D array, D the largest of M, N, K (element (row, col) at row · D + col).
 */
export function emulateSubgroupMatrices(
  src: string,
  workgroupSize: number,
  frag: { M: number; N: number; K: number } = { M: 16, N: 16, K: 16 },
): string {
  const elemType = (name: string): string => {
    const m = new RegExp(`var<[^>]*>\\s+${name}\\s*:\\s*array<(f16|f32)`).exec(src);
    if (!m) throw new Error(`tc emulation: no f16/f32 array named ${name}`);
    return m[1]!;
  };
  const D = Math.max(frag.M, frag.N, frag.K);
  const V = `array<f32, ${D * D}>`;
  /** name → [rows, cols] of each load's type. */
  const loads = new Map<string, [number, number]>();
  const stores = new Set<string>();
  let out = templateSpelling(src)
    .replace("enable chromium_experimental_subgroup_matrix;\n", "")
    .replace("diagnostic(off, subgroup_uniformity);\n", "")
    .replace("enable subgroups;\n", "")
    .replace(
      /subgroupMatrixLoad<subgroup_matrix_(?:left|right|result)<f(?:16|32), (\d+), (\d+)>, (row_major|col_major)>\(&(\w+), /g,
      (_m, cols: string, rows: string, major: string, name: string) => {
        const fn = `smLoad_${name}_${rows}x${cols}`;
        loads.set(fn, [Number(rows), Number(cols)]);
        return `${fn}(${major === "col_major"}, `;
      },
    )
    .replace(/subgroupMatrixStore<row_major>\(&(\w+), /g, (_m, name: string) => {
      stores.add(name);
      return `smStore_${name}(`;
    })
    .replace(/subgroup_matrix_(?:left|right|result)<f(?:16|32), \d+, \d+>/g, V)
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
fn smMMA(a0: ${V}, b0: ${V}, c0: ${V}) -> ${V} {
  var a = a0; var b = b0; var c = c0;
  for (var i = 0u; i < ${frag.M}u; i++) {
    for (var j = 0u; j < ${frag.N}u; j++) {
      var x = c[i * ${D}u + j];
      for (var k = 0u; k < ${frag.K}u; k++) { x += a[i * ${D}u + k] * b[k * ${D}u + j]; }
      c[i * ${D}u + j] = x;
    }
  }
  return c;
}`,
  ];
  for (const [fn, [rows, cols]] of loads) {
    const name = fn.replace(/^smLoad_/, "").replace(/_\d+x\d+$/, "");
    fns.push(`fn ${fn}(col: bool, off: u32, stride: u32) -> ${V} {
  var m: ${V};
  for (var r = 0u; r < ${rows}u; r++) {
    for (var c = 0u; c < ${cols}u; c++) { m[r * ${D}u + c] = f32(${name}[select(off + r * stride + c, off + c * stride + r, col)]); }
  }
  return m;
}`);
  }
  // Stores write result fragments: M×N.
  for (const name of stores)
    fns.push(`fn smStore_${name}(off: u32, m0: ${V}, stride: u32) {
  var m = m0;
  for (var r = 0u; r < ${frag.M}u; r++) {
    for (var c = 0u; c < ${frag.N}u; c++) { ${name}[off + r * stride + c] = ${elemType(name)}(m[r * ${D}u + c]); }
  }
}`);
  const at = out.indexOf("@compute");
  out = `${out.slice(0, at)}${fns.join("\n")}\n${out.slice(at)}`;
  return out;
}

/** The arguments of the call whose "(" is at `open` (split at top-level commas) and the index of its ")". */
function callArgs(src: string, open: number): { args: string[]; close: number } {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < src.length; i++) {
    const ch = src[i];
    if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") {
      depth--;
      if (depth === 0) {
        args.push(src.slice(start, i).trim());
        return { args, close: i };
      }
    } else if (ch === "," && depth === 1) {
      args.push(src.slice(start, i).trim());
      start = i + 1;
    }
  }
  throw new Error("tc emulation: unbalanced call");
}

/**
 * The older ("bool", precision.ts MatrixSyntax) load/store spelling rewritten into the template one the emulation
 * reads: `subgroupMatrixLoad<T>(&p, off, colMajor, stride)` → `subgroupMatrixLoad<T, row_major|col_major>(&p,
 * off, stride)`, `subgroupMatrixStore(&p, off, v, false, stride)` → `subgroupMatrixStore<row_major>(&p, off, v,
 * stride)`. The major flag must be a literal (the kernels bake it in).
 */
export function templateSpelling(src: string): string {
  const call =
    /subgroupMatrixLoad<(subgroup_matrix_(?:left|right|result)<f(?:16|32), \d+, \d+>)>\(|subgroupMatrixStore\(/g;
  let out = "";
  let from = 0;
  for (let m = call.exec(src); m; m = call.exec(src)) {
    const open = m.index + m[0].length - 1;
    const { args, close } = callArgs(src, open);
    const major = (flag: string | undefined) => {
      if (flag !== "true" && flag !== "false")
        throw new Error(`tc emulation: major flag '${flag}' is not a literal`);
      return flag === "true" ? "col_major" : "row_major";
    };
    let rewritten: string;
    if (m[1]) {
      if (args.length !== 4)
        throw new Error(`tc emulation: bool-spelling load with ${args.length} arguments`);
      rewritten = `subgroupMatrixLoad<${m[1]}, ${major(args[2])}>(${args[0]}, ${args[1]}, ${args[3]})`;
    } else {
      if (args.length !== 5)
        throw new Error(`tc emulation: bool-spelling store with ${args.length} arguments`);
      if (major(args[3]) !== "row_major")
        throw new Error("tc emulation: column-major stores are not emulated");
      rewritten = `subgroupMatrixStore<row_major>(${args[0]}, ${args[1]}, ${args[2]}, ${args[4]})`;
    }
    out += src.slice(from, m.index) + rewritten;
    from = close + 1;
    call.lastIndex = from;
  }
  return out + src.slice(from);
}
