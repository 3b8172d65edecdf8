export { ElfFile } from "./elf-file.ts";
export type { ElfHeader, ElfOpenOptions, ProgramHeader, Section } from "./elf-file.ts";
export { ElfError } from "./errors.ts";
export type { ElfErrorCode } from "./errors.ts";
export { readSymbols } from "./symbols.ts";
export type { ElfSymbol, SymbolTableName } from "./symbols.ts";
export { readBuildId, readDebugLink, readNotes } from "./notes.ts";
export type { DebugLink, ElfNote } from "./notes.ts";
export * as elfc from "./constants.ts";
