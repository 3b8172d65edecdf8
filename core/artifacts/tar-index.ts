/**
 * Random access into an uncompressed tarball on disk: one pass over the headers (skipping the data
 * with positioned reads) records where each member's bytes are, so that an image's blobs can be read
 * in the order the manifest wants, whatever order the archive has them in. Handles ustar prefixes,
 * pax `path`/`linkpath`/`size` records, GNU long names and base-256 sizes.
 */
import { posix } from "node:path";

import { ByteSourceError, FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, type BlobStore, normalizeMemberPath, readFileRange } from "./common.ts";

export type TarMemberType = "file" | "directory" | "symlink" | "link" | "other";

export interface TarMember {
  /** Normalised absolute path (`/manifest.json`). */
  path: string;
  type: TarMemberType;
  /** Where the member's bytes start in the tar file. */
  offset: number;
  size: number;
  /** Symlink text or hardlink target, as written. */
  linkname: string;
}

const BLOCK = 512;
/** Largest pax / GNU long-name record accepted (tar-stream allows 4 MiB; real ones are tiny). */
const MAX_EXTENSION_BYTES = 1 << 20;

function cstring(b: Uint8Array, start: number, length: number): string {
  const field = b.subarray(start, start + length);
  const nul = field.indexOf(0);
  return Buffer.from(nul === -1 ? field : field.subarray(0, nul)).toString("utf8");
}

function parseOctal(b: Uint8Array, start: number, length: number): number | undefined {
  const s = cstring(b, start, length).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) return undefined;
  return parseInt(s, 8);
}

/** Size field: octal, or GNU base-256 when the high bit of the first byte is set. */
function parseSize(b: Uint8Array): number | undefined {
  const first = b[124] ?? 0;
  if ((first & 0x80) === 0) return parseOctal(b, 124, 12);
  if ((first & 0x40) !== 0) return undefined; // negative
  let n = first & 0x3f;
  for (let i = 125; i < 136; i++) n = n * 256 + (b[i] ?? 0);
  return Number.isSafeInteger(n) ? n : undefined;
}

function isZeroBlock(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** True when `block` is a tar header whose checksum is right (unsigned or, as old tars wrote, signed). */
export function isTarHeader(block: Uint8Array): boolean {
  if (block.length < BLOCK || isZeroBlock(block.subarray(0, BLOCK))) return false;
  const stored = parseOctal(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const x = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += x;
    signed += x >= 0x80 ? x - 0x100 : x;
  }
  return stored === unsigned || stored === signed;
}

/** pax extended header records: `<len> <key>=<value>\n`. */
function parsePax(data: Uint8Array, where: string): Map<string, string> {
  const out = new Map<string, string>();
  const buf = Buffer.from(data);
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    const len = space === -1 ? NaN : Number(buf.toString("ascii", pos, space));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > buf.length) {
      if (buf.subarray(pos).every((x) => x === 0)) break;
      throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: malformed pax record at byte ${pos}`);
    }
    const record = buf.toString("utf8", space + 1, pos + len - 1);
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** Typeflags whose size field does not count data (as Go's archive/tar: `isHeaderOnlyType`). */
const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);

function memberType(flag: string, name: string): TarMemberType {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
      return name.endsWith("/") ? "directory" : "file";
    case "1":
      return "link";
    case "2":
      return "symlink";
    case "5":
      return "directory";
    default:
      return "other";
  }
}

/** A tar header block, decoded. */
interface HeaderBlock {
  flag: string;
  /** With the ustar prefix applied. */
  name: string;
  linkname: string;
  mode: number;
  size: number;
}

/** Decodes one 512-byte header; a string says what is wrong with it. */
function decodeHeader(h: Uint8Array): HeaderBlock | string {
  if (!isTarHeader(h)) return "bad header checksum";
  const size = parseSize(h);
  if (size === undefined) return "invalid size field";
  const ustar = cstring(h, 257, 6) === "ustar" && h[262] === 0;
  const rawName = cstring(h, 0, 100);
  const prefix = ustar ? cstring(h, 345, 155) : "";
  return {
    flag: String.fromCharCode(h[156] ?? 0),
    name: prefix ? `${prefix}/${rawName}` : rawName,
    linkname: cstring(h, 157, 100),
    mode: parseOctal(h, 100, 8) ?? 0,
    size,
  };
}

/** A member as the reader sees it, after pax / GNU long-name records are applied. */
export interface MemberHeader {
  /** As written. */
  name: string;
  /** Normalised absolute path. */
  path: string;
  type: TarMemberType;
  mode: number;
  /** Bytes of data that follow the header (0 for links, directories, devices). */
  dataSize: number;
  linkname: string;
}

/**
 * Carries pax (`x`) and GNU long-name (`L`, `K`) records over to the member they describe. Global pax
 * records (`g`) are skipped, as Go's archive/tar does.
 */
class Extensions {
  private pax: Map<string, string> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;

  isMeta(flag: string): boolean {
    return flag === "x" || flag === "g" || flag === "L" || flag === "K";
  }

  /** The size of the data after a header: a pax `size` record overrides the header field. */
  size(h: HeaderBlock, where: string): number {
    if (this.isMeta(h.flag)) {
      if (h.size > MAX_EXTENSION_BYTES) {
        throw new ArtifactError(
          "ARTIFACT_MALFORMED",
          `${where}: a ${h.size}-byte extension header is implausible`,
        );
      }
      return h.size;
    }
    const paxSize = this.pax?.get("size");
    if (paxSize === undefined) return h.size;
    const n = Number(paxSize);
    if (!/^[0-9]+$/.test(paxSize) || !Number.isSafeInteger(n)) {
      throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: invalid pax size "${paxSize}"`);
    }
    return n;
  }

  absorb(flag: string, data: Uint8Array, where: string): void {
    switch (flag) {
      case "x":
        this.pax = parsePax(data, where);
        break;
      case "L":
        this.longName = cstring(data, 0, data.length);
        break;
      case "K":
        this.longLink = cstring(data, 0, data.length);
        break;
    }
  }

  member(h: HeaderBlock, size: number): MemberHeader {
    const name = this.pax?.get("path") ?? this.longName ?? h.name;
    const linkname = this.pax?.get("linkpath") ?? this.longLink ?? h.linkname;
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    return {
      name,
      path: normalizeMemberPath(name),
      type: memberType(h.flag, name),
      mode: h.mode & 0o7777,
      dataSize: HEADER_ONLY.has(h.flag) ? 0 : size,
      linkname,
    };
  }
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/*
 * End of input: both readers follow Go's archive/tar (and so Docker and containerd): the archive may
 * end at a header boundary or inside the padding after the last member's data, without the two zero
 * blocks — umoci 0.4.7, for one, writes layers like that. Ending inside a header or inside data is
 * an error.
 */

export class TarIndex implements BlobStore {
  /** The artifact path, for messages. */
  readonly name: string;
  /** The uncompressed tar on disk (the artifact itself, or a decompressed temporary copy). */
  readonly file: string;
  /** By normalised path; a later member of the same name replaces an earlier one, as on extraction. */
  readonly members = new Map<string, TarMember>();

  private constructor(file: string, name: string) {
    this.file = file;
    this.name = name;
  }

  static build(file: string, name: string): TarIndex {
    const index = new TarIndex(file, name);
    let src: FileByteSource;
    try {
      src = new FileByteSource(file, name);
    } catch (cause) {
      throw new ArtifactError("ARTIFACT_IO", (cause as Error).message, { cause });
    }
    try {
      index.scan(src);
    } catch (cause) {
      if (cause instanceof ByteSourceError) {
        throw new ArtifactError("ARTIFACT_MALFORMED", `${name}: ${cause.message}`, { cause });
      }
      throw cause;
    } finally {
      src.close();
    }
    return index;
  }

  private scan(src: FileByteSource): void {
    const bad = (msg: string): ArtifactError =>
      new ArtifactError("ARTIFACT_MALFORMED", `${this.name}: ${msg} (truncated or corrupt?)`);
    const ext = new Extensions();
    let off = 0;
    while (off < src.size) {
      if (off + BLOCK > src.size) throw bad(`tar header at byte ${off} is cut short by the end of the file`);
      const h = src.read(off, BLOCK);
      if (isZeroBlock(h)) return;
      const where = `${this.name}: tar header at byte ${off}`;
      const decoded = decodeHeader(h);
      if (typeof decoded === "string") throw bad(`tar header at byte ${off}: ${decoded}`);
      const size = ext.size(decoded, where);
      const dataOff = off + BLOCK;
      if (ext.isMeta(decoded.flag)) {
        if (dataOff + size > src.size) throw bad(`tar extension header at byte ${off} is cut short`);
        ext.absorb(decoded.flag, src.read(dataOff, size), where);
        off = dataOff + size + padding(size);
        continue;
      }
      const m = ext.member(decoded, size);
      if (dataOff + m.dataSize > src.size) {
        throw bad(
          `member "${m.name}" needs ${m.dataSize} bytes at ${dataOff} but the file ends at ${src.size}`,
        );
      }
      if (m.path !== "/") {
        this.members.set(m.path, {
          path: m.path,
          type: m.type,
          offset: dataOff,
          size: m.type === "file" ? m.dataSize : 0,
          linkname: m.linkname,
        });
      }
      off = dataOff + m.dataSize + padding(m.dataSize);
    }
  }

  /** The regular file at `rel`, following links inside the archive (at most 16). */
  resolve(rel: string): TarMember | undefined {
    let path = normalizeMemberPath(rel);
    for (let hops = 0; hops <= 16; hops++) {
      const m = this.members.get(path);
      if (m === undefined) return undefined;
      if (m.type === "file") return m;
      if (m.type === "link") path = normalizeMemberPath(m.linkname);
      else if (m.type === "symlink")
        path = normalizeMemberPath(posix.resolve(posix.dirname(m.path), m.linkname));
      else return undefined;
    }
    return undefined;
  }

  has(rel: string): boolean {
    return this.resolve(rel) !== undefined;
  }

  size(rel: string): number | undefined {
    return this.resolve(rel)?.size;
  }

  read(rel: string): AsyncIterable<Uint8Array> {
    const m = this.resolve(rel);
    if (m === undefined) throw new ArtifactError("ARTIFACT_NOT_FOUND", `${this.name}: no member ${rel}`);
    return readFileRange(this.file, m.offset, m.size, `${this.name}:${m.path}`);
  }
}

// ---- streaming -------------------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);

/** Pulls exact byte counts out of a chunk stream. */
class ChunkReader {
  /** Bytes handed out so far. */
  offset = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = EMPTY;
  private ended = false;

  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done === true) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  /** `n` bytes, or fewer only at the end of the input. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.more()));
    return this.take(n);
  }

  /** What is buffered or next arrives, at most `n` bytes; empty at the end of the input. */
  async chunk(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.more())) return EMPTY;
    return this.take(n);
  }

  /** Reads the input to its end (so that a digest over all of it completes). */
  async drain(): Promise<void> {
    this.buf = EMPTY;
    while (await this.more()) this.buf = EMPTY;
  }

  async close(): Promise<void> {
    if (!this.ended) await this.it.return?.();
  }
}

export interface StreamEntry extends MemberHeader {
  /** The member's data, streamed; read it (or not) before asking for the next member. */
  body(): AsyncGenerator<Buffer>;
}

/**
 * The members of a tar stream, in order. Data the consumer leaves unread is skipped. After the
 * end-of-archive marker the rest of the input is read and dropped, so that a digest computed by the
 * source over every byte completes.
 */
export async function* readTarStream(
  src: AsyncIterable<Uint8Array>,
  where: string,
): AsyncGenerator<StreamEntry> {
  const r = new ChunkReader(src);
  const bad = (msg: string): ArtifactError =>
    new ArtifactError("ARTIFACT_MALFORMED", `${where}: ${msg} (truncated or corrupt?)`);
  const ext = new Extensions();
  let finished = false;
  try {
    for (;;) {
      const at = r.offset;
      const h = await r.read(BLOCK);
      if (h.length === 0) break;
      if (h.length < BLOCK) throw bad(`tar header at byte ${at} is cut short by the end of the data`);
      if (isZeroBlock(h)) break;
      const decoded = decodeHeader(h);
      if (typeof decoded === "string") throw bad(`tar header at byte ${at}: ${decoded}`);
      const size = ext.size(decoded, `${where}: tar header at byte ${at}`);
      if (ext.isMeta(decoded.flag)) {
        const data = await r.read(size);
        if (data.length < size) throw bad(`tar extension header at byte ${at} is cut short`);
        ext.absorb(decoded.flag, data, `${where}: tar header at byte ${at}`);
        await r.read(padding(size));
        continue;
      }
      const m = ext.member(decoded, size);
      let remaining = m.dataSize;
      const short = (): ArtifactError =>
        bad(`member "${m.name}" ends ${remaining} bytes short of its ${m.dataSize} bytes`);
      async function* body(): AsyncGenerator<Buffer> {
        while (remaining > 0) {
          const c = await r.chunk(remaining);
          if (c.length === 0) throw short();
          remaining -= c.length;
          yield c;
        }
      }
      yield { ...m, body };
      while (remaining > 0) {
        const c = await r.chunk(remaining);
        if (c.length === 0) throw short();
        remaining -= c.length;
      }
      await r.read(padding(m.dataSize));
    }
    await r.drain();
    finished = true;
  } finally {
    if (!finished) await r.close();
  }
}
