// Property test: mutated real ELF files (byte flips, field overwrites, truncations) either parse
// or fail with ElfError. Never another exception, never a hang (the test has a timeout).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { BufferByteSource } from "../io/byte-source.ts";
import { ElfFile } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import { readBuildId, readDebugLink, readNotes } from "./notes.ts";
import { readSymbols } from "./symbols.ts";

const FIXTURES = new URL("../testdata/out/", import.meta.url).pathname;
const SEEDS = [
  "/usr/bin/true",
  `${FIXTURES}prog-v1`,
  `${FIXTURES}prog-v1.mips-linux-gnu`,
  `${FIXTURES}prog-v1.i686-linux-gnu`,
];
const ROUNDS_PER_SEED = 5000;

/** xorshift32: deterministic, so a failure reproduces from the printed round number. */
function rng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

function parseEverything(buf: Uint8Array): void {
  const elf = ElfFile.open(new BufferByteSource(buf, "fuzz"), { maxSectionBytes: 8 << 20 });
  elf.programHeaders();
  elf.sections();
  readNotes(elf);
  readBuildId(elf);
  readDebugLink(elf);
  readSymbols(elf, ".symtab");
  readSymbols(elf, ".dynsym");
}

/** Offsets worth hitting: the file header, and the program/section header tables. */
function hotOffsets(buf: Buffer): number[] {
  const e = ElfFile.open(new BufferByteSource(buf, "seed"));
  const h = e.header;
  const out: number[] = [];
  for (let i = 0; i < 64; i++) out.push(i);
  for (let i = 0; i < h.phnum * h.phentsize; i++) out.push(h.phoff + i);
  for (let i = 0; i < h.shnum * h.shentsize; i++) out.push(h.shoff + i);
  return out.filter((o) => o < buf.length);
}

test("mutated ELF files give ElfError or parse; nothing else", { timeout: 120_000 }, (t) => {
  let inputs = 0;
  let rejected = 0;
  const codes = new Map<string, number>();
  for (const [si, path] of SEEDS.entries()) {
    const seed = readFileSync(path);
    const hot = hotOffsets(seed);
    const rand = rng(0x9e3779b9 ^ si);
    for (let round = 0; round < ROUNDS_PER_SEED; round++) {
      const buf = Buffer.from(seed);
      const kind = round % 3;
      if (kind === 0) {
        // Flip a few bytes in the headers.
        for (let k = 0; k < 1 + Math.floor(rand() * 4); k++)
          buf[hot[Math.floor(rand() * hot.length)]!]! ^= 1 << Math.floor(rand() * 8);
      } else if (kind === 1) {
        // Overwrite a 32-bit field with an extreme value.
        const at = hot[Math.floor(rand() * hot.length)]! & ~3;
        const vals = [0, 0xffffffff, 0x7fffffff, buf.length, buf.length + 1, 0x10000];
        if (at + 4 <= buf.length) buf.writeUInt32LE(vals[Math.floor(rand() * vals.length)]!, at);
      }
      const input = kind === 2 ? buf.subarray(0, Math.floor(rand() * buf.length)) : buf;
      inputs++;
      try {
        parseEverything(input);
      } catch (err) {
        if (!(err instanceof ElfError)) {
          assert.fail(`${path} round ${round}: ${err instanceof Error ? err.stack : String(err)}`);
        }
        rejected++;
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
      }
    }
  }
  t.diagnostic(
    `${inputs} mutated inputs, ${rejected} rejected with ElfError: ${JSON.stringify(Object.fromEntries(codes))}`,
  );
  assert.ok(rejected > inputs / 10, "mutations should break a good share of inputs");
});
