import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { normalizeAarch64 } from "./aarch64.ts";
import { parseObjdump, run, toolMissing, type ObjdumpBlock } from "./binutils-oracle.ts";

const OBJDUMP = "aarch64-linux-gnu-objdump";
const INSTALL = "apt-get install -y gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu";

function requireTool(tool: string): void {
  const missing = toolMissing(tool);
  assert.equal(
    missing,
    undefined,
    `aarch64 cross toolchain missing (${missing ?? ""}); CI must run: ${INSTALL}`,
  );
}

function sext(v: number, bits: number): bigint {
  return BigInt.asIntN(bits, BigInt(v));
}

/**
 * For each PC-relative instruction class, independently of the implementation: the field mask, and
 * the target address the field encodes (what objdump prints), from ARM DDI 0487.
 */
const CLASSES: { re: RegExp; mask: number; target: (w: number, pc: bigint) => bigint }[] = [
  { re: /^bl?$/, mask: 0x03ffffff, target: (w, pc) => pc + sext(w & 0x03ffffff, 26) * 4n },
  {
    re: /^(b\.\w+|bc\.\w+|cbn?z|ldr|ldrsw|prfm)$/,
    mask: 0x00ffffe0,
    target: (w, pc) => pc + sext((w >>> 5) & 0x7ffff, 19) * 4n,
  },
  { re: /^tbn?z$/, mask: 0x0007ffe0, target: (w, pc) => pc + sext((w >>> 5) & 0x3fff, 14) * 4n },
  {
    re: /^adr$/,
    mask: 0x60ffffe0,
    target: (w, pc) => pc + sext((((w >>> 5) & 0x7ffff) << 2) | ((w >>> 29) & 3), 21),
  },
  {
    re: /^adrp$/,
    mask: 0x60ffffe0,
    target: (w, pc) => (pc & ~0xfffn) + sext((((w >>> 5) & 0x7ffff) << 2) | ((w >>> 29) & 3), 21) * 4096n,
  },
];

interface Stats {
  compared: number;
  masked: number;
  errors: string[];
}

/**
 * Every word objdump decodes: if objdump prints a target address, the word is one of our classes,
 * the class's field yields that address, and normalising the word alone clears exactly that field;
 * any other word normalises to itself.
 */
function checkWords(blocks: ObjdumpBlock[], stats: Stats): void {
  const fail = (msg: string): void => {
    if (stats.errors.length < 40) stats.errors.push(msg);
  };
  const one = new Uint8Array(4);
  const view = new DataView(one.buffer);
  for (const block of blocks) {
    for (const ins of block.insns) {
      if (ins.hex.length !== 8) continue; // aarch64 objdump prints one 32-bit word
      const [mnemonic = "", operands = ""] = ins.text.split("\t");
      if (mnemonic.startsWith(".") || mnemonic === "udf" || ins.text.includes("undefined")) continue;
      const w = parseInt(ins.hex, 16) | 0;
      view.setInt32(0, w, true);
      const got = new DataView(normalizeAarch64(one).buffer).getInt32(0, true);
      stats.compared++;
      const where = (): string => `${ins.addr.toString(16)} <${block.label}> ${ins.hex} ${ins.text}`;
      const m = /(?:^|, )(?:0x)?([0-9a-f]+)(?: <[^>]*>)?(?:\s*\/\/.*)?$/.exec(operands);
      const cls = CLASSES.find((c) => c.re.test(mnemonic));
      if (m === null || cls === undefined) {
        if (got !== w) fail(`masked ${((got ^ w) >>> 0).toString(16)} of a non-PC-relative word: ${where()}`);
        continue;
      }
      const printed = BigInt(`0x${m[1] ?? ""}`);
      const target = BigInt.asUintN(64, cls.target(w, BigInt(ins.addr)));
      if (target !== printed) fail(`field gives ${target.toString(16)}: ${where()}`);
      if (got !== (w & ~cls.mask)) fail(`normalised to ${(got >>> 0).toString(16)}: ${where()}`);
      stats.masked++;
    }
  }
}

function randomWords(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe("aarch64 masks vs aarch64-linux-gnu-objdump", () => {
  test("real code: cross libc and a compiled program", (t) => {
    requireTool(OBJDUMP);
    requireTool("aarch64-linux-gnu-gcc");
    const dir = mkdtempSync(join(tmpdir(), "disasm-a64-"));
    try {
      const src = join(dir, "p.c");
      writeFileSync(
        src,
        `#include <stdio.h>
static const double k[4] = {1.5, 2.5, 3.5, 4.5};
int g = 7;
__attribute__((noinline)) double f(int i) { return k[i & 3] * g; }
int main(int argc, char **argv) { for (int i = 0; i < argc; i++) if (argv[i][0] == 'x') g++; printf("%f\\n", f(argc)); return g; }
`,
      );
      const bin = join(dir, "p");
      run("aarch64-linux-gnu-gcc", ["-O2", "-o", bin, src]);
      const files = [bin, "/usr/aarch64-linux-gnu/lib/libc.so.6"].filter((f) => existsSync(f));
      const s: Stats = { compared: 0, masked: 0, errors: [] };
      for (const f of files) checkWords(parseObjdump(run(OBJDUMP, ["-d", "-w", "-z", f])), s);
      t.diagnostic(
        `${files.join(", ")}: ${s.compared} words checked, ${s.masked} PC-relative fields verified`,
      );
      assert.deepEqual(s.errors, []);
      assert.ok(s.masked > 100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("random words: every class objdump recognises", (t) => {
    requireTool(OBJDUMP);
    const dir = mkdtempSync(join(tmpdir(), "disasm-a64-"));
    try {
      const file = join(dir, "w.bin");
      writeFileSync(file, randomWords(200_000, 0xa64));
      const listing = run(OBJDUMP, ["-D", "-b", "binary", "-m", "aarch64", "-w", "-z", file]);
      const s: Stats = { compared: 0, masked: 0, errors: [] };
      checkWords(parseObjdump(listing), s);
      t.diagnostic(`random: ${s.compared} words checked, ${s.masked} PC-relative fields verified`);
      assert.deepEqual(s.errors, []);
      assert.ok(s.masked > 20_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Little-endian bytes of 32-bit words. */
function words(...ws: number[]): Uint8Array {
  const out = new Uint8Array(ws.length * 4);
  const v = new DataView(out.buffer);
  ws.forEach((w, i) => {
    v.setUint32(i * 4, w >>> 0, true);
  });
  return out;
}

describe("aarch64 ADRP pairs", () => {
  const ADRP_X1 = 0x90000081; // adrp x1, +0x10000
  const ADD_X1_X1 = 0x91123421; // add x1, x1, #0x48d
  const LDR_W0_X1 = 0xb9400820; // ldr w0, [x1, #8]
  const LDR_W0_X2 = 0xb9400840; // ldr w0, [x2, #8]
  const MOV_X1 = 0xd2800021; // mov x1, #1
  const BL = 0x94000010; // bl +0x40
  const ADRP_X19 = 0x90000093; // adrp x19, +0x10000
  const LDR_W0_X19 = 0xb9400a60; // ldr w0, [x19, #8]
  const FADD = 0x1e622820; // fadd d0, d1, d2
  const LDP_X1 = 0xa9410be1; // ldp x1, x2, [sp, #16]

  const imm12 = (w: number): number => (w & ~0x003ffc00) >>> 0;
  const adrp = (w: number): number => (w & ~0x60ffffe0) >>> 0;

  test("the lo12 of a following ADD / load through the ADRP register is masked, even when not adjacent", () => {
    assert.deepEqual(normalizeAarch64(words(ADRP_X1, ADD_X1_X1)), words(adrp(ADRP_X1), imm12(ADD_X1_X1)));
    assert.deepEqual(
      normalizeAarch64(words(ADRP_X1, FADD, LDR_W0_X2, LDR_W0_X1)),
      words(adrp(ADRP_X1), FADD, LDR_W0_X2, imm12(LDR_W0_X1)),
    );
    // A callee-saved page register survives a call.
    assert.deepEqual(
      normalizeAarch64(words(ADRP_X19, BL, LDR_W0_X19)),
      words(adrp(ADRP_X19), 0x94000000, imm12(LDR_W0_X19)),
    );
  });

  test("after the register is overwritten, its offsets are kept", () => {
    for (const clobber of [MOV_X1, BL, LDP_X1, ADD_X1_X1]) {
      const out = normalizeAarch64(words(ADRP_X1, clobber, LDR_W0_X1));
      assert.deepEqual(out.subarray(8), words(LDR_W0_X1), clobber.toString(16));
    }
  });
});
