import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import {
  parseObjdump,
  parseX86Text,
  readSectionBytes,
  readSections,
  readSigned,
  run,
  runAsync,
  type ObjdumpBlock,
} from "./binutils-oracle.ts";
import { decodeX86, normalizeX86, x86InsnLength } from "./x86-64.ts";

interface Stats {
  compared: number;
  agreed: number;
  bad: number;
  relChecked: number;
  ripChecked: number;
  errors: string[];
}

function newStats(): Stats {
  return { compared: 0, agreed: 0, bad: 0, relChecked: 0, ripChecked: 0, errors: [] };
}

function hex(bytes: Iterable<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Walks each objdump block with our decoder: every instruction objdump decodes (not `(bad)`) must
 * start where our walk is and have our length; direct-branch targets and RIP-relative `# addr`
 * comments must be what the bytes at our masked offsets compute to, and we mask nothing else.
 */
function compareWithObjdump(
  blocks: ObjdumpBlock[],
  locate: (addr: number) => { code: Uint8Array; off: number } | undefined,
  stats: Stats,
): void {
  const fail = (msg: string): void => {
    if (stats.errors.length < 40) stats.errors.push(msg);
  };
  for (const block of blocks) {
    let expect: number | undefined;
    for (const ins of block.insns) {
      if (ins.bad) {
        stats.bad++;
        expect = undefined; // objdump's (bad) length is its own business: resync after it
        continue;
      }
      const loc = locate(ins.addr);
      if (loc === undefined) continue;
      stats.compared++;
      const where = (): string => `${ins.addr.toString(16)} <${block.label}> ${ins.hex} ${ins.text}`;
      if (expect !== undefined && expect !== ins.addr)
        fail(`walk at ${expect.toString(16)}, objdump at ${where()}`);
      const d = decodeX86(loc.code, loc.off);
      if (d.length !== ins.length) {
        fail(`length ${d.length} != ${ins.length}: ${where()}`);
        expect = undefined;
        continue;
      }
      stats.agreed++;
      expect = ins.addr + d.length;
      const ops = parseX86Text(ins.text);
      const next = BigInt(ins.addr + d.length);
      if (ops.branchTarget !== undefined) {
        if (d.relSize === 0) {
          // rel16 (66 without REX.W) is deliberately left unmasked.
          if (!/\b66\b/.test(ins.hex)) fail(`branch not masked: ${where()}`);
        } else {
          const target = BigInt.asUintN(64, next + readSigned(loc.code, loc.off + d.relOffset, d.relSize));
          if (target !== ops.branchTarget)
            fail(`rel field at +${d.relOffset} gives ${target.toString(16)}: ${where()}`);
          stats.relChecked++;
        }
      } else if (d.relSize !== 0) {
        fail(`masks rel${d.relSize * 8} at +${d.relOffset} but objdump shows no direct branch: ${where()}`);
      }
      if (ops.ripTarget !== undefined) {
        if (d.ripDispOffset < 0) fail(`RIP-relative not masked: ${where()}`);
        else {
          const target = BigInt.asUintN(64, next + readSigned(loc.code, loc.off + d.ripDispOffset, 4));
          if (target !== ops.ripTarget)
            fail(`disp at +${d.ripDispOffset} gives ${target.toString(16)}: ${where()}`);
          stats.ripChecked++;
        }
      } else if (d.ripDispOffset >= 0) {
        fail(`masks disp32 at +${d.ripDispOffset} but objdump shows no RIP operand: ${where()}`);
      }
    }
  }
}

function compareElf(path: string, listing: string, stats: Stats): void {
  const secs = readSections(path)
    .filter((s) => s.flags.includes("X") && s.type !== "NOBITS")
    .map((s) => ({ ...s, code: readSectionBytes(path, s) }));
  const blocks = parseObjdump(listing);
  compareWithObjdump(
    blocks,
    (addr) => {
      const s = secs.find((x) => addr >= x.addr && addr < x.addr + x.size);
      return s === undefined ? undefined : { code: s.code, off: addr - s.addr };
    },
    stats,
  );
}

function report(t: { diagnostic: (msg: string) => void }, what: string, s: Stats): void {
  const rate = ((100 * s.agreed) / Math.max(1, s.compared)).toFixed(4);
  t.diagnostic(
    `${what}: ${s.agreed}/${s.compared} instructions agree (${rate}%), ${s.bad} (bad) skipped, ` +
      `${s.relChecked} branch targets and ${s.ripChecked} RIP targets checked`,
  );
}

const ELF_FILES = [
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/bin/bash",
  "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
  "/usr/lib/x86_64-linux-gnu/libm.so.6",
];

describe("x86-64 decoder vs objdump on real binaries", () => {
  test("instruction boundaries, branch and RIP-relative fields match objdump -d exactly", async (t) => {
    const present = ELF_FILES.filter((f) => existsSync(f));
    assert.ok(present.length >= 2, `need at least two of ${ELF_FILES.join(", ")}`);
    const listings = await Promise.all(present.map((f) => runAsync("objdump", ["-d", "-w", "-z", f])));
    const total = newStats();
    for (const [i, f] of present.entries()) {
      const s = newStats();
      compareElf(f, listings[i] ?? "", s);
      report(t, f, s);
      assert.deepEqual(s.errors, [], f);
      total.compared += s.compared;
      total.agreed += s.agreed;
      total.bad += s.bad;
      total.relChecked += s.relChecked;
      total.ripChecked += s.ripChecked;
    }
    report(t, `total over ${present.length} files`, total);
    assert.ok(total.compared > 50_000, `only ${total.compared} instructions compared`);
    assert.equal(total.agreed, total.compared);
    assert.ok(total.relChecked > 5_000 && total.ripChecked > 5_000);
  });
});

/**
 * Every opcode of every map under a spread of prefixes and ModRM forms, each in its own 32-byte slot
 * padded with NOPs so objdump resynchronises at every slot (an instruction is at most 15 bytes).
 */
function syntheticCorpus(): Uint8Array {
  const cases: number[][] = [];
  const tail = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc];
  const allModrm = [0x05, 0x04, 0x44, 0x84, 0xc0, 0x00, 0x0d, 0x4c, 0xc8, 0x15, 0xf8, 0x3d, 0x25];
  const someModrm = [0x05, 0x44, 0xc0, 0x0c];
  const sibFor = (m: number): number[] => ((m & 7) === 4 && m >> 6 !== 3 ? [m === 0x04 ? 0x25 : 0x24] : []);
  const add = (head: number[], m: number): void => {
    cases.push([...head, m, ...sibFor(m), ...tail]);
  };
  const legacy = [[], [0x66], [0x67], [0x48], [0x66, 0x48], [0xf2], [0xf3], [0xf0], [0x2e], [0x41]];
  for (let op = 0; op < 256; op++) {
    legacy.forEach((pre, i) => {
      for (const m of i < 4 ? allModrm : someModrm) add([...pre, op], m);
      for (const m of i < 7 ? someModrm : [0x05]) add([...pre, 0x0f, op], m);
      if (i < 3 || i === 5 || i === 6) {
        for (const m of someModrm) {
          add([...pre, 0x0f, 0x38, op], m);
          add([...pre, 0x0f, 0x3a, op], m);
        }
      }
    });
    for (const m of someModrm) {
      for (const v of [0xf8, 0xf9, 0xfb, 0x7c]) add([0xc5, v, op], m);
      for (const map of [0xe1, 0xe2, 0xe3, 0x61, 0xe0, 0xe4, 0xe7]) {
        for (const w of [0x79, 0xfd]) add([0xc4, map, w, op], m);
      }
      for (const map of [0xf1, 0xf2, 0xf3, 0xf5, 0xf6, 0x71, 0xf0, 0xf4, 0xf7, 0xf9]) {
        add([0x62, map, 0x7d, 0x48, op], m);
        add([0x62, map, 0xfc, 0x18, op], m);
      }
      for (const map of [0xe8, 0xe9, 0xea, 0xeb, 0xc8]) add([0x8f, map, 0x78, op], m);
    }
  }
  const slot = 32;
  const blob = new Uint8Array(cases.length * slot).fill(0x90);
  cases.forEach((c, i) => {
    blob.set(c.slice(0, 16), i * slot);
  });
  return blob;
}

describe("x86-64 decoder vs objdump on synthetic encodings", () => {
  test("every opcode map, prefixes, VEX/EVEX/XOP: lengths and masks agree wherever objdump decodes", (t) => {
    const blob = syntheticCorpus();
    const dir = mkdtempSync(join(tmpdir(), "disasm-"));
    try {
      const file = join(dir, "blob.bin");
      writeFileSync(file, blob);
      const listing = run("objdump", ["-D", "-b", "binary", "-m", "i386:x86-64", "-w", "-z", file]);
      const s = newStats();
      compareWithObjdump(parseObjdump(listing), (addr) => ({ code: blob, off: addr }), s);
      report(t, "synthetic", s);
      assert.deepEqual(s.errors, []);
      assert.ok(s.compared > 200_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("x86-64 decoder on hand-picked encodings", () => {
  const cases: [string, number[], number, number, number, number][] = [
    // name, bytes, length, relOffset, relSize, ripDispOffset
    ["call rel32", [0xe8, 1, 2, 3, 4], 5, 1, 4, -1],
    ["jmp rel8", [0xeb, 0xfe], 2, 1, 1, -1],
    ["jne rel32", [0x0f, 0x85, 1, 2, 3, 4], 6, 2, 4, -1],
    ["loop", [0xe2, 0x10], 2, 1, 1, -1],
    ["jrcxz under 67", [0x67, 0xe3, 0x10], 3, 2, 1, -1],
    ["bnd jmp", [0xf2, 0xe9, 1, 2, 3, 4], 6, 2, 4, -1],
    ["xbegin", [0xc7, 0xf8, 1, 2, 3, 4], 6, 2, 4, -1],
    ["callw rel16 is not masked", [0x66, 0xe8, 1, 2], 4, -1, 0, -1],
    ["TLS call: 66 66 48 e8", [0x66, 0x66, 0x48, 0xe8, 1, 2, 3, 4], 8, 4, 4, -1],
    ["lea rip", [0x48, 0x8d, 0x05, 1, 2, 3, 4], 7, -1, 0, 3],
    ["cmpl $imm, rip", [0x83, 0x3d, 1, 2, 3, 4, 0x7f], 7, -1, 0, 2],
    ["movl $imm32, rip", [0xc7, 0x05, 1, 2, 3, 4, 5, 6, 7, 8], 10, -1, 0, 2],
    ["movw $imm16, rip", [0x66, 0xc7, 0x05, 1, 2, 3, 4, 5, 6], 9, -1, 0, 3],
    ["addr32 rip (eip)", [0x67, 0x8b, 0x05, 1, 2, 3, 4], 7, -1, 0, 3],
    ["vmovups zmm, rip (EVEX)", [0x62, 0xf1, 0x7c, 0x48, 0x10, 0x05, 1, 2, 3, 4], 10, -1, 0, 6],
    ["vpshufd imm8 rip (VEX)", [0xc5, 0xf9, 0x70, 0x05, 1, 2, 3, 4, 0x1b], 9, -1, 0, 4],
    ["movabs rax, imm64", [0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], 10, -1, 0, -1],
    ["mov ax, imm16", [0x66, 0xb8, 1, 2], 4, -1, 0, -1],
    ["moffs64", [0xa1, 1, 2, 3, 4, 5, 6, 7, 8], 9, -1, 0, -1],
    ["moffs32 under 67", [0x67, 0xa1, 1, 2, 3, 4], 6, -1, 0, -1],
    ["test r/m8, imm8 (F6 /0)", [0xf6, 0xc1, 1], 3, -1, 0, -1],
    ["test r/m16, imm16 (F7 /0)", [0x66, 0xf7, 0xc1, 1, 2], 5, -1, 0, -1],
    ["not r/m (F7 /2)", [0xf7, 0xd1], 2, -1, 0, -1],
    ["enter", [0xc8, 1, 2, 3], 4, -1, 0, -1],
    ["3DNow pfmul", [0x0f, 0x0f, 0xc1, 0xb4], 4, -1, 0, -1],
    ["extrq", [0x66, 0x0f, 0x78, 0xc0, 1, 2], 6, -1, 0, -1],
    ["XOP bextr imm32", [0x8f, 0xea, 0x78, 0x10, 0xc1, 1, 2, 3, 4], 9, -1, 0, -1],
    ["mov cr0 ignores mod", [0x0f, 0x20, 0x00], 3, -1, 0, -1],
    ["sib disp32 no base", [0x8b, 0x04, 0x25, 1, 2, 3, 4], 7, -1, 0, -1],
    ["endbr64", [0xf3, 0x0f, 0x1e, 0xfa], 4, -1, 0, -1],
    ["nopw 11 bytes", [0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], 11, -1, 0, -1],
    ["fstcw with fwait", [0x9b, 0xd9, 0x7d, 0xfc], 4, -1, 0, -1],
    ["fwait alone", [0x9b, 0x90], 1, -1, 0, -1],
  ];
  for (const [name, bytes, len, relOff, relSize, rip] of cases) {
    test(name, () => {
      const d = decodeX86(Uint8Array.from([...bytes, 0x90, 0x90]), 0);
      assert.deepEqual(
        [d.length, d.relOffset, d.relSize, d.ripDispOffset, d.valid],
        [len, relOff, relSize, rip, true],
      );
    });
  }

  test("invalid opcodes are length 1 and not valid", () => {
    for (const bytes of [[0x06], [0x0f, 0x04], [0xd6], [0xc4, 0xe7, 0x79, 0x4a], [0x62, 0xf4, 0x7c, 0x48]]) {
      const d = decodeX86(Uint8Array.from([...bytes, 0x90]), 0);
      assert.equal(d.length, 1, hex(bytes));
      assert.equal(d.valid, false, hex(bytes));
    }
  });

  test("offset outside the buffer is a RangeError", () => {
    assert.throws(() => x86InsnLength(new Uint8Array(4), 4), RangeError);
    assert.throws(() => x86InsnLength(new Uint8Array(4), -1), RangeError);
  });
});

describe("x86-64 decoder on hostile input", () => {
  /** Deterministic xorshift32 byte stream. */
  function randomBytes(n: number, seed: number): Uint8Array {
    const out = new Uint8Array(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  }

  function walkAll(code: Uint8Array): number {
    let p = 0;
    let n = 0;
    while (p < code.length) {
      const len = x86InsnLength(code, p);
      assert.ok(Number.isInteger(len) && len >= 1 && len <= 15, `length ${len} at ${p}`);
      assert.ok(len <= code.length - p);
      p += len;
      n++;
    }
    assert.equal(p, code.length);
    return n;
  }

  test("random bytes: never throws, always advances, lengths 1..15", () => {
    for (let seed = 1; seed <= 8; seed++) walkAll(randomBytes(200_000, seed * 0x9e3779b9));
  });

  test("every offset of random bytes decodes (not just the linear walk)", () => {
    const code = randomBytes(50_000, 12345);
    for (let p = 0; p < code.length; p++) {
      const d = decodeX86(code, p);
      assert.ok(d.length >= 1 && d.length <= Math.min(15, code.length - p));
      if (d.relSize !== 0) assert.ok(d.relOffset > 0 && d.relOffset + d.relSize <= d.length);
      if (d.ripDispOffset >= 0) assert.ok(d.ripDispOffset > 0 && d.ripDispOffset + 4 <= d.length);
    }
  });

  test("long prefix runs", () => {
    for (const b of [0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x48, 0x9b]) {
      for (const n of [1, 13, 14, 15, 16, 40, 1000]) walkAll(new Uint8Array(n).fill(b));
      const code = new Uint8Array(100).fill(b);
      code[99] = 0x90;
      walkAll(code);
    }
    assert.equal(x86InsnLength(new Uint8Array(20).fill(0x66), 0), 14);
  });

  test("truncated instructions at the end of the buffer return what remains", () => {
    const full = [0x48, 0x8b, 0x05, 1, 2, 3, 4]; // mov rax, [rip+disp32]
    for (let n = 1; n < full.length; n++) {
      const code = Uint8Array.from(full.slice(0, n));
      const d = decodeX86(code, 0);
      assert.equal(d.length, n);
      assert.equal(d.valid, false);
      assert.equal(d.ripDispOffset, -1);
    }
    for (const op of [0xe8, 0xc4, 0xc5, 0x62, 0x8f, 0x0f, 0xb8, 0xa1, 0xc8]) walkAll(Uint8Array.of(op));
  });

  test("normalizeX86 never mutates its input and keeps the length", () => {
    const code = randomBytes(100_000, 7);
    const copy = new Uint8Array(code);
    const { bytes, invalid } = normalizeX86(code);
    assert.deepEqual(code, copy);
    assert.equal(bytes.length, code.length);
    assert.ok(invalid > 0);
  });
});
