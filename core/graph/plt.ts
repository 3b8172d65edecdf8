/**
 * x86-64 PLT stubs → the imported symbols they jump to. A stub is `jmp *disp32(%rip)` (FF 25, possibly
 * BND-prefixed F2, after an optional ENDBR64 F3 0F 1E FA) in `.plt`, `.plt.sec` or `.plt.got`; the GOT slot it
 * reads is named by a R_X86_64_JUMP_SLOT (`.rela.plt`) or R_X86_64_GLOB_DAT (`.rela.dyn`) relocation. This is
 * what binutils' synthetic `<sym@plt>` symbols are made from (elf_x86_64_get_synthetic_symtab).
 */
import { x86InsnLength } from "../disasm/x86-64.ts";
import type { ElfFile } from "../elf/elf-file.ts";
import {
  R_X86_64_GLOB_DAT,
  R_X86_64_IRELATIVE,
  R_X86_64_JUMP_SLOT,
  readRelocationSections,
  type RelocationSection,
} from "../elf/relocations.ts";

const EM_X86_64 = 62;
export const PLT_SECTIONS: readonly string[] = [".plt", ".plt.sec", ".plt.got"];

export interface GotSymbol {
  /** The imported symbol; for an R_X86_64_IRELATIVE slot, objdump's name for it: `*ABS*+0x<resolver>`. */
  symbol: string;
  version?: string;
  /** IRELATIVE slots (a local IFUNC): the address of the resolver function in this file. */
  resolver?: bigint;
}

export interface PltStub {
  /** Address of the stub (of its ENDBR64 when it has one): where calls land and objdump puts `<sym@plt>`. */
  address: bigint;
  symbol: string;
  version?: string;
  /** IRELATIVE stubs: the resolver's address (see GotSymbol). */
  resolver?: bigint;
  /** `.plt`, `.plt.sec` or `.plt.got`. */
  section: string;
  /** The GOT slot the stub jumps through. */
  gotSlot: bigint;
}

/**
 * GOT slot address → imported symbol, from JUMP_SLOT and GLOB_DAT relocations that name a symbol, and
 * IRELATIVE relocations (local IFUNCs: the addend is the resolver).
 */
export function gotSymbols(relocs: RelocationSection[]): Map<bigint, GotSymbol> {
  const out = new Map<bigint, GotSymbol>();
  for (const rs of relocs) {
    for (const r of rs.relocations) {
      if (r.type === R_X86_64_IRELATIVE && r.symIndex === 0) {
        const resolver = BigInt.asUintN(64, r.addend);
        out.set(r.offset, { symbol: `*ABS*+0x${resolver.toString(16)}`, resolver });
        continue;
      }
      if ((r.type !== R_X86_64_JUMP_SLOT && r.type !== R_X86_64_GLOB_DAT) || r.symbol === "") continue;
      const g: GotSymbol = { symbol: r.symbol };
      if (r.symbolVersion !== undefined) g.version = r.symbolVersion;
      out.set(r.offset, g);
    }
  }
  return out;
}

function isPrefix(b: number): boolean {
  return b === 0xf2 || b === 0xf3 || b === 0x66 || b === 0x2e || b === 0x3e || (b >= 0x40 && b <= 0x4f);
}

/**
 * The named PLT stubs of an x86-64 ELF file, sorted by address ([] for other machines or without PLT
 * sections). Stubs whose GOT slot has no JUMP_SLOT/GLOB_DAT/IRELATIVE relocation (PLT0) are left out.
 */
export function pltStubs(elf: ElfFile, relocs: RelocationSection[] = readRelocationSections(elf)): PltStub[] {
  if (elf.header.machine !== EM_X86_64) return [];
  const slots = gotSymbols(relocs);
  const out: PltStub[] = [];
  for (const sec of elf.sections()) {
    if (!PLT_SECTIONS.includes(sec.name) || sec.size === 0) continue;
    const code = elf.sectionData(sec);
    let p = 0;
    while (p < code.length) {
      const len = x86InsnLength(code, p);
      let q = p;
      while (q < p + len && isPrefix(code[q] ?? 0)) q++;
      // jmp *disp32(%rip): FF /4 with ModRM 00 100 101, then disp32; the instruction ends with it.
      if (code[q] === 0xff && code[q + 1] === 0x25 && q + 6 === p + len) {
        const disp =
          (code[q + 2] ?? 0) |
          ((code[q + 3] ?? 0) << 8) |
          ((code[q + 4] ?? 0) << 16) |
          ((code[q + 5] ?? 0) << 24);
        const slot = sec.addr + BigInt(p + len) + BigInt(disp);
        const g = slots.get(slot);
        if (g) {
          const endbr =
            p >= 4 &&
            code[p - 4] === 0xf3 &&
            code[p - 3] === 0x0f &&
            code[p - 2] === 0x1e &&
            code[p - 1] === 0xfa;
          const stub: PltStub = {
            address: sec.addr + BigInt(endbr ? p - 4 : p),
            symbol: g.symbol,
            section: sec.name,
            gotSlot: slot,
          };
          if (g.version !== undefined) stub.version = g.version;
          if (g.resolver !== undefined) stub.resolver = g.resolver;
          out.push(stub);
        }
      }
      p += len;
    }
  }
  out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return out;
}
