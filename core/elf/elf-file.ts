import type { ByteSource } from "../io/byte-source.ts";
import {
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  SHN_XINDEX,
  SHT_NOBITS,
  machineName,
} from "./constants.ts";
import { ElfError } from "./errors.ts";
import { FieldReader, cString } from "./fields.ts";

export interface ElfHeader {
  elfClass: 32 | 64;
  endian: "little" | "big";
  osAbi: number;
  /** e_type: 1 REL, 2 EXEC, 3 DYN, 4 CORE. */
  type: number;
  machine: number;
  /** Architecture name for predicates: x86_64, aarch64, x86, s390x, mips, … */
  arch: string;
  entry: bigint;
  phoff: number;
  shoff: number;
  flags: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

export interface ProgramHeader {
  index: number;
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: bigint;
  align: bigint;
}

export interface Section {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: number;
}

export interface ElfOpenOptions {
  /** Largest section read into memory (default 512 MiB): a hostile size must not exhaust memory. */
  maxSectionBytes?: number;
}

/** Upper bound on section and program header counts: real files have a few hundred. */
const MAX_HEADERS = 1 << 20;
const DEFAULT_MAX_SECTION_BYTES = 512 * 1024 * 1024;

/**
 * A lazily-read ELF file (ELF32/ELF64, little and big endian). Only the file header is read
 * on open; headers, tables and section bytes are read on first use and cached.
 * All input is untrusted: every offset and count is checked against the file before use.
 */
export class ElfFile {
  readonly source: ByteSource;
  readonly header: ElfHeader;
  readonly maxSectionBytes: number;
  private programHeadersCache: ProgramHeader[] | undefined;
  private sectionsCache: Section[] | undefined;
  private readonly dataCache = new Map<number, Uint8Array>();

  private constructor(source: ByteSource, header: ElfHeader, opts: ElfOpenOptions) {
    this.source = source;
    this.header = header;
    this.maxSectionBytes = opts.maxSectionBytes ?? DEFAULT_MAX_SECTION_BYTES;
  }

  get name(): string {
    return this.source.name;
  }

  get is64(): boolean {
    return this.header.elfClass === 64;
  }

  get littleEndian(): boolean {
    return this.header.endian === "little";
  }

  static open(source: ByteSource, opts: ElfOpenOptions = {}): ElfFile {
    return new ElfFile(source, readHeader(source), opts);
  }

  /** A FieldReader over `length` bytes at `offset`, failing with the field name when out of the file. */
  reader(offset: number, length: number, field: string): FieldReader {
    this.checkRange(offset, length, field);
    return new FieldReader(this.source.read(offset, length), offset, this.littleEndian, this.name);
  }

  checkRange(offset: number, length: number, field: string): void {
    if (offset < 0 || length < 0 || offset + length > this.source.size) {
      throw new ElfError(
        "ELF_TRUNCATED",
        this.name,
        field,
        offset,
        `${length} bytes at 0x${offset.toString(16)} run past the end of the file (size ${this.source.size})`,
      );
    }
  }

  programHeaders(): ProgramHeader[] {
    this.programHeadersCache ??= readProgramHeaders(this);
    return this.programHeadersCache;
  }

  sections(): Section[] {
    this.sectionsCache ??= readSections(this);
    return this.sectionsCache;
  }

  section(name: string): Section | undefined {
    return this.sections().find((s) => s.name === name);
  }

  sectionsOfType(type: number): Section[] {
    return this.sections().filter((s) => s.type === type);
  }

  /** The bytes of a section (empty for SHT_NOBITS), cached. Refused above maxSectionBytes. */
  sectionData(sec: Section): Uint8Array {
    if (sec.type === SHT_NOBITS || sec.size === 0) return new Uint8Array(0);
    const cached = this.dataCache.get(sec.index);
    if (cached) return cached;
    if (sec.size > this.maxSectionBytes) {
      throw new ElfError(
        "ELF_LIMIT",
        this.name,
        `section ${sec.name || `#${sec.index}`} sh_size`,
        undefined,
        `${sec.size} bytes exceeds the limit of ${this.maxSectionBytes} bytes`,
      );
    }
    this.checkRange(sec.offset, sec.size, `section ${sec.name || `#${sec.index}`} contents`);
    const data = this.source.read(sec.offset, sec.size);
    this.dataCache.set(sec.index, data);
    return data;
  }

  close(): void {
    this.source.close();
  }
}

function readHeader(src: ByteSource): ElfHeader {
  if (src.size < 16) {
    throw new ElfError(
      "ELF_NOT_ELF",
      src.name,
      "e_ident",
      0,
      `file is ${src.size} bytes, too short for an ELF header`,
    );
  }
  const ident = src.read(0, 16);
  if (ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) {
    throw new ElfError("ELF_NOT_ELF", src.name, "e_ident[EI_MAG]", 0, "no \\x7fELF magic");
  }
  const cls = ident[4];
  const data = ident[5];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new ElfError("ELF_UNSUPPORTED", src.name, "e_ident[EI_CLASS]", 4, `unknown class ${cls}`);
  }
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) {
    throw new ElfError("ELF_UNSUPPORTED", src.name, "e_ident[EI_DATA]", 5, `unknown data encoding ${data}`);
  }
  const is64 = cls === ELFCLASS64;
  const ehsize = is64 ? 64 : 52;
  if (src.size < ehsize) {
    throw new ElfError(
      "ELF_TRUNCATED",
      src.name,
      "ELF header",
      0,
      `file is ${src.size} bytes, header needs ${ehsize}`,
    );
  }
  const r = new FieldReader(src.read(0, ehsize), 0, data === ELFDATA2LSB, src.name);
  const elfClass = is64 ? 64 : 32;
  // Field offsets: gABI "ELF Header"; the 64-bit layout widens e_entry, e_phoff, e_shoff.
  const o = is64 ? { phoff: 32, shoff: 40, flags: 48 } : { phoff: 28, shoff: 32, flags: 36 };
  const after = o.flags + 4; // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
  const machine = r.u16(18, "e_machine");
  return {
    elfClass,
    endian: data === ELFDATA2LSB ? "little" : "big",
    osAbi: ident[7] ?? 0,
    type: r.u16(16, "e_type"),
    machine,
    arch: machineName(machine, elfClass),
    entry: r.addr(24, is64, "e_entry"),
    phoff: r.offset(o.phoff, is64, "e_phoff"),
    shoff: r.offset(o.shoff, is64, "e_shoff"),
    flags: r.u32(o.flags, "e_flags"),
    phentsize: r.u16(after + 2, "e_phentsize"),
    phnum: r.u16(after + 4, "e_phnum"),
    shentsize: r.u16(after + 6, "e_shentsize"),
    shnum: r.u16(after + 8, "e_shnum"),
    shstrndx: r.u16(after + 10, "e_shstrndx"),
  };
}

function readProgramHeaders(elf: ElfFile): ProgramHeader[] {
  const h = elf.header;
  if (h.phoff === 0 || h.phnum === 0) return [];
  const is64 = elf.is64;
  const minSize = is64 ? 56 : 32;
  if (h.phentsize < minSize) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      "e_phentsize",
      is64 ? 54 : 42,
      `${h.phentsize} is smaller than ${minSize}`,
    );
  }
  const r = elf.reader(h.phoff, h.phnum * h.phentsize, "program header table");
  const out: ProgramHeader[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const b = i * h.phentsize;
    const f = `program header ${i}`;
    if (is64) {
      out.push({
        index: i,
        type: r.u32(b, `${f} p_type`),
        flags: r.u32(b + 4, `${f} p_flags`),
        offset: r.offset(b + 8, true, `${f} p_offset`),
        vaddr: r.u64(b + 16, `${f} p_vaddr`),
        paddr: r.u64(b + 24, `${f} p_paddr`),
        filesz: r.offset(b + 32, true, `${f} p_filesz`),
        memsz: r.u64(b + 40, `${f} p_memsz`),
        align: r.u64(b + 48, `${f} p_align`),
      });
    } else {
      out.push({
        index: i,
        type: r.u32(b, `${f} p_type`),
        offset: r.u32(b + 4, `${f} p_offset`),
        vaddr: BigInt(r.u32(b + 8, `${f} p_vaddr`)),
        paddr: BigInt(r.u32(b + 12, `${f} p_paddr`)),
        filesz: r.u32(b + 16, `${f} p_filesz`),
        memsz: BigInt(r.u32(b + 20, `${f} p_memsz`)),
        flags: r.u32(b + 24, `${f} p_flags`),
        align: BigInt(r.u32(b + 28, `${f} p_align`)),
      });
    }
  }
  return out;
}

function readSectionHeader(
  r: FieldReader,
  b: number,
  i: number,
  is64: boolean,
): Omit<Section, "name"> & { nameOff: number } {
  const f = `section header ${i}`;
  if (is64) {
    return {
      index: i,
      nameOff: r.u32(b, `${f} sh_name`),
      type: r.u32(b + 4, `${f} sh_type`),
      flags: r.u64(b + 8, `${f} sh_flags`),
      addr: r.u64(b + 16, `${f} sh_addr`),
      offset: r.offset(b + 24, true, `${f} sh_offset`),
      size: r.offset(b + 32, true, `${f} sh_size`),
      link: r.u32(b + 40, `${f} sh_link`),
      info: r.u32(b + 44, `${f} sh_info`),
      addralign: r.u64(b + 48, `${f} sh_addralign`),
      entsize: r.offset(b + 56, true, `${f} sh_entsize`),
    };
  }
  return {
    index: i,
    nameOff: r.u32(b, `${f} sh_name`),
    type: r.u32(b + 4, `${f} sh_type`),
    flags: BigInt(r.u32(b + 8, `${f} sh_flags`)),
    addr: BigInt(r.u32(b + 12, `${f} sh_addr`)),
    offset: r.u32(b + 16, `${f} sh_offset`),
    size: r.u32(b + 20, `${f} sh_size`),
    link: r.u32(b + 24, `${f} sh_link`),
    info: r.u32(b + 28, `${f} sh_info`),
    addralign: BigInt(r.u32(b + 32, `${f} sh_addralign`)),
    entsize: r.u32(b + 36, `${f} sh_entsize`),
  };
}

function readSections(elf: ElfFile): Section[] {
  const h = elf.header;
  if (h.shoff === 0) return [];
  const is64 = elf.is64;
  const minSize = is64 ? 64 : 40;
  if (h.shentsize < minSize) {
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      "e_shentsize",
      is64 ? 58 : 46,
      `${h.shentsize} is smaller than ${minSize}`,
    );
  }
  // Extended numbering (gABI "Sections"): e_shnum 0 and e_shstrndx SHN_XINDEX defer to section 0.
  let count = h.shnum;
  let strndx = h.shstrndx;
  if (count === 0 || strndx === SHN_XINDEX) {
    const zero = readSectionHeader(elf.reader(h.shoff, h.shentsize, "section header 0"), 0, 0, is64);
    if (count === 0) count = zero.size;
    if (strndx === SHN_XINDEX) strndx = zero.link;
  }
  if (count > MAX_HEADERS) {
    throw new ElfError(
      "ELF_LIMIT",
      elf.name,
      "section count",
      h.shoff,
      `${count} sections exceeds the limit of ${MAX_HEADERS}`,
    );
  }
  const r = elf.reader(h.shoff, count * h.shentsize, "section header table");
  const raw = [];
  for (let i = 0; i < count; i++) raw.push(readSectionHeader(r, i * h.shentsize, i, is64));

  let names: Uint8Array = new Uint8Array(0);
  if (strndx !== 0) {
    const strSec = raw[strndx];
    if (!strSec) {
      throw new ElfError(
        "ELF_BAD_FIELD",
        elf.name,
        "e_shstrndx",
        undefined,
        `section ${strndx} does not exist (${count} sections)`,
      );
    }
    names = elf.sectionData({ ...strSec, name: ".shstrtab" });
  }
  return raw.map(({ nameOff, ...s }) => ({ ...s, name: cString(names, nameOff) ?? "" }));
}
