/**
 * RPM packages (v3/v4 file format, as rpm 4.x writes): a 96-byte lead (magic `ed ab ee db`), the
 * signature header (padded to 8 bytes), the main header, then the payload: a cpio archive ("newc")
 * compressed as the header's PAYLOADCOMPRESSOR says (gzip, xz, zstd, bzip2, lzma).
 *
 * A header is `8e ad e8 01`, 4 reserved bytes, then the *header blob*: big-endian u32 index count and
 * data size, that many 16-byte index entries (tag, type, offset, count) and the data store. The same
 * blob, without the 8-byte magic, is what rpm's sqlite database (`rpmdb.sqlite`, table `Packages`,
 * column `blob`) stores per installed package; `parseHeaderBlob` reads both.
 */
import { ByteSourceError, FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, sha256Hex } from "./common.ts";
import { type CpioMember, listCpio } from "./cpio.ts";
import { type Codec, decompressBuffer } from "./decompress.ts";

export const RPMTAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  ARCH: 1022,
  SOURCERPM: 1044,
  PAYLOADFORMAT: 1124,
  PAYLOADCOMPRESSOR: 1125,
} as const;

/** Signature header tags that carry a signature or a digest, by number (rpmtag.h RPMSIGTAG_*). */
export const SIGNATURE_TAGS: Record<number, string> = {
  267: "DSAHEADER",
  268: "RSAHEADER",
  269: "SHA1HEADER",
  273: "SHA256HEADER",
  1000: "SIZE",
  1002: "PGP",
  1004: "MD5",
  1005: "GPG",
  1007: "PAYLOADSIZE",
  5092: "PAYLOADDIGEST",
};
const SIGNATURE_ONLY = new Set([267, 268, 1002, 1005]);

export type HeaderValue = string | string[] | number[] | Uint8Array;

export interface RpmHeader {
  /** Tag → value; STRING/I18NSTRING (first), STRING_ARRAY, integer arrays, BIN bytes. */
  tags: Map<number, HeaderValue>;
  /** Raw data bytes per tag, for hashing signatures. */
  raw: Map<number, Uint8Array>;
  /** Bytes the header occupies (magic included when present). */
  length: number;
}

/** Parses a header blob at `at` (with the 8-byte magic when `magic` is true). */
export function parseHeaderBlob(buf: Uint8Array, at: number, magic: boolean, where: string): RpmHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const bad = (msg: string): ArtifactError => new ArtifactError("ARTIFACT_MALFORMED", `${where}: ${msg}`);
  let p = at;
  if (magic) {
    if (p + 8 > b.length || b.readUInt32BE(p) !== 0x8eade801)
      throw bad(`no header magic 8e ad e8 01 at byte ${p}`);
    p += 8;
  }
  if (p + 8 > b.length) throw bad(`header at byte ${p} is cut short`);
  const nindex = b.readUInt32BE(p);
  const hsize = b.readUInt32BE(p + 4);
  if (nindex > 0x10000 || hsize > 256 * 1024 * 1024)
    throw bad(`header at byte ${p}: ${nindex} tags / ${hsize} data bytes is implausible`);
  const indexAt = p + 8;
  const storeAt = indexAt + nindex * 16;
  if (storeAt + hsize > b.length)
    throw bad(`header at byte ${p}: ${nindex} tags and ${hsize} data bytes run past the end (${b.length})`);
  const store = b.subarray(storeAt, storeAt + hsize);
  const tags = new Map<number, HeaderValue>();
  const raw = new Map<number, Uint8Array>();
  const entries: { tag: number; type: number; offset: number; count: number }[] = [];
  for (let i = 0; i < nindex; i++) {
    const e = indexAt + i * 16;
    entries.push({
      tag: b.readUInt32BE(e),
      type: b.readUInt32BE(e + 4),
      offset: b.readInt32BE(e + 8),
      count: b.readUInt32BE(e + 12),
    });
  }
  const ends = [...new Set(entries.map((e) => e.offset).concat([hsize]))].sort((x, y) => x - y);
  for (const { tag, type, offset, count } of entries) {
    if (offset < 0 || offset > hsize)
      throw bad(`tag ${tag}: data offset ${offset} outside the ${hsize}-byte store`);
    const next = ends.find((x) => x > offset) ?? hsize;
    const strings = (): string[] => {
      const out: string[] = [];
      let q = offset;
      for (let k = 0; k < count; k++) {
        const z = store.indexOf(0, q);
        if (z === -1) throw bad(`tag ${tag}: string ${k} is not terminated`);
        out.push(store.toString("utf8", q, z));
        q = z + 1;
      }
      return out;
    };
    const ints = (width: number): number[] => {
      if (offset + count * width > hsize)
        throw bad(`tag ${tag}: ${count} values of ${width} bytes run past the store`);
      const out: number[] = [];
      for (let k = 0; k < count; k++) {
        const o = offset + k * width;
        out.push(
          width === 1
            ? store.readUInt8(o)
            : width === 2
              ? store.readUInt16BE(o)
              : width === 4
                ? store.readUInt32BE(o)
                : Number(store.readBigUInt64BE(o)),
        );
      }
      return out;
    };
    switch (type) {
      case 6:
        tags.set(tag, strings()[0] ?? "");
        break;
      case 8:
        tags.set(tag, strings());
        break;
      case 9:
        tags.set(tag, strings()[0] ?? "");
        break;
      case 1:
      case 2:
        tags.set(tag, ints(1));
        break;
      case 3:
        tags.set(tag, ints(2));
        break;
      case 4:
        tags.set(tag, ints(4));
        break;
      case 5:
        tags.set(tag, ints(8));
        break;
      case 7:
        if (offset + count > hsize) throw bad(`tag ${tag}: ${count} bytes run past the store`);
        tags.set(tag, store.subarray(offset, offset + count));
        break;
      default:
        break;
    }
    raw.set(tag, store.subarray(offset, type === 7 ? offset + count : next));
  }
  return { tags, raw, length: storeAt + hsize - at };
}

export function tagString(h: RpmHeader, tag: number): string | undefined {
  const v = h.tags.get(tag);
  return typeof v === "string" ? v : Array.isArray(v) && typeof v[0] === "string" ? v[0] : undefined;
}

export function tagNumber(h: RpmHeader, tag: number): number | undefined {
  const v = h.tags.get(tag);
  return Array.isArray(v) && typeof v[0] === "number" ? v[0] : undefined;
}

export interface RpmSignatureTag {
  tag: number;
  name: string;
  /** True for real signatures (RSA/DSA/PGP/GPG), false for digests and sizes. */
  signature: boolean;
  size: number;
  sha256: string;
}

export interface RpmPackage {
  name: string;
  version: string;
  release: string;
  epoch?: number;
  arch?: string;
  /** Tags of the signature header (signatures and digests), sorted by tag. */
  signatureTags: RpmSignatureTag[];
  /** Hex sha256 of the main header as stored (what rpm's SHA256HEADER covers). */
  headerSha256: string;
  payloadCodec: Codec;
  payloadOffset: number;
  entries: CpioMember[];
}

export function isRpmHead(head: Uint8Array): boolean {
  return head[0] === 0xed && head[1] === 0xab && head[2] === 0xee && head[3] === 0xdb;
}

export function readRpm(file: string, opts?: { maxBytes?: number; name?: string }): RpmPackage {
  const name = opts?.name ?? file;
  const maxBytes = opts?.maxBytes ?? 1024 * 1024 * 1024;
  let src: FileByteSource;
  try {
    src = new FileByteSource(file, name);
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${name}: ${(cause as Error).message}`, { cause });
  }
  try {
    if (src.size > maxBytes) {
      throw new ArtifactError(
        "ARTIFACT_TOO_LARGE",
        `${name}: ${src.size} bytes, over the limit of ${maxBytes} bytes`,
      );
    }
    const buf = Buffer.from(src.read(0, src.size));
    if (buf.length < 96 || !isRpmHead(buf))
      throw new ArtifactError("ARTIFACT_MALFORMED", `${name}: no rpm lead magic ed ab ee db`);
    const sig = parseHeaderBlob(buf, 96, true, `${name}: signature header`);
    const mainAt = 96 + sig.length + ((8 - (sig.length % 8)) % 8);
    const main = parseHeaderBlob(buf, mainAt, true, `${name}: header`);
    const payloadOffset = mainAt + main.length;
    const req = (tag: number, what: string): string => {
      const v = tagString(main, tag);
      if (v === undefined)
        throw new ArtifactError("ARTIFACT_MALFORMED", `${name}: header has no ${what} tag (${tag})`);
      return v;
    };
    const format = tagString(main, RPMTAG.PAYLOADFORMAT) ?? "cpio";
    if (format !== "cpio")
      throw new ArtifactError(
        "ARTIFACT_UNSUPPORTED",
        `${name}: payload format "${format}" is not supported (only cpio)`,
      );
    const payload = decompressBuffer(buf.subarray(payloadOffset), maxBytes, `${name}: payload`);
    const entries = listCpio(payload.out, `${name}: payload`);
    const signatureTags: RpmSignatureTag[] = [...sig.raw.entries()]
      .filter(([tag]) => tag >= 256 || tag in SIGNATURE_TAGS)
      .map(([tag, bytes]) => ({
        tag,
        name: SIGNATURE_TAGS[tag] ?? `TAG${tag}`,
        signature: SIGNATURE_ONLY.has(tag),
        size: bytes.length,
        sha256: sha256Hex(bytes),
      }))
      .sort((a, b) => a.tag - b.tag);
    const epoch = tagNumber(main, RPMTAG.EPOCH);
    const arch = tagString(main, RPMTAG.ARCH);
    return {
      name: req(RPMTAG.NAME, "NAME"),
      version: req(RPMTAG.VERSION, "VERSION"),
      release: req(RPMTAG.RELEASE, "RELEASE"),
      ...(epoch === undefined ? {} : { epoch }),
      ...(arch === undefined ? {} : { arch }),
      signatureTags,
      headerSha256: sha256Hex(buf.subarray(mainAt, payloadOffset)),
      payloadCodec: payload.codec,
      payloadOffset,
      entries,
    };
  } catch (err) {
    if (err instanceof ByteSourceError)
      throw new ArtifactError("ARTIFACT_MALFORMED", `${name}: ${err.message}`, { cause: err });
    throw err;
  } finally {
    src.close();
  }
}
