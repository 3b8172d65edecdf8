/**
 * Types, errors and small helpers shared by the artifact readers. `artifact.ts` re-exports the public
 * part; the format readers import from here so that there is no import cycle through `openArtifact`.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { posix } from "node:path";

import { StellaError } from "../errors.ts";
import { type ByteSource, ByteSourceError, FileByteSource } from "../io/byte-source.ts";

export type ArtifactKind = "elf" | "directory" | "oci-layout" | "docker-archive" | "oci-archive";

export interface ArtifactFile {
  /** Absolute POSIX path inside the artifact: `/usr/lib/libssl.so.3`. */
  path: string;
  size: number;
  /** Permission bits (`& 0o7777`). */
  mode: number;
  /** Lower-case hex SHA-256 of the content. */
  sha256: string;
  /** A fresh source on every call; the caller closes it. */
  open(): ByteSource;
}

/** A symbolic link: recorded as it is, never followed. */
export interface ArtifactLink {
  path: string;
  /** The link text, unchanged (may be relative, may dangle). */
  target: string;
}

export interface Artifact {
  kind: ArtifactKind;
  /** What to call it in predicates: the given path (or image reference). */
  name: string;
  /**
   * `sha256:<hex>`.
   * - elf: of the file.
   * - oci-layout / oci-archive: of the selected image manifest (the registry digest).
   * - docker-archive: of the image config, i.e. Docker's image ID (`docker save` writes no
   *   content-addressed manifest).
   * - directory: of the canonical listing of the kept files: for each file, sorted by path,
   *   the line `path + "\0" + mode.toString(8) + "\0" + sha256hex + "\n"` (UTF-8), all lines
   *   concatenated. Only kept files count, so the digest names what was scanned.
   */
  digest: string;
  /** Images only: the platform of the selected image, from its config. */
  platform?: { os: string; architecture: string; variant?: string };
  /** Files kept, sorted by path. */
  files: ArtifactFile[];
  /** Symbolic links anywhere in the artifact, sorted by path. */
  links: ArtifactLink[];
}

export interface OpenOptions {
  /** Which regular files to keep, given the path and the first up-to-64 bytes. Default: ELF magic. */
  keep?: (path: string, head: Uint8Array) => boolean;
  /** Images: `os/arch[/variant]`. Default `linux/amd64`, which a lone image of another platform overrides. */
  platform?: string;
  /** Largest kept file. Default 512 MiB. */
  maxFileBytes?: number;
  /** Called as bytes are read: blob bytes for images, kept-file bytes for files and directories. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export type ArtifactErrorCode =
  | "ARTIFACT_UNKNOWN"
  | "ARTIFACT_MALFORMED"
  | "ARTIFACT_DIGEST_MISMATCH"
  | "ARTIFACT_TOO_LARGE"
  | "ARTIFACT_NOT_FOUND"
  | "ARTIFACT_AMBIGUOUS"
  | "ARTIFACT_UNSUPPORTED"
  | "ARTIFACT_INVALID_OPTION"
  | "ARTIFACT_IO";

export class ArtifactError extends StellaError<ArtifactErrorCode> {}

export const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;
/** Manifests, indexes and configs are read whole; registries cap manifests at 4 MiB. */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;
export const HEAD_BYTES = 64;

export function isElfHead(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** The options with defaults filled in, plus a progress counter. */
export interface Context {
  name: string;
  keep: (path: string, head: Uint8Array) => boolean;
  maxFileBytes: number;
  platform: Platform;
  /** Whether `platform` was asked for (so a lone image of another platform is an error). */
  platformExplicit: boolean;
  progress: Progress;
}

export class Progress {
  done = 0;
  total = 0;
  private readonly cb: ((doneBytes: number, totalBytes: number) => void) | undefined;

  constructor(cb: ((doneBytes: number, totalBytes: number) => void) | undefined) {
    this.cb = cb;
  }

  start(total: number): void {
    this.total = total;
    this.done = 0;
    this.cb?.(0, total);
  }

  add(n: number): void {
    this.done += n;
    this.cb?.(this.done, this.total);
  }
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function parsePlatform(spec: string): Platform {
  const parts = spec.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new ArtifactError(
      "ARTIFACT_INVALID_OPTION",
      `platform "${spec}": expected os/architecture[/variant], e.g. linux/amd64`,
    );
  }
  const [os = "", architecture = "", variant] = parts;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** arm64 without a variant means v8 (containerd's normalisation); otherwise the variant must match if asked for. */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (want.variant === undefined) return true;
  const norm = (p: Platform): string | undefined =>
    p.architecture === "arm64" && p.variant === undefined ? "v8" : p.variant;
  return norm(want) === norm(have);
}

export function makeContext(name: string, opts: OpenOptions | undefined): Context {
  const maxFileBytes = opts?.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 0) {
    throw new ArtifactError("ARTIFACT_INVALID_OPTION", `maxFileBytes ${maxFileBytes}: not a byte count`);
  }
  return {
    name,
    keep: opts?.keep ?? ((_path, head) => isElfHead(head)),
    maxFileBytes,
    platform: parsePlatform(opts?.platform ?? "linux/amd64"),
    platformExplicit: opts?.platform !== undefined,
    progress: new Progress(opts?.onProgress),
  };
}

export function tooLarge(ctx: Context, path: string, size: number): ArtifactError {
  return new ArtifactError(
    "ARTIFACT_TOO_LARGE",
    `${ctx.name}: ${path} is ${size} bytes, over the limit of ${ctx.maxFileBytes} bytes (maxFileBytes)`,
  );
}

/** Deterministic order for paths: by UTF-16 code unit, which is byte order for all but astral characters. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * An archive member name as an absolute POSIX path: `./usr/bin/ls` → `/usr/bin/ls`. `..` cannot climb
 * above the root (`../../etc/passwd` → `/etc/passwd`), as containerd does when it applies a layer.
 * Returns "/" for the root itself.
 */
export function normalizeMemberPath(name: string): string {
  const p = posix.normalize("/" + name);
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

// ---- digests ---------------------------------------------------------------------------------

export interface ParsedDigest {
  algorithm: "sha256" | "sha512";
  hex: string;
}

const DIGEST_HEX_LENGTH = { sha256: 64, sha512: 128 } as const;

/** `sha256:<64 hex>` or `sha512:<128 hex>`; anything else is malformed (this also keeps `../` out of blob paths). */
export function parseDigest(value: string, where: string): ParsedDigest {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(value);
  if (!m) throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: "${value}" is not a digest`);
  const algorithm = m[1];
  const hex = m[2] ?? "";
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw new ArtifactError(
      "ARTIFACT_UNSUPPORTED",
      `${where}: digest algorithm "${algorithm}" is not supported`,
    );
  }
  if (hex.length !== DIGEST_HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) {
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: "${value}" is not a valid ${algorithm} digest`);
  }
  return { algorithm, hex };
}

/** Hashes bytes as they stream past and checks them against an expected digest. */
export class DigestCheck {
  readonly expected: string;
  private readonly algorithm: ParsedDigest["algorithm"];
  private readonly hex: string;
  private readonly hash: Hash;

  constructor(expected: string, where: string) {
    const d = parseDigest(expected, where);
    this.expected = expected;
    this.algorithm = d.algorithm;
    this.hex = d.hex;
    this.hash = createHash(d.algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  /** Ends the hash: the actual digest when it differs from the expected one, else undefined. */
  mismatch(): string | undefined {
    const hex = this.hash.digest("hex");
    return hex === this.hex ? undefined : `${this.algorithm}:${hex}`;
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---- blob stores -----------------------------------------------------------------------------

/** Files addressed by relative POSIX path: an OCI layout directory, or the members of a tarball. */
export interface BlobStore {
  /** For messages: the artifact path. */
  readonly name: string;
  /** Size of the regular file at `rel`, or undefined when there is none. */
  size(rel: string): number | undefined;
  /** The bytes of `rel`, streamed; each call starts from the beginning. */
  read(rel: string): AsyncIterable<Uint8Array>;
}

/** Reads a whole (small) member: metadata, limited to MAX_JSON_BYTES. */
export async function readWhole(store: BlobStore, rel: string, what: string): Promise<Buffer> {
  const size = store.size(rel);
  if (size === undefined) throw new ArtifactError("ARTIFACT_NOT_FOUND", `${store.name}: ${what} is missing`);
  if (size > MAX_JSON_BYTES) {
    throw new ArtifactError(
      "ARTIFACT_TOO_LARGE",
      `${store.name}: ${what} is ${size} bytes, over the limit of ${MAX_JSON_BYTES} bytes for metadata`,
    );
  }
  const chunks: Uint8Array[] = [];
  for await (const c of store.read(rel)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Parses JSON, naming the document in the error. */
export function parseJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}

// ---- JSON field access, naming the field on error ---------------------------------------------

export type JsonObject = Record<string, unknown>;

function kindOf(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

export function asObject(v: unknown, where: string): JsonObject {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: expected an object, found ${kindOf(v)}`);
  }
  return v as JsonObject;
}

export function asArray(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v))
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: expected an array, found ${kindOf(v)}`);
  return v as unknown[];
}

export function asString(v: unknown, where: string): string {
  if (typeof v !== "string")
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: expected a string, found ${kindOf(v)}`);
  return v;
}

export function optString(v: unknown, where: string): string | undefined {
  return v === undefined ? undefined : asString(v, where);
}

export function asSize(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ArtifactError(
      "ARTIFACT_MALFORMED",
      `${where}: expected a byte count, found ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** `size` bytes of `file` from `start`, streamed; a file shorter than promised is an IO error. */
export async function* readFileRange(
  file: string,
  start: number,
  size: number,
  name: string,
): AsyncGenerator<Uint8Array> {
  if (size === 0) return;
  const stream = createReadStream(file, { start, end: start + size - 1, highWaterMark: 1 << 20 });
  let got = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      got += chunk.length;
      yield chunk;
    }
  } catch (cause) {
    if (cause instanceof ArtifactError) throw cause;
    throw new ArtifactError("ARTIFACT_IO", `${name}: cannot read: ${(cause as Error).message}`, { cause });
  }
  if (got !== size) {
    throw new ArtifactError("ARTIFACT_IO", `${name}: expected ${size} bytes at offset ${start}, read ${got}`);
  }
}

/** Lower-case hex SHA-256 of a file on disk, counting its bytes as progress. */
export async function hashFile(
  file: string,
  size: number,
  name: string,
  progress: Progress,
): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of readFileRange(file, 0, size, name)) {
    hash.update(chunk);
    progress.add(chunk.length);
  }
  return hash.digest("hex");
}

/** Reads the first up-to-64 bytes of a file. */
export function readHead(file: string, name: string): { head: Uint8Array; size: number } {
  let src: FileByteSource | undefined;
  try {
    src = new FileByteSource(file, name);
    return { head: Buffer.from(src.read(0, Math.min(HEAD_BYTES, src.size))), size: src.size };
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${name}: ${(cause as Error).message}`, { cause });
  } finally {
    src?.close();
  }
}

// ---- choosing one image among several ----------------------------------------------------------

export interface Candidate<T> {
  /** Undefined when unknown. */
  platform: Platform | undefined;
  /** For messages: a tag, a digest, a path. */
  label: string;
  /** Same key, same image (one image listed twice under two tags). */
  key: string;
  value: T;
}

/**
 * The image for `ctx.platform`. When no platform was asked for and the artifact holds exactly one
 * image, that image is taken whatever its platform.
 */
export function selectCandidate<T>(cands: readonly Candidate<T>[], ctx: Context, where: string): T {
  const uniq = (list: readonly Candidate<T>[]): Candidate<T>[] => {
    const seen = new Map<string, Candidate<T>>();
    for (const c of list) if (!seen.has(c.key)) seen.set(c.key, c);
    return [...seen.values()];
  };
  const all = uniq(cands);
  const matches = all.filter((c) => c.platform !== undefined && platformMatches(ctx.platform, c.platform));
  const only = matches.length === 1 ? matches[0] : undefined;
  if (only) return only.value;
  const describe = (c: Candidate<T>): string =>
    `${c.label} (${c.platform ? formatPlatform(c.platform) : "platform unknown"})`;
  if (matches.length > 1) {
    throw new ArtifactError(
      "ARTIFACT_AMBIGUOUS",
      `${where}: ${matches.length} images for ${formatPlatform(ctx.platform)}: ${matches.map(describe).join(", ")}`,
    );
  }
  const lone = all.length === 1 ? all[0] : undefined;
  if (lone && !ctx.platformExplicit) return lone.value;
  throw new ArtifactError(
    "ARTIFACT_NOT_FOUND",
    `${where}: no image for ${formatPlatform(ctx.platform)}; ` +
      (all.length ? `available: ${all.map(describe).join(", ")}` : "it lists no images"),
  );
}

/**
 * Opens `file` as a byte source and hands it to `make` (a reader's constructor, which indexes it); I/O errors
 * become ARTIFACT_IO and byte-source range errors ARTIFACT_MALFORMED, naming `name`. The source is closed if
 * `make` throws.
 */
export function openFileReader<T>(file: string, name: string, make: (src: FileByteSource) => T): T {
  let src: FileByteSource;
  try {
    src = new FileByteSource(file, name);
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${name}: ${(cause as Error).message}`, { cause });
  }
  try {
    return make(src);
  } catch (err) {
    src.close();
    if (err instanceof ByteSourceError) {
      throw new ArtifactError("ARTIFACT_MALFORMED", `${name}: ${err.message}`, { cause: err });
    }
    if (
      !(err instanceof ArtifactError) &&
      err instanceof Error &&
      typeof (err as NodeJS.ErrnoException).code === "string"
    ) {
      throw new ArtifactError("ARTIFACT_IO", `${name}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
