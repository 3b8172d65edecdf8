/**
 * A single ELF file as an artifact: one file at `/<basename>` (so that `build-1/libfoo.so` and
 * `build-2/libfoo.so` pair up in a diff), opened lazily from disk.
 */
import { statSync } from "node:fs";
import { basename } from "node:path";

import { FileByteSource } from "../io/byte-source.ts";
import {
  type Artifact,
  ArtifactError,
  type ArtifactFile,
  type Context,
  hashFile,
  readHead,
  tooLarge,
} from "./common.ts";

export async function openElfFile(file: string, ctx: Context): Promise<Artifact> {
  const path = "/" + basename(file);
  const { head, size } = readHead(file, file);
  let mode: number;
  try {
    mode = statSync(file).mode & 0o7777;
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${file}: ${(cause as Error).message}`, { cause });
  }
  const kept = ctx.keep(path, head);
  if (kept && size > ctx.maxFileBytes) throw tooLarge(ctx, file, size);
  ctx.progress.start(size);
  const sha256 = await hashFile(file, size, file, ctx.progress);
  const files: ArtifactFile[] = kept
    ? [{ path, size, mode, sha256, open: () => new FileByteSource(file) }]
    : [];
  return { kind: "elf", name: ctx.name, digest: `sha256:${sha256}`, files, links: [] };
}
