/**
 * The delta engine's inputs: any supported artifact as (a) the byte stream the delta is computed
 * over and `apply` reproduces, and (b) a normalised listing of what is inside plus the packages it
 * carries, for the manifest (`changed` entries, `materials_delta`). See docs/delta-inputs.md.
 */
import { createHash } from "node:crypto";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { basename } from "node:path";

import { openArtifact } from "../artifacts/artifact.ts";
import { isArHead } from "../artifacts/ar.ts";
import {
  ArtifactError,
  asArray,
  asObject,
  asString,
  type BlobStore,
  comparePaths,
  isElfHead,
  parseJson,
  readHead,
  readWhole,
  sha256Hex,
} from "../artifacts/common.ts";
import { readDeb } from "../artifacts/deb.ts";
import { decompressBuffer } from "../artifacts/decompress.ts";
import { detectArtifact } from "../artifacts/detect.ts";
import { blobPath, DirStore, parseDescriptor } from "../artifacts/oci-layout.ts";
import { isRpmHead, readRpm } from "../artifacts/rpm.ts";
import { isTarHeader } from "../artifacts/tar-index.ts";
import { listTarBuffer } from "../artifacts/tar-list.ts";
import { ZipReader } from "../artifacts/zip.ts";
import { StellaError } from "../errors.ts";
import { FileByteSource } from "../io/byte-source.ts";
import { comparePackages, isPackageDbPath, packagesFromDbFiles, rpmVersion } from "./materials.ts";
import {
  canonicalTar,
  entriesFromDeb,
  entriesFromRpm,
  entriesFromTar,
  entriesFromTree,
  entriesFromZip,
  type LayerListing,
  mergeLayers,
  sortEntries,
  walkTree,
} from "./normalize.ts";

export type DeltaArtifactType =
  | "file"
  | "directory"
  | "tar"
  | "oci-layout"
  | "docker-archive"
  | "oci-archive"
  | "zip"
  | "deb"
  | "rpm"
  | "elf";

export interface NormalizedEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "link" | "other";
  /** Permission bits (`& 0o7777`). */
  mode: number;
  size: number;
  /** Hex sha256 of the uncompressed content (regular files; hardlinks take their target's). */
  sha256?: string;
  linkTarget?: string;
  /** Where it came from: `data.tar.xz`, a layer digest, `payload.cpio.zstd`. */
  member?: string;
}

export interface PackageRef {
  name: string;
  version: string;
  arch?: string;
  digest?: string;
  source: "dpkg" | "rpm" | "sbom" | "deb-control";
}

export interface DeltaInput {
  path: string;
  type: DeltaArtifactType;
  /**
   * The bytes the delta is computed over and apply reproduces: the file itself for single files
   * (ELF, zip, deb, rpm, tar, image tarballs); for directory trees and OCI layouts the canonical tar
   * of `canonicalTar` (sorted paths, uid/gid 0, mtime 0, modes kept).
   */
  bytes(): Promise<Uint8Array>;
  /** sha256 of bytes(), `sha256:<hex>`. */
  digest: string;
  /** Normalised entries, sorted by path (see normalize.ts for the path conventions). */
  entries: NormalizedEntry[];
  /** Packages found inside, sorted by name, arch, version. */
  packages: PackageRef[];
  /** Images: the manifest digest (oci) or config digest (docker-archive) of the image read. */
  imageDigest?: string;
}

export interface DeltaInputOptions {
  /** Largest input (and largest decompressed member or canonical tar). Default 1 GiB. */
  maxBytes?: number;
  /** Images: `os/arch[/variant]`, as `openArtifact`. */
  platform?: string;
}

export const DEFAULT_MAX_INPUT_BYTES = 1024 * 1024 * 1024;

async function hashFileStream(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>)
    h.update(c);
  return "sha256:" + h.digest("hex");
}

function fileBytes(path: string, maxBytes: number): () => Promise<Uint8Array> {
  return () => {
    const size = statSync(path).size;
    if (size > maxBytes) {
      throw new ArtifactError(
        "ARTIFACT_TOO_LARGE",
        `${path}: ${size} bytes, over the limit of ${maxBytes} bytes (maxBytes)`,
      );
    }
    return Promise.resolve(readFileSync(path));
  };
}

function singleFileEntry(path: string, mode: number, size: number, sha256: string): NormalizedEntry[] {
  return [{ path: "/" + basename(path), type: "file", mode, size, sha256 }];
}

/** Is this a .deb: an ar archive whose first member is debian-binary. */
function isDebHead(head: Uint8Array): boolean {
  return isArHead(head) && Buffer.from(head.subarray(8, 21)).toString("latin1") === "debian-binary";
}

function isZipHead(head: Uint8Array): boolean {
  return (
    head[0] === 0x50 &&
    head[1] === 0x4b &&
    (head[2] === 3 || head[2] === 5) &&
    (head[3] === 4 || head[3] === 6)
  );
}

/** Image layers, in order, from the store, for the image `openArtifact` selected. */
async function imageLayers(
  store: BlobStore,
  kind: "oci-layout" | "oci-archive" | "docker-archive",
  imageDigest: string,
  maxBytes: number,
): Promise<LayerListing[]> {
  const refs: { rel: string; member: string }[] = [];
  if (kind === "docker-archive") {
    const where = `${store.name}: manifest.json`;
    const doc = asArray(parseJson(await readWhole(store, "manifest.json", "manifest.json"), where), where);
    for (const [i, raw] of doc.entries()) {
      const o = asObject(raw, `${where}: [${i}]`);
      const config = asString(o.Config, `${where}: [${i}].Config`);
      const bytes = await readWhole(store, config, `config ${config}`);
      if (`sha256:${sha256Hex(bytes)}` !== imageDigest) continue;
      const cfg = asObject(parseJson(bytes, config), config);
      const diffIds = asArray(
        asObject(cfg.rootfs, `${config}: rootfs`).diff_ids,
        `${config}: rootfs.diff_ids`,
      );
      asArray(o.Layers, `${where}: [${i}].Layers`).forEach((l, j) => {
        const rel = asString(l, `${where}: [${i}].Layers[${j}]`);
        const d = diffIds[j];
        refs.push({ rel, member: typeof d === "string" ? d : rel });
      });
      break;
    }
  } else {
    const rel = blobPath(imageDigest);
    const where = `${store.name}: manifest ${imageDigest}`;
    const manifest = asObject(
      parseJson(await readWhole(store, rel, `manifest ${imageDigest}`), where),
      where,
    );
    asArray(manifest.layers, `${where}: layers`).forEach((l, i) => {
      const d = parseDescriptor(l, `${where}: layers[${i}]`);
      refs.push({ rel: blobPath(d.digest), member: d.digest });
    });
  }
  const out: LayerListing[] = [];
  for (const [i, r] of refs.entries()) {
    const where = `${store.name}: layer ${i + 1} (${r.member})`;
    const size = store.size(r.rel);
    if (size === undefined)
      throw new ArtifactError("ARTIFACT_NOT_FOUND", `${where}: blob ${r.rel} is missing`);
    if (size > maxBytes) {
      throw new ArtifactError(
        "ARTIFACT_TOO_LARGE",
        `${where}: ${size} bytes, over the limit of ${maxBytes} bytes (maxBytes)`,
      );
    }
    const parts: Uint8Array[] = [];
    for await (const c of store.read(r.rel)) parts.push(c);
    const { out: tar } = decompressBuffer(Buffer.concat(parts), maxBytes, where);
    out.push({ member: r.member, members: await listTarBuffer(tar, where) });
  }
  return out;
}

async function openImage(
  path: string,
  kind: "oci-layout" | "oci-archive" | "docker-archive",
  maxBytes: number,
  platform: string | undefined,
  archive?: BlobStore,
): Promise<{ imageDigest: string; entries: NormalizedEntry[]; packages: PackageRef[] }> {
  const art = await openArtifact(path, {
    keep: (p) => isPackageDbPath(p),
    maxFileBytes: maxBytes,
    ...(platform === undefined ? {} : { platform }),
  });
  const dbFiles = new Map<string, Uint8Array>();
  for (const f of art.files) {
    const src = f.open();
    try {
      dbFiles.set(f.path, src.read(0, src.size));
    } finally {
      src.close();
    }
  }
  const packages = packagesFromDbFiles(dbFiles, path);
  let layers: LayerListing[];
  if (kind === "oci-layout") layers = await imageLayers(new DirStore(path), kind, art.digest, maxBytes);
  else {
    if (archive === undefined)
      throw new ArtifactError("ARTIFACT_INVALID_OPTION", `${path}: image archive not indexed`);
    layers = await imageLayers(archive, kind, art.digest, maxBytes);
  }
  return { imageDigest: art.digest, entries: mergeLayers(layers), packages };
}

async function open(path: string, maxBytes: number, platform: string | undefined): Promise<DeltaInput> {
  let st;
  try {
    st = statSync(path);
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_NOT_FOUND", `${path}: ${(cause as Error).message}`, { cause });
  }
  if (st.isDirectory()) {
    const found = await detectArtifact(path);
    const files = walkTree(path);
    const tar = canonicalTar(files, maxBytes, path);
    const digest = "sha256:" + sha256Hex(tar);
    const bytes = (): Promise<Uint8Array> => Promise.resolve(tar);
    if (found.kind === "oci-layout") {
      const img = await openImage(path, "oci-layout", maxBytes, platform);
      return {
        path,
        type: "oci-layout",
        bytes,
        digest,
        entries: img.entries,
        packages: img.packages,
        imageDigest: img.imageDigest,
      };
    }
    const entries = entriesFromTree(files);
    const dbFiles = new Map<string, Uint8Array>();
    for (const f of files)
      if (f.type === "file" && isPackageDbPath(f.path)) dbFiles.set(f.path, readFileSync(f.abs));
    return { path, type: "directory", bytes, digest, entries, packages: packagesFromDbFiles(dbFiles, path) };
  }
  if (!st.isFile()) throw new ArtifactError("ARTIFACT_UNKNOWN", `${path}: not a regular file or a directory`);
  if (st.size > maxBytes) {
    throw new ArtifactError(
      "ARTIFACT_TOO_LARGE",
      `${path}: ${st.size} bytes, over the limit of ${maxBytes} bytes (maxBytes)`,
    );
  }
  const { head } = readHead(path, path);
  const head512 = readFileHead(path, 512);
  const digest = await hashFileStream(path);
  const bytes = fileBytes(path, maxBytes);
  const mode = st.mode & 0o7777;

  if (isElfHead(head)) {
    return {
      path,
      type: "elf",
      bytes,
      digest,
      entries: singleFileEntry(path, mode, st.size, digest.slice(7)),
      packages: [],
    };
  }
  if (isZipHead(head)) {
    const zip = ZipReader.open(path, { maxMemberBytes: maxBytes });
    try {
      return { path, type: "zip", bytes, digest, entries: entriesFromZip(zip), packages: [] };
    } finally {
      zip.close();
    }
  }
  if (isDebHead(head)) {
    const deb = await readDeb(path, { maxBytes });
    const arch = deb.control.Architecture;
    const pkg: PackageRef = {
      name: deb.control.Package ?? "",
      version: deb.control.Version ?? "",
      ...(arch === undefined ? {} : { arch }),
      digest,
      source: "deb-control",
    };
    return { path, type: "deb", bytes, digest, entries: entriesFromDeb(deb), packages: [pkg] };
  }
  if (isRpmHead(head)) {
    const rpm = readRpm(path, { maxBytes });
    const pkg: PackageRef = {
      name: rpm.name,
      version: rpmVersion(rpm.epoch, rpm.version, rpm.release),
      ...(rpm.arch === undefined ? {} : { arch: rpm.arch }),
      digest,
      source: "rpm",
    };
    return { path, type: "rpm", bytes, digest, entries: entriesFromRpm(rpm), packages: [pkg] };
  }
  const codec = decompressCodec(head);
  if (isTarHeader(head512) || codec !== undefined) {
    let found: Awaited<ReturnType<typeof detectArtifact>> | undefined;
    try {
      found = await detectArtifact(path);
    } catch (err) {
      if (!(err instanceof ArtifactError && err.code === "ARTIFACT_UNKNOWN")) throw err;
    }
    if (found?.kind === "docker-archive" || found?.kind === "oci-archive") {
      const kind = found.kind;
      let img: Awaited<ReturnType<typeof openImage>>;
      try {
        img = await openImage(path, kind, maxBytes, platform, found.tar);
      } finally {
        found.cleanup();
      }
      return {
        path,
        type: kind,
        bytes,
        digest,
        entries: img.entries,
        packages: img.packages,
        imageDigest: img.imageDigest,
      };
    }
    let tar: Buffer | undefined;
    if (codec === undefined) tar = readFileSync(path);
    else {
      try {
        const d = decompressBuffer(readFileSync(path), maxBytes, path);
        if (isTarHeader(d.out.subarray(0, 512))) tar = d.out;
      } catch (err) {
        if (!(err instanceof ArtifactError && err.code === "ARTIFACT_MALFORMED")) throw err;
      }
    }
    if (tar !== undefined) {
      const members = await listTarBuffer(tar, path, isPackageDbPath);
      const dbFiles = new Map<string, Uint8Array>();
      for (const m of members) if (m.data !== undefined) dbFiles.set(m.path, m.data);
      return {
        path,
        type: "tar",
        bytes,
        digest,
        entries: entriesFromTar(members),
        packages: packagesFromDbFiles(dbFiles, path),
      };
    }
  }
  return {
    path,
    type: "file",
    bytes,
    digest,
    entries: singleFileEntry(path, mode, st.size, digest.slice(7)),
    packages: [],
  };
}

function readFileHead(path: string, n: number): Uint8Array {
  const src = new FileByteSource(path);
  try {
    return src.read(0, Math.min(n, src.size));
  } finally {
    src.close();
  }
}

function decompressCodec(head: Uint8Array): string | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) return "xz";
  return undefined;
}

/**
 * Opens `path` as a delta input. The type is read from the content (directory with `oci-layout`,
 * ELF magic, `PK\3\4`, `!<arch>\ndebian-binary`, rpm lead, tar header — plain or gzip/zstd/xz —
 * holding `manifest.json` / `oci-layout` or not); anything else is a plain `file`. Failures are
 * `ArtifactError`s naming the file, member and field.
 */
export async function openDeltaInput(path: string, opts?: DeltaInputOptions): Promise<DeltaInput> {
  const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new ArtifactError("ARTIFACT_INVALID_OPTION", `maxBytes ${maxBytes}: not a positive byte count`);
  }
  try {
    const input = await open(path, maxBytes, opts?.platform);
    input.entries = sortEntries(input.entries);
    input.packages = [...input.packages].sort(comparePackages);
    return input;
  } catch (err) {
    if (err instanceof ArtifactError) throw err;
    if (
      err instanceof StellaError ||
      (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string")
    ) {
      throw new ArtifactError("ARTIFACT_IO", `${path}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

export interface EntriesDiff {
  added: NormalizedEntry[];
  removed: NormalizedEntry[];
  modified: { path: string; base: NormalizedEntry; target: NormalizedEntry }[];
  unchanged: number;
}

/** Same path, different type, mode, size, sha256 or link target: modified. `member` is not compared. */
export function sameEntry(a: NormalizedEntry, b: NormalizedEntry): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.size === b.size &&
    (a.sha256 ?? "") === (b.sha256 ?? "") &&
    (a.linkTarget ?? "") === (b.linkTarget ?? "")
  );
}

/** Entries matched by path; every list sorted by path. */
export function diffEntries(
  base: readonly NormalizedEntry[],
  target: readonly NormalizedEntry[],
): EntriesDiff {
  const b = new Map(base.map((e) => [e.path, e]));
  const t = new Map(target.map((e) => [e.path, e]));
  const out: EntriesDiff = { added: [], removed: [], modified: [], unchanged: 0 };
  for (const [p, be] of b) {
    const te = t.get(p);
    if (te === undefined) out.removed.push(be);
    else if (sameEntry(be, te)) out.unchanged++;
    else out.modified.push({ path: p, base: be, target: te });
  }
  for (const [p, te] of t) if (!b.has(p)) out.added.push(te);
  out.added.sort((x, y) => comparePaths(x.path, y.path));
  out.removed.sort((x, y) => comparePaths(x.path, y.path));
  out.modified.sort((x, y) => comparePaths(x.path, y.path));
  return out;
}
