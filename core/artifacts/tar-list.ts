/**
 * Lists a tar held in memory (a .deb's control.tar / data.tar, an image layer) with a sha256 of each
 * regular file's content, using the streaming reader of `tar-index.ts`. Member names that climb
 * out of the root with `..` are refused (dpkg refuses them too), not clamped.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";

import { ArtifactError } from "./common.ts";
import { readTarStream, type TarMemberType } from "./tar-index.ts";

export interface ListedMember {
  /** As written in the archive (`./usr/bin/ls`). */
  name: string;
  /** Normalised absolute path (`/usr/bin/ls`). */
  path: string;
  type: TarMemberType;
  mode: number;
  size: number;
  /** Regular files: hex sha256 of the content. */
  sha256?: string;
  /** Symlink text or hardlink target. */
  linkname?: string;
  /** The content, when `capture` asked for it. */
  data?: Buffer;
}

export async function listTarBuffer(
  tar: Uint8Array,
  where: string,
  capture?: (path: string) => boolean,
): Promise<ListedMember[]> {
  const out: ListedMember[] = [];
  for await (const e of readTarStream(Readable.from([tar]), where)) {
    if (e.name.split("/").includes("..")) {
      throw new ArtifactError(
        "ARTIFACT_MALFORMED",
        `${where}: member "${e.name}" has a ".." component (path traversal)`,
      );
    }
    const m: ListedMember = {
      name: e.name,
      path: e.path,
      type: e.type,
      mode: e.mode,
      size: e.type === "file" ? e.dataSize : 0,
    };
    if (e.type === "file") {
      const h = createHash("sha256");
      const keep = capture?.(e.path) === true;
      const parts: Buffer[] = [];
      for await (const c of e.body()) {
        h.update(c);
        if (keep) parts.push(c);
      }
      m.sha256 = h.digest("hex");
      if (keep) m.data = Buffer.concat(parts);
    }
    if (e.type === "symlink" || e.type === "link") m.linkname = e.linkname;
    out.push(m);
  }
  return out;
}
