/**
 * ZIP archives (zip, jar, war, apk…): the central directory is the listing (as `unzip -Z1` reads it),
 * each member's local header is checked against it, and stored / deflated members are inflated and
 * hashed (CRC-32 and size checked). Read from a file with positioned reads; nothing is extracted.
 *
 * Refused, with the file, the member and the field named: a missing or inconsistent end-of-central-
 * directory record, a central directory that does not fit before it, entry counts that disagree,
 * names that are absolute or climb with `..` (or use `\`), duplicate names, members whose data runs
 * past the central directory, declared sizes over the limit, and inflated data whose size or CRC
 * differs from the declared one. ZIP64 is read. Encrypted members and methods other than stored (0)
 * and deflate (8) are listed without a content hash.
 */
import { createHash } from "node:crypto";
import { crc32, inflateRawSync } from "node:zlib";

import type { FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, openFileReader } from "./common.ts";

export interface ZipMember {
  /** As stored in the central directory (`META-INF/MANIFEST.MF`, `dir/`). */
  name: string;
  type: "file" | "directory" | "symlink";
  /** Unix permission bits when the creator recorded them, else 0o644 (files) / 0o755 (directories). */
  mode: number;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  localOffset: number;
  /** Offset of the member's (compressed) data, after the local header. */
  dataOffset: number;
  encrypted: boolean;
}

export interface ZipOptions {
  /** Largest declared uncompressed size of one member. Default 512 MiB. */
  maxMemberBytes?: number;
  /** Most members. Default 1,000,000. */
  maxMembers?: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

function u16(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (u16(b, o) + u16(b, o + 2) * 0x10000) >>> 0;
}
function u64(b: Uint8Array, o: number): number {
  return u32(b, o) + u32(b, o + 4) * 0x100000000;
}

/** A member name that stays inside the archive root; returns a reason when it does not. */
export function unsafeMemberName(name: string): string | undefined {
  if (name === "") return "an empty name";
  if (name.includes("\0")) return "a NUL byte in the name";
  if (name.includes("\\")) return "a backslash in the name";
  if (name.startsWith("/")) return "an absolute path";
  if (/^[A-Za-z]:/.test(name)) return "a drive letter";
  if (name.split("/").includes("..")) return 'a ".." component';
  return undefined;
}

export class ZipReader {
  readonly name: string;
  readonly size: number;
  readonly members: ZipMember[];
  /** The archive comment (jarsigner and signapk put nothing here; some tools do). */
  readonly comment: Uint8Array;
  /** Bytes before the first local header (self-extracting stubs, APK signing blocks sit before the CD). */
  readonly cdOffset: number;
  private readonly src: FileByteSource;
  private readonly maxMemberBytes: number;

  private constructor(src: FileByteSource, name: string, opts: ZipOptions | undefined) {
    this.src = src;
    this.name = name;
    this.size = src.size;
    this.maxMemberBytes = opts?.maxMemberBytes ?? 512 * 1024 * 1024;
    const parsed = this.parse(opts?.maxMembers ?? 1_000_000);
    this.members = parsed.members;
    this.comment = parsed.comment;
    this.cdOffset = parsed.cdOffset;
  }

  /** Opens and indexes `file`; close() releases it. */
  static open(file: string, opts?: ZipOptions, name = file): ZipReader {
    return openFileReader(file, name, (src) => new ZipReader(src, name, opts));
  }

  close(): void {
    this.src.close();
  }

  private bad(msg: string): ArtifactError {
    return new ArtifactError("ARTIFACT_MALFORMED", `${this.name}: ${msg}`);
  }

  private findEocd(): number {
    const tail = Math.min(this.size, 22 + 0xffff);
    const buf = this.src.read(this.size - tail, tail);
    for (let i = buf.length - 22; i >= 0; i--) {
      if (u32(buf, i) === EOCD_SIG && i + 22 + u16(buf, i + 20) === buf.length) return this.size - tail + i;
    }
    for (let i = buf.length - 22; i >= 0; i--) if (u32(buf, i) === EOCD_SIG) return this.size - tail + i;
    throw this.bad(
      `no end-of-central-directory record in the last ${tail} bytes (not a zip archive, or truncated)`,
    );
  }

  private parse(maxMembers: number): { members: ZipMember[]; comment: Uint8Array; cdOffset: number } {
    if (this.size < 22) throw this.bad(`${this.size} bytes is too short for a zip archive`);
    const eocdAt = this.findEocd();
    const eocd = this.src.read(eocdAt, 22);
    const commentLen = u16(eocd, 20);
    const comment = Buffer.from(this.src.read(eocdAt + 22, Math.min(commentLen, this.size - eocdAt - 22)));
    if (u16(eocd, 4) !== 0 || u16(eocd, 6) !== 0)
      throw this.bad("multi-disk (spanned) archives are not supported");
    let count = u16(eocd, 10);
    let cdSize = u32(eocd, 12);
    let cdOffset = u32(eocd, 16);
    let cdEnd = eocdAt;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const locAt = eocdAt - 20;
      const loc = locAt >= 0 ? this.src.read(locAt, 20) : undefined;
      if (loc !== undefined && u32(loc, 0) === ZIP64_LOCATOR_SIG) {
        const recAt = u64(loc, 8);
        if (recAt + 56 > locAt)
          throw this.bad(`ZIP64 end record offset ${recAt} is past its locator at ${locAt}`);
        const rec = this.src.read(recAt, 56);
        if (u32(rec, 0) !== ZIP64_EOCD_SIG) throw this.bad(`no ZIP64 end record at offset ${recAt}`);
        count = u64(rec, 32);
        cdSize = u64(rec, 40);
        cdOffset = u64(rec, 48);
        cdEnd = recAt;
      }
    }
    if (!Number.isSafeInteger(cdOffset + cdSize) || cdOffset + cdSize > cdEnd) {
      throw this.bad(
        `central directory offset ${cdOffset} + size ${cdSize} runs past the end record at byte ${cdEnd}`,
      );
    }
    if (count > maxMembers) throw this.bad(`${count} members declared, over the limit of ${maxMembers}`);
    // Minimum central header is 46 bytes.
    if (count * 46 > cdSize) throw this.bad(`${count} members cannot fit a ${cdSize}-byte central directory`);
    const cd = Buffer.from(this.src.read(cdOffset, cdSize));
    const members: ZipMember[] = [];
    const seen = new Set<string>();
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const where = `central directory entry ${i} at byte ${cdOffset + pos}`;
      if (pos + 46 > cd.length || u32(cd, pos) !== CDH_SIG) {
        throw this.bad(`${where}: bad signature (central directory offset ${cdOffset} wrong?)`);
      }
      const madeBy = u16(cd, pos + 4);
      const flags = u16(cd, pos + 8);
      const method = u16(cd, pos + 10);
      const crc = u32(cd, pos + 16);
      let compressedSize = u32(cd, pos + 20);
      let size = u32(cd, pos + 24);
      const nameLen = u16(cd, pos + 28);
      const extraLen = u16(cd, pos + 30);
      const commentLen2 = u16(cd, pos + 32);
      const external = u32(cd, pos + 38);
      let localOffset = u32(cd, pos + 42);
      const end = pos + 46 + nameLen + extraLen + commentLen2;
      if (end > cd.length) throw this.bad(`${where}: runs past the end of the central directory`);
      const rawName = cd.subarray(pos + 46, pos + 46 + nameLen);
      const name = flags & 0x800 ? rawName.toString("utf8") : decodeName(rawName);
      const extra = cd.subarray(pos + 46 + nameLen, pos + 46 + nameLen + extraLen);
      // ZIP64 extended information: only the fields whose 32-bit value is saturated, in this order.
      for (let e = 0; e + 4 <= extra.length;) {
        const id = u16(extra, e);
        const len = u16(extra, e + 2);
        if (id === 0x0001) {
          let f = e + 4;
          const take = (): number => {
            if (f + 8 > e + 4 + len) throw this.bad(`${where} "${name}": ZIP64 extra field too short`);
            const v = u64(extra, f);
            f += 8;
            return v;
          };
          if (size === 0xffffffff) size = take();
          if (compressedSize === 0xffffffff) compressedSize = take();
          if (localOffset === 0xffffffff) localOffset = take();
        }
        e += 4 + len;
      }
      pos = end;
      const unsafe = unsafeMemberName(name);
      if (unsafe !== undefined) throw this.bad(`member "${name}": ${unsafe} (path traversal?)`);
      if (seen.has(name)) throw this.bad(`member "${name}" appears twice in the central directory`);
      seen.add(name);
      if (size > this.maxMemberBytes) {
        throw new ArtifactError(
          "ARTIFACT_TOO_LARGE",
          `${this.name}: member "${name}" declares ${size} bytes uncompressed, over the limit of ${this.maxMemberBytes} bytes`,
        );
      }
      const unixMode = madeBy >> 8 === 3 ? (external >>> 16) & 0xffff : 0;
      const isDir = name.endsWith("/") || (unixMode & S_IFMT) === S_IFDIR || (external & 0x10) !== 0;
      const isLink = !isDir && (unixMode & S_IFMT) === S_IFLNK;
      const mode = unixMode & 0o7777 ? unixMode & 0o7777 : isDir ? 0o755 : 0o644;
      if (localOffset + 30 > cdOffset) {
        throw this.bad(
          `member "${name}": local header offset ${localOffset} is past the central directory at ${cdOffset}`,
        );
      }
      const lfh = this.src.read(localOffset, 30);
      if (u32(lfh, 0) !== LFH_SIG)
        throw this.bad(`member "${name}": no local header at offset ${localOffset}`);
      const dataOffset = localOffset + 30 + u16(lfh, 26) + u16(lfh, 28);
      if (dataOffset + compressedSize > cdOffset) {
        throw this.bad(
          `member "${name}": ${compressedSize} compressed bytes at offset ${dataOffset} run past the central directory at ${cdOffset}`,
        );
      }
      members.push({
        name,
        type: isDir ? "directory" : isLink ? "symlink" : "file",
        mode,
        method,
        flags,
        crc32: crc,
        compressedSize,
        size,
        localOffset,
        dataOffset,
        encrypted: (flags & 1) !== 0,
      });
    }
    return { members, comment, cdOffset };
  }

  /** The stored (compressed) bytes of a member. */
  raw(m: ZipMember): Uint8Array {
    return this.src.read(m.dataOffset, m.compressedSize);
  }

  /** Whether `content()` can decode the member. */
  canDecode(m: ZipMember): boolean {
    return !m.encrypted && (m.method === 0 || m.method === 8);
  }

  /** The uncompressed bytes, size and CRC-32 checked. */
  content(m: ZipMember): Buffer {
    const where = `${this.name}: member "${m.name}"`;
    if (m.encrypted) throw new ArtifactError("ARTIFACT_UNSUPPORTED", `${where} is encrypted`);
    const raw = this.raw(m);
    let out: Buffer;
    if (m.method === 0) out = Buffer.from(raw);
    else if (m.method === 8) {
      try {
        out = inflateRawSync(raw, { maxOutputLength: Math.max(1, m.size + 1) });
      } catch (cause) {
        throw new ArtifactError(
          "ARTIFACT_MALFORMED",
          `${where}: cannot inflate: ${(cause as Error).message} (declared size ${m.size} bytes)`,
          { cause },
        );
      }
    } else {
      throw new ArtifactError(
        "ARTIFACT_UNSUPPORTED",
        `${where}: compression method ${m.method} is not supported`,
      );
    }
    if (out.length !== m.size) {
      throw new ArtifactError(
        "ARTIFACT_MALFORMED",
        `${where}: inflates to ${out.length} bytes, declared size ${m.size}`,
      );
    }
    const actual = crc32(out) >>> 0;
    if (actual !== m.crc32) {
      throw new ArtifactError(
        "ARTIFACT_MALFORMED",
        `${where}: CRC-32 ${actual.toString(16)} does not match the declared ${m.crc32.toString(16)}`,
      );
    }
    return out;
  }

  /** Lower-case hex sha256 of the uncompressed content, or undefined when it cannot be decoded. */
  sha256(m: ZipMember): string | undefined {
    if (!this.canDecode(m)) return undefined;
    return createHash("sha256").update(this.content(m)).digest("hex");
  }
}

/** Names without the UTF-8 flag: CP437 in the spec, but jar and most tools write UTF-8 anyway. */
function decodeName(raw: Uint8Array): string {
  const s = Buffer.from(raw).toString("utf8");
  return s.includes("\ufffd") ? Buffer.from(raw).toString("latin1") : s;
}

/** Zip signature members: jar signing (`META-INF/*.SF|RSA|DSA|EC`, `SIG-*`) — kept by every normalisation. */
export function isZipSignatureMember(name: string): boolean {
  return /^META-INF\/(?:[^/]+\.(?:SF|RSA|DSA|EC)|SIG-[^/]*)$/i.test(name);
}
