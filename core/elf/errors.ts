import { StellaError } from "../errors.ts";

export type ElfErrorCode =
  /** Not an ELF file at all (bad magic). */
  | "ELF_NOT_ELF"
  /** A structure points past the end of the file. */
  | "ELF_TRUNCATED"
  /** A field holds a value no valid ELF can have (entry size too small, index out of range, …). */
  | "ELF_BAD_FIELD"
  /** Valid ELF we do not read (unknown class or data encoding). */
  | "ELF_UNSUPPORTED"
  /** A size the caller capped (max section size, max string table size) was exceeded. */
  | "ELF_LIMIT";

/** Every parse failure names the file, the field and the file offset where it was read. */
export class ElfError extends StellaError<ElfErrorCode> {
  readonly file: string;
  readonly field: string;
  readonly offset: number | undefined;

  constructor(code: ElfErrorCode, file: string, field: string, offset: number | undefined, detail: string) {
    super(
      code,
      `${file}: ${field}${offset === undefined ? "" : ` (at offset 0x${offset.toString(16)})`}: ${detail}`,
    );
    this.file = file;
    this.field = field;
    this.offset = offset;
  }
}
