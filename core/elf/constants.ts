// Values from the System V gABI (https://refspecs.linuxfoundation.org/elf/gabi4+/) and the
// GNU extensions (https://refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/LSB-Core-generic/symversion.html).

export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;

export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;
export const SHT_SYMTAB_SHNDX = 18;
export const SHT_GNU_VERDEF = 0x6ffffffd;
export const SHT_GNU_VERNEED = 0x6ffffffe;
export const SHT_GNU_VERSYM = 0x6fffffff;

export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;

export const PT_LOAD = 1;
export const PT_NOTE = 4;

export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;
export const STT_COMMON = 5;
export const STT_TLS = 6;
export const STT_GNU_IFUNC = 10;

export const NT_GNU_BUILD_ID = 3;

/** Version index bit meaning "hidden" (not the default version), in .gnu.version entries. */
export const VERSYM_HIDDEN = 0x8000;
export const VER_FLG_BASE = 0x1;

/** e_machine → the architecture name used in predicates (Go/OCI-style where one exists). */
export function machineName(machine: number, elfClass: 32 | 64): string {
  switch (machine) {
    case 3:
      return "x86";
    case 8:
      return elfClass === 64 ? "mips64" : "mips";
    case 20:
      return "ppc";
    case 21:
      return "ppc64";
    case 22:
      return elfClass === 64 ? "s390x" : "s390";
    case 40:
      return "arm";
    case 62:
      return "x86_64";
    case 183:
      return "aarch64";
    case 243:
      return elfClass === 64 ? "riscv64" : "riscv32";
    case 258:
      return "loongarch64";
    default:
      return `em-${machine}`;
  }
}
