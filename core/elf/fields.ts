import { ElfError } from "./errors.ts";

/**
 * Endian-aware reads of fixed-size ELF fields out of a block already read from the file.
 * `base` is the block's file offset, so errors report where in the file a bad value sits.
 */
export class FieldReader {
  readonly bytes: Uint8Array;
  readonly base: number;
  readonly file: string;
  private readonly view: DataView;
  private readonly le: boolean;

  constructor(bytes: Uint8Array, base: number, littleEndian: boolean, file: string) {
    this.bytes = bytes;
    this.base = base;
    this.file = file;
    this.le = littleEndian;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private check(at: number, width: number, field: string): void {
    if (at < 0 || at + width > this.bytes.length) {
      throw new ElfError(
        "ELF_TRUNCATED",
        this.file,
        field,
        this.base + at,
        `needs ${width} bytes past the end of the data`,
      );
    }
  }

  u8(at: number, field: string): number {
    this.check(at, 1, field);
    return this.view.getUint8(at);
  }

  u16(at: number, field: string): number {
    this.check(at, 2, field);
    return this.view.getUint16(at, this.le);
  }

  u32(at: number, field: string): number {
    this.check(at, 4, field);
    return this.view.getUint32(at, this.le);
  }

  u64(at: number, field: string): bigint {
    this.check(at, 8, field);
    return this.view.getBigUint64(at, this.le);
  }

  /** An address-sized field (Elf32_Addr / Elf64_Addr) as a bigint. */
  addr(at: number, is64: boolean, field: string): bigint {
    return is64 ? this.u64(at, field) : BigInt(this.u32(at, field));
  }

  /**
   * An offset or size that must index the file: returned as a number, refused when it
   * cannot be one (a 64-bit value above 2^53 is hostile, no file is that large).
   */
  offset(at: number, is64: boolean, field: string): number {
    if (!is64) return this.u32(at, field);
    const v = this.u64(at, field);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ElfError(
        "ELF_BAD_FIELD",
        this.file,
        field,
        this.base + at,
        `value 0x${v.toString(16)} is not a file offset or size`,
      );
    }
    return Number(v);
  }
}

const utf8 = new TextDecoder("utf-8");

/** The NUL-terminated string at `start` of a string table; `limit` bounds the scan. */
export function cString(table: Uint8Array, start: number): string | undefined {
  if (start < 0 || start >= table.length) return undefined;
  let end = table.indexOf(0, start);
  if (end < 0) end = table.length;
  return utf8.decode(table.subarray(start, end));
}
