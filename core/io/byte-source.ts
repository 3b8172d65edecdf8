import { closeSync, fstatSync, openSync, readSync } from "node:fs";

import { StellaError } from "../errors.ts";

/**
 * Random-access bytes, read on demand. ELF parsing goes through this so that opening a
 * 100 MB binary to read its BuildID reads a few kilobytes, not the file.
 */
export interface ByteSource {
  /** Human-readable name for error messages (a path, or `image:path`). */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`; throws `EOF` when the range is out of bounds. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

export class ByteSourceError extends StellaError<"EOF" | "IO"> {}

function checkRange(src: ByteSource, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > src.size
  ) {
    throw new ByteSourceError(
      "EOF",
      `${src.name}: read of ${length} bytes at offset ${offset} is outside the file (size ${src.size})`,
    );
  }
}

/** A file read lazily with positioned reads (pread). */
export class FileByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  /** Bytes actually read so far: lets tests prove laziness. */
  bytesRead = 0;
  private fd: number | undefined;

  constructor(path: string, name: string = path) {
    this.name = name;
    try {
      this.fd = openSync(path, "r");
      this.size = fstatSync(this.fd).size;
    } catch (cause) {
      throw new ByteSourceError("IO", `${name}: cannot open: ${(cause as Error).message}`, { cause });
    }
  }

  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    if (this.fd === undefined) throw new ByteSourceError("IO", `${this.name}: read after close`);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0)
        throw new ByteSourceError("EOF", `${this.name}: file shrank while reading at ${offset + done}`);
      done += n;
    }
    this.bytesRead += length;
    return buf;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Bytes already in memory (a file extracted from an image layer, a test vector). */
export class BufferByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly buf: Uint8Array;

  constructor(buf: Uint8Array, name: string) {
    this.buf = buf;
    this.name = name;
    this.size = buf.length;
  }

  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    return this.buf.subarray(offset, offset + length);
  }

  close(): void {}
}
