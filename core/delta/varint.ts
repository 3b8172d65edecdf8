/** LEB128 varints for the op stream, bounded: at most 8 bytes, values up to 2^53 − 1. */
import { DeltaError } from "./errors.ts";

export const MAX_VARINT_BYTES = 8;

/** A growable byte buffer for writing the op stream. */
export class ByteWriter {
  private buf = new Uint8Array(4096);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + extra) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }

  uvarint(v: number): void {
    this.ensure(MAX_VARINT_BYTES);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  /** Zigzag: small negative and positive numbers both get short encodings. */
  svarint(v: number): void {
    this.uvarint(v < 0 ? -v * 2 - 1 : v * 2);
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Reads varints from `buf`, throwing DELTA_MALFORMED naming `where` on truncation or overflow. */
export class ByteReader {
  pos = 0;
  private readonly buf: Uint8Array;
  private readonly where: string;

  constructor(buf: Uint8Array, where: string) {
    this.buf = buf;
    this.where = where;
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  uvarint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.buf.length) {
        throw new DeltaError("DELTA_MALFORMED", `${this.where}: varint truncated at byte ${this.pos}`);
      }
      const b = this.buf[this.pos++] ?? 0;
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) {
          throw new DeltaError("DELTA_MALFORMED", `${this.where}: varint at byte ${this.pos} exceeds 2^53-1`);
        }
        return v;
      }
      mul *= 0x80;
    }
    throw new DeltaError(
      "DELTA_MALFORMED",
      `${this.where}: varint at byte ${this.pos} longer than ${MAX_VARINT_BYTES} bytes`,
    );
  }

  svarint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
}
