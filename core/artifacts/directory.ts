/**
 * A directory tree as an artifact. Walked in sorted order without following symlinks (they are
 * recorded as links, so nothing outside the tree is read); sockets, fifos and devices are skipped.
 * Kept files are hashed now and opened lazily later (FileByteSource). The digest is that of the
 * canonical listing documented on `Artifact.digest`.
 */
import { type Dirent, lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

import { FileByteSource } from "../io/byte-source.ts";
import {
  type Artifact,
  ArtifactError,
  type ArtifactFile,
  type ArtifactLink,
  comparePaths,
  type Context,
  hashFile,
  readHead,
  sha256Hex,
  tooLarge,
} from "./common.ts";

function io(abs: string, cause: unknown): ArtifactError {
  return new ArtifactError("ARTIFACT_IO", `${abs}: ${(cause as Error).message}`, { cause });
}

/** `path + "\0" + octal mode + "\0" + sha256 + "\n"` per file, in path order; see `Artifact.digest`. */
export function directoryDigest(files: readonly Pick<ArtifactFile, "path" | "mode" | "sha256">[]): string {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  return "sha256:" + sha256Hex(sorted.map((f) => `${f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`).join(""));
}

export async function openDirectory(root: string, ctx: Context): Promise<Artifact> {
  const candidates: { abs: string; path: string; size: number; mode: number }[] = [];
  const links: ArtifactLink[] = [];
  const stack: { abs: string; path: string }[] = [{ abs: root, path: "" }];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir.abs, { withFileTypes: true });
    } catch (cause) {
      throw io(dir.abs, cause);
    }
    entries.sort((a, b) => comparePaths(a.name, b.name));
    const subdirs: { abs: string; path: string }[] = [];
    for (const e of entries) {
      const abs = join(dir.abs, e.name);
      const path = `${dir.path}/${e.name}`;
      try {
        if (e.isSymbolicLink()) links.push({ path, target: readlinkSync(abs) });
        else if (e.isDirectory()) subdirs.push({ abs, path });
        else if (e.isFile()) {
          const st = lstatSync(abs);
          candidates.push({ abs, path, size: st.size, mode: st.mode & 0o7777 });
        }
      } catch (cause) {
        throw io(abs, cause);
      }
    }
    stack.push(...subdirs.reverse());
  }

  const kept = candidates.filter((c) => ctx.keep(c.path, readHead(c.abs, c.abs).head));
  for (const c of kept) if (c.size > ctx.maxFileBytes) throw tooLarge(ctx, c.path, c.size);
  ctx.progress.start(kept.reduce((n, c) => n + c.size, 0));
  const files: ArtifactFile[] = [];
  for (const c of kept) {
    const sha256 = await hashFile(c.abs, c.size, c.abs, ctx.progress);
    files.push({ path: c.path, size: c.size, mode: c.mode, sha256, open: () => new FileByteSource(c.abs) });
  }
  files.sort((a, b) => comparePaths(a.path, b.path));
  links.sort((a, b) => comparePaths(a.path, b.path));
  return { kind: "directory", name: ctx.name, digest: directoryDigest(files), files, links };
}
