// The static call graph against independent oracles: binutils `objdump -d` (branches and their targets,
// `<sym@plt>` stubs), `readelf -s/-r/-d/-n/-h/-S` (function ranges, GOT relocations, init arrays, build ids,
// entry points, exports), on C programs and a shared library compiled here and on installed Debian libraries.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ElfError } from "../elf/errors.ts";
import { FileByteSource } from "../io/byte-source.ts";
import { buildStaticGraph, MAX_EVIDENCE, type StaticGraph, type StaticGraphInput } from "./callgraph.ts";
import type { GraphNode } from "./model.ts";

const haveGcc = existsSync("/usr/bin/gcc");
const haveArm = existsSync("/usr/bin/aarch64-linux-gnu-gcc");
const LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6";

function run(tool: string, args: string[]): string {
  return execFileSync(tool, args, { encoding: "utf8", maxBuffer: 1 << 30 });
}

const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

// ---- oracles ------------------------------------------------------------------------------------------

interface Sym {
  name: string;
  value: bigint;
  size: bigint;
  type: string;
  bind: string;
  ndx: string;
  /** The preceding STT_FILE symbol's name (locals only). */
  file: string;
}

/** `readelf -sW` symbols of one table (".symtab" or ".dynsym"). */
function readelfSyms(path: string, table: ".symtab" | ".dynsym"): Sym[] {
  const out: Sym[] = [];
  let inTable = false;
  let file = "";
  for (const line of run("readelf", ["-sW", path]).split("\n")) {
    const head = /^Symbol table '([^']+)'/.exec(line);
    if (head) {
      inTable = head[1] === table;
      continue;
    }
    if (!inTable) continue;
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+\S+\s+(\S+)\s*(\S*)/.exec(line);
    if (!m) continue;
    const [, value = "", size = "", type = "", bind = "", ndx = "", rawName = ""] = m;
    const name = rawName.replace(/@.*$/, "");
    if (type === "FILE") file = name;
    out.push({ name, value: BigInt(`0x${value}`), size: BigInt(size), type, bind, ndx, file });
  }
  return out;
}

function definedFuncs(syms: Sym[]): Sym[] {
  return syms.filter((s) => (s.type === "FUNC" || s.type === "IFUNC") && s.ndx !== "UND" && s.ndx !== "ABS");
}

/** Defined GLOBAL/WEAK functions of `.dynsym`: the exports. */
function exportsOf(path: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const s of definedFuncs(readelfSyms(path, ".dynsym")))
    if (s.bind === "GLOBAL" || s.bind === "WEAK") out.set(s.name, s.value);
  return out;
}

function buildIdOf(path: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(run("readelf", ["-nW", path]));
  assert.ok(m, `${path} has a build id`);
  return m[1] ?? "";
}

interface Insn {
  addr: bigint;
  text: string;
}

interface Listing {
  insns: Insn[];
  /** Addresses of every `<label>:` block objdump prints, sorted. */
  headers: bigint[];
  /** `<sym@plt>` stubs: address → sym. */
  plt: Map<bigint, string>;
}

function objdump(path: string): Listing {
  const insns: Insn[] = [];
  const headers: bigint[] = [];
  const plt = new Map<bigint, string>();
  for (const line of run("objdump", ["-d", "-w", "--no-show-raw-insn", path]).split("\n")) {
    const h = /^([0-9a-f]+) <(.+)>:$/.exec(line);
    if (h) {
      const addr = BigInt(`0x${h[1] ?? ""}`);
      headers.push(addr);
      const p = /^(.+)@plt$/.exec(h[2] ?? "");
      if (p) plt.set(addr, p[1] ?? "");
      continue;
    }
    const i = /^\s+([0-9a-f]+):\s+(.*)$/.exec(line);
    if (i) insns.push({ addr: BigInt(`0x${i[1] ?? ""}`), text: i[2] ?? "" });
  }
  headers.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { insns, headers, plt };
}

/** GOT slot → symbol, from readelf's JUMP_SLOT / GLOB_DAT relocations. */
function gotSlots(path: string): Map<bigint, string> {
  const out = new Map<bigint, string>();
  for (const line of run("readelf", ["-rW", path]).split("\n")) {
    const m = /^([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_(?:JUMP_SLOT|GLOB_DAT)\s+[0-9a-f]+\s+([^\s@]+)/.exec(line);
    if (m) out.set(BigInt(`0x${m[1] ?? ""}`), m[2] ?? "");
    // A local IFUNC: objdump names its stub `*ABS*+0x<resolver>@plt`.
    const i = /^([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_IRELATIVE\s+([0-9a-f]+)$/.exec(line);
    if (i) out.set(BigInt(`0x${i[1] ?? ""}`), `*ABS*+0x${BigInt(`0x${i[2] ?? ""}`).toString(16)}`);
  }
  return out;
}

interface Range {
  start: bigint;
  end: bigint;
}

/**
 * Function ranges from readelf (.symtab, else .dynsym); size-0 symbols end at objdump's next label. `extra`:
 * ranges of functions no symbol names (checked on their own by checkDiscovered).
 */
function rangesOf(path: string, listing: Listing, extra: readonly Range[] = []): Range[] {
  let funcs = definedFuncs(readelfSyms(path, ".symtab"));
  if (funcs.length === 0) funcs = definedFuncs(readelfSyms(path, ".dynsym"));
  const byStart = new Map<bigint, bigint>();
  for (const f of funcs) {
    let end = f.value + f.size;
    if (f.size === 0n) end = listing.headers.find((h) => h > f.value) ?? f.value + 1n;
    const prev = byStart.get(f.value);
    if (prev === undefined || end > prev) byStart.set(f.value, end);
  }
  for (const r of extra) byStart.set(r.start, r.end);
  return [...byStart].map(([start, end]) => ({ start, end })).sort((a, b) => (a.start < b.start ? -1 : 1));
}

/** The range holding `addr`: among those starting at or before it, the last one (innermost) that ends after it. */
function containing(ranges: Range[], addr: bigint): Range | undefined {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((ranges[mid]?.start ?? 0n) <= addr) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo - 1; i >= 0 && i >= lo - 8; i--) {
    const r = ranges[i];
    if (r && addr < r.end) return r;
  }
  return undefined;
}

/**
 * Expected edges of one binary from objdump: "from -> to" → call sites. Function keys are
 * `<file>@<start>`; imports resolve through `resolve` (the importer's own export, another analysed
 * binary's export, else `ext:<file>:<sym>`).
 */
function expectedEdges(
  file: string,
  resolve: (sym: string) => string,
  extra: readonly Range[] = [],
): { direct: Map<string, Set<string>>; imports: Map<string, Set<string>> } {
  const listing = objdump(file);
  const ranges = rangesOf(file, listing, extra);
  const slots = gotSlots(file);
  const direct = new Map<string, Set<string>>();
  const imports = new Map<string, Set<string>>();
  // Local IFUNCs (IRELATIVE) bind to the function holding their resolver; other imports through `resolve`.
  const bind = (sym: string): string | undefined => {
    const abs = /^\*ABS\*\+0x([0-9a-f]+)$/.exec(sym);
    if (!abs) return resolve(sym);
    const r = containing(ranges, BigInt(`0x${abs[1] ?? ""}`));
    return r ? `${file}@${hx(r.start)}` : undefined;
  };
  const add = (m: Map<string, Set<string>>, k: string, site: bigint): void => {
    let s = m.get(k);
    if (!s) m.set(k, (s = new Set()));
    s.add(hx(site));
  };
  for (const insn of listing.insns) {
    const from = containing(ranges, insn.addr);
    if (!from) continue;
    const fromKey = `${file}@${hx(from.start)}`;
    const br = /^(?:(?:bnd|notrack|addr32)\s+)*(call|jmp|j[a-z]{1,4})\s+([0-9a-f]+) <[^>]+>/.exec(insn.text);
    if (br && !/^(jrcxz|jecxz)$/.test(br[1] ?? "")) {
      const target = BigInt(`0x${br[2] ?? ""}`);
      const stub = listing.plt.get(target);
      if (stub !== undefined) {
        const to = bind(stub);
        if (to !== undefined) add(imports, `${fromKey} -> ${to}`, insn.addr);
        continue;
      }
      const to = containing(ranges, target);
      if (!to) continue;
      if (br[1] !== "call" && to.start === from.start) continue; // a jump inside the function
      add(direct, `${fromKey} -> ${file}@${hx(to.start)}`, insn.addr);
      continue;
    }
    const got = /^(?:(?:bnd|notrack|addr32)\s+)*(call|jmp)\s+\*0x[0-9a-f]+\(%rip\)\s+#\s+([0-9a-f]+)/.exec(
      insn.text,
    );
    if (got) {
      const sym = slots.get(BigInt(`0x${got[2] ?? ""}`));
      const to = sym === undefined ? undefined : bind(sym);
      if (to !== undefined) add(imports, `${fromKey} -> ${to}`, insn.addr);
    }
  }
  return { direct, imports };
}

/** The graph's static edges in the oracle's key format. */
function graphEdges(g: StaticGraph): { direct: Map<string, string[]>; imports: Map<string, string[]> } {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const key = (n: GraphNode | undefined): string => {
    assert.ok(n);
    if (n.kind === "function") return `${n.file}@${n.address?.start ?? ""}`;
    if (n.kind === "external") return `ext:${n.file}:${n.symbol}`;
    return `init:${n.file}`;
  };
  const direct = new Map<string, string[]>();
  const imports = new Map<string, string[]>();
  for (const e of g.edges) {
    const k = `${key(byId.get(e.from))} -> ${key(byId.get(e.to))}`;
    if (e.reason === "direct-call") direct.set(k, e.evidence);
    else if (e.reason === "plt" || e.reason === "third-party") imports.set(k, e.evidence);
  }
  return { direct, imports };
}

function assertEdgesMatch(g: StaticGraph, files: string[]): { direct: number; imports: number } {
  const exported = new Map(files.map((f) => [f, exportsOf(f)]));
  const want = { direct: new Map<string, Set<string>>(), imports: new Map<string, Set<string>>() };
  for (const file of files) {
    const resolve = (sym: string): string => {
      const own = exported.get(file)?.get(sym);
      if (own !== undefined) return `${file}@${hx(own)}`;
      for (const other of files) {
        const v = exported.get(other)?.get(sym);
        if (v !== undefined) return `${other}@${hx(v)}`;
      }
      return `ext:${file}:${sym}`;
    };
    const e = expectedEdges(file, resolve, discoveredRanges(g, file));
    for (const [k, v] of e.direct) want.direct.set(k, v);
    for (const [k, v] of e.imports) want.imports.set(k, v);
  }
  const got = graphEdges(g);
  const evidence = (s: Set<string>): string[] => [...s].sort().slice(0, MAX_EVIDENCE);
  assert.deepEqual([...got.direct.keys()].sort(), [...want.direct.keys()].sort(), "direct-call edges");
  assert.deepEqual([...got.imports.keys()].sort(), [...want.imports.keys()].sort(), "plt edges");
  for (const [k, v] of want.direct) assert.deepEqual(got.direct.get(k), evidence(v), `evidence of ${k}`);
  for (const [k, v] of want.imports) assert.deepEqual(got.imports.get(k), evidence(v), `evidence of ${k}`);
  return { direct: want.direct.size, imports: want.imports.size };
}

/** The graph's `sub_<hex>` function nodes of `file` (functions no symbol names), as ranges. */
function discoveredRanges(g: StaticGraph, file: string): Range[] {
  return g.nodes
    .filter((n) => n.file === file && n.kind === "function" && n.symbol.startsWith("sub_"))
    .map((n) => ({ start: BigInt(n.address?.start ?? "0"), end: BigInt(n.address?.end ?? "0") }));
}

/**
 * What the loader runs at exit: `.fini_array` entries (raw slots, or their RELATIVE relocation's addend) and
 * DT_FINI, from readelf -S/-x/-r/-d.
 */
function finiEntries(path: string): bigint[] {
  const out: bigint[] = [];
  const m = /\.fini_array\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(run("readelf", ["-SW", path]));
  if (m) {
    const lo = BigInt(`0x${m[1] ?? ""}`);
    const hi = lo + BigInt(`0x${m[2] ?? ""}`);
    for (const r of run("readelf", ["-rW", path]).matchAll(
      /^([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_RELATIVE\s+([0-9a-f]+)$/gm,
    )) {
      const at = BigInt(`0x${r[1] ?? ""}`);
      if (at >= lo && at < hi) out.push(BigInt(`0x${r[2] ?? ""}`));
    }
    for (const row of run("readelf", ["-x", ".fini_array", path]).matchAll(
      /^\s+0x[0-9a-f]+ ((?:[0-9a-f]{8} ?)+)/gm,
    )) {
      const bytes = Buffer.from((row[1] ?? "").replace(/\s/g, ""), "hex");
      for (let i = 0; i + 8 <= bytes.length; i += 8) out.push(bytes.readBigUInt64LE(i));
    }
  }
  const dt = /\(FINI\)\s+0x([0-9a-f]+)/.exec(run("readelf", ["-dW", path]));
  if (dt) out.push(BigInt(`0x${dt[1] ?? ""}`));
  return out;
}

/** `.eh_frame` FDE ranges from `readelf --debug-dump=frames`, sorted. */
function fdesOf(path: string): Range[] {
  const out: Range[] = [];
  // readelf exits 1 on a warning about some CFA instruction (libc.so.6), after printing every FDE.
  const text = spawnSync("readelf", ["-wf", path], { encoding: "utf8", maxBuffer: 1 << 30 }).stdout;
  for (const m of text.matchAll(/ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.([0-9a-f]+)$/gm))
    out.push({ start: BigInt(`0x${m[1] ?? ""}`), end: BigInt(`0x${m[2] ?? ""}`) });
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** Executable sections other than the PLTs, from `readelf -S`, with their file offsets. */
function codeSections(path: string): (Range & { offset: number })[] {
  const out: (Range & { offset: number })[] = [];
  for (const m of run("readelf", ["-SW", path]).matchAll(
    /^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+(\S*X\S*)\s/gm,
  )) {
    if ([".plt", ".plt.sec", ".plt.got"].includes(m[1] ?? "")) continue;
    const start = BigInt(`0x${m[2] ?? ""}`);
    out.push({ start, end: start + BigInt(`0x${m[4] ?? ""}`), offset: parseInt(m[3] ?? "", 16) });
  }
  return out;
}

/**
 * The discovered (`sub_<hex>`) functions of `file` against objdump, readelf -S (code sections) and readelf's
 * FDEs: each lies in code and in no named function, is justified (a branch target or the start of the FDE
 * holding one, the entry point, main or an init target), ends where the next function, its FDE or its section
 * ends; and every `call` objdump shows into code outside the named functions lands on one's start (or in
 * its FDE). Returns the number of discovered functions and of calls checked.
 */
function checkDiscovered(g: StaticGraph, file: string): { subs: number; calls: number } {
  const listing = objdump(file);
  const named = rangesOf(file, listing);
  const fdes = fdesOf(file);
  const secs = codeSections(file);
  const fnNodes = g.nodes.filter((n) => n.file === file && n.kind === "function");
  const subs = discoveredRanges(g, file).sort((a, b) => (a.start < b.start ? -1 : 1));
  const subStarts = new Set(subs.map((r) => r.start));
  const allStarts = fnNodes.map((n) => BigInt(n.address?.start ?? "0")).sort((a, b) => (a < b ? -1 : 1));
  const inRange = (rs: Range[], a: bigint): Range | undefined => rs.find((r) => a >= r.start && a < r.end);
  const fdeOf = (a: bigint): Range | undefined => containing(fdes, a);
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const justified = new Set<bigint>();
  const entry = /Entry point address:\s+0x([0-9a-f]+)/.exec(run("readelf", ["-hW", file]));
  if (entry) justified.add(BigInt(`0x${entry[1] ?? ""}`));
  for (const a of finiEntries(file)) justified.add(a);
  for (const r of g.roots)
    if (r.reason === "main") justified.add(BigInt(byId.get(r.node)?.address?.start ?? "0"));
  for (const e of g.edges)
    if (e.reason === "init-root") justified.add(BigInt(byId.get(e.to)?.address?.start ?? "0"));
  const calls: bigint[] = [];
  for (const insn of listing.insns) {
    const br = /^(?:(?:bnd|notrack|addr32)\s+)*(call|jmp|j[a-z]{1,4})\s+([0-9a-f]+) </.exec(insn.text);
    if (!br) continue;
    const t = BigInt(`0x${br[2] ?? ""}`);
    justified.add(t);
    const f = fdeOf(t);
    if (f) justified.add(f.start);
    // Calls from the code of some function (named or discovered) into code outside the named functions.
    if (br[1] !== "call" || listing.plt.has(t) || !inRange(secs, t) || containing(named, t)) continue;
    if (containing(named, insn.addr) ?? containing(subs, insn.addr)) calls.push(t);
  }
  for (const r of subs) {
    const start = hx(r.start);
    const node = fnNodes.find((n) => n.address?.start === start);
    assert.equal(node?.symbol, `sub_${start.slice(2)}`);
    assert.ok(!containing(named, r.start), `${start} is in no named function`);
    const sec = inRange(secs, r.start);
    assert.ok(sec, `${start} is in a code section`);
    assert.ok(
      justified.has(r.start),
      `${start}: a branch target, an FDE start, the entry, main, an init or fini`,
    );
    let end = sec.end;
    const next = allStarts.find((s) => s > r.start);
    if (next !== undefined && next < end) end = next;
    const fde = fdeOf(r.start);
    if (fde && fde.end < end) end = fde.end;
    assert.equal(hx(r.end), hx(end), `end of ${start}`);
  }
  for (const t of calls) {
    const f = fdeOf(t);
    const s = f && !containing(named, f.start) && inRange(secs, f.start) === inRange(secs, t) ? f.start : t;
    assert.ok(subStarts.has(s), `call target ${hx(t)} is discovered (at ${hx(s)})`);
  }
  return { subs: subs.length, calls: calls.length };
}

function input(file: string, purl?: string): StaticGraphInput {
  const i: StaticGraphInput = { file, bytes: readFileSync(file) };
  if (purl !== undefined) i.purl = purl;
  return i;
}

function nodeBy(g: StaticGraph, file: string, symbol: string): GraphNode {
  const n = g.nodes.filter((x) => x.file === file && x.symbol === symbol);
  assert.equal(n.length, 1, `one node ${symbol} in ${file}`);
  return n[0] as GraphNode;
}

// ---- fixtures -----------------------------------------------------------------------------------------

const LIB_C = `
int lib_helper(int x) { return x * 7 + 1; }
static __attribute__((noinline, noipa)) int lib_static(int x) { return x ^ 0x55; }
int lib_fn(int x) { return lib_helper(x) + lib_static(x); }
__attribute__((weak)) int lib_weak(int x) { return x + 2; }
`;
const MAIN_C = `
#include <stdio.h>
#include <string.h>
int lib_fn(int);
int tu2_fn(int);
int cond_tail(int);
__attribute__((noinline, noipa)) int b(int x) { return x * 2 + 1; }
__attribute__((noinline, noipa)) int a(int x) { return b(x) + 3; }
__attribute__((noinline, noipa)) int c(int x) { return x - 1; }
__attribute__((noinline, noipa)) int t(int x) { return b(x); }
static __attribute__((noinline, noipa)) int dup(int x) { return x * 3 + 1; }
__attribute__((noinline, noipa)) void copy(char *d, const char *s, size_t n) { memcpy(d, s, n); }
int (*volatile fp)(int) = c;
__attribute__((constructor)) static void init_me(void) { puts("init"); }
int main(int argc, char **argv) {
  (void)argv;
  puts("hi");
  int r = a(argc) + fp(argc) + lib_fn(argc) + dup(argc) + tu2_fn(argc) + t(argc) + cond_tail(argc);
  char buf[8];
  copy(buf, "1234567", (size_t)(argc & 7) + 1);
  printf("%d %c\\n", r, buf[0]);
  return r & 1;
}
`;
const TU2_C = `
static __attribute__((noinline, noipa)) int dup(int x) { return x * 5 + 2; }
int tu2_fn(int x) { return dup(x) + 1; }
__attribute__((noinline, noipa)) int far_target(int x);
/* A conditional tail call, Jcc rel32 (0F 8x) leaving the function (GCC does not emit them; clang does). */
#ifdef __x86_64__
__attribute__((naked)) int cond_tail(int x) {
  __asm__("cmp $5, %edi\\n\\t{disp32} jg far_target\\n\\tmov %edi, %eax\\n\\tret");
}
#else
int cond_tail(int x) { return x > 5 ? far_target(x) : x; }
#endif
__attribute__((noinline, noipa)) int far_target(int x) { return x * 11; }
`;

/** Build flavours: the default (PIE), non-PIE, IBT PLTs (.plt.sec), -fno-plt (GOT calls; ld relaxes local ones to `addr32 call`), -O0. */
const FLAVOURS: Record<string, string[]> = {
  pie: ["-O2", "-Wl,--export-dynamic-symbol=b"],
  nopie: ["-O2", "-no-pie"],
  ibt: ["-O2", "-fcf-protection=full", "-Wl,-z,ibtplt"],
  noplt: ["-O2", "-fno-plt"],
  O0: ["-O0"],
};

let dir = "";
const prog = (f: string): string => join(dir, f, "prog");
const lib = (f: string): string => join(dir, f, "libt.so");

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-callgraph-"));
  writeFileSync(join(dir, "lib.c"), LIB_C);
  writeFileSync(join(dir, "main.c"), MAIN_C);
  writeFileSync(join(dir, "tu2.c"), TU2_C);
  if (!haveGcc) return;
  for (const [name, flags] of Object.entries(FLAVOURS)) {
    const out = join(dir, name);
    run("mkdir", ["-p", out]);
    const noPie = flags.filter((f) => f !== "-no-pie");
    run("gcc", [...noPie, "-shared", "-fPIC", "-o", lib(name), join(dir, "lib.c")]);
    run("gcc", [...flags, "-o", prog(name), join(dir, "main.c"), join(dir, "tu2.c"), `-L${out}`, "-lt"]);
  }
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---- tests --------------------------------------------------------------------------------------------

describe("buildStaticGraph on programs compiled here", { skip: !haveGcc && "no gcc" }, () => {
  for (const flavour of Object.keys(FLAVOURS)) {
    test(`${flavour}: every edge objdump shows, and no other (program + library)`, () => {
      const files = [prog(flavour), lib(flavour)];
      const g = buildStaticGraph(files.map((f) => input(f)));
      const n = assertEdgesMatch(g, files);
      assert.ok(n.direct >= 6 && n.imports >= 4, JSON.stringify(n));
    });

    test(`${flavour}: the program alone (imports to external nodes)`, () => {
      const g = buildStaticGraph([input(prog(flavour))]);
      assertEdgesMatch(g, [prog(flavour)]);
    });
  }

  for (const flavour of Object.keys(FLAVOURS)) {
    test(`${flavour}, stripped: the discovered functions and their edges are the unstripped build's`, () => {
      const p = prog(flavour);
      const sp = `${p}.stripped`;
      run("strip", ["-o", sp, p]);
      assert.deepEqual(definedFuncs(readelfSyms(sp, ".symtab")), [], "no .symtab left");
      const full = buildStaticGraph([input(p)]);
      const bare = buildStaticGraph([input(sp)]);

      // Oracle: the functions nm/readelf name in the unstripped build, reached from the entry point, main,
      // the init and fini entries and the stripped build's .dynsym functions through objdump's direct
      // branches.
      const listing = objdump(p);
      const ranges = rangesOf(p, listing);
      const syms = readelfSyms(p, ".symtab");
      const mainSym = syms.find((x) => x.name === "main" && x.type === "FUNC");
      assert.ok(mainSym);
      const entry = /Entry point address:\s+0x([0-9a-f]+)/.exec(run("readelf", ["-hW", p]));
      assert.ok(entry);
      const fullById = new Map(full.nodes.map((n) => [n.id, n]));
      const seeds = [BigInt(`0x${entry[1] ?? ""}`), mainSym.value];
      for (const e of full.edges)
        if (e.reason === "init-root") seeds.push(BigInt(fullById.get(e.to)?.address?.start ?? "0"));
      for (const x of definedFuncs(readelfSyms(sp, ".dynsym"))) seeds.push(x.value);
      seeds.push(...finiEntries(p));
      const reached = new Set<bigint>();
      const work = seeds.map((a) => containing(ranges, a)).filter((r) => r !== undefined);
      for (let r = work.pop(); r; r = work.pop()) {
        if (reached.has(r.start)) continue;
        reached.add(r.start);
        for (const insn of listing.insns) {
          if (insn.addr < r.start || insn.addr >= r.end) continue;
          const br = /^(?:(?:bnd|notrack|addr32)\s+)*(call|jmp|j[a-z]{1,4})\s+([0-9a-f]+) </.exec(insn.text);
          if (!br) continue;
          const t = BigInt(`0x${br[2] ?? ""}`);
          const to = listing.plt.has(t) ? undefined : containing(ranges, t);
          if (to && (br[1] === "call" || to.start !== r.start)) work.push(to);
        }
      }
      const starts = (g: StaticGraph): string[] =>
        g.nodes
          .filter((n) => n.kind === "function")
          .map((n) => n.address?.start ?? "")
          .sort();
      assert.deepEqual(starts(bare), [...reached].map((a) => hx(a)).sort(), "functions reached");
      assert.ok(reached.size < starts(full).length, "c (called through a pointer only) is not found");

      // Each discovered function is the unstripped one: same id, named sub_<hex>; same range and bytes when
      // an FDE bounds it (else it runs on to the next function found: crtstuff's frame_dummy over c).
      const dynNames = new Set(definedFuncs(readelfSyms(sp, ".dynsym")).map((x) => hx(x.value)));
      const fullAt = new Map(full.nodes.map((n) => [n.address?.start ?? n.id, n]));
      const fdeStarts = new Set(fdesOf(sp).map((r) => hx(r.start)));
      const secs = codeSections(sp);
      const file = readFileSync(sp);
      let bounded = 0;
      for (const n of bare.nodes.filter((x) => x.kind === "function")) {
        const start = n.address?.start ?? "";
        const f = fullAt.get(start);
        assert.ok(f, start);
        assert.equal(n.id, f.id);
        if (!dynNames.has(start)) assert.equal(n.symbol, `sub_${start.slice(2)}`);
        if (fdeStarts.has(start) || dynNames.has(start)) {
          bounded++;
          assert.deepEqual(n.address, f.address, `range of ${f.symbol}`);
          assert.equal(n.symbol_digest, f.symbol_digest, `bytes of ${f.symbol}`);
          continue;
        }
        const [lo, hi] = [BigInt(start), BigInt(n.address?.end ?? "0")];
        assert.ok(hi >= BigInt(f.address?.end ?? "0"), `${f.symbol} ends at or after its symbol's end`);
        const sec = secs.find((x) => lo >= x.start && lo < x.end);
        assert.ok(sec);
        const off = sec.offset + Number(lo - sec.start);
        const bytes = file.subarray(off, off + Number(hi - lo));
        assert.equal(n.symbol_digest, `sha256:${createHash("sha256").update(bytes).digest("hex")}`);
      }
      assert.ok(bounded >= 10, `${bounded} functions bounded by their FDE`);

      // Edges, by address: the unstripped graph's edges out of the functions found, evidence included.
      const key = (g: StaticGraph): string[] => {
        const byId = new Map(g.nodes.map((n) => [n.id, n]));
        const k = (id: string): string => {
          const n = byId.get(id);
          return n?.kind === "function"
            ? (n.address?.start ?? "")
            : n?.kind === "external"
              ? n.symbol
              : "<init>";
        };
        return g.edges
          .filter((e) => k(e.from) === "<init>" || reached.has(BigInt(k(e.from))))
          .map((e) => `${k(e.from)} -> ${k(e.to)} ${e.reason} ${e.evidence.join(",")}`)
          .sort();
      };
      const want = key(full);
      assert.deepEqual(key(bare), want);
      assert.ok(bare.edges.filter((e) => e.reason === "direct-call").length >= 7, JSON.stringify(want));

      // Roots: the entry point, and main (found from _start's __libc_start_main call).
      const roots = (g: StaticGraph, reason: string): string[] => {
        const byId = new Map(g.nodes.map((n) => [n.id, n]));
        return g.roots
          .filter((r) => r.reason === reason)
          .map((r) => byId.get(r.node)?.address?.start ?? r.node);
      };
      assert.deepEqual(roots(bare, "main"), [hx(mainSym.value)]);
      assert.deepEqual(roots(bare, "entry"), [hx(BigInt(`0x${entry[1] ?? ""}`))]);
      assert.deepEqual(
        bare.warnings.filter((w) => w.includes("in no function")),
        [],
      );
      checkDiscovered(bare, sp);
    });
  }

  test("main → a → b, tail call t → b, no static edge into c", () => {
    const p = prog("pie");
    const g = buildStaticGraph([input(p), input(lib("pie"))]);
    const has = (from: string, to: string): boolean =>
      g.edges.some(
        (e) => e.from === nodeBy(g, p, from).id && e.to === nodeBy(g, p, to).id && e.reason === "direct-call",
      );
    assert.ok(has("main", "a"));
    assert.ok(has("a", "b"));
    assert.ok(has("t", "b"));
    const c = nodeBy(g, p, "c");
    assert.deepEqual(
      g.edges.filter((e) => e.to === c.id),
      [],
    );
    for (const e of g.edges) {
      assert.equal(e.phase, "static");
      assert.equal(e.confidence, e.reason === "plt" || e.reason === "third-party" ? 0.9 : 1);
    }
  });

  test("lib_fn: into libt.so's node when analysed, else ext:<program build id>:lib_fn", () => {
    const p = prog("pie");
    const l = lib("pie");
    const both = buildStaticGraph([input(p), input(l)]);
    const main = nodeBy(both, p, "main");
    const libFn = nodeBy(both, l, "lib_fn");
    assert.equal(libFn.id, `fn:${buildIdOf(l)}:${hx(exportsOf(l).get("lib_fn") ?? 0n)}`);
    assert.ok(both.edges.some((e) => e.from === main.id && e.to === libFn.id && e.reason === "plt"));

    const alone = buildStaticGraph([input(p)]);
    const ext = `ext:${buildIdOf(p)}:lib_fn`;
    const node = alone.nodes.find((n) => n.id === ext);
    assert.equal(node?.kind, "external");
    assert.equal(node.symbol, "lib_fn");
    assert.ok(
      alone.edges.some((e) => e.from === nodeBy(alone, p, "main").id && e.to === ext && e.reason === "plt"),
    );
  });

  test("puts goes to an external node; different purls make lib_fn third-party", () => {
    const p = prog("pie");
    const l = lib("pie");
    const g = buildStaticGraph([input(p, "pkg:deb/debian/app@1"), input(l, "pkg:deb/debian/libt@2")]);
    const main = nodeBy(g, p, "main");
    const puts = `ext:${buildIdOf(p)}:puts`;
    assert.ok(g.edges.some((e) => e.from === main.id && e.to === puts && e.reason === "plt"));
    const libFn = nodeBy(g, l, "lib_fn");
    assert.ok(g.edges.some((e) => e.from === main.id && e.to === libFn.id && e.reason === "third-party"));
    assert.equal(libFn.purl, "pkg:deb/debian/libt@2");
    const same = buildStaticGraph([input(p, "pkg:deb/debian/x@1"), input(l, "pkg:deb/debian/x@1")]);
    assert.ok(same.edges.some((e) => e.to === nodeBy(same, l, "lib_fn").id && e.reason === "plt"));
  });

  test(
    "with libc analysed too: puts and versioned memcpy bind to libc's functions, libc's exports are roots",
    {
      skip: !existsSync(LIBC) && "no libc.so.6",
    },
    () => {
      const p = prog("pie");
      const g = buildStaticGraph([input(p), input(lib("pie")), input(LIBC)]);
      // Oracle: readelf --dyn-syms of libc (versioned names) and of the program (which version it imports).
      const dyn = (path: string): string[] => run("readelf", ["--dyn-syms", "-W", path]).split("\n");
      const want = (name: string): string => {
        const imported = dyn(p).find((l) => new RegExp(` UND ${name}@`).test(l));
        assert.ok(imported, `${name} is imported`);
        const version = /@(\S+)/.exec(imported.slice(imported.indexOf(" UND ")))?.[1] ?? "";
        const def = dyn(LIBC).find(
          (l) => / I?FUNC /.test(l) && !/ UND /.test(l) && new RegExp(` ${name}@@?${version}(\\s|$)`).test(l),
        );
        assert.ok(def, `${name}@${version} defined in libc`);
        return hx(BigInt(`0x${(/:\s+([0-9a-f]+)/.exec(def) ?? [])[1] ?? ""}`));
      };
      const byId = new Map(g.nodes.map((n) => [n.id, n]));
      const target = (from: string): string[] => {
        const f = nodeBy(g, p, from).id;
        return g.edges
          .filter((x) => x.from === f && x.reason === "plt" && byId.get(x.to)?.file === LIBC)
          .map((x) => byId.get(x.to)?.address?.start ?? "");
      };
      const puts = want("puts");
      assert.ok(target("main").includes(puts));
      // memcpy@@GLIBC_2.14 (an IFUNC: the edge goes to its resolver), not memcpy@GLIBC_2.2.5 at another address.
      assert.deepEqual(target("copy"), [want("memcpy")]);
      const putsNode = g.nodes.find((n) => n.file === LIBC && n.address?.start === puts);
      assert.ok(putsNode && g.roots.some((r) => r.node === putsNode.id && r.reason === "exported"));
      assert.ok(!byId.has(`ext:${buildIdOf(p)}:puts`), "no external puts node when libc is analysed");
    },
  );

  test("init-root edges: exactly .init_array (RELATIVE addends) and DT_INIT, including init_me", () => {
    for (const flavour of ["pie", "nopie"]) {
      const p = prog(flavour);
      const g = buildStaticGraph([input(p)]);
      const init = `init:${buildIdOf(p)}`;
      // Oracle: readelf -S (.init_array bounds), -r (RELATIVE slots), -x (raw slots), -d (DT_INIT).
      const secs = run("readelf", ["-SW", p]);
      const m = /\.init_array\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(secs);
      assert.ok(m);
      const lo = BigInt(`0x${m[1] ?? ""}`);
      const hi = lo + BigInt(`0x${m[2] ?? ""}`);
      const want = new Set<string>();
      const relocs = run("readelf", ["-rW", p]);
      for (const r of relocs.matchAll(/^([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_RELATIVE\s+([0-9a-f]+)$/gm)) {
        const at = BigInt(`0x${r[1] ?? ""}`);
        if (at >= lo && at < hi) want.add(hx(BigInt(`0x${r[2] ?? ""}`)));
      }
      if (flavour === "nopie") {
        const dump = run("readelf", ["-x", ".init_array", p]);
        for (const row of dump.matchAll(/^\s+0x[0-9a-f]+ ((?:[0-9a-f]{8} ?)+)/gm)) {
          const bytes = Buffer.from((row[1] ?? "").replace(/\s/g, ""), "hex");
          for (let i = 0; i + 8 <= bytes.length; i += 8) want.add(hx(bytes.readBigUInt64LE(i)));
        }
      }
      const dtInit = /\(INIT\)\s+0x([0-9a-f]+)/.exec(run("readelf", ["-dW", p]));
      assert.ok(dtInit);
      want.add(hx(BigInt(`0x${dtInit[1] ?? ""}`)));
      const byId = new Map(g.nodes.map((n) => [n.id, n]));
      const got = g.edges.filter((e) => e.reason === "init-root").map((e) => byId.get(e.to)?.address?.start);
      assert.ok(g.edges.filter((e) => e.reason === "init-root").every((e) => e.from === init));
      assert.deepEqual(got.sort(), [...want].sort(), flavour);
      const initMe = nodeBy(g, p, "init_me");
      assert.ok(want.has(initMe.address?.start ?? ""), `${flavour}: init_me is in .init_array`);
      const initNode = byId.get(init);
      assert.equal(initNode?.kind, "synthetic");
      assert.equal(initNode.symbol, "<init>");
    }
  });

  test("a conditional tail call (Jcc rel32) is a direct-call edge", () => {
    const p = prog("pie");
    const g = buildStaticGraph([input(p)]);
    const from = nodeBy(g, p, "cond_tail");
    const to = nodeBy(g, p, "far_target");
    const jcc = objdump(p).insns.filter((i) =>
      new RegExp(`^j(?!mp)[a-z]+\\s+${(to.address?.start ?? "").slice(2)} <far_target>`).test(i.text),
    );
    assert.equal(jcc.length, 1, "objdump shows one conditional jump to far_target");
    const edge = g.edges.find((e) => e.from === from.id && e.to === to.id);
    assert.equal(edge?.reason, "direct-call");
    assert.deepEqual(
      edge.evidence,
      jcc.map((i) => hx(i.addr)),
    );
  });

  test("init_array slots left zero (RELATIVE relocations only, as lld writes them): same init edges", () => {
    const p = prog("pie");
    const bytes = new Uint8Array(readFileSync(p));
    const m = /\.init_array\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(run("readelf", ["-SW", p]));
    assert.ok(m);
    const off = parseInt(m[1] ?? "", 16);
    const size = parseInt(m[2] ?? "", 16);
    assert.ok(bytes.subarray(off, off + size).some((b) => b !== 0));
    bytes.fill(0, off, off + size);
    const init = (g: StaticGraph): string[] =>
      g.edges.filter((e) => e.reason === "init-root").map((e) => e.to);
    const zeroed = buildStaticGraph([{ file: p, bytes }]);
    const orig = buildStaticGraph([input(p)]);
    assert.ok(init(orig).includes(nodeBy(orig, p, "init_me").id));
    assert.deepEqual(init(zeroed), init(orig));
  });

  test("roots: main, entry (_start), <init> per binary, the library's exports", () => {
    const p = prog("pie");
    const l = lib("pie");
    const g = buildStaticGraph([input(p), input(l)]);
    const byId = new Map(g.nodes.map((n) => [n.id, n]));
    const roots = (reason: string, file: string): string[] =>
      g.roots
        .filter((r) => r.reason === reason && byId.get(r.node)?.file === file)
        .map((r) => byId.get(r.node)?.address?.start ?? r.node)
        .sort();
    const entry = /Entry point address:\s+0x([0-9a-f]+)/.exec(run("readelf", ["-hW", p]));
    assert.ok(entry);
    assert.deepEqual(roots("entry", p), [hx(BigInt(`0x${entry[1] ?? ""}`))]);
    assert.deepEqual(roots("main", p), [nodeBy(g, p, "main").address?.start]);
    assert.ok(exportsOf(p).has("b"), "the program exports b (--export-dynamic-symbol)");
    assert.deepEqual(roots("exported", p), [], "a program (PT_INTERP) has no exported roots");
    const exports = [...exportsOf(l).values()].map((v) => hx(v)).sort();
    assert.ok(exports.length >= 3);
    assert.deepEqual(roots("exported", l), exports);
    assert.deepEqual(roots("init", p), [`init:${buildIdOf(p)}`]);
    assert.deepEqual(roots("init", l), [`init:${buildIdOf(l)}`]);
  });

  test("two static functions named dup: two nodes, each called from its own translation unit", () => {
    const p = prog("pie");
    const g = buildStaticGraph([input(p)]);
    const dups = g.nodes.filter((n) => n.symbol === "dup");
    assert.equal(dups.length, 2);
    assert.notEqual(dups[0]?.id, dups[1]?.id);
    const syms = readelfSyms(p, ".symtab").filter((s) => s.name === "dup");
    const inMain = syms.find((s) => s.file === "main.c");
    const inTu2 = syms.find((s) => s.file === "tu2.c");
    assert.ok(inMain && inTu2);
    const id = (s: Sym): string => `fn:${buildIdOf(p)}:${hx(s.value)}`;
    const calls = (from: string, to: string): boolean =>
      g.edges.some((e) => e.from === nodeBy(g, p, from).id && e.to === to && e.reason === "direct-call");
    assert.ok(calls("main", id(inMain)));
    assert.ok(calls("tu2_fn", id(inTu2)));
    assert.ok(!calls("main", id(inTu2)));
  });

  test("nodes: one per defined function, symbol_digest = sha256 of its bytes, sorted outputs", () => {
    const p = prog("pie");
    const g = buildStaticGraph([input(p)]);
    const funcs = new Set(definedFuncs(readelfSyms(p, ".symtab")).map((s) => hx(s.value)));
    const fnNodes = g.nodes.filter((n) => n.kind === "function");
    assert.deepEqual(fnNodes.map((n) => n.address?.start).sort(), [...funcs].sort());
    const bid = buildIdOf(p);
    for (const n of fnNodes) {
      assert.equal(n.id, `fn:${bid}:${n.address?.start ?? ""}`);
      assert.equal(n.build_id, bid);
      assert.equal(n.file, p);
    }
    // main's bytes located independently: readelf's .text address/offset and st_size.
    const text = /\.text\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(run("readelf", ["-SW", p]));
    assert.ok(text);
    const main = readelfSyms(p, ".symtab").find((s) => s.name === "main");
    assert.ok(main);
    const off = Number(main.value - BigInt(`0x${text[1] ?? ""}`)) + parseInt(text[2] ?? "", 16);
    const bytes = readFileSync(p).subarray(off, off + Number(main.size));
    assert.equal(
      nodeBy(g, p, "main").symbol_digest,
      `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    );
    const sortedBy = <T>(xs: T[], k: (x: T) => string): boolean =>
      xs.every((x, i) => i === 0 || k(xs[i - 1] as T) < k(x));
    assert.ok(sortedBy(g.nodes, (n) => n.id));
    assert.ok(sortedBy(g.edges, (e) => e.id));
    assert.ok(sortedBy(g.roots, (r) => `${r.node}\u0000${r.reason}`));
    for (const e of g.edges) assert.deepEqual(e.evidence, [...e.evidence].sort());
    assert.deepEqual(g.arch, ["x86_64"]);
    assert.deepEqual(g.inputs, [
      { file: p, build_id: bid, sha256: createHash("sha256").update(readFileSync(p)).digest("hex") },
    ]);
  });

  test("input order does not matter; a ByteSource gives the same graph as bytes", () => {
    const p = prog("ibt");
    const l = lib("ibt");
    const a = buildStaticGraph([input(p, "pkg:a"), input(l, "pkg:b")]);
    const b = buildStaticGraph([input(l, "pkg:b"), input(p, "pkg:a")]);
    assert.deepEqual(a, b);
    assert.equal(JSON.stringify(a), JSON.stringify(b));
    const src = new FileByteSource(p);
    try {
      const c = buildStaticGraph([{ file: p, bytes: src, purl: "pkg:a" }, input(l, "pkg:b")]);
      assert.equal(JSON.stringify(c), JSON.stringify(a));
    } finally {
      src.close();
    }
  });

  test("truncated or non-ELF input: an ElfError naming the file", () => {
    const bytes = readFileSync(prog("pie"));
    for (const [name, data] of [
      ["cut-half", bytes.subarray(0, bytes.length >> 1)],
      ["cut-header", bytes.subarray(0, 40)],
      ["not-elf", Buffer.from("#!/bin/sh\necho hi\n")],
    ] as const) {
      assert.throws(
        () => buildStaticGraph([input(prog("pie")), { file: `bad/${name}`, bytes: data }]),
        (err: unknown) => {
          assert.ok(err instanceof ElfError, String(err));
          assert.ok(err.message.startsWith(`bad/${name}: `), err.message);
          assert.equal(err.file, `bad/${name}`);
          return true;
        },
      );
    }
  });

  test(
    "aarch64: function nodes and roots, no edges, a warning naming the architecture",
    { skip: !haveArm && "no aarch64 gcc" },
    () => {
      const p = join(dir, "prog.arm64");
      run("aarch64-linux-gnu-gcc", [
        "-O2",
        "-o",
        p,
        join(dir, "main.c"),
        join(dir, "tu2.c"),
        join(dir, "lib.c"),
      ]);
      const g = buildStaticGraph([input(p), input(prog("pie"))]);
      const arm = g.nodes.filter((n) => n.file === p && n.kind === "function");
      const funcs = new Set(definedFuncs(readelfSyms(p, ".symtab")).map((s) => hx(s.value)));
      assert.deepEqual(arm.map((n) => n.address?.start).sort(), [...funcs].sort());
      const armIds = new Set(g.nodes.filter((n) => n.file === p).map((n) => n.id));
      assert.deepEqual(
        g.edges.filter((e) => armIds.has(e.from)),
        [],
      );
      assert.ok(g.warnings.some((w) => w.includes(p) && w.includes("aarch64")));
      assert.ok(g.roots.some((r) => r.reason === "main" && armIds.has(r.node)));
      assert.deepEqual(g.arch, ["aarch64", "x86_64"]);
      assert.ok(g.edges.length > 0, "the x86-64 program still has its edges");
    },
  );
});

describe("buildStaticGraph on installed Debian libraries", () => {
  for (const path of [
    "/usr/bin/ls", // a stripped PIE: only the few .dynsym functions (gnulib's obstack) are nodes
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    LIBC,
  ]) {
    test(`${path}: edges equal objdump's`, { skip: !existsSync(path) && "not installed" }, (t) => {
      const t0 = performance.now();
      const g = buildStaticGraph([input(path)]);
      const ms = performance.now() - t0;
      t.diagnostic(
        `${path}: ${g.nodes.length} nodes, ${g.edges.length} edges, ${g.warnings.length} warnings in ${ms.toFixed(0)} ms`,
      );
      const d = checkDiscovered(g, path);
      t.diagnostic(`discovered: ${d.subs} sub_ functions, ${d.calls} calls into unnamed code checked`);
      const n = assertEdgesMatch(g, [path]);
      t.diagnostic(`oracle: ${n.direct} direct-call, ${n.imports} plt edges`);
      assert.ok(n.imports > 0);
      // Stripped: the function table is .dynsym; the static functions calls reach are discovered.
      assert.ok(d.subs > 0 && d.calls > 0);
      assert.ok(n.direct > 0);
    });
  }
});
