// Oracle: binutils `readelf -rW` on programs compiled here (x86-64 RELA, i686 REL, a relocatable object)
// and on installed Debian libraries.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { BufferByteSource } from "../io/byte-source.ts";
import { ElfFile } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import {
  R_X86_64_GLOB_DAT,
  R_X86_64_JUMP_SLOT,
  R_X86_64_RELATIVE,
  SHT_REL,
  SHT_RELA,
  readRelocationSections,
  readRelocations,
} from "./relocations.ts";

interface Expected {
  section: string;
  offset: bigint;
  type: string;
  info: bigint;
  symbol: string;
  version: string | undefined;
  addend: bigint | undefined;
}

/** `readelf -rW` parsed: per entry its section, offset, raw r_info, type name, symbol and addend. */
function readelfRelocs(path: string): Expected[] {
  const out: Expected[] = [];
  let section = "";
  const text = execFileSync("readelf", ["-rW", path], { encoding: "utf8", maxBuffer: 1 << 28 });
  for (const line of text.split("\n")) {
    const head = /^Relocation section '([^']+)'/.exec(line);
    if (head) {
      section = head[1] ?? "";
      continue;
    }
    // offset info type [symvalue name(+|-) addend] | [addend]
    const m = /^([0-9a-f]+)\s+([0-9a-f]+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m || section === "") continue;
    const [, off = "", info = "", type = "", rest = ""] = m;
    let symbol = "";
    let version: string | undefined;
    let addend: bigint | undefined;
    const withSym = /^[0-9a-f]+\s+(\S+)\s*(?:([+-])\s*([0-9a-f]+))?$/.exec(rest.trim());
    if (withSym) {
      const full = withSym[1] ?? "";
      const at = full.indexOf("@");
      symbol = at < 0 ? full : full.slice(0, at);
      if (at >= 0) version = full.slice(at).replace(/^@@?/, "");
      if (withSym[3] !== undefined) addend = (withSym[2] === "-" ? -1n : 1n) * BigInt(`0x${withSym[3]}`);
    } else if (/^[0-9a-f]+$/.test(rest.trim())) {
      addend = BigInt(`0x${rest.trim()}`);
    }
    out.push({
      section,
      offset: BigInt(`0x${off}`),
      type,
      info: BigInt(`0x${info}`),
      symbol,
      version,
      addend,
    });
  }
  return out;
}

const TYPE_NAMES: Record<string, number> = {
  R_X86_64_GLOB_DAT,
  R_X86_64_JUMP_SLOT,
  R_X86_64_RELATIVE,
};

function compare(path: string, is64: boolean): number {
  const expected = readelfRelocs(path);
  const elf = ElfFile.open(new BufferByteSource(readFileSync(path), path));
  const got = readRelocationSections(elf).flatMap((rs) =>
    rs.relocations.map((r) => ({ section: rs.section.name, rela: rs.rela, ...r })),
  );
  assert.equal(got.length, expected.length, `${path}: relocation count`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const e = expected[i];
    assert.ok(g && e);
    const where = `${path} ${e.section} #${i} @0x${e.offset.toString(16)}`;
    assert.equal(g.section, e.section, where);
    assert.equal(g.offset, e.offset, where);
    const type = Number(is64 ? e.info & 0xffffffffn : e.info & 0xffn);
    const sym = Number(is64 ? e.info >> 32n : e.info >> 8n);
    assert.equal(g.type, type, where);
    assert.equal(g.symIndex, sym, where);
    const named = TYPE_NAMES[e.type];
    if (named !== undefined) assert.equal(g.type, named, where);
    // Section symbols are printed by their section's name; our name is the (empty) symbol name.
    if (g.symbol !== "" || e.symbol === "") assert.equal(g.symbol, e.symbol, where);
    if (e.version !== undefined) assert.equal(g.symbolVersion, e.version, where);
    if (g.rela && e.addend !== undefined) assert.equal(g.addend, e.addend, where);
    if (!g.rela) assert.equal(g.addend, 0n, where);
  }
  return got.length;
}

let dir = "";
const haveGcc = existsSync("/usr/bin/gcc");
const haveI686 = existsSync("/usr/bin/i686-linux-gnu-gcc");

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-relocs-"));
  writeFileSync(
    join(dir, "lib.c"),
    "extern int printf(const char *, ...);\nint counter;\nint *pc = &counter;\n" +
      'int lib_fn(int x) { printf("%d\\n", x); return x + counter + *pc; }\n',
  );
  writeFileSync(
    join(dir, "prog.c"),
    '#include <stdio.h>\n#include <stdlib.h>\nstatic void c(void) { puts("c"); }\nvoid (*fp)(void) = c;\n' +
      "__attribute__((constructor)) static void init_me(void) { fp(); }\n" +
      'int main(int argc, char **argv) { printf("%s %d\\n", argv[0], argc); return abs(argc) > 9 ? atoi(argv[1]) : 0; }\n',
  );
  if (haveGcc) {
    execFileSync("gcc", ["-O2", "-shared", "-fPIC", "-o", join(dir, "lib.so"), join(dir, "lib.c")]);
    execFileSync("gcc", ["-O2", "-o", join(dir, "pie"), join(dir, "prog.c")]);
    execFileSync("gcc", ["-O2", "-no-pie", "-o", join(dir, "nopie"), join(dir, "prog.c")]);
    execFileSync("gcc", ["-O2", "-c", "-o", join(dir, "prog.o"), join(dir, "prog.c")]);
  }
  if (haveI686) execFileSync("i686-linux-gnu-gcc", ["-O2", "-o", join(dir, "pie32"), join(dir, "prog.c")]);
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("readRelocationSections against readelf -rW", () => {
  test("programs and a shared library compiled here (RELA)", { skip: !haveGcc && "no gcc" }, () => {
    for (const f of ["lib.so", "pie", "nopie", "prog.o"]) assert.ok(compare(join(dir, f), true) > 0, f);
  });

  test("i686 program (SHT_REL, ELF32)", { skip: !haveI686 && "no i686-linux-gnu-gcc" }, () => {
    const path = join(dir, "pie32");
    assert.ok(compare(path, false) > 0);
    const elf = ElfFile.open(new BufferByteSource(readFileSync(path), path));
    assert.ok(readRelocationSections(elf).some((rs) => rs.section.type === SHT_REL && !rs.rela));
  });

  for (const lib of [
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/bin/ls",
  ]) {
    test(`installed ${lib}`, { skip: !existsSync(lib) && "not installed" }, () => {
      assert.ok(compare(lib, true) > 0);
    });
  }

  test(
    "readRelocations by name: .rela.plt are JUMP_SLOTs naming the imports",
    { skip: !haveGcc && "no gcc" },
    () => {
      const path = join(dir, "pie");
      const elf = ElfFile.open(new BufferByteSource(readFileSync(path), path));
      const plt = readRelocations(elf, ".rela.plt");
      assert.ok(plt.length > 0);
      assert.ok(
        plt.every((r) => r.type === R_X86_64_JUMP_SLOT && r.symbol !== "" && r.symbolValue === undefined),
      );
      assert.ok(plt.some((r) => r.symbol === "puts"));
      assert.deepEqual(readRelocations(elf, ".rela.nonexistent"), []);
    },
  );
});

/** Section header `name`'s file offset in `bytes` (ELF64 LE), located with readelf. */
function shdrOffset(path: string, bytes: Uint8Array, name: string): number {
  const text = execFileSync("readelf", ["-SW", path], { encoding: "utf8" });
  const m = new RegExp(`\\[\\s*(\\d+)\\]\\s+${name.replace(/\./g, "\\.")}\\s`).exec(text);
  assert.ok(m, `${name} in readelf -S`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(view.getBigUint64(40, true));
  return shoff + Number(m[1]) * 64;
}

function expectElfError(bytes: Uint8Array, name: string, code: string, field: RegExp): void {
  const elf = ElfFile.open(new BufferByteSource(bytes, name));
  assert.throws(
    () => readRelocationSections(elf),
    (err: unknown) => {
      assert.ok(err instanceof ElfError, String(err));
      assert.equal(err.code, code);
      assert.ok(err.message.startsWith(`${name}: `), err.message);
      assert.match(err.field, field);
      return true;
    },
  );
}

describe("hostile relocation sections", { skip: !haveGcc && "no gcc" }, () => {
  test("sh_size past the end of the file: ELF_TRUNCATED naming file and section", () => {
    const path = join(dir, "pie");
    const bytes = new Uint8Array(readFileSync(path));
    const sh = shdrOffset(path, bytes, ".rela.dyn");
    const view = new DataView(bytes.buffer);
    view.setBigUint64(sh + 32, BigInt(bytes.length) * 24n, true);
    expectElfError(bytes, "evil-size", "ELF_TRUNCATED", /\.rela\.dyn/);
  });

  test("sh_entsize too small: ELF_BAD_FIELD", () => {
    const path = join(dir, "pie");
    const bytes = new Uint8Array(readFileSync(path));
    const sh = shdrOffset(path, bytes, ".rela.plt");
    new DataView(bytes.buffer).setBigUint64(sh + 56, 8n, true);
    expectElfError(bytes, "evil-entsize", "ELF_BAD_FIELD", /\.rela\.plt sh_entsize/);
  });

  test("sh_size not a multiple of the entry size: ELF_BAD_FIELD", () => {
    const path = join(dir, "pie");
    const bytes = new Uint8Array(readFileSync(path));
    const sh = shdrOffset(path, bytes, ".rela.plt");
    const view = new DataView(bytes.buffer);
    view.setBigUint64(sh + 32, view.getBigUint64(sh + 32, true) - 5n, true);
    expectElfError(bytes, "evil-partial", "ELF_BAD_FIELD", /\.rela\.plt sh_size/);
  });

  test("symbol index outside the linked table: ELF_BAD_FIELD naming the entry", () => {
    const path = join(dir, "pie");
    const bytes = new Uint8Array(readFileSync(path));
    const sh = shdrOffset(path, bytes, ".rela.plt");
    const view = new DataView(bytes.buffer);
    const off = Number(view.getBigUint64(sh + 24, true));
    view.setUint32(off + 12, 99999, true); // high half of r_info of entry 0: the symbol index
    expectElfError(bytes, "evil-sym", "ELF_BAD_FIELD", /^\.rela\.plt\[0\] r_info$/);
  });

  test("sh_link not a symbol table: ELF_BAD_FIELD", () => {
    const path = join(dir, "pie");
    const bytes = new Uint8Array(readFileSync(path));
    const sh = shdrOffset(path, bytes, ".rela.plt");
    new DataView(bytes.buffer).setUint32(sh + 40, 1, true); // section 1 is .interp
    expectElfError(bytes, "evil-link", "ELF_BAD_FIELD", /\.rela\.plt sh_link/);
  });

  test("section types", () => {
    assert.equal(SHT_RELA, 4);
    assert.equal(SHT_REL, 9);
  });
});
