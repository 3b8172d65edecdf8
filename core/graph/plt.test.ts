// Oracle: the `<sym@plt>` labels `objdump -d` prints (binutils' synthetic PLT symbols), for programs compiled
// here with and without IBT PLTs (.plt.sec: -z ibtplt, since Debian's crt files are not IBT-marked), PIE and not, lazy and -z now (.plt.got), and for installed libraries.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ElfFile } from "../elf/elf-file.ts";
import { BufferByteSource } from "../io/byte-source.ts";
import { pltStubs } from "./plt.ts";

/** address (hex) → name, from objdump's `0000000000001030 <puts@plt>:` lines. */
function objdumpPlt(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const text = execFileSync("objdump", ["-d", "-w", path], { encoding: "utf8", maxBuffer: 1 << 30 });
  for (const m of text.matchAll(/^([0-9a-f]+) <(.+)@plt>:$/gm)) {
    out.set(BigInt(`0x${m[1] ?? ""}`).toString(16), m[2] ?? "");
  }
  return out;
}

function ours(path: string): Map<string, string> {
  const elf = ElfFile.open(new BufferByteSource(readFileSync(path), path));
  return new Map(pltStubs(elf).map((s) => [s.address.toString(16), s.symbol]));
}

let dir = "";
const haveGcc = existsSync("/usr/bin/gcc");
const VARIANTS: Record<string, string[]> = {
  pie: [],
  nopie: ["-no-pie"],
  ibt: ["-fcf-protection=full", "-Wl,-z,ibtplt"],
  "ibt-now": ["-fcf-protection=full", "-Wl,-z,ibtplt", "-Wl,-z,now"],
  now: ["-Wl,-z,now"],
  "lib.so": ["-shared", "-fPIC"],
  "lib-ibt.so": ["-shared", "-fPIC", "-fcf-protection=full", "-Wl,-z,ibtplt"],
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-plt-"));
  writeFileSync(
    join(dir, "p.c"),
    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n" +
      "int exported(int x) { return x + 1; }\n" +
      'int main(int argc, char **argv) { puts(argv[0]); printf("%d\\n", argc);\n' +
      '  char *p = malloc(16); strcpy(p, argv[0]); free(p); return exported(atoi(argc > 1 ? argv[1] : "1")); }\n',
  );
  if (haveGcc) {
    for (const [name, flags] of Object.entries(VARIANTS))
      execFileSync("gcc", ["-O2", ...flags, "-o", join(dir, name), join(dir, "p.c")]);
  }
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("pltStubs against objdump's <sym@plt> labels", () => {
  for (const name of Object.keys(VARIANTS)) {
    test(`compiled here: ${name}`, { skip: !haveGcc && "no gcc" }, () => {
      const path = join(dir, name);
      const expected = objdumpPlt(path);
      assert.ok(expected.size >= 4, `objdump names ${expected.size} stubs`);
      assert.deepEqual(ours(path), expected);
    });
  }

  test(
    "IBT builds put the stubs in .plt.sec, -z now libraries in .plt.got",
    { skip: !haveGcc && "no gcc" },
    () => {
      const secs = (f: string): Set<string> => {
        const path = join(dir, f);
        return new Set(
          pltStubs(ElfFile.open(new BufferByteSource(readFileSync(path), path))).map((s) => s.section),
        );
      };
      assert.ok(secs("ibt").has(".plt.sec"));
      assert.ok(!secs("pie").has(".plt.sec"));
      assert.ok(secs("pie").has(".plt"));
      // __cxa_finalize is called through .plt.got (GLOB_DAT) in PIE programs.
      assert.ok(secs("pie").has(".plt.got"));
    },
  );

  for (const path of [
    "/usr/bin/ls",
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/x86_64-linux-gnu/libc.so.6", // IRELATIVE stubs: `*ABS*+0x<resolver>@plt`
  ]) {
    test(`installed ${path}`, { skip: !existsSync(path) && "not installed" }, () => {
      const expected = objdumpPlt(path);
      assert.ok(expected.size > 0);
      assert.deepEqual(ours(path), expected);
    });
  }

  test(
    "non-x86-64 files have no x86 stubs",
    { skip: !existsSync("/usr/bin/aarch64-linux-gnu-gcc") && "no cross gcc" },
    () => {
      const path = join(dir, "arm");
      execFileSync("aarch64-linux-gnu-gcc", ["-O2", "-o", path, join(dir, "p.c")]);
      assert.deepEqual(pltStubs(ElfFile.open(new BufferByteSource(readFileSync(path), path))), []);
    },
  );
});
