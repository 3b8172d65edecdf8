/**
 * What kind of artifact a path is:
 * - a directory with an `oci-layout` file → oci-layout; any other directory → directory;
 * - a file starting with `\x7fELF` → elf;
 * - a tarball (plain, gzip or zstd) with a `manifest.json` member → docker-archive (this includes
 *   Docker 25+ `docker save` output, which carries an OCI layout too), else with an `oci-layout`
 *   member → oci-archive.
 * Anything else is ARTIFACT_UNKNOWN, naming what was seen. Compressed tarballs are decompressed to a
 * temporary file (so their blobs can be read in manifest order); `cleanup()` removes it.
 */
import { mkdtempSync, rmSync, statSync, createReadStream, createWriteStream, type Stats } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createZstdDecompress } from "node:zlib";

import { FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, isElfHead } from "./common.ts";
import { isTarHeader, TarIndex } from "./tar-index.ts";

export type Detected =
  | { kind: "elf"; size: number }
  | { kind: "directory" }
  | { kind: "oci-layout" }
  | { kind: "docker-archive" | "oci-archive"; tar: TarIndex; cleanup: () => void };

function describeHead(head: Uint8Array, size: number): string {
  if (size === 0) return "an empty file";
  const hex = Buffer.from(head.subarray(0, 16))
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");
  const text = Buffer.from(head.subarray(0, 16))
    .toString("latin1")
    .replace(/[^\x20-\x7e]/g, ".");
  const guess =
    head[0] === 0x50 && head[1] === 0x4b
      ? " (a zip archive?)"
      : head[0] === 0xfd && head[1] === 0x37
        ? " (xz-compressed?)"
        : head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68
          ? " (bzip2-compressed?)"
          : "";
  return `${size} bytes starting ${hex} "${text}"${guess}`;
}

type Compression = "gzip" | "zstd";

function compressionOf(head: Uint8Array): Compression | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return undefined;
}

/** Passes bytes through, failing as soon as the first 512 are known not to be a tar header. */
class TarHeaderCheck extends Transform {
  private head: Buffer[] = [];
  private seen = 0;
  private checked = false;
  private readonly onBad: () => Error;

  constructor(onBad: () => Error) {
    super();
    this.onBad = onBad;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.checked) {
      this.head.push(chunk);
      this.seen += chunk.length;
      if (this.seen >= 512) {
        this.checked = true;
        if (!isTarHeader(Buffer.concat(this.head).subarray(0, 512))) {
          cb(this.onBad());
          return;
        }
        this.head = [];
      }
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.checked ? null : this.onBad());
  }
}

/** Decompresses `path` into a temporary tar file. */
async function spill(path: string, how: Compression): Promise<{ file: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "stella-artifact-"));
  const cleanup = (): void => {
    rmSync(dir, { recursive: true, force: true });
  };
  const file = join(dir, "image.tar");
  const notTar = (): ArtifactError =>
    new ArtifactError("ARTIFACT_UNKNOWN", `${path}: ${how}-compressed data that is not a tar archive`);
  try {
    await pipeline(
      createReadStream(path),
      how === "gzip" ? createGunzip() : createZstdDecompress(),
      new TarHeaderCheck(notTar),
      createWriteStream(file),
    );
  } catch (cause) {
    cleanup();
    if (cause instanceof ArtifactError) throw cause;
    throw new ArtifactError(
      "ARTIFACT_MALFORMED",
      `${path}: cannot decompress (${how}): ${(cause as Error).message} (truncated or corrupt?)`,
      { cause },
    );
  }
  return { file, cleanup };
}

function classifyTar(tar: TarIndex, path: string, cleanup: () => void): Detected {
  if (tar.has("manifest.json")) return { kind: "docker-archive", tar, cleanup };
  if (tar.has("oci-layout")) return { kind: "oci-archive", tar, cleanup };
  cleanup();
  const names = [...tar.members.keys()].slice(0, 5).join(", ");
  throw new ArtifactError(
    "ARTIFACT_UNKNOWN",
    `${path}: a tar archive with neither manifest.json (docker save) nor oci-layout (OCI archive)` +
      (names ? `; first members: ${names}` : "; it has no members"),
  );
}

export async function detectArtifact(path: string): Promise<Detected> {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new ArtifactError("ARTIFACT_NOT_FOUND", `${path}: no such file or directory`, { cause });
    }
    throw new ArtifactError("ARTIFACT_IO", `${path}: ${(cause as Error).message}`, { cause });
  }
  if (st.isDirectory()) {
    let layout: boolean;
    try {
      layout = statSync(join(path, "oci-layout")).isFile();
    } catch {
      layout = false;
    }
    return { kind: layout ? "oci-layout" : "directory" };
  }
  if (!st.isFile()) {
    throw new ArtifactError("ARTIFACT_UNKNOWN", `${path}: not a regular file or a directory`);
  }

  let head: Uint8Array;
  try {
    const src = new FileByteSource(path);
    try {
      head = Buffer.from(src.read(0, Math.min(512, src.size)));
    } finally {
      src.close();
    }
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${path}: ${(cause as Error).message}`, { cause });
  }

  if (isElfHead(head)) return { kind: "elf", size: st.size };
  const compression = compressionOf(head);
  if (compression !== undefined) {
    const { file, cleanup } = await spill(path, compression);
    let tar: TarIndex;
    try {
      tar = TarIndex.build(file, path);
    } catch (err) {
      cleanup();
      throw err;
    }
    return classifyTar(tar, path, cleanup);
  }
  if (isTarHeader(head)) return classifyTar(TarIndex.build(path, path), path, () => undefined);
  throw new ArtifactError(
    "ARTIFACT_UNKNOWN",
    `${path}: not an ELF file, a directory, or an image tarball (docker save / OCI archive); saw ${describeHead(head, st.size)}`,
  );
}
