import { NT_GNU_BUILD_ID, PT_NOTE, SHT_NOTE } from "./constants.ts";
import type { ElfFile } from "./elf-file.ts";
import { ElfError } from "./errors.ts";
import { FieldReader, cString } from "./fields.ts";

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

/** Largest note area read: notes are small; a hostile size must not pull in the file. */
const MAX_NOTE_BYTES = 1 << 20;

function align(n: number, to: number): number {
  return to > 1 ? Math.ceil(n / to) * to : n;
}

/** Parses one note area (Elf_Nhdr: namesz, descsz, type; name and desc padded to `alignment`). */
export function parseNotes(r: FieldReader, alignment: number): ElfNote[] {
  const out: ElfNote[] = [];
  const a = alignment === 8 ? 8 : 4;
  let at = 0;
  while (at + 12 <= r.bytes.length) {
    const namesz = r.u32(at, "note n_namesz");
    const descsz = r.u32(at + 4, "note n_descsz");
    const type = r.u32(at + 8, "note n_type");
    const nameAt = at + 12;
    const descAt = align(nameAt + namesz, a);
    const end = align(descAt + descsz, a);
    if (descAt + descsz > r.bytes.length) {
      throw new ElfError(
        "ELF_TRUNCATED",
        r.file,
        "note n_descsz",
        r.base + at + 4,
        `note of ${descsz} bytes runs past its section`,
      );
    }
    const name = cString(r.bytes.subarray(nameAt, nameAt + namesz), 0) ?? "";
    out.push({ name, type, desc: r.bytes.subarray(descAt, descAt + descsz) });
    at = end; // always advances by at least 12
  }
  return out;
}

/** All notes, from SHT_NOTE sections, or PT_NOTE segments when there are no section headers. */
export function readNotes(elf: ElfFile): ElfNote[] {
  const areas: { offset: number; size: number; align: number; field: string }[] = [];
  const secs = elf.sections().filter((s) => s.type === SHT_NOTE);
  if (secs.length > 0) {
    for (const s of secs)
      areas.push({ offset: s.offset, size: s.size, align: Number(s.addralign), field: `section ${s.name}` });
  } else {
    for (const p of elf.programHeaders()) {
      if (p.type === PT_NOTE)
        areas.push({
          offset: p.offset,
          size: p.filesz,
          align: Number(p.align),
          field: `program header ${p.index} (PT_NOTE)`,
        });
    }
  }
  const out: ElfNote[] = [];
  for (const a of areas) {
    if (a.size > MAX_NOTE_BYTES) {
      throw new ElfError(
        "ELF_LIMIT",
        elf.name,
        `${a.field} size`,
        a.offset,
        `${a.size} bytes exceeds the note limit of ${MAX_NOTE_BYTES}`,
      );
    }
    out.push(...parseNotes(elf.reader(a.offset, a.size, a.field), a.align));
  }
  return out;
}

/** The GNU BuildID (NT_GNU_BUILD_ID) as lowercase hex, or undefined. */
export function readBuildId(elf: ElfFile): string | undefined {
  const note = readNotes(elf).find((n) => n.type === NT_GNU_BUILD_ID && n.name === "GNU");
  return note ? Buffer.from(note.desc).toString("hex") : undefined;
}

export interface DebugLink {
  file: string;
  crc32: number;
}

/** `.gnu_debuglink`: the separate debug file's name and CRC-32 (GDB manual, "Separate Debug Files"). */
export function readDebugLink(elf: ElfFile): DebugLink | undefined {
  const sec = elf.section(".gnu_debuglink");
  if (!sec) return undefined;
  const data = elf.sectionData(sec);
  const nul = data.indexOf(0);
  if (nul < 0)
    throw new ElfError(
      "ELF_BAD_FIELD",
      elf.name,
      ".gnu_debuglink file name",
      sec.offset,
      "not NUL-terminated",
    );
  const crcAt = align(nul + 1, 4);
  const r = new FieldReader(data, sec.offset, elf.littleEndian, elf.name);
  return { file: cString(data, 0) ?? "", crc32: r.u32(crcAt, ".gnu_debuglink crc32") };
}
