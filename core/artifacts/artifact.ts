/**
 * Open a build artifact and list the files in it (the ELF ones, by default) — the input of
 * `stella scan diff --base A --target B`.
 *
 * An artifact is a single ELF file, a directory tree, an OCI image layout directory, or an image
 * tarball (`docker save`, or an OCI archive; plain, gzip or zstd). Images are unpacked in memory,
 * layer by layer, with whiteouts honoured and every blob checked against its digest; nothing is
 * written to disk except, for compressed tarballs, a temporary decompressed copy.
 */
import { StellaError } from "../errors.ts";
import { type Artifact, ArtifactError, makeContext, type OpenOptions } from "./common.ts";
import { detectArtifact } from "./detect.ts";
import { openDirectory } from "./directory.ts";
import { openDockerArchive } from "./docker-archive.ts";
import { openElfFile } from "./elf-file.ts";
import { DirStore, openOciImage } from "./oci-layout.ts";

export {
  type Artifact,
  ArtifactError,
  type ArtifactErrorCode,
  type ArtifactFile,
  type ArtifactKind,
  type ArtifactLink,
  DEFAULT_MAX_FILE_BYTES,
  isElfHead,
  type OpenOptions,
} from "./common.ts";
export { directoryDigest } from "./directory.ts";

async function open(path: string, opts: OpenOptions | undefined): Promise<Artifact> {
  const ctx = makeContext(path, opts);
  const found = await detectArtifact(path);
  switch (found.kind) {
    case "elf":
      return openElfFile(path, ctx);
    case "directory":
      return openDirectory(path, ctx);
    case "oci-layout":
      return openOciImage(new DirStore(path), "oci-layout", ctx);
    case "docker-archive":
    case "oci-archive":
      try {
        return found.kind === "docker-archive"
          ? await openDockerArchive(found.tar, ctx)
          : await openOciImage(found.tar, "oci-archive", ctx);
      } finally {
        found.cleanup();
      }
  }
}

/**
 * Opens the artifact at `path`. Failures are `ArtifactError`s (`ARTIFACT_UNKNOWN`,
 * `ARTIFACT_MALFORMED`, `ARTIFACT_DIGEST_MISMATCH`, `ARTIFACT_TOO_LARGE`, `ARTIFACT_NOT_FOUND`, …)
 * whose messages name the file, blob or field.
 */
export async function openArtifact(path: string, opts?: OpenOptions): Promise<Artifact> {
  try {
    return await open(path, opts);
  } catch (err) {
    if (err instanceof ArtifactError) throw err;
    // Other StellaErrors (a ByteSource's IO / EOF) and system errors (EACCES, EIO, …).
    if (
      err instanceof StellaError ||
      (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string")
    ) {
      throw new ArtifactError("ARTIFACT_IO", `${path}: ${err.message}`, { cause: err });
    }
    throw err; // a throwing `keep` or `onProgress`, or a bug: not ours to relabel
  }
}
