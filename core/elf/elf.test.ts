import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { BufferByteSource, FileByteSource } from "../io/byte-source.ts";
import { run } from "../testing/run.ts";
import { ElfFile } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import { readBuildId, readDebugLink, readNotes } from "./notes.ts";
import { readSymbols } from "./symbols.ts";

const LIBCRYPTO = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";
const FIXTURES = new URL("../testdata/out/", import.meta.url).pathname;

test("reading a BuildID reads a few kilobytes, not the file", () => {
  const src = new FileByteSource(LIBCRYPTO);
  const elf = ElfFile.open(src);
  assert.match(readBuildId(elf) ?? "", /^[0-9a-f]{40}$/);
  assert.ok(src.bytesRead < 16 * 1024, `read ${src.bytesRead} bytes of ${src.size}`);
  elf.close();
});

test(".gnu_debuglink matches readelf's string dump", async () => {
  const elf = ElfFile.open(new FileByteSource(LIBCRYPTO));
  const link = readDebugLink(elf);
  elf.close();
  const dump = await run("readelf", ["-W", "--string-dump=.gnu_debuglink", LIBCRYPTO]);
  const name = /\[\s*0\]\s+(\S+)/.exec(dump.stdout)?.[1];
  assert.ok(link && name, "libcrypto has a debuglink");
  assert.equal(link.file, name);
  // The CRC is the last 4 bytes of the section (file byte order).
  const hex = await run("readelf", ["-W", "--hex-dump=.gnu_debuglink", LIBCRYPTO]);
  const words = [...hex.stdout.matchAll(/0x[0-9a-f]+ ((?:[0-9a-f]{2,8} ){1,4})/g)].flatMap((m) =>
    m[1]!.trim().split(" "),
  );
  const last = words.join("").slice(-8);
  assert.equal(link.crc32, Buffer.from(last, "hex").readUInt32LE(0));
});

test("dynamic symbols carry GNU versions (default @@ and hidden @) like nm -D", () => {
  const elf = ElfFile.open(new FileByteSource("/usr/lib/x86_64-linux-gnu/libc.so.6"));
  const memcpy = readSymbols(elf, ".dynsym").filter((s) => s.name === "memcpy" && s.shndx !== 0);
  elf.close();
  const shown = memcpy.map((s) => `${s.name}${s.versionHidden ? "@" : "@@"}${s.version}`).sort();
  assert.deepEqual(shown, ["memcpy@@GLIBC_2.14", "memcpy@GLIBC_2.2.5"]);
});

test("a stripped binary keeps .dynsym and notes but has no .symtab", () => {
  const elf = ElfFile.open(new FileByteSource(`${FIXTURES}prog-v1.stripped`));
  assert.equal(readSymbols(elf, ".symtab").length, 0);
  assert.ok(readSymbols(elf, ".dynsym").length > 0);
  assert.ok(readNotes(elf).length >= 1);
  elf.close();
});

test("truncated files fail with a typed error naming the field and offset", () => {
  const bytes = readFileSync(`${FIXTURES}prog-v1`);
  const cases: [number, string, RegExp][] = [
    [10, "ELF_NOT_ELF", /e_ident/],
    [40, "ELF_TRUNCATED", /ELF header/],
    [bytes.length - 100, "ELF_TRUNCATED", /section header table.*at offset 0x/],
  ];
  for (const [len, code, msg] of cases) {
    const elf = (): unknown => {
      const e = ElfFile.open(new BufferByteSource(bytes.subarray(0, len), `prog-v1[:${len}]`));
      return e.sections();
    };
    assert.throws(elf, (err: unknown) => {
      assert.ok(err instanceof ElfError, `${len}: ${String(err)}`);
      assert.equal(err.code, code);
      assert.match(err.message, msg);
      assert.match(err.message, /^prog-v1\[:\d+\]: /);
      return true;
    });
  }
});

test("a hostile section entry size is refused, not trusted", () => {
  const bytes = Buffer.from(readFileSync(`${FIXTURES}prog-v1`));
  bytes.writeUInt16LE(8, 58); // e_shentsize
  const elf = ElfFile.open(new BufferByteSource(bytes, "hostile"));
  assert.throws(() => elf.sections(), {
    code: "ELF_BAD_FIELD",
    message: /e_shentsize.*8 is smaller than 64/,
  });
});

test("a section larger than maxSectionBytes is refused with the limit in the message", () => {
  const elf = ElfFile.open(new FileByteSource(LIBCRYPTO), { maxSectionBytes: 1024 });
  const text = elf.section(".text");
  assert.ok(text);
  assert.throws(() => elf.sectionData(text), {
    code: "ELF_LIMIT",
    message: /\.text sh_size.*limit of 1024 bytes/,
  });
  elf.close();
});
