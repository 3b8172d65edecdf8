// normalizeCode over the whole .text of libcrypto.so.3 (x86-64) against `objdump -d` of the same file,
// in the same run. Goal: well under a second, and far below objdump. Prints medians and the ratio.
// Run: node bench/disasm.bench.ts [file]
import { spawnSync } from "node:child_process";

import { readSectionBytes, readSections } from "../core/disasm/binutils-oracle.ts";
import { normalizeCode } from "../core/disasm/normalize.ts";
import { x86InsnLength } from "../core/disasm/x86-64.ts";
import { timeMs } from "./timing.ts";

const FILE = process.argv[2] ?? "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

const text = readSections(FILE).find((s) => s.name === ".text");
if (text === undefined) throw new Error(`${FILE}: no .text section`);
const code = readSectionBytes(FILE, text);

let insns = 0;
for (let p = 0; p < code.length; p += x86InsnLength(code, p)) insns++;

const coldStart = process.hrtime.bigint();
let invalid = normalizeCode("x86_64", code).invalid;
const coldMs = Number(process.hrtime.bigint() - coldStart) / 1e6;
const oursMs = timeMs(() => {
  invalid = normalizeCode("x86_64", code).invalid;
}, 9);

const objdumpMs = timeMs(() => {
  const r = spawnSync("objdump", ["-d", FILE], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`objdump -d ${FILE} exited ${r.status}`);
}, 3);

const mb = code.length / 1e6;
console.log(`${FILE}: .text ${mb.toFixed(2)} MB, ${insns} instructions, ${invalid} invalid decodes`);
console.log(
  `normalizeCode x86_64: ${oursMs.toFixed(1)} ms median of 9 (first run ${coldMs.toFixed(1)} ms), ` +
    `${(mb / (oursMs / 1000)).toFixed(0)} MB/s, ${((oursMs * 1e6) / insns).toFixed(1)} ns/instruction`,
);
console.log(`objdump -d (whole file): ${objdumpMs.toFixed(1)} ms median of 3`);
console.log(`ratio objdump / normalizeCode: ${(objdumpMs / oursMs).toFixed(1)}x`);
