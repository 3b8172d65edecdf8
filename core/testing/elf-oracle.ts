// Test support: where a function lives in an ELF file, from nm and readelf (independent oracles, not our parser).
import { run } from "./run.ts";

/** The start of exported function `fn` (`0x…`, as FuncProof writes it) and the file offset of its middle byte. */
export async function functionMiddle(path: string, fn: string): Promise<{ start: string; offset: number }> {
  const nm = await run("nm", ["-D", "-S", "--defined-only", path]);
  const line = nm.stdout.split("\n").find((l) => l.endsWith(` T ${fn}`));
  if (line === undefined) throw new Error(`nm lists no ${fn} in ${path}`);
  const [addr = "", size = ""] = line.split(" ");
  const start = BigInt(`0x${addr}`);
  const vaddr = start + BigInt(`0x${size}`) / 2n;
  const ph = await run("readelf", ["-lW", path]);
  for (const l of ph.stdout.split("\n")) {
    const m = /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/.exec(l);
    if (!m) continue;
    const [off, va, filesz] = [BigInt(`0x${m[1]}`), BigInt(`0x${m[2]}`), BigInt(`0x${m[3]}`)];
    if (vaddr >= va && vaddr < va + filesz)
      return { start: `0x${start.toString(16)}`, offset: Number(vaddr - va + off) };
  }
  throw new Error(`${path}: no PT_LOAD holds ${fn}`);
}
