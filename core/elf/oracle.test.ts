// Sweeps every ELF file under /usr/lib/x86_64-linux-gnu and /usr/bin and checks our parser
// against binutils: section table (readelf -S), BuildID (readelf -n), defined symbols (nm, nm -D).
import assert from "node:assert/strict";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { FileByteSource } from "../io/byte-source.ts";
import { mapLimit, run } from "../testing/run.ts";
import { STT_FILE, STT_SECTION } from "./constants.ts";
import { ElfFile } from "./elf-file.ts";
import { readBuildId } from "./notes.ts";
import { readSymbols, type SymbolTableName } from "./symbols.ts";

const ROOTS = ["/usr/lib/x86_64-linux-gnu", "/usr/bin"];

function isElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString("latin1") === "\x7fELF";
  } finally {
    closeSync(fd);
  }
}

function elfFilesUnder(root: string, out: string[] = []): string[] {
  for (const name of readdirSync(root).sort()) {
    const p = join(root, name);
    const st = lstatSync(p);
    if (st.isDirectory()) elfFilesUnder(p, out);
    else if (st.isFile() && st.size > 0 && isElf(p)) out.push(p);
  }
  return out;
}

interface OracleSection {
  index: number;
  name: string;
  addr: bigint;
  offset: number;
  size: number;
}

/** `readelf -S -W` rows: [Nr] Name Type Address Off Size ES Flg Lk Inf Al. */
function parseReadelfSections(text: string): OracleSection[] {
  const out: OracleSection[] = [];
  const re = /^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    // The null section has an empty name: readelf prints "NULL" in the type column then.
    if (m[1] === "0") continue;
    out.push({
      index: Number(m[1]),
      name: m[2]!,
      addr: BigInt(`0x${m[4]!}`),
      offset: parseInt(m[5]!, 16),
      size: parseInt(m[6]!, 16),
    });
  }
  return out;
}

/** `nm -P --defined-only` rows: name type value [size]. Keyed as "name value". */
function parseNm(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 3 || !f[0]) continue;
    out.add(`${f[0]} ${BigInt(`0x${f[2]!}`).toString(16)}`);
  }
  return out;
}

function ourDefinedSymbols(elf: ElfFile, table: SymbolTableName): Set<string> {
  const out = new Set<string>();
  for (const s of readSymbols(elf, table)) {
    if (s.shndx === 0 || s.type === STT_SECTION || s.type === STT_FILE || s.name === "") continue;
    let name = s.name;
    // binutils omits the version of a symbol named after its own version definition.
    if (s.version !== undefined && s.version !== s.name)
      name += s.versionHidden ? `@${s.version}` : `@@${s.version}`;
    out.add(`${name} ${s.value.toString(16)}`);
  }
  return out;
}

function setDiff(a: Set<string>, b: Set<string>): string[] {
  return [...a].filter((x) => !b.has(x)).slice(0, 5);
}

/** Splits multi-file readelf output at its "File: path" lines. */
function splitReadelf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const parts = text.split(/^File: (.*)$/m);
  for (let i = 1; i + 1 < parts.length; i += 2) out.set(parts[i]!, parts[i + 1]!);
  return out;
}

/** Groups `nm -A` lines ("path: rest") by path. */
function splitNm(text: string): Map<string, string> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const at = line.indexOf(": ");
    if (at < 0) continue;
    const path = line.slice(0, at);
    let list = out.get(path);
    if (!list) out.set(path, (list = []));
    list.push(line.slice(at + 2));
  }
  return new Map([...out].map(([k, v]) => [k, v.join("\n")]));
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

interface SweepResult {
  files: number;
  sections: number;
  symbols: number;
  buildIds: number;
  failures: string[];
}

/** Compares header class/byte order, sections, BuildID and defined symbols of `files` with binutils. */
async function compareWithBinutils(files: string[]): Promise<SweepResult> {
  const res: SweepResult = { files: files.length, sections: 0, symbols: 0, buildIds: 0, failures: [] };
  // Batches keep process start-up (most of the cost) down: one readelf and two nm per 40 files.
  await mapLimit(chunks(files, 40), 2, async (batch) => {
    const [re, nmS, nmD] = await Promise.all([
      run("readelf", ["-h", "-S", "-n", "-W", ...batch]),
      run("nm", ["-A", "-P", "--defined-only", ...batch]),
      run("nm", ["-A", "-P", "-D", "--defined-only", ...batch]),
    ]);
    const reBy = batch.length === 1 ? new Map([[batch[0]!, re.stdout]]) : splitReadelf(re.stdout);
    const nmSBy = splitNm(nmS.stdout);
    const nmDBy = splitNm(nmD.stdout);
    for (const path of batch) {
      const src = new FileByteSource(path);
      try {
        const elf = ElfFile.open(src);
        const text = reBy.get(path);
        assert.ok(text !== undefined, `${path}: readelf printed nothing`);
        const cls = /Class:\s+ELF(\d+)/.exec(text)?.[1];
        const endian = /Data:\s+2's complement, (little|big) endian/.exec(text)?.[1];
        assert.deepEqual(
          [String(elf.header.elfClass), elf.header.endian],
          [cls, endian],
          `${path}: class/byte order`,
        );
        const ours = elf.sections().slice(1);
        const theirs = parseReadelfSections(text);
        assert.equal(ours.length, theirs.length, `${path}: section count`);
        for (const [i, s] of theirs.entries()) {
          const o = ours[i]!;
          assert.deepEqual(
            { index: o.index, name: o.name, addr: o.addr, offset: o.offset, size: o.size },
            s,
            `${path}: section ${s.index}`,
          );
        }
        res.sections += ours.length;

        const bid = /Build ID: ([0-9a-f]+)/.exec(text)?.[1];
        assert.equal(readBuildId(elf), bid, `${path}: BuildID`);
        if (bid) res.buildIds++;

        for (const [table, by] of [
          [".symtab", nmSBy],
          [".dynsym", nmDBy],
        ] as const) {
          const mine = ourDefinedSymbols(elf, table);
          const nm = parseNm(by.get(path) ?? "");
          assert.deepEqual(
            [setDiff(mine, nm), setDiff(nm, mine)],
            [[], []],
            `${path} ${table}: [ours − nm, nm − ours] (first 5 of ${mine.size} vs ${nm.size})`,
          );
          res.symbols += mine.size;
        }
      } catch (err) {
        res.failures.push((err as Error).message);
      } finally {
        src.close();
      }
    }
  });
  return res;
}

test(
  "ELF parser agrees with readelf and nm on every ELF file of the machine",
  { timeout: 600_000 },
  async (t) => {
    const files = ROOTS.flatMap((r) => elfFilesUnder(r));
    assert.ok(files.length > 200, `expected hundreds of ELF files, found ${files.length}`);
    const r = await compareWithBinutils(files);
    t.diagnostic(
      `${r.files} ELF files, ${r.sections} sections, ${r.buildIds} BuildIDs, ${r.symbols} defined symbols compared`,
    );
    assert.deepEqual(r.failures.slice(0, 10), [], `${r.failures.length} of ${r.files} files disagree`);
  },
);

test("ELF32 and big-endian files (i686, s390x, mips builds) agree with readelf and nm", async (t) => {
  const dir = new URL("../testdata/out/", import.meta.url).pathname;
  const files = ["i686-linux-gnu", "s390x-linux-gnu", "mips-linux-gnu", "aarch64-linux-gnu"].map(
    (c) => `${dir}prog-v1.${c}`,
  );
  for (const f of files) assert.ok(existsSync(f), `${f} missing: run make -C core/testdata`);
  const r = await compareWithBinutils(files);
  const kinds = files.map((f) => {
    const e = ElfFile.open(new FileByteSource(f));
    e.close();
    return `${e.header.arch}/${e.header.elfClass}/${e.header.endian}`;
  });
  assert.deepEqual(kinds, ["x86/32/little", "s390x/64/big", "mips/32/big", "aarch64/64/little"]);
  t.diagnostic(`${r.files} files, ${r.sections} sections, ${r.symbols} symbols`);
  assert.ok(r.symbols > 20, "the cross builds have symbol tables");
  assert.deepEqual(r.failures, []);
});
