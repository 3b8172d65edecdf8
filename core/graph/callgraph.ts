/**
 * The static half of the reachability graph (richgraph-v1): function nodes, direct-call / PLT / init-root
 * edges and roots, decoded from the code of one or more ELF binaries. Deterministic: the result depends on
 * the binaries' bytes, names and purls, never on the order they are given in.
 *
 * - Functions: functionRanges() (.symtab, else .dynsym); aliases at one start are one node, named by the
 *   exported alias, else the one without leading underscores, else the shortest. x86-64: plus the functions
 *   no symbol names (stripped code, static functions of a .dynsym-only library), found as disassemblers do
 *   and named `sub_<hex start>`: see discoverFunctions().
 * - direct-call: `call rel32`, and `jmp rel32/rel8` / `Jcc rel32/rel8` leaving the function (tail calls), to the
 *   function holding the target (a target in no function: warning, no edge). Indirect calls: no edge.
 * - plt: a call or jump to a PLT stub, or `call/jmp *slot(%rip)` through a JUMP_SLOT/GLOB_DAT GOT slot (-fno-plt),
 *   binds to: the importer's own export, then its DT_NEEDED libraries in order, then the other analysed
 *   binaries by file name (GNU versions respected); else `ext:<importer>:<symbol>`. IRELATIVE stubs (local
 *   IFUNCs) go to the resolver's function. Different purls on both ends make it `third-party`.
 * - Roots: `main` (stripped programs: the first argument of the entry code's __libc_start_main call); the
 *   entry point's function; `<init>` per binary with init-root edges to .preinit_array /
 *   .init_array entries (slot value, or its RELATIVE / R_X86_64_64 relocation) and DT_INIT; the exported
 *   functions of shared libraries (ET_DYN without PT_INTERP, or with a DT_SONAME, as libc.so.6).
 *
 * x86-64 only for edges: other machines get their function nodes and roots and a warning.
 */
import { hash } from "node:crypto";

import { x86InsnLength } from "../disasm/x86-64.ts";
import {
  SHF_EXECINSTR,
  SHN_LORESERVE,
  SHN_UNDEF,
  SHT_NOBITS,
  STT_FUNC,
  STT_GNU_IFUNC,
} from "../elf/constants.ts";
import { ElfFile, type Section } from "../elf/elf-file.ts";
import { ElfError } from "../elf/errors.ts";
import { FieldReader, cString } from "../elf/fields.ts";
import { readBuildId } from "../elf/notes.ts";
import {
  R_X86_64_64,
  R_X86_64_RELATIVE,
  readRelocationSections,
  type Relocation,
  type RelocationSection,
} from "../elf/relocations.ts";
import { readSymbols, type ElfSymbol } from "../elf/symbols.ts";
import { functionRanges } from "../funcproof/functions.ts";
import { digestSource } from "../hash/digest.ts";
import { BufferByteSource, type ByteSource } from "../io/byte-source.ts";
import {
  edgeId,
  nodeId,
  type EdgeReason,
  type GraphEdge,
  type GraphNode,
  type GraphRoot,
  type RichGraphBody,
} from "./model.ts";
import { gotSymbols, PLT_SECTIONS, pltStubs, type GotSymbol } from "./plt.ts";

export interface StaticGraphInput {
  /** Path of the binary as it should appear in the graph (or the path inside an image). */
  file: string;
  /** The file's bytes, or a ByteSource reading them. A ByteSource is read, not closed. */
  bytes: Uint8Array | ByteSource;
  /** Package URL of the binary's package, when known. */
  purl?: string;
}

export interface StaticGraphOptions {
  /** Unresolved branch targets listed per binary before the rest are summarised (default 20). */
  maxWarningsPerBinary?: number;
}

export interface StaticGraph {
  /** Sorted by id. */
  nodes: GraphNode[];
  /** Sorted by id. */
  edges: GraphEdge[];
  /** Sorted by (node, reason). */
  roots: GraphRoot[];
  /** Sorted by file. `sha256` is the lower-case hex SHA-256 of the file; `build_id` "" when it has none. */
  inputs: RichGraphBody["inputs"];
  /** Distinct architectures of the inputs, sorted. */
  arch: string[];
  /** Sorted. */
  warnings: string[];
}

export const STATIC_CONFIDENCE: Readonly<
  Record<"direct-call" | "plt" | "third-party" | "init-root", number>
> = {
  "direct-call": 1,
  plt: 0.9,
  "third-party": 0.9,
  "init-root": 1,
};
/** Most call sites recorded as evidence on one edge. */
export const MAX_EVIDENCE = 16;

const EM_X86_64 = 62;
const ET_DYN = 3;
const PT_INTERP = 3;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const SHT_DYNAMIC = 6;
const SHT_INIT_ARRAY = 14;
const SHT_FINI_ARRAY = 15;
const SHT_PREINIT_ARRAY = 16;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_INIT = 12;
const DT_FINI = 13;
const DT_SONAME = 14;

interface Fn {
  start: number;
  end: number;
  /** Every symbol naming this start (aliases), sorted; `symbol` is the preferred one. */
  names: string[];
  symbol: string;
  section: Section;
  /** Offset of the function's first byte in its section's data. */
  at: number;
  id: string;
}

interface Export {
  fn: Fn;
  version?: string;
  /** False for `sym@VER` (not the default version). */
  isDefault: boolean;
}

interface Bin {
  file: string;
  purl?: string;
  elf: ElfFile;
  buildId: string;
  /** buildId, or "sha256-<16 hex>" when there is none: the key in node ids. */
  key: string;
  sha256: string;
  arch: string;
  fns: Fn[];
  starts: Float64Array;
  exports: Map<string, Export[]>;
  soname?: string;
  needed: string[];
  relocs: RelocationSection[];
  dynsym: ElfSymbol[];
  initAddrs: { addr: number; what: string }[];
  /** `.fini_array` entries and DT_FINI: no edges, only seeds for function discovery. */
  finiAddrs: number[];
  /** x86-64: PLT stubs and GOT slots (read before function discovery). */
  imports?: Imports;
  /** main found through the entry code's __libc_start_main call (stripped programs). */
  mainAddr?: number;
  warnings: string[];
}

interface EdgeAcc {
  from: string;
  to: string;
  reason: EdgeReason;
  /** Call sites, in decoding order (ascending within a function); may repeat. */
  sites: number[];
}

function hex(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Preferred name among aliases: exported, then without leading underscores, then shorter, then by code point. */
function preferredName(names: string[], exported: Set<string>): string {
  let best = names[0] ?? "";
  for (const n of names.slice(1)) {
    const e = Number(exported.has(n)) - Number(exported.has(best));
    const u = Number(best.startsWith("_")) - Number(n.startsWith("_"));
    if (
      e > 0 ||
      (e === 0 && (u > 0 || (u === 0 && (n.length < best.length || (n.length === best.length && n < best)))))
    )
      best = n;
  }
  return best;
}

function toNumber(v: bigint, file: string, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      file,
      what,
      undefined,
      `0x${v.toString(16)} is not a user-space address`,
    );
  }
  return Number(v);
}

function openBinary(input: StaticGraphInput): Bin {
  const src: ByteSource =
    input.bytes instanceof Uint8Array ? new BufferByteSource(input.bytes, input.file) : input.bytes;
  const sha256 =
    input.bytes instanceof Uint8Array ? hash("sha256", input.bytes, "hex") : digestSource(input.bytes).sha256;
  const elf = ElfFile.open(src);
  const buildId = readBuildId(elf)?.toLowerCase() ?? "";
  const key = buildId !== "" ? buildId : `sha256-${sha256.slice(0, 16)}`;
  const bin: Bin = {
    file: input.file,
    elf,
    buildId,
    key,
    sha256,
    arch: elf.header.arch,
    fns: [],
    starts: new Float64Array(0),
    exports: new Map(),
    needed: [],
    relocs: [],
    dynsym: [],
    initAddrs: [],
    finiAddrs: [],
    warnings: [],
  };
  if (input.purl !== undefined) bin.purl = input.purl;

  // Functions: one per distinct start (aliases merged), the widest range among the aliases.
  const dynsym = readSymbols(elf, ".dynsym");
  bin.dynsym = dynsym;
  const exportedNames = new Set<string>();
  for (const s of dynsym) {
    if (isExportedFunc(s.type, s.bind, s.shndx)) exportedNames.add(s.name);
  }
  const byStart = new Map<bigint, { names: string[]; end: bigint; section: Section; at: number }>();
  for (const f of functionRanges(elf).functions) {
    const g = byStart.get(f.start);
    if (g) {
      if (!g.names.includes(f.sym)) g.names.push(f.sym);
      if (f.end > g.end) g.end = f.end;
    } else {
      byStart.set(f.start, {
        names: [f.sym],
        end: f.end,
        section: f.section,
        at: f.fileOffset - f.section.offset,
      });
    }
  }
  const starts = [...byStart.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const start of starts) {
    const g = byStart.get(start);
    if (!g) continue;
    g.names.sort(cmp);
    const startN = toNumber(start, bin.file, "function address");
    bin.fns.push({
      start: startN,
      end: toNumber(g.end, bin.file, "function end"),
      names: g.names,
      symbol: preferredName(g.names, exportedNames),
      section: g.section,
      at: g.at,
      id: nodeId("function", key, hex(start)),
    });
  }
  bin.starts = Float64Array.from(bin.fns, (f) => f.start);

  for (const s of dynsym) {
    if (!isExportedFunc(s.type, s.bind, s.shndx)) continue;
    const fn = bin.fns[findFn(bin.starts, Number(s.value))];
    if (fn?.start !== Number(s.value)) continue;
    const e: Export = { fn, isDefault: s.versionHidden !== true };
    if (s.version !== undefined) e.version = s.version;
    let list = bin.exports.get(s.name);
    if (!list) bin.exports.set(s.name, (list = []));
    list.push(e);
  }
  readDynamic(bin);
  return bin;
}

function isExportedFunc(type: number, bind: number, shndx: number): boolean {
  return (
    (type === STT_FUNC || type === STT_GNU_IFUNC) &&
    (bind === STB_GLOBAL || bind === STB_WEAK) &&
    shndx !== SHN_UNDEF &&
    shndx < SHN_LORESERVE
  );
}

/** Index of the last function starting at or before `addr`, -1 when none. */
function findFn(starts: Float64Array, addr: number): number {
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((starts[mid] ?? 0) <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The function whose [start, end) holds `addr`, undefined when none. */
function fnAt(bin: Bin, addr: number): Fn | undefined {
  const f = bin.fns[findFn(bin.starts, addr)];
  return f && addr < f.end ? f : undefined;
}

/** DT_NEEDED, DT_SONAME, DT_INIT and DT_FINI from the SHT_DYNAMIC section. */
function readDynamic(bin: Bin): void {
  const elf = bin.elf;
  const sec = elf.sections().find((s) => s.type === SHT_DYNAMIC);
  if (!sec) return;
  const label = sec.name || `#${sec.index}`;
  const strSec = elf.sections()[sec.link];
  const strtab = strSec ? elf.sectionData(strSec) : new Uint8Array(0);
  const r = new FieldReader(elf.sectionData(sec), sec.offset, elf.littleEndian, elf.name);
  const ent = elf.is64 ? 16 : 8;
  for (let b = 0; b + ent <= r.bytes.length; b += ent) {
    const f = `${label}[${b / ent}]`;
    const tag = Number(BigInt.asIntN(64, r.addr(b, elf.is64, `${f} d_tag`)));
    const val = r.addr(b + ent / 2, elf.is64, `${f} d_val`);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED || tag === DT_SONAME) {
      const name = cString(strtab, Number(val));
      if (name === undefined) continue;
      if (tag === DT_NEEDED) bin.needed.push(name);
      else bin.soname = name;
    } else if (tag === DT_INIT && val !== 0n) {
      bin.initAddrs.push({ addr: Number(val), what: "DT_INIT" });
    } else if (tag === DT_FINI && val !== 0n) {
      bin.finiAddrs.push(Number(val));
    }
  }
}

/**
 * `.preinit_array` / `.init_array` (and `.fini_array`) entries: the pointer, or the relocation that fills the
 * slot at load time.
 */
function readInitArrays(bin: Bin): void {
  const elf = bin.elf;
  const byOffset = new Map<bigint, Relocation>();
  for (const rs of bin.relocs) for (const r of rs.relocations) byOffset.set(r.offset, r);
  const ptr = elf.is64 ? 8 : 4;
  for (const sec of elf.sections()) {
    if (sec.type !== SHT_INIT_ARRAY && sec.type !== SHT_PREINIT_ARRAY && sec.type !== SHT_FINI_ARRAY)
      continue;
    const r = new FieldReader(elf.sectionData(sec), sec.offset, elf.littleEndian, elf.name);
    for (let b = 0; b + ptr <= r.bytes.length; b += ptr) {
      const slot = sec.addr + BigInt(b);
      let value = r.addr(b, elf.is64, `${sec.name}[${b / ptr}]`);
      const rel = byOffset.get(slot);
      if (rel?.type === R_X86_64_RELATIVE) value = BigInt.asUintN(64, rel.addend);
      else if (rel?.type === R_X86_64_64 && rel.symbolValue !== undefined)
        value = BigInt.asUintN(64, rel.symbolValue + rel.addend);
      else if (rel?.type === R_X86_64_64) continue; // resolved against another object at load time
      // 0 and -1 are the old .ctors terminators, not functions.
      if (value === 0n || value === (elf.is64 ? 0xffffffffffffffffn : 0xffffffffn)) continue;
      if (sec.type === SHT_FINI_ARRAY) bin.finiAddrs.push(Number(value));
      else bin.initAddrs.push({ addr: Number(value), what: `${sec.name}[${b / ptr}]` });
    }
  }
}

const PREFIX = new Uint8Array(256);
for (const b of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) PREFIX[b] = 1;
for (let b = 0x40; b <= 0x4f; b++) PREFIX[b] = 1;

const K_CALL = 1;
const K_JUMP = 2;
const K_GOT = 3;

interface Imports {
  stubs: Map<number, GotSymbol>;
  slots: Map<number, GotSymbol>;
}

/**
 * Walks every function's instructions once; calls `site` for each direct call (E8), direct jump leaving the
 * function (E9, EB, Jcc), and `call/jmp *disp32(%rip)` (a GOT slot: -fno-plt imports).
 */
function decodeFunctions(
  bin: Bin,
  fns: readonly Fn[],
  site: (fn: Fn, kind: number, at: number, target: number) => void,
): void {
  for (const fn of fns) {
    const code = bin.elf.sectionData(fn.section);
    const base = fn.start - fn.at; // address of code[0]
    const end = Math.min(fn.at + (fn.end - fn.start), code.length);
    let p = fn.at;
    while (p < end) {
      const stop = p + x86InsnLength(code, p);
      let q = p;
      while (q < stop && PREFIX[code[q] ?? 0] === 1) q++;
      const op = code[q] ?? 0;
      if ((op === 0xe8 || op === 0xe9) && q + 5 === stop) {
        site(fn, op === 0xe8 ? K_CALL : K_JUMP, base + p, base + stop + readI32(code, q + 1));
      } else if ((op === 0xeb || (op >= 0x70 && op <= 0x7f)) && q + 2 === stop) {
        site(fn, K_JUMP, base + p, base + stop + (((code[q + 1] ?? 0) << 24) >> 24));
      } else if (op === 0x0f && q + 6 === stop) {
        const op2 = code[q + 1] ?? 0;
        if (op2 >= 0x80 && op2 <= 0x8f) site(fn, K_JUMP, base + p, base + stop + readI32(code, q + 2));
      } else if (op === 0xff && q + 6 === stop) {
        const m = code[q + 1] ?? 0;
        if (m === 0x15 || m === 0x25) site(fn, K_GOT, base + p, base + stop + readI32(code, q + 2));
      }
      p = stop;
    }
  }
}

function readI32(code: Uint8Array, at: number): number {
  return (
    (code[at] ?? 0) | ((code[at + 1] ?? 0) << 8) | ((code[at + 2] ?? 0) << 16) | ((code[at + 3] ?? 0) << 24)
  );
}

/** `.eh_frame` FDE ranges [start, end), sorted by start: the extent of the functions they describe. */
interface FdeTable {
  starts: Float64Array;
  ends: Float64Array;
}

const DW_EH_PE_omit = 0xff;

/**
 * The FDEs of `.eh_frame` (pc_begin, pc_range), for the pointer encodings compilers emit (absptr,
 * udata/sdata 2/4/8, pcrel). FDEs with other encodings, and a malformed section's remainder, are skipped.
 */
function readFdes(bin: Bin): FdeTable {
  const elf = bin.elf;
  const sec = elf.sections().find((s) => s.name === ".eh_frame" && s.type !== SHT_NOBITS);
  const pairs: [number, number][] = [];
  if (sec && elf.littleEndian && elf.is64) {
    const d = elf.sectionData(sec);
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const secAddr = Number(sec.addr);
    const cieEnc = new Map<number, number>(); // CIE offset → FDE pointer encoding
    const uleb = (p: { at: number }): number => {
      let v = 0;
      let mul = 1;
      for (;;) {
        const b = d[p.at++] ?? 0;
        v += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80 || p.at >= d.length) return v;
      }
    };
    const ptr = (p: { at: number }, enc: number, withApp: boolean): number | undefined => {
      const fmt = enc & 0x0f;
      const here = secAddr + p.at;
      let v: number;
      if (fmt === 0x00 || fmt === 0x04 || fmt === 0x0c) {
        if (p.at + 8 > d.length) return undefined;
        v = Number(fmt === 0x0c ? dv.getBigInt64(p.at, true) : dv.getBigUint64(p.at, true));
        p.at += 8;
      } else if (fmt === 0x03 || fmt === 0x0b) {
        if (p.at + 4 > d.length) return undefined;
        v = fmt === 0x0b ? dv.getInt32(p.at, true) : dv.getUint32(p.at, true);
        p.at += 4;
      } else if (fmt === 0x02 || fmt === 0x0a) {
        if (p.at + 2 > d.length) return undefined;
        v = fmt === 0x0a ? dv.getInt16(p.at, true) : dv.getUint16(p.at, true);
        p.at += 2;
      } else return undefined;
      if (!withApp) return v;
      const app = enc & 0x70;
      if (enc & 0x80) return undefined; // indirect
      if (app === 0x10) return v + here;
      return app === 0 ? v : undefined;
    };
    let off = 0;
    while (off + 4 <= d.length) {
      let len = dv.getUint32(off, true);
      let hdr = 4;
      if (len === 0) break; // terminator
      if (len === 0xffffffff) {
        if (off + 12 > d.length) break;
        len = Number(dv.getBigUint64(off + 4, true));
        hdr = 12;
      }
      const body = off + hdr;
      const next = body + len;
      if (next > d.length || len < 4) break;
      const id = dv.getUint32(body, true);
      if (id === 0) {
        // CIE: version, augmentation string, code/data alignment, return register, augmentation data.
        const p = { at: body + 4 };
        const version = d[p.at++] ?? 0;
        const augStart = p.at;
        while (p.at < next && d[p.at] !== 0) p.at++;
        const aug = String.fromCharCode(...d.subarray(augStart, p.at));
        p.at++;
        let enc = 0; // absptr by default
        if (aug.includes("eh")) p.at += 8;
        uleb(p);
        uleb(p); // sleb: only skipped
        if (version === 1) p.at++;
        else uleb(p);
        if (aug.startsWith("z")) {
          uleb(p);
          for (const c of aug.slice(1)) {
            if (c === "R") enc = d[p.at++] ?? 0;
            else if (c === "L") p.at++;
            else if (c === "P") {
              const penc = d[p.at++] ?? 0;
              if (ptr(p, penc & 0x0f, false) === undefined) break;
            } else if (c !== "S" && c !== "B") break;
          }
        }
        cieEnc.set(off, enc);
      } else {
        const enc = cieEnc.get(body - id);
        if (enc !== undefined && enc !== DW_EH_PE_omit) {
          const p = { at: body + 4 };
          const start = ptr(p, enc, true);
          const range = ptr(p, enc & 0x0f, false);
          if (start !== undefined && range !== undefined && range > 0) pairs.push([start, start + range]);
        }
      }
      off = next;
    }
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return { starts: Float64Array.from(pairs, (x) => x[0]), ends: Float64Array.from(pairs, (x) => x[1]) };
}

/** The FDE holding `addr`: its index, -1 when none. */
function fdeAt(fdes: FdeTable, addr: number): number {
  const i = findFn(fdes.starts, addr);
  return i >= 0 && addr < (fdes.ends[i] ?? 0) ? i : -1;
}

/**
 * main, from a program's entry code: the `%rdi` argument (`lea main(%rip)`, `mov $main`, or a load from a
 * GOT slot with a RELATIVE relocation) of its first call when that call goes to __libc_start_main.
 */
function findMain(bin: Bin, imports: Imports, entry: number, secs: readonly Section[]): number | undefined {
  const sec = secs.find((s) => entry >= Number(s.addr) && entry < Number(s.addr) + s.size);
  if (!sec) return undefined;
  const code = bin.elf.sectionData(sec);
  const base = Number(sec.addr);
  let rdi: number | undefined;
  let slotOf: Map<number, bigint> | undefined;
  const slotValue = (slot: number): number | undefined => {
    if (!slotOf) {
      slotOf = new Map();
      for (const rs of bin.relocs)
        for (const r of rs.relocations)
          if (r.type === R_X86_64_RELATIVE) slotOf.set(Number(r.offset), BigInt.asUintN(64, r.addend));
          else if (r.symbolValue !== undefined && r.symbolValue !== 0n)
            slotOf.set(Number(r.offset), BigInt.asUintN(64, r.symbolValue + r.addend));
    }
    const v = slotOf.get(slot);
    return v === undefined ? undefined : Number(v);
  };
  for (let p = entry - base, n = 0; p < code.length && n < 32; n++) {
    const stop = p + x86InsnLength(code, p);
    let q = p;
    while (q < stop && PREFIX[code[q] ?? 0] === 1 && code[q] !== 0x48) q++;
    const b0 = code[q] ?? 0;
    const b1 = code[q + 1] ?? 0;
    const b2 = code[q + 2] ?? 0;
    const next = base + stop;
    if (b0 === 0x48 && b1 === 0x8d && b2 === 0x3d && q + 7 === stop) rdi = next + readI32(code, q + 3);
    else if (b0 === 0x48 && b1 === 0xc7 && b2 === 0xc7 && q + 7 === stop) rdi = readI32(code, q + 3);
    else if (b0 === 0x48 && b1 === 0x8b && b2 === 0x3d && q + 7 === stop)
      rdi = slotValue(next + readI32(code, q + 3));
    else if (b0 === 0xe8 || b0 === 0xff) {
      let g: GotSymbol | undefined;
      if (b0 === 0xe8 && q + 5 === stop) g = imports.stubs.get(next + readI32(code, q + 1));
      else if (b0 === 0xff && b1 === 0x15 && q + 6 === stop)
        g = imports.slots.get(next + readI32(code, q + 2));
      else if (b0 === 0xff && (b1 & 0x38) !== 0x10) {
        p = stop;
        continue;
      }
      return g?.symbol === "__libc_start_main" ? rdi : undefined;
    } else if (b0 === 0xc3 || b0 === 0xf4 || b0 === 0xe9 || b0 === 0xeb) return undefined;
    p = stop;
  }
  return undefined;
}

/**
 * Functions no symbol names (disassemblers' `sub_<addr>`), added to bin.fns. Seeds, when in an executable
 * non-PLT section and in no named function: direct-call targets; targets of jumps leaving the jumping
 * function's (provisional) range or landing in another function's FDE (tail calls, `.cold` parts); the entry
 * point, main (see findMain), the init and fini entries. A target inside an `.eh_frame` FDE that starts before
 * it seeds the FDE's start instead. Named functions, then each batch of discovered ones, are decoded until no
 * new seed appears (a fixed point; batches in address order: deterministic). A discovered function ends at
 * the next function start in its section, at the end of the FDE holding its start, or at the section's end,
 * whichever comes first; without an FDE it may run over code found by no seed (reached only through
 * pointers).
 */
function discoverFunctions(bin: Bin, imports: Imports): void {
  const secs = bin.elf
    .sections()
    .filter(
      (s) =>
        s.type !== SHT_NOBITS &&
        (s.flags & BigInt(SHF_EXECINSTR)) !== 0n &&
        s.size > 0 &&
        !PLT_SECTIONS.includes(s.name),
    )
    .sort((a, b) => (a.addr < b.addr ? -1 : 1));
  if (secs.length === 0) return;
  const secStarts = Float64Array.from(secs, (s) => Number(s.addr));
  const secAt = (addr: number): Section | undefined => {
    const s = secs[findFn(secStarts, addr)];
    return s && addr < Number(s.addr) + s.size ? s : undefined;
  };
  const fdes = readFdes(bin);
  const named = bin.fns;
  const namedStarts = bin.starts;
  const found = new Set<number>();
  let pending = new Set<number>();
  /** The start to discover for a target, undefined when it needs none. */
  const seedOf = (t: number): number | undefined => {
    if (!Number.isSafeInteger(t) || imports.stubs.has(t)) return undefined;
    const f = named[findFn(namedStarts, t)];
    if (f && t < f.end) return undefined;
    if (!secAt(t)) return undefined;
    const i = fdeAt(fdes, t);
    const s = i >= 0 ? (fdes.starts[i] ?? t) : t;
    if (s !== t) {
      const g = named[findFn(namedStarts, s)];
      if ((g && s < g.end) || secAt(s) !== secAt(t)) return t;
    }
    return s;
  };
  const seed = (t: number): void => {
    const s = seedOf(t);
    if (s !== undefined && !found.has(s)) pending.add(s);
  };
  const entry = Number(bin.elf.header.entry);
  if (entry !== 0) {
    seed(entry);
    const isProgram = bin.elf.programHeaders().some((p) => p.type === PT_INTERP);
    const main = isProgram ? findMain(bin, imports, entry, secs) : undefined;
    if (main !== undefined && secAt(main)) {
      bin.mainAddr = main;
      seed(main);
    }
  }
  for (const { addr } of bin.initAddrs) seed(addr);
  for (const addr of bin.finiAddrs) seed(addr);

  let all: Fn[] = named;
  let allStarts = namedStarts;
  const collect = (fn: Fn, kind: number, _at: number, target: number): void => {
    if (kind === K_CALL || (kind === K_JUMP && (target < fn.start || target >= fn.end))) {
      seed(target);
    } else if (kind === K_JUMP) {
      // Inside the provisional range but in another function's FDE: a tail call to a function not found yet.
      const i = fdeAt(fdes, target);
      if (i >= 0 && !(fn.start >= (fdes.starts[i] ?? 0) && fn.start < (fdes.ends[i] ?? 0))) seed(target);
    }
  };
  const rebuild = (): Fn[] => {
    const starts = [...namedStarts, ...found].sort((a, b) => a - b);
    const fresh: Fn[] = [];
    const merged: Fn[] = [];
    let ni = 0;
    for (let k = 0; k < starts.length; k++) {
      const s = starts[k] ?? 0;
      const nf = named[ni];
      if (nf?.start === s) {
        merged.push(nf);
        ni++;
        continue;
      }
      const sec = secAt(s);
      if (!sec) continue;
      let end = Number(sec.addr) + sec.size;
      const nxt = starts[k + 1];
      if (nxt !== undefined && nxt < end) end = nxt;
      const i = fdeAt(fdes, s);
      if (i >= 0) end = Math.min(end, fdes.ends[i] ?? end);
      const symbol = `sub_${s.toString(16)}`;
      const fn: Fn = {
        start: s,
        end,
        names: [symbol],
        symbol,
        section: sec,
        at: s - Number(sec.addr),
        id: nodeId("function", bin.key, hex(s)),
      };
      merged.push(fn);
      fresh.push(fn);
    }
    all = merged;
    allStarts = Float64Array.from(merged, (f) => f.start);
    return fresh;
  };
  decodeFunctions(bin, named, collect);
  while (pending.size > 0) {
    const batch = pending;
    pending = new Set();
    for (const s of batch) found.add(s);
    const fresh = rebuild().filter((f) => batch.has(f.start));
    decodeFunctions(bin, fresh, collect);
  }
  if (found.size === 0) return;
  rebuild();
  bin.fns = all;
  bin.starts = allStarts;
}

/** Builds the static graph of `binaries`. Throws (an ElfError naming the file) on a malformed ELF file. */
export function buildStaticGraph(
  binaries: readonly StaticGraphInput[],
  opts: StaticGraphOptions = {},
): StaticGraph {
  const maxWarnings = opts.maxWarningsPerBinary ?? 20;
  const warnings: string[] = [];
  const sorted = [...binaries].sort((a, b) => cmp(a.file, b.file) || cmp(a.purl ?? "", b.purl ?? ""));
  const bins: Bin[] = [];
  const byKey = new Map<string, Bin>();
  for (const input of sorted) {
    const bin = openBinary(input);
    const other = byKey.get(bin.key);
    if (other) {
      if (other.sha256 === bin.sha256 && other.file === bin.file) continue;
      warnings.push(`${bin.file}: same build id (${bin.key}) as ${other.file}; skipped`);
      continue;
    }
    byKey.set(bin.key, bin);
    bins.push(bin);
  }

  const nodes = new Map<string, GraphNode>();
  // from → reason → to → accumulator: no key strings built per call site.
  const edges = new Map<string, Map<EdgeReason, Map<string, EdgeAcc>>>();
  const roots = new Map<string, GraphRoot>();
  const addRoot = (node: string, reason: GraphRoot["reason"]): void => {
    roots.set(`${node}\n${reason}`, { node, reason });
  };
  let lastFrom = "";
  let lastBuckets = new Map<EdgeReason, Map<string, EdgeAcc>>();
  const addEdge = (from: string, to: string, reason: EdgeReason, at: number | undefined): void => {
    if (from !== lastFrom) {
      let b = edges.get(from);
      if (!b) edges.set(from, (b = new Map<EdgeReason, Map<string, EdgeAcc>>()));
      lastFrom = from;
      lastBuckets = b;
    }
    let byTo = lastBuckets.get(reason);
    if (!byTo) lastBuckets.set(reason, (byTo = new Map<string, EdgeAcc>()));
    let e = byTo.get(to);
    if (!e) byTo.set(to, (e = { from, to, reason, sites: [] }));
    if (at !== undefined) e.sites.push(at);
  };

  for (const bin of bins) {
    const x86 = bin.elf.header.machine === EM_X86_64;
    if (x86) {
      bin.relocs = readRelocationSections(bin.elf, { dynsym: bin.dynsym });
      const imports: Imports = { stubs: new Map(), slots: new Map() };
      for (const s of pltStubs(bin.elf, bin.relocs)) {
        const g: GotSymbol = { symbol: s.symbol };
        if (s.version !== undefined) g.version = s.version;
        if (s.resolver !== undefined) g.resolver = s.resolver;
        imports.stubs.set(Number(s.address), g);
      }
      for (const [slot, g] of gotSymbols(bin.relocs)) imports.slots.set(Number(slot), g);
      bin.imports = imports;
      readInitArrays(bin);
      discoverFunctions(bin, imports);
    }
    // Nodes.
    for (const fn of bin.fns) {
      const size = fn.end - fn.start;
      const bytes = bin.elf.sectionData(fn.section).subarray(fn.at, fn.at + size);
      const node: GraphNode = {
        id: fn.id,
        kind: "function",
        build_id: bin.buildId,
        file: bin.file,
        symbol: fn.symbol,
        address: { start: hex(fn.start), end: hex(fn.end) },
        symbol_digest: `sha256:${hash("sha256", bytes, "hex")}`,
      };
      if (bin.purl !== undefined) node.purl = bin.purl;
      nodes.set(node.id, node);
    }
    const initId = nodeId("synthetic", bin.key, "");
    const init: GraphNode = {
      id: initId,
      kind: "synthetic",
      build_id: bin.buildId,
      file: bin.file,
      symbol: "<init>",
    };
    if (bin.purl !== undefined) init.purl = bin.purl;
    nodes.set(initId, init);
    addRoot(initId, "init");

    // Roots.
    for (const fn of bin.fns) if (fn.names.includes("main")) addRoot(fn.id, "main");
    if (bin.mainAddr !== undefined) {
      const fn = fnAt(bin, bin.mainAddr);
      if (fn?.start === bin.mainAddr) addRoot(fn.id, "main");
    }
    // A shared library: ET_DYN without an interpreter, or with a DT_SONAME (libc.so.6 has both: it runs).
    const isLibrary =
      bin.elf.header.type === ET_DYN &&
      (bin.soname !== undefined || !bin.elf.programHeaders().some((p) => p.type === PT_INTERP));
    if (isLibrary)
      for (const list of bin.exports.values()) for (const e of list) addRoot(e.fn.id, "exported");
    const entry = bin.elf.header.entry;
    if (entry !== 0n) {
      const fn = fnAt(bin, Number(entry));
      if (fn) addRoot(fn.id, "entry");
      else if (!isLibrary) bin.warnings.push(`${bin.file}: entry point ${hex(entry)} is in no function`);
    }
    if (!x86) {
      warnings.push(
        `${bin.file}: architecture ${bin.arch}: call edges are not decoded for it yet (function nodes and roots only)`,
      );
    }
  }

  // Edges (x86-64).
  for (const bin of bins) {
    if (bin.elf.header.machine !== EM_X86_64) continue;
    const imports = bin.imports ?? {
      stubs: new Map<number, GotSymbol>(),
      slots: new Map<number, GotSymbol>(),
    };
    const resolved = new Map<GotSymbol, { to: string; reason: EdgeReason }>();
    const resolvedByName = new Map<string, { to: string; reason: EdgeReason }>();
    const unresolved = new Map<number, number>(); // target → first site

    const importEdge = (fn: Fn, g: GotSymbol, at: number): void => {
      if (g.resolver !== undefined) {
        // A local IFUNC called through the PLT: the edge goes to its resolver's function.
        const to = fnAt(bin, Number(g.resolver));
        if (to) addEdge(fn.id, to.id, "plt", at);
        else if (!unresolved.has(Number(g.resolver))) unresolved.set(Number(g.resolver), at);
        return;
      }
      let r = resolved.get(g);
      if (!r) {
        const k = `${g.symbol}@${g.version ?? ""}`;
        r = resolvedByName.get(k) ?? resolveImport(bin, bins, g, nodes);
        resolvedByName.set(k, r);
        resolved.set(g, r);
      }
      addEdge(fn.id, r.to, r.reason, at);
    };

    decodeFunctions(bin, bin.fns, (fn, kind, at, target) => {
      if (kind === K_GOT) {
        const g = imports.slots.get(target);
        if (g) importEdge(fn, g, at);
        return;
      }
      if (kind === K_JUMP && target >= fn.start && target < fn.end) return;
      const g = imports.stubs.get(target);
      if (g) {
        importEdge(fn, g, at);
        return;
      }
      const to = fnAt(bin, target);
      if (to) addEdge(fn.id, to.id, "direct-call", at);
      else if (!unresolved.has(target)) unresolved.set(target, at);
    });
    const targets = [...unresolved.keys()].sort((a, b) => a - b);
    for (const t of targets.slice(0, maxWarnings)) {
      bin.warnings.push(
        `${bin.file}: branch at ${hex(unresolved.get(t) ?? 0)} targets ${hex(t)}, in no function: no edge`,
      );
    }
    if (targets.length > maxWarnings) {
      bin.warnings.push(`${bin.file}: ${targets.length - maxWarnings} more branch targets in no function`);
    }

    // Init roots.
    const initId = nodeId("synthetic", bin.key, "");
    for (const { addr, what } of bin.initAddrs) {
      const fn = fnAt(bin, addr);
      if (fn) addEdge(initId, fn.id, "init-root", undefined);
      else bin.warnings.push(`${bin.file}: ${what} = ${hex(addr)} is in no function`);
    }
  }
  for (const bin of bins) warnings.push(...bin.warnings);

  const outEdges: GraphEdge[] = [];
  const accs: EdgeAcc[] = [];
  for (const b of edges.values()) for (const byTo of b.values()) for (const e of byTo.values()) accs.push(e);
  for (const e of accs) {
    const sites = [...new Set(e.sites)]
      .map((s) => hex(s))
      .sort(cmp)
      .slice(0, MAX_EVIDENCE);
    outEdges.push({
      id: edgeId(e.from, e.to, e.reason),
      from: e.from,
      to: e.to,
      reason: e.reason,
      confidence: e.reason === "runtime" ? 1 : STATIC_CONFIDENCE[e.reason],
      phase: "static",
      evidence: sites,
    });
  }
  outEdges.sort((a, b) => cmp(a.id, b.id));

  const inputs: RichGraphBody["inputs"] = bins.map((b) => {
    const i: RichGraphBody["inputs"][number] = { file: b.file, build_id: b.buildId, sha256: b.sha256 };
    if (b.purl !== undefined) i.purl = b.purl;
    return i;
  });
  return {
    nodes: [...nodes.values()].sort((a, b) => cmp(a.id, b.id)),
    edges: outEdges,
    roots: [...roots.values()].sort((a, b) => cmp(a.node, b.node) || cmp(a.reason, b.reason)),
    inputs,
    arch: [...new Set(bins.map((b) => b.arch))].sort(cmp),
    warnings: warnings.sort(cmp),
  };
}

/**
 * The function an import binds to among the analysed binaries, searched as the dynamic loader would in
 * simplified form: the importer itself, then its DT_NEEDED libraries in order (matched by DT_SONAME, else
 * by file name), then the others by file name. Else the importer's external node.
 */
function resolveImport(
  importer: Bin,
  bins: Bin[],
  g: GotSymbol,
  nodes: Map<string, GraphNode>,
): { to: string; reason: EdgeReason } {
  const rank = (b: Bin): number => {
    if (b === importer) return -1;
    const base = b.file.slice(b.file.lastIndexOf("/") + 1);
    const i = importer.needed.findIndex((n) => n === b.soname || n === base);
    return i < 0 ? importer.needed.length : i;
  };
  const candidates = bins
    .filter((b) => b.exports.has(g.symbol))
    .sort((a, b) => rank(a) - rank(b) || cmp(a.file, b.file));
  for (const b of candidates) {
    const list = b.exports.get(g.symbol) ?? [];
    const e =
      g.version === undefined
        ? list.find((x) => x.isDefault)
        : (list.find((x) => x.version === g.version) ?? list.find((x) => x.version === undefined));
    if (!e) continue;
    const third = importer.purl !== undefined && b.purl !== undefined && importer.purl !== b.purl;
    return { to: e.fn.id, reason: third ? "third-party" : "plt" };
  }
  const id = nodeId("external", importer.key, g.symbol);
  if (!nodes.has(id)) {
    nodes.set(id, {
      id,
      kind: "external",
      build_id: importer.buildId,
      file: importer.file,
      symbol: g.symbol,
    });
  }
  return { to: id, reason: "plt" };
}
