import {
  SHF_EXECINSTR,
  SHN_LORESERVE,
  SHT_NOBITS,
  STT_FILE,
  STT_FUNC,
  STT_GNU_IFUNC,
  STT_SECTION,
} from "../elf/constants.ts";
import type { ElfFile, Section } from "../elf/elf-file.ts";
import { readSymbols, type ElfSymbol, type SymbolTableName } from "../elf/symbols.ts";

/** A function's byte range, located in the file. */
export interface FunctionRange {
  sym: string;
  /** GNU symbol version (dynamic symbols), when the symbol has one. */
  version?: string;
  start: bigint;
  end: bigint;
  /** Where the bytes are in the file. */
  fileOffset: number;
  section: Section;
  /** How `end` was found: the symbol's st_size, or bounded by the next symbol / section end. */
  bound: "size" | "next-symbol" | "section-end";
}

export interface FunctionTable {
  source: SymbolTableName | "none";
  functions: FunctionRange[];
}

const ET_REL = 1;
const EM_ARM = 40;

function isFunction(s: ElfSymbol): boolean {
  return (s.type === STT_FUNC || s.type === STT_GNU_IFUNC) && s.shndx !== 0 && s.shndx < SHN_LORESERVE;
}

/**
 * Function ranges from `.symtab`, falling back to `.dynsym` when `.symtab` names no function
 * (stripped libraries keep their exports). Size-0 symbols end at the next symbol in their section,
 * or at the section's end. Sorted by start address, then name.
 */
export function functionRanges(elf: ElfFile): FunctionTable {
  for (const table of [".symtab", ".dynsym"] as const) {
    const syms = readSymbols(elf, table);
    const funcs = syms.filter(isFunction);
    if (funcs.length > 0) return { source: table, functions: rangesOf(elf, syms, funcs) };
  }
  return { source: "none", functions: [] };
}

function rangesOf(elf: ElfFile, all: ElfSymbol[], funcs: ElfSymbol[]): FunctionRange[] {
  const sections = elf.sections();
  const relocatable = elf.header.type === ET_REL;
  const thumbBit = elf.header.machine === EM_ARM ? ~1n : ~0n;

  // Distinct symbol starts per section, sorted: the bound for size-0 symbols.
  const starts = new Map<number, bigint[]>();
  for (const s of all) {
    if (s.shndx === 0 || s.shndx >= SHN_LORESERVE || s.type === STT_SECTION || s.type === STT_FILE) continue;
    let list = starts.get(s.shndx);
    if (!list) starts.set(s.shndx, (list = []));
    list.push(s.value & thumbBit);
  }
  for (const list of starts.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const out: FunctionRange[] = [];
  for (const s of funcs) {
    const sec = sections[s.shndx];
    if (!sec || sec.type === SHT_NOBITS || (sec.flags & BigInt(SHF_EXECINSTR)) === 0n) continue;
    const base = relocatable ? 0n : sec.addr; // in ET_REL files st_value is section-relative
    const secEnd = base + BigInt(sec.size);
    const start = s.value & thumbBit;
    if (start < base || start >= secEnd) continue; // points outside its section: not a range we can hash
    let end: bigint;
    let bound: FunctionRange["bound"];
    if (s.size > 0n) {
      end = start + s.size > secEnd ? secEnd : start + s.size;
      bound = end === secEnd && start + s.size > secEnd ? "section-end" : "size";
    } else {
      const next = nextAfter(starts.get(s.shndx) ?? [], start);
      end = next !== undefined && next < secEnd ? next : secEnd;
      bound = next !== undefined && next < secEnd ? "next-symbol" : "section-end";
    }
    const range: FunctionRange = {
      sym: s.name,
      start,
      end,
      fileOffset: sec.offset + Number(start - base),
      section: sec,
      bound,
    };
    if (s.version !== undefined) range.version = s.version;
    out.push(range);
  }
  out.sort(
    (a, b) =>
      (a.start < b.start ? -1 : a.start > b.start ? 1 : 0) ||
      (a.sym < b.sym ? -1 : a.sym > b.sym ? 1 : 0) ||
      ((a.version ?? "") < (b.version ?? "") ? -1 : (a.version ?? "") > (b.version ?? "") ? 1 : 0),
  );
  return dedupe(out);
}

/** Binary search: the first start strictly greater than `x`. */
function nextAfter(sorted: bigint[], x: bigint): bigint | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as bigint) <= x) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

/** The same (name, version, start) listed twice (e.g. in two symbol entries) is one function. */
function dedupe(sorted: FunctionRange[]): FunctionRange[] {
  return sorted.filter((f, i) => {
    const p = sorted[i - 1];
    return !p || p.start !== f.start || p.sym !== f.sym || p.version !== f.version;
  });
}
