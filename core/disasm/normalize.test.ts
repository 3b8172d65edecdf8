import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

import { readFunction, run, symbolAddress, toolMissing } from "./binutils-oracle.ts";
import { normalizeCode } from "./normalize.ts";

interface Variant {
  /** Insert a function before the others and a global variable (see `globalElsewhere`). */
  inserted: boolean;
  /** Put the inserted global in a second translation unit linked first, not in the same file. */
  globalElsewhere: boolean;
  /** The constant in `target_fn`. */
  constant: number;
}

/**
 * A small program; `target_fn` calls, reads and writes globals and a string, and has a loop.
 *
 * Where the extra global goes matters on aarch64: GCC addresses the globals of one file through a
 * section anchor (`adrp x, .LANCHOR0; add x, x, :lo12:.LANCHOR0; ldr w, [x, #off]`), so a variable
 * inserted into the same file and section shifts `#off`, a plain immediate, and GCC even schedules
 * the code differently. That is a codegen change no normaliser can undo, so there the variable goes into
 * another object linked first, which moves `counter` without touching this file's code. GCC lays the
 * x86-64 .data of one file out in reverse, so there a variable defined last in the same file lands
 * before `counter`.
 */
function sources(v: Variant): { main: string; extra: string | undefined } {
  const global = "int extra_data[67] = {1, 2, 3};";
  const main = `#include <stdio.h>
#define NI __attribute__((noinline, noipa))
${v.inserted && v.globalElsewhere ? "extern int extra_data[67];" : ""}
int counter = 3;
int table[16] = {5, 9, 2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0};
const char *greeting = "hello";
${v.inserted && !v.globalElsewhere ? global : ""}
${v.inserted ? "NI int inserted_fn(int x) { extra_data[x & 63] += x; return x * x + extra_data[3]; }" : ""}
NI int helper(int x) { return x * 3 + counter; }
NI int target_fn(int a, int b) {
  int s = 0;
  for (int i = 0; i < a; i++) s += helper(i) ^ table[i & 15];
  counter += s;
  if (s > ${v.constant}) puts(greeting);
  return s + b * 7 + ${v.constant};
}
int main(int argc, char **argv) {
  (void)argv;
  return target_fn(argc, 2)${v.inserted ? " + inserted_fn(argc)" : ""};
}
`;
  return { main, extra: v.inserted && v.globalElsewhere ? `${global}\n` : undefined };
}

const dir = mkdtempSync(join(tmpdir(), "disasm-norm-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * `extraFlags`: aarch64 GCC aligns functions to 16 only when that skips at most 11 bytes, and pads
 * loops to 8 relative to the absolute address, so the NOPs inside a moved function can change; that
 * is a layout change the normaliser does not hide (it masks fields, it does not drop instructions).
 * Forcing function alignment keeps this test about masking.
 */
function build(cc: string, name: string, v: Variant, extraFlags: string[]): string {
  const { main, extra } = sources(v);
  const files: string[] = [];
  if (extra !== undefined) {
    files.push(join(dir, `${name}-extra.c`));
    writeFileSync(join(dir, `${name}-extra.c`), extra);
  }
  files.push(join(dir, `${name}.c`));
  writeFileSync(join(dir, `${name}.c`), main);
  const out = join(dir, name);
  run(cc, ["-O2", "-fno-inline", ...extraFlags, "-o", out, ...files]);
  return out;
}

/** The two-builds property for one toolchain. */
function twoBuilds(
  arch: string,
  cc: string,
  nm: string,
  globalElsewhere: boolean,
  flags: string[] = [],
): void {
  const missing = toolMissing(cc) ?? toolMissing(nm);
  assert.equal(
    missing,
    undefined,
    `${arch} toolchain missing (${missing ?? ""}); install it, e.g. ` +
      "apt-get install -y gcc binutils gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu",
  );
  const base = build(cc, `${arch}-base`, { inserted: false, globalElsewhere, constant: 12345 }, flags);
  const moved = build(cc, `${arch}-moved`, { inserted: true, globalElsewhere, constant: 12345 }, flags);
  const changed = build(cc, `${arch}-changed`, { inserted: false, globalElsewhere, constant: 12346 }, flags);
  // The insertions really moved both the code and the data target_fn refers to.
  assert.notEqual(symbolAddress(base, "target_fn", nm), symbolAddress(moved, "target_fn", nm));
  assert.notEqual(symbolAddress(base, "counter", nm), symbolAddress(moved, "counter", nm));

  for (const fn of ["target_fn", "helper"]) {
    const a = readFunction(base, fn, nm).bytes;
    const b = readFunction(moved, fn, nm).bytes;
    assert.notDeepEqual(a, b, `${arch} ${fn}: raw bytes should differ once code and data moved`);
    const na = normalizeCode(arch, a);
    const nb = normalizeCode(arch, b);
    assert.ok(na.supported && nb.supported);
    assert.equal(na.invalid, 0);
    assert.deepEqual(na.bytes, nb.bytes, `${arch} ${fn}: normalised bytes should not depend on placement`);
  }

  const t = normalizeCode(arch, readFunction(base, "target_fn", nm).bytes).bytes;
  const t2 = normalizeCode(arch, readFunction(changed, "target_fn", nm).bytes).bytes;
  assert.notDeepEqual(t, t2, `${arch}: changing a constant must change the normalised bytes`);
  const h = normalizeCode(arch, readFunction(base, "helper", nm).bytes).bytes;
  const h2 = normalizeCode(arch, readFunction(changed, "helper", nm).bytes).bytes;
  assert.deepEqual(h, h2, `${arch}: an unchanged function keeps its normalised bytes`);
}

describe("normalizeCode on real compiled code", () => {
  test("x86_64: a function normalises identically after a function and a global were inserted (gcc -O2)", () => {
    twoBuilds("x86_64", "gcc", "nm", false);
  });

  test("aarch64: the same, cross-compiled (the global in an object linked first)", () => {
    twoBuilds("aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-nm", true, ["-falign-functions=16"]);
  });
});

describe("normalizeCode contract", () => {
  test("never mutates its input; other architectures pass through unsupported", () => {
    const x86 = Uint8Array.of(0xe8, 1, 2, 3, 4, 0x48, 0x8d, 0x05, 5, 6, 7, 8, 0xc3);
    const copy = new Uint8Array(x86);
    const r = normalizeCode("x86_64", x86);
    assert.deepEqual(x86, copy);
    assert.deepEqual(r, {
      bytes: Uint8Array.of(0xe8, 0, 0, 0, 0, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3),
      invalid: 0,
      supported: true,
    });
    assert.notEqual(r.bytes, x86);

    const a64 = Uint8Array.of(0x05, 0x00, 0x00, 0x94, 0xc0, 0x03, 0x5f, 0xd6, 0x01); // bl +20; ret; 1 stray byte
    const ra = normalizeCode("aarch64", a64);
    assert.deepEqual(a64, Uint8Array.of(0x05, 0x00, 0x00, 0x94, 0xc0, 0x03, 0x5f, 0xd6, 0x01));
    assert.deepEqual(ra, {
      bytes: Uint8Array.of(0x00, 0x00, 0x00, 0x94, 0xc0, 0x03, 0x5f, 0xd6, 0x01),
      invalid: 1,
      supported: true,
    });

    const other = Uint8Array.of(1, 2, 3);
    assert.deepEqual(normalizeCode("riscv64", other), { bytes: other, invalid: 0, supported: false });
    assert.equal(normalizeCode("riscv64", other).bytes, other);
    assert.deepEqual(normalizeCode("x86_64", new Uint8Array(0)), {
      bytes: new Uint8Array(0),
      invalid: 0,
      supported: true,
    });
  });
});
