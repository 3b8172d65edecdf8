import { SHN_UNDEF, SHT_DYNSYM, SHT_SYMTAB } from "./constants.ts";
import type { ElfFile, Section } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import { FieldReader } from "./fields.ts";
import { assertEntsize, readSymbols, type ElfSymbol } from "./symbols.ts";

// gABI "Relocation": SHT_RELA entries carry an explicit addend, SHT_REL entries keep it in the relocated word.
export const SHT_RELA = 4;
export const SHT_REL = 9;

// x86-64 psABI relocation types (the ones a linked binary carries).
export const R_X86_64_NONE = 0;
export const R_X86_64_64 = 1;
export const R_X86_64_COPY = 5;
export const R_X86_64_GLOB_DAT = 6;
export const R_X86_64_JUMP_SLOT = 7;
export const R_X86_64_RELATIVE = 8;
export const R_X86_64_DTPMOD64 = 16;
export const R_X86_64_DTPOFF64 = 17;
export const R_X86_64_TPOFF64 = 18;
export const R_X86_64_IRELATIVE = 37;

export interface Relocation {
  /** r_offset: the virtual address (ET_EXEC/ET_DYN) or section offset (ET_REL) of the relocated word. */
  offset: bigint;
  /** ELF32_R_TYPE / ELF64_R_TYPE. */
  type: number;
  /** ELF32_R_SYM / ELF64_R_SYM: index in the linked symbol table, 0 when none. */
  symIndex: number;
  /** The symbol's name, "" when symIndex is 0 or the symbol is unnamed (e.g. a section symbol). */
  symbol: string;
  /** The symbol's GNU version (dynamic symbols), when it has one. */
  symbolVersion?: string;
  /** The symbol's value when it is defined in this file (st_shndx not SHN_UNDEF). */
  symbolValue?: bigint;
  /** r_addend (signed); 0 for SHT_REL entries (their addend is in the relocated word). */
  addend: bigint;
}

export interface RelocationSection {
  section: Section;
  /** True for SHT_RELA (explicit addends). */
  rela: boolean;
  relocations: Relocation[];
}

export interface RelocationOptions {
  /** `readSymbols(elf, ".dynsym")` when the caller already has it (a large library's table takes ~70 ms to read). */
  dynsym?: ElfSymbol[];
}

/** Upper bound on entries in one section: real files have at most a few hundred thousand. */
const MAX_RELOCATIONS = 1 << 24;

/**
 * All SHT_RELA and SHT_REL sections of the file (e.g. `.rela.dyn`, `.rela.plt`), in section order.
 * Bounds-checked: a truncated section, a bad entry size or a symbol index outside the linked table fails
 * with an ElfError naming the file, the section and the field.
 */
export function readRelocationSections(elf: ElfFile, opts: RelocationOptions = {}): RelocationSection[] {
  const out: RelocationSection[] = [];
  const tables = new Map<number, ElfSymbol[]>();
  if (opts.dynsym) {
    const dyn = elf.sections().find((s) => s.type === SHT_DYNSYM);
    if (dyn) tables.set(dyn.index, opts.dynsym);
  }
  for (const sec of elf.sections()) {
    if (sec.type !== SHT_RELA && sec.type !== SHT_REL) continue;
    out.push({ section: sec, rela: sec.type === SHT_RELA, relocations: parse(elf, sec, tables) });
  }
  return out;
}

/** The relocations of one named section (`.rela.plt`, `.rela.dyn`, …), [] when the file has none. */
export function readRelocations(elf: ElfFile, sectionName: string): Relocation[] {
  const sec = elf
    .sections()
    .find((s) => s.name === sectionName && (s.type === SHT_RELA || s.type === SHT_REL));
  return sec ? parse(elf, sec, new Map()) : [];
}

function linkedSymbols(
  elf: ElfFile,
  sec: Section,
  label: string,
  cache: Map<number, ElfSymbol[]>,
): ElfSymbol[] {
  if (sec.link === 0) return [];
  const cached = cache.get(sec.link);
  if (cached) return cached;
  const linked = elf.sections()[sec.link];
  if (!linked || (linked.type !== SHT_DYNSYM && linked.type !== SHT_SYMTAB)) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      `section ${label} sh_link`,
      undefined,
      `section ${sec.link} is not a symbol table`,
    );
  }
  // readSymbols locates the (single) table of each type; a file with two of a kind is not one we read.
  const syms = readSymbols(elf, linked.type === SHT_DYNSYM ? ".dynsym" : ".symtab");
  cache.set(sec.link, syms);
  return syms;
}

function parse(elf: ElfFile, sec: Section, cache: Map<number, ElfSymbol[]>): Relocation[] {
  const is64 = elf.is64;
  const rela = sec.type === SHT_RELA;
  const label = sec.name || `#${sec.index}`;
  // Elf64_Rela: offset u64, info u64, addend i64; Elf64_Rel: offset, info. Elf32: u32 fields.
  const minEnt = (is64 ? 8 : 4) * (rela ? 3 : 2);
  assertEntsize(elf, sec, label, minEnt);
  if (sec.size % sec.entsize !== 0) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      `section ${label} sh_size`,
      undefined,
      `${sec.size} is not a multiple of the entry size ${sec.entsize}`,
    );
  }
  const count = sec.size / sec.entsize;
  if (count > MAX_RELOCATIONS) {
    throw new ElfError(
      "ELF_LIMIT",
      elf.name,
      `section ${label} sh_size`,
      undefined,
      `${count} relocations exceeds the limit of ${MAX_RELOCATIONS}`,
    );
  }
  const syms = linkedSymbols(elf, sec, label, cache);
  const data = elf.sectionData(sec);
  const r = new FieldReader(data, sec.offset, elf.littleEndian, elf.name);
  const out: Relocation[] = [];
  for (let i = 0; i < count; i++) {
    const b = i * sec.entsize;
    const f = `${label}[${i}]`;
    let offset: bigint;
    let type: number;
    let symIndex: number;
    let addend = 0n;
    if (is64) {
      offset = r.u64(b, `${f} r_offset`);
      const info = r.u64(b + 8, `${f} r_info`);
      symIndex = Number(info >> 32n);
      type = Number(info & 0xffffffffn);
      if (rela) addend = BigInt.asIntN(64, r.u64(b + 16, `${f} r_addend`));
    } else {
      offset = BigInt(r.u32(b, `${f} r_offset`));
      const info = r.u32(b + 4, `${f} r_info`);
      symIndex = info >>> 8;
      type = info & 0xff;
      if (rela) addend = BigInt(r.u32(b + 8, `${f} r_addend`) | 0);
    }
    const rel: Relocation = { offset, type, symIndex, symbol: "", addend };
    if (symIndex !== 0) {
      // readSymbols drops the null symbol: entry k of the table is syms[k - 1].
      const sym = syms[symIndex - 1];
      if (sym?.index !== symIndex) {
        throw new ElfError(
          "ELF_BAD_FIELD",
          elf.name,
          `${f} r_info`,
          sec.offset + b + (is64 ? 8 : 4),
          `symbol index ${symIndex} is outside the linked symbol table (${syms.length + 1} entries)`,
        );
      }
      rel.symbol = sym.name;
      if (sym.version !== undefined) rel.symbolVersion = sym.version;
      if (sym.shndx !== SHN_UNDEF) rel.symbolValue = sym.value;
    }
    out.push(rel);
  }
  return out;
}
