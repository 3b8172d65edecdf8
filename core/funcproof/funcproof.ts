import { hash } from "node:crypto";

import { normalizeCode } from "../disasm/normalize.ts";
import { ElfFile, type Section } from "../elf/elf-file.ts";
import { ElfError } from "../elf/errors.ts";
import { readBuildId, readDebugLink } from "../elf/notes.ts";
import { type Blake3, digestSource } from "../hash/digest.ts";
import type { ByteSource } from "../io/byte-source.ts";
import { functionRanges } from "./functions.ts";

export const FUNCPROOF_PREDICATE_TYPE = "stellaops.funcproof.v1";
export const FUNCPROOF_MEDIA_TYPE = "application/vnd.stellaops.funcproof+json";
export const DEFAULT_SECTIONS = [".text", ".rodata", ".data", ".symtab", ".dynsym"];
/** The seed's `maxSectionSize`: 100 MiB. */
export const DEFAULT_MAX_SECTION_BYTES = 100 * 1024 * 1024;

export interface SectionHash {
  offset: number;
  size: number;
  sha256?: string;
  blake3?: string;
  /** Why no hash: the section is larger than the configured limit. */
  skipped?: string;
}

export interface FuncProofFunction {
  sym: string;
  version?: string;
  /** Virtual address range [start, end), hex ("0x401120"): 64-bit addresses do not fit JSON numbers. */
  start: string;
  end: string;
  /** SHA-256 of the function's bytes. */
  sha256: string;
  /** SHA-256 of the bytes with relative branch targets and RIP-relative displacements masked. */
  normSha256?: string;
}

export interface FuncProof {
  buildId?: string;
  file: { name: string; size: number; sha256: string; blake3?: string };
  arch: string;
  elf: { class: 32 | 64; endian: "little" | "big"; type: number };
  sections: Record<string, SectionHash>;
  functions: FuncProofFunction[];
  traces: string[];
  meta: {
    tool: string;
    functionSource: string;
    /** Normalisation scheme of normSha256, "none" when the architecture has none yet. */
    normalization: string;
    /** Bytes the x86-64 decoder could not decode as instructions (data islands); 0 for clean code. */
    undecodable: number;
    debugLink?: { file: string; crc32: number };
  };
}

export interface FuncProofOptions {
  /** Name recorded for the file (a path, or the path inside an image). */
  name: string;
  tool: string;
  sections?: string[];
  blake3?: Blake3;
  maxSectionBytes?: number;
}

const NORMALIZATION: Record<string, string> = {
  x86_64: "x86_64-rel-rip-mask/1",
  aarch64: "aarch64-imm-mask/1",
};

/** Builds the FuncProof of one ELF file. Deterministic: same bytes and options → same document. */
export function buildFuncProof(src: ByteSource, opts: FuncProofOptions): FuncProof {
  const maxSectionBytes = opts.maxSectionBytes ?? DEFAULT_MAX_SECTION_BYTES;
  // The hashing limit is the user's; the parser keeps its own memory bound (512 MiB).
  const elf = ElfFile.open(src);
  const file = digestSource(src, opts.blake3);
  const sections: Record<string, SectionHash> = {};
  for (const name of opts.sections ?? DEFAULT_SECTIONS) {
    const sec = elf.section(name);
    if (sec) sections[name] = hashSection(elf, sec, maxSectionBytes, opts.blake3);
  }

  const table = functionRanges(elf);
  const arch = elf.header.arch;
  const normalization = NORMALIZATION[arch] ?? "none";
  let undecodable = 0;
  // Aliases share a range: hash each distinct range once.
  const byRange = new Map<string, { sha256: string; normSha256?: string }>();
  const functions: FuncProofFunction[] = [];
  for (const f of table.functions) {
    const key = `${f.fileOffset}:${f.end - f.start}`;
    let hashes = byRange.get(key);
    if (!hashes) {
      const data = elf.sectionData(f.section);
      const at = f.fileOffset - f.section.offset;
      const bytes = data.subarray(at, at + Number(f.end - f.start));
      hashes = { sha256: hash("sha256", bytes, "hex") };
      if (normalization !== "none") {
        const norm = normalizeCode(arch, bytes);
        undecodable += norm.invalid;
        hashes.normSha256 = hash("sha256", norm.bytes, "hex");
      }
      byRange.set(key, hashes);
    }
    const fn: FuncProofFunction = { sym: f.sym, start: hex(f.start), end: hex(f.end), ...hashes };
    if (f.version !== undefined) fn.version = f.version;
    functions.push(fn);
  }

  const proof: FuncProof = {
    file: { name: opts.name, ...file },
    arch,
    elf: { class: elf.header.elfClass, endian: elf.header.endian, type: elf.header.type },
    sections,
    functions,
    traces: [],
    meta: { tool: opts.tool, functionSource: table.source, normalization, undecodable },
  };
  const buildId = readBuildId(elf);
  if (buildId !== undefined) proof.buildId = buildId;
  const link = readDebugLink(elf);
  if (link) proof.meta.debugLink = link;
  return proof;
}

function hashSection(elf: ElfFile, sec: Section, limit: number, blake3: Blake3 | undefined): SectionHash {
  const out: SectionHash = { offset: sec.offset, size: sec.size };
  if (sec.size > limit) {
    out.skipped = `size ${sec.size} exceeds the section limit of ${limit} bytes`;
    return out;
  }
  try {
    const data = elf.sectionData(sec);
    out.sha256 = hash("sha256", data, "hex");
    if (blake3) out.blake3 = blake3.hex(data);
  } catch (err) {
    if (err instanceof ElfError && err.code === "ELF_LIMIT") out.skipped = err.message;
    else throw err;
  }
  return out;
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}
