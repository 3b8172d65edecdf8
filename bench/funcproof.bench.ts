// FuncProof of libcrypto.so.3 in the same run as two references on the same file:
//   objdump -d     (goal: our whole FuncProof, normalised hashes included, takes less time)
//   openssl dgst   (goal: our section hashing runs at ≥ 80% of OpenSSL's SHA-256 throughput)
// Prints medians and ratios, and where our time goes. Run: make bench.
import { spawnSync } from "node:child_process";
import { createHash, hash } from "node:crypto";
import { mkdtempSync, openSync, rmSync, writeSync, closeSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { normalizeCode } from "../core/disasm/normalize.ts";
import { ElfFile } from "../core/elf/elf-file.ts";
import { functionRanges } from "../core/funcproof/functions.ts";
import { buildFuncProof, DEFAULT_SECTIONS } from "../core/funcproof/funcproof.ts";
import { digestSource } from "../core/hash/digest.ts";
import { FileByteSource } from "../core/io/byte-source.ts";
import { timeMs } from "./timing.ts";

const FILE = process.argv[2] ?? "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

function sh(cmd: string): void {
  const r = spawnSync("sh", ["-c", cmd], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}`);
}

const size = readFileSync(FILE).length;
const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;

// Reference 1: binutils disassembling the same file.
const objdumpMs = timeMs(() => {
  sh(`objdump -d '${FILE}' > /dev/null`);
}, 3);

// Reference 2: OpenSSL's SHA-256 throughput. One 4.7 MB file is dominated by process start-up,
// so OpenSSL hashes a file of 32 copies (start-up amortised), and we compare MB/s.
const dir = mkdtempSync(join(tmpdir(), "stella-bench-"));
const big = join(dir, "big.bin");
const fileBytes = readFileSync(FILE);
const fd = openSync(big, "w");
for (let i = 0; i < 32; i++) writeSync(fd, fileBytes);
closeSync(fd);
sh(`cat '${big}' > /dev/null`); // warm the page cache
const opensslMs = timeMs(() => {
  sh(`openssl dgst -sha256 '${big}' > /dev/null`);
}, 3);
const opensslMBs = (32 * size) / 1e6 / (opensslMs / 1000);
rmSync(dir, { recursive: true, force: true });

// Ours, whole: FuncProof with normalised hashes.
const wholeMs = timeMs(() => {
  const src = new FileByteSource(FILE);
  buildFuncProof(src, { name: "bench", tool: "bench" });
  src.close();
});

// Ours, by phase.
let sectionBytes = 0;
const sectionsMs = timeMs(() => {
  const src = new FileByteSource(FILE);
  const elf = ElfFile.open(src);
  sectionBytes = 0;
  for (const name of DEFAULT_SECTIONS) {
    const sec = elf.section(name);
    if (!sec) continue;
    createHash("sha256").update(elf.sectionData(sec)).digest();
    sectionBytes += sec.size;
  }
  src.close();
});
const sectionMBs = sectionBytes / 1e6 / (sectionsMs / 1000);
const fileDigestMs = timeMs(() => {
  const src = new FileByteSource(FILE);
  digestSource(src);
  src.close();
});
const src = new FileByteSource(FILE);
const elf = ElfFile.open(src);
let nFunctions = 0;
const symbolsMs = timeMs(() => {
  const e = ElfFile.open(new FileByteSource(FILE));
  nFunctions = functionRanges(e).functions.length;
  e.close();
});
const table = functionRanges(elf);
const slices = table.functions.map((f) => {
  const data = elf.sectionData(f.section);
  const at = f.fileOffset - f.section.offset;
  return data.subarray(at, at + Number(f.end - f.start));
});
const fnHashMs = timeMs(() => {
  for (const b of slices) hash("sha256", b, "hex");
});
let codeBytes = 0;
const normalizeMs = timeMs(() => {
  codeBytes = 0;
  for (const b of slices) {
    normalizeCode(elf.header.arch, b);
    codeBytes += b.length;
  }
});
src.close();

const rows: [string, string][] = [
  [
    "file",
    `${FILE} (${(size / 1e6).toFixed(1)} MB, ${nFunctions} functions, ${(codeBytes / 1e6).toFixed(1)} MB of function code)`,
  ],
  ["objdump -d (reference)", fmt(objdumpMs)],
  ["stella FuncProof, whole", fmt(wholeMs)],
  ["  ratio FuncProof / objdump", `${(wholeMs / objdumpMs).toFixed(3)}  (goal < 1)`],
  ["  file sha256", fmt(fileDigestMs)],
  ["  section read + sha256", `${fmt(sectionsMs)} (${(sectionBytes / 1e6).toFixed(1)} MB)`],
  ["  symbols → function ranges", fmt(symbolsMs)],
  ["  function sha256 (raw)", fmt(fnHashMs)],
  ["  function normalisation", fmt(normalizeMs)],
  ["openssl dgst -sha256 (reference)", `${opensslMBs.toFixed(0)} MB/s`],
  ["stella section hashing", `${sectionMBs.toFixed(0)} MB/s`],
  ["  ratio sections / openssl", `${(sectionMBs / opensslMBs).toFixed(3)}  (goal ≥ 0.8)`],
];
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
