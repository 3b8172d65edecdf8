/**
 * Test support: writes tarballs and container images (docker-archive, OCI layout, OCI archive) from
 * in-memory file lists, with tar-stream's packer. Used by the artifact tests only.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";

import { pack } from "tar-stream";

export type TarItem =
  | { path: string; type?: "file"; data: Uint8Array; mode?: number }
  | { path: string; type: "directory"; mode?: number }
  | { path: string; type: "symlink"; target: string }
  | { path: string; type: "link"; target: string }
  | { path: string; type: "fifo" };

/** A tar of `items`, in the order given. Names are written as given (`./x`, `x`, `../x` alike). */
export async function makeTar(items: readonly TarItem[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  const mtime = new Date(0);
  for (const it of items) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => {
        if (err) reject(err);
        else resolve();
      };
      switch (it.type) {
        case undefined:
        case "file":
          p.entry({ name: it.path, mode: it.mode ?? 0o755, mtime, type: "file" }, it.data, cb);
          break;
        case "directory":
          p.entry({ name: it.path, mode: it.mode ?? 0o755, mtime, type: "directory" }, cb);
          break;
        case "symlink":
          p.entry({ name: it.path, mode: 0o777, mtime, type: "symlink", linkname: it.target }, cb);
          break;
        case "link":
          p.entry({ name: it.path, mode: 0o755, mtime, type: "link", linkname: it.target }, cb);
          break;
        case "fifo":
          p.entry({ name: it.path, mode: 0o644, mtime, type: "fifo" }, cb);
          break;
      }
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export type Compression = "none" | "gzip" | "zstd";

export function compress(tar: Buffer, how: Compression): Buffer {
  return how === "gzip" ? gzipSync(tar) : how === "zstd" ? zstdCompressSync(tar) : tar;
}

const LAYER_TYPE: Record<Compression, string> = {
  none: "application/vnd.oci.image.layer.v1.tar",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
};

export interface LayerSpec {
  items: TarItem[];
  compression: Compression;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** An image's blobs, by digest, and the descriptor of its manifest. */
export interface BuiltImage {
  blobs: Map<string, Buffer>;
  manifest: Descriptor;
  config: { digest: string; bytes: Buffer };
  /** Uncompressed layer tars, in order. */
  layerTars: Buffer[];
  /** Stored (possibly compressed) layer blobs, in order. */
  layerBlobs: { digest: string; bytes: Buffer; compression: Compression }[];
}

function blob(map: Map<string, Buffer>, bytes: Buffer): string {
  const digest = `sha256:${sha256(bytes)}`;
  map.set(digest, bytes);
  return digest;
}

export interface ImageConfig {
  os: string;
  architecture: string;
  rootfs: { type: "layers"; diff_ids: string[] };
  [key: string]: unknown;
}

export async function buildImage(
  layers: readonly LayerSpec[],
  platform: { os: string; architecture: string; variant?: string } = { os: "linux", architecture: "amd64" },
  editConfig?: (config: ImageConfig) => void,
): Promise<BuiltImage> {
  const blobs = new Map<string, Buffer>();
  const layerTars: Buffer[] = [];
  const layerBlobs: BuiltImage["layerBlobs"] = [];
  for (const l of layers) {
    const tar = await makeTar(l.items);
    const bytes = compress(tar, l.compression);
    layerTars.push(tar);
    layerBlobs.push({ digest: blob(blobs, bytes), bytes, compression: l.compression });
  }
  const config: ImageConfig = {
    ...platform,
    config: {},
    rootfs: { type: "layers", diff_ids: layerTars.map((t) => `sha256:${sha256(t)}`) },
  };
  editConfig?.(config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = blob(blobs, configBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: configBytes.length,
      },
      layers: layerBlobs.map((b) => ({
        mediaType: LAYER_TYPE[b.compression],
        digest: b.digest,
        size: b.bytes.length,
      })),
    }),
  );
  const manifest: Descriptor = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: blob(blobs, manifestBytes),
    size: manifestBytes.length,
    platform,
  };
  return { blobs, manifest, config: { digest: configDigest, bytes: configBytes }, layerTars, layerBlobs };
}

/** The files of an OCI layout: `oci-layout`, `index.json` listing `manifests`, and every blob. */
export function ociLayoutFiles(
  images: readonly BuiltImage[],
  manifests: readonly Descriptor[] = images.map((i) => i.manifest),
  extraBlobs: ReadonlyMap<string, Buffer> = new Map(),
): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  files.set("oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  files.set("index.json", Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })));
  for (const m of [...images.map((i) => i.blobs), extraBlobs]) {
    for (const [digest, bytes] of m) files.set(`blobs/sha256/${digest.slice("sha256:".length)}`, bytes);
  }
  return files;
}

/** An image index blob listing `manifests`; returns its descriptor (and adds it to `blobs`). */
export function imageIndex(manifests: readonly Descriptor[], blobs: Map<string, Buffer>): Descriptor {
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }),
  );
  return {
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest: blob(blobs, bytes),
    size: bytes.length,
  };
}

export function writeFiles(dir: string, files: ReadonlyMap<string, Buffer>): void {
  for (const [rel, bytes] of files) {
    const abs = join(dir, rel);
    mkdirSync(join(abs, ".."), { recursive: true });
    writeFileSync(abs, bytes);
  }
}

/** A tar of a file map (sorted, like `tar -C dir -cf - .` with sorted names). */
export function tarOfFiles(files: ReadonlyMap<string, Buffer>): Promise<Buffer> {
  return makeTar(
    [...files.keys()].sort().map((path) => ({ path, data: files.get(path) ?? Buffer.alloc(0), mode: 0o644 })),
  );
}

/**
 * `docker save` layout: `manifest.json`, `<config sha>.json`, `<n>/layer.tar` (stored as given,
 * compressed or not; docker load accepts both).
 */
export function dockerArchiveFiles(
  image: BuiltImage,
  repoTags: string[] = ["stella/test:1"],
): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const configName = `${image.config.digest.slice("sha256:".length)}.json`;
  const layerNames = image.layerBlobs.map((_, i) => `layer${i}/layer.tar`);
  files.set(
    "manifest.json",
    Buffer.from(JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: layerNames }])),
  );
  files.set(configName, image.config.bytes);
  image.layerBlobs.forEach((b, i) => files.set(layerNames[i] ?? "", b.bytes));
  return files;
}

/** `sha256sum` of files on disk: the independent oracle for content hashes. */
export function sha256sum(...paths: string[]): Map<string, string> {
  const out = execFileSync("sha256sum", ["--", ...paths], { encoding: "utf8" });
  const map = new Map<string, string>();
  for (const line of out.trim().split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) map.set(m[2], m[1]);
  }
  return map;
}
