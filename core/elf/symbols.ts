import {
  SHN_XINDEX,
  SHT_DYNSYM,
  SHT_GNU_VERDEF,
  SHT_GNU_VERNEED,
  SHT_GNU_VERSYM,
  SHT_STRTAB,
  SHT_SYMTAB,
  SHT_SYMTAB_SHNDX,
  VER_FLG_BASE,
  VERSYM_HIDDEN,
} from "./constants.ts";
import type { ElfFile, Section } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import { FieldReader, cString } from "./fields.ts";

export interface ElfSymbol {
  /** Index in its table (0 is the null symbol and is never returned). */
  index: number;
  name: string;
  value: bigint;
  size: bigint;
  /** STT_* */
  type: number;
  /** STB_* */
  bind: number;
  /** STV_* */
  visibility: number;
  /** Section index (SHN_XINDEX resolved through SHT_SYMTAB_SHNDX). */
  shndx: number;
  /** GNU symbol version (dynamic symbols only), e.g. GLIBC_2.2.5. */
  version?: string;
  /** True when the version is not the default one (`sym@VER`, not `sym@@VER`). */
  versionHidden?: boolean;
}

export type SymbolTableName = ".symtab" | ".dynsym";

/** Symbols of `.symtab` or `.dynsym` (located by type, not name), [] when absent. */
export function readSymbols(elf: ElfFile, table: SymbolTableName): ElfSymbol[] {
  const type = table === ".symtab" ? SHT_SYMTAB : SHT_DYNSYM;
  const sec = elf.sections().find((s) => s.type === type);
  if (!sec) return [];
  const syms = readSymbolTable(elf, sec);
  if (type === SHT_DYNSYM) applyVersions(elf, sec, syms);
  return syms;
}

function linkedStrtab(elf: ElfFile, sec: Section, field: string): Uint8Array {
  const str = elf.sections()[sec.link];
  if (!str || str.type !== SHT_STRTAB) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      `${field} sh_link`,
      undefined,
      `section ${sec.link} is not a string table`,
    );
  }
  return elf.sectionData(str);
}

/** A table section's sh_entsize must hold at least one record of `minEnt` bytes (hostile headers say 0 or less). */
export function assertEntsize(elf: ElfFile, sec: Section, label: string, minEnt: number): void {
  if (sec.entsize < minEnt) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      `section ${label} sh_entsize`,
      undefined,
      `${sec.entsize} is smaller than ${minEnt}`,
    );
  }
}

function readSymbolTable(elf: ElfFile, sec: Section): ElfSymbol[] {
  const is64 = elf.is64;
  const minEnt = is64 ? 24 : 16;
  const label = sec.name || `#${sec.index}`;
  assertEntsize(elf, sec, label, minEnt);
  const strtab = linkedStrtab(elf, sec, `section ${label}`);
  const data = elf.sectionData(sec);
  const r = new FieldReader(data, sec.offset, elf.littleEndian, elf.name);
  const count = Math.floor(data.length / sec.entsize);
  const xindex = extendedIndexes(elf, sec);
  const out: ElfSymbol[] = [];
  for (let i = 1; i < count; i++) {
    const b = i * sec.entsize;
    const f = `${label}[${i}]`;
    // Elf64_Sym: name u32, info u8, other u8, shndx u16, value u64, size u64.
    // Elf32_Sym: name u32, value u32, size u32, info u8, other u8, shndx u16.
    const nameOff = r.u32(b, `${f} st_name`);
    const info = r.u8(is64 ? b + 4 : b + 12, `${f} st_info`);
    const other = r.u8(is64 ? b + 5 : b + 13, `${f} st_other`);
    let shndx = r.u16(is64 ? b + 6 : b + 14, `${f} st_shndx`);
    const value = is64 ? r.u64(b + 8, `${f} st_value`) : BigInt(r.u32(b + 4, `${f} st_value`));
    const size = is64 ? r.u64(b + 16, `${f} st_size`) : BigInt(r.u32(b + 8, `${f} st_size`));
    const name = cString(strtab, nameOff);
    if (name === undefined) {
      throw new ElfError(
        "ELF_BAD_FIELD",
        elf.name,
        `${f} st_name`,
        sec.offset + b,
        `${nameOff} is outside the string table (${strtab.length} bytes)`,
      );
    }
    if (shndx === SHN_XINDEX && xindex) shndx = xindex.u32(i * 4, `${label} SHT_SYMTAB_SHNDX[${i}]`);
    out.push({
      index: i,
      name,
      value,
      size,
      type: info & 0xf,
      bind: info >> 4,
      visibility: other & 0x3,
      shndx,
    });
  }
  return out;
}

function extendedIndexes(elf: ElfFile, symtab: Section): FieldReader | undefined {
  const sec = elf.sections().find((s) => s.type === SHT_SYMTAB_SHNDX && s.link === symtab.index);
  return sec ? new FieldReader(elf.sectionData(sec), sec.offset, elf.littleEndian, elf.name) : undefined;
}

/** Version index → name, from .gnu.version_d (definitions) and .gnu.version_r (needs). */
interface VersionName {
  name: string;
  /** From .gnu.version_r: a version this file needs from another, never its own default. */
  needed: boolean;
}

function versionNames(elf: ElfFile): Map<number, VersionName> {
  const names = new Map<number, VersionName>();
  for (const sec of elf.sections()) {
    if (sec.type !== SHT_GNU_VERDEF && sec.type !== SHT_GNU_VERNEED) continue;
    const strtab = linkedStrtab(elf, sec, `section ${sec.name}`);
    const data = elf.sectionData(sec);
    const r = new FieldReader(data, sec.offset, elf.littleEndian, elf.name);
    // Each entry is at least 16 bytes: a bound on iterations even if vd_next/vn_next loop.
    const maxEntries = Math.min(sec.info || Infinity, Math.floor(data.length / 8));
    let at = 0;
    for (let n = 0; n < maxEntries; n++) {
      const f = `${sec.name}@0x${at.toString(16)}`;
      if (sec.type === SHT_GNU_VERDEF) {
        // Elf_Verdef: version u16, flags u16, ndx u16, cnt u16, hash u32, aux u32, next u32.
        const flags = r.u16(at + 2, `${f} vd_flags`);
        const ndx = r.u16(at + 4, `${f} vd_ndx`);
        const aux = r.u32(at + 12, `${f} vd_aux`);
        const next = r.u32(at + 16, `${f} vd_next`);
        const name = cString(strtab, r.u32(at + aux, `${f} vda_name`));
        // The base definition names the file itself (the soname), not a version.
        if (name !== undefined && !(flags & VER_FLG_BASE)) names.set(ndx & 0x7fff, { name, needed: false });
        if (next === 0) break;
        at += next;
      } else {
        // Elf_Verneed: version u16, cnt u16, file u32, aux u32, next u32; Elf_Vernaux: hash u32, flags u16, other u16, name u32, next u32.
        const cnt = r.u16(at + 2, `${f} vn_cnt`);
        let auxAt = at + r.u32(at + 8, `${f} vn_aux`);
        for (let k = 0; k < cnt && k < data.length / 16; k++) {
          const af = `${sec.name}@0x${auxAt.toString(16)}`;
          const other = r.u16(auxAt + 6, `${af} vna_other`);
          const name = cString(strtab, r.u32(auxAt + 8, `${af} vna_name`));
          if (name !== undefined) names.set(other & 0x7fff, { name, needed: true });
          const anext = r.u32(auxAt + 12, `${af} vna_next`);
          if (anext === 0) break;
          auxAt += anext;
        }
        const next = r.u32(at + 12, `${f} vn_next`);
        if (next === 0) break;
        at += next;
      }
    }
  }
  return names;
}

function applyVersions(elf: ElfFile, dynsym: Section, syms: ElfSymbol[]): void {
  const versym = elf.sections().find((s) => s.type === SHT_GNU_VERSYM && s.link === dynsym.index);
  if (!versym) return;
  const names = versionNames(elf);
  const r = new FieldReader(elf.sectionData(versym), versym.offset, elf.littleEndian, elf.name);
  for (const sym of syms) {
    if ((sym.index + 1) * 2 > r.bytes.length) break;
    const v = r.u16(sym.index * 2, `${versym.name}[${sym.index}]`);
    const idx = v & 0x7fff;
    // 0 = local, 1 = global: no version string (GNU symbol versioning spec).
    if (idx < 2) continue;
    const ver = names.get(idx);
    if (ver === undefined) continue;
    sym.version = ver.name;
    sym.versionHidden = (v & VERSYM_HIDDEN) !== 0 || sym.shndx === 0 || ver.needed;
  }
}
