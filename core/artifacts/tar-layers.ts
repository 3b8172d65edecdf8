/**
 * Applying image layers, in order, to an in-memory model of the root filesystem, the way an OCI
 * runtime would unpack them (OCI image-spec `layer.md`):
 *
 * - a layer is a tar, tar+gzip or tar+zstd; the compression is read from the magic bytes;
 * - `.wh.<name>` deletes `<name>` (a whole subtree for a directory) from lower layers;
 * - `.wh..wh..opq` makes its directory opaque: everything lower layers put in it is hidden;
 *   whiteouts never hide what the same layer adds, whichever order the tar lists them in;
 * - a directory entry over an existing directory merges; anything else replaces what was there;
 * - symlinks are recorded, never followed for content; hardlinks share the target's content;
 * - member paths are absolute and `..` cannot climb above the root; parent directories that are
 *   symlinks are resolved inside the model (like containerd's `fs.RootPath`), so nothing escapes.
 *
 * Only file heads (64 bytes) are looked at for files `keep` rejects; kept files are buffered.
 * Every blob is hashed as it streams and checked against its digest; a layer that fails to parse
 * is re-hashed so that a tampered blob is reported as tampered, not as a parse error.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { pipeline, Readable } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";

import { isStellaError } from "../errors.ts";
import { BufferByteSource } from "../io/byte-source.ts";
import {
  ArtifactError,
  type ArtifactFile,
  type ArtifactLink,
  comparePaths,
  type Context,
  DigestCheck,
  HEAD_BYTES,
  normalizeMemberPath,
  tooLarge,
} from "./common.ts";
import { readTarStream, type StreamEntry } from "./tar-index.ts";

/** A layer blob to apply. */
export interface LayerSource {
  /** For messages: the blob digest, or its path in the archive. */
  name: string;
  /** Size as stored (compressed). */
  size: number;
  /** The stored bytes; each call starts from the beginning. */
  read(): AsyncIterable<Uint8Array>;
  /** Digest of the stored bytes (the descriptor digest), checked while reading. */
  digest?: string;
  /** Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry), checked while reading. */
  diffId?: string;
}

export interface LayeredFiles {
  files: ArtifactFile[];
  links: ArtifactLink[];
}

// ---- the filesystem model ----------------------------------------------------------------------

/** File content, shared between hardlinks. `data` is set only for kept files. */
interface Content {
  size: number;
  mode: number;
  data: Uint8Array | undefined;
  sha256: string | undefined;
}

/** `layer`: the last layer that created or touched the node (a directory is touched by its descendants). */
interface DirNode {
  type: "dir";
  layer: number;
  mode: number;
  children: Map<string, Node>;
}
interface FileNode {
  type: "file";
  layer: number;
  content: Content;
}
interface SymlinkNode {
  type: "symlink";
  layer: number;
  target: string;
}
/** Devices, fifos and unknown types: occupy a name, never listed. */
interface OtherNode {
  type: "other";
  layer: number;
}
type Node = DirNode | FileNode | SymlinkNode | OtherNode;

const MAX_SYMLINK_HOPS = 40;

function newDir(layer: number, mode = 0o755): DirNode {
  return { type: "dir", layer, mode, children: new Map() };
}

/** Removes everything below `dir` that a layer lower than `layer` put there. */
function pruneLower(dir: DirNode, layer: number): void {
  for (const [name, child] of dir.children) {
    if (child.layer < layer) dir.children.delete(name);
    else if (child.type === "dir") pruneLower(child, layer);
  }
}

/** Where a path lands: its parent directory (symlinks resolved) and last component. */
interface Location {
  dir: DirNode;
  /** The resolved path of `dir`: "" for the root. */
  dirPath: string;
  base: string;
}

export class LayeredFs {
  private readonly root: DirNode = newDir(-1);
  private readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  /**
   * Walks `path` (absolute, normalised) to a directory, resolving symlinks on the way; `..` stops at the
   * root. With `touch`, missing directories are created (non-directories replaced) and every directory
   * passed is marked as touched by that layer.
   */
  private walkDir(path: string, touch: number | undefined): { dir: DirNode; path: string } | undefined {
    const pending = path.split("/").reverse();
    const stack: DirNode[] = [this.root];
    const names: string[] = [];
    let hops = 0;
    for (let c = pending.pop(); c !== undefined; c = pending.pop()) {
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (stack.length > 1) {
          stack.pop();
          names.pop();
        }
        continue;
      }
      const cur = stack[stack.length - 1] ?? this.root;
      let child = cur.children.get(c);
      if (child?.type === "symlink") {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw new ArtifactError(
            "ARTIFACT_MALFORMED",
            `${this.name}: too many levels of symbolic links in ${path}`,
          );
        }
        if (child.target.startsWith("/")) {
          stack.length = 1;
          names.length = 0;
        }
        for (const t of child.target.split("/").reverse()) pending.push(t);
        continue;
      }
      if (child === undefined || child.type !== "dir") {
        if (touch === undefined) return undefined;
        child = newDir(touch);
        cur.children.set(c, child);
      }
      if (touch !== undefined) child.layer = touch;
      stack.push(child);
      names.push(c);
    }
    return { dir: stack[stack.length - 1] ?? this.root, path: names.length ? "/" + names.join("/") : "" };
  }

  private locate(path: string, touch: number | undefined): Location | undefined {
    const found = this.walkDir(posix.dirname(path), touch);
    return found && { dir: found.dir, dirPath: found.path, base: posix.basename(path) };
  }

  /** Where a new entry at `path` goes (creating parents); its resolved path is `dirPath + "/" + base`. */
  place(path: string, layer: number): Location | undefined {
    if (path === "/") return undefined;
    return this.locate(path, layer);
  }

  put(loc: Location, node: Node): void {
    const existing = loc.dir.children.get(loc.base);
    if (node.type === "dir" && existing?.type === "dir") {
      existing.mode = node.mode;
      existing.layer = node.layer;
      return;
    }
    loc.dir.children.set(loc.base, node);
  }

  setRootMode(mode: number): void {
    this.root.mode = mode;
  }

  /** The node a hardlink names; its parents resolve through symlinks, the last component does not. */
  lookup(path: string): Node | undefined {
    if (path === "/") return this.root;
    const loc = this.locate(path, undefined);
    return loc?.dir.children.get(loc.base);
  }

  /** `.wh.<name>`: hides `path` as lower layers left it. */
  whiteout(path: string, layer: number): void {
    const loc = this.locate(path, undefined);
    const node = loc?.dir.children.get(loc.base);
    if (loc === undefined || node === undefined) return;
    if (node.layer < layer) loc.dir.children.delete(loc.base);
    else if (node.type === "dir") pruneLower(node, layer);
  }

  /** `.wh..wh..opq`: hides what lower layers put in the directory. */
  opaque(dirPath: string, layer: number): void {
    const found = this.walkDir(dirPath, layer);
    if (found) pruneLower(found.dir, layer);
  }

  /** The kept files and all symlinks, sorted by path. */
  collect(): LayeredFiles {
    const files: ArtifactFile[] = [];
    const links: ArtifactLink[] = [];
    const name = this.name;
    const visit = (dir: DirNode, prefix: string): void => {
      for (const [base, node] of dir.children) {
        const path = `${prefix}/${base}`;
        if (node.type === "dir") visit(node, path);
        else if (node.type === "symlink") links.push({ path, target: node.target });
        else if (node.type === "file") {
          const { data, sha256, size, mode } = node.content;
          if (data === undefined || sha256 === undefined) continue;
          files.push({ path, size, mode, sha256, open: () => new BufferByteSource(data, `${name}:${path}`) });
        }
      }
    };
    visit(this.root, "");
    files.sort((a, b) => comparePaths(a.path, b.path));
    links.sort((a, b) => comparePaths(a.path, b.path));
    return { files, links };
  }
}

// ---- reading one layer ---------------------------------------------------------------------------

type Compression = "none" | "gzip" | "zstd";

function sniffCompression(head: Uint8Array, where: string): Compression {
  const is = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (is(0x1f, 0x8b)) return "gzip";
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) {
    throw new ArtifactError("ARTIFACT_UNSUPPORTED", `${where}: xz-compressed layers are not supported`);
  }
  if (is(0x42, 0x5a, 0x68)) {
    throw new ArtifactError("ARTIFACT_UNSUPPORTED", `${where}: bzip2-compressed layers are not supported`);
  }
  return "none";
}

/** The first `n` bytes of a stream, and the whole stream again (head included). */
async function peek(
  src: AsyncIterable<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; stream: AsyncIterable<Uint8Array>; close: () => Promise<void> }> {
  const it = src[Symbol.asyncIterator]();
  const buffered: Uint8Array[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done === true) {
      ended = true;
      break;
    }
    buffered.push(r.value);
    len += r.value.length;
  }
  const close = async (): Promise<void> => {
    await it.return?.();
  };
  async function* stream(): AsyncGenerator<Uint8Array> {
    try {
      yield* buffered;
      while (!ended) {
        const r = await it.next();
        if (r.done === true) break;
        yield r.value;
      }
    } finally {
      await close();
    }
  }
  return { head: Buffer.concat(buffered).subarray(0, n), stream: stream(), close };
}

function decompress(
  src: AsyncIterable<Uint8Array>,
  how: Exclude<Compression, "none">,
): AsyncIterable<Uint8Array> {
  const z = how === "gzip" ? createGunzip() : createZstdDecompress();
  // Errors (ours from the source, zlib's own) destroy every stream in the pipeline with that error,
  // so they surface from iterating `z`; the callback only has to exist.
  return pipeline(Readable.from(src, { objectMode: false }), z, () => undefined);
}

/** Reads a regular file's bytes; buffers them only when `keep` wants the file. */
async function readContent(entry: StreamEntry, path: string, ctx: Context): Promise<Content> {
  const size = entry.dataSize;
  const pending: Buffer[] = [];
  let pendingLen = 0;
  let buf: Buffer | undefined;
  let decided = false;
  let filled = 0;
  const decide = (): void => {
    decided = true;
    const first = pending.length === 1 ? (pending[0] ?? Buffer.alloc(0)) : Buffer.concat(pending);
    if (!ctx.keep(path, first.subarray(0, HEAD_BYTES))) return;
    if (size > ctx.maxFileBytes) throw tooLarge(ctx, path, size);
    buf = Buffer.allocUnsafe(size);
    filled = first.copy(buf, 0);
  };
  for await (const chunk of entry.body()) {
    if (!decided) {
      pending.push(chunk);
      pendingLen += chunk.length;
      if (pendingLen >= HEAD_BYTES || pendingLen >= size) decide();
    } else if (buf === undefined) {
      break; // not kept: the reader skips the rest
    } else {
      filled += chunk.copy(buf, filled);
    }
  }
  if (!decided) decide();
  if (buf === undefined) return { size, mode: entry.mode, data: undefined, sha256: undefined };
  return { size, mode: entry.mode, data: buf, sha256: createHash("sha256").update(buf).digest("hex") };
}

function applyWhiteout(fs: LayeredFs, path: string, layer: number): void {
  const base = posix.basename(path);
  const parent = posix.dirname(path);
  if (base === ".wh..wh..opq") fs.opaque(parent, layer);
  else if (!base.startsWith(".wh..wh.")) {
    const victim = base.slice(".wh.".length);
    if (victim !== "" && victim !== "." && victim !== "..") fs.whiteout(posix.join(parent, victim), layer);
  } // other .wh..wh.* names are AUFS bookkeeping
}

async function applyEntry(
  fs: LayeredFs,
  entry: StreamEntry,
  layer: number,
  ctx: Context,
  where: string,
): Promise<void> {
  const { path } = entry;
  if (posix.basename(path).startsWith(".wh.")) {
    applyWhiteout(fs, path, layer);
    return;
  }
  if (path === "/") {
    if (entry.type === "directory") fs.setRootMode(entry.mode);
    return;
  }
  const loc = fs.place(path, layer);
  if (loc === undefined) return;
  switch (entry.type) {
    case "file": {
      const content = await readContent(entry, `${loc.dirPath}/${loc.base}`, ctx);
      fs.put(loc, { type: "file", layer, content });
      return;
    }
    case "directory":
      fs.put(loc, newDir(layer, entry.mode));
      return;
    case "symlink":
      fs.put(loc, { type: "symlink", layer, target: entry.linkname });
      return;
    case "link": {
      const targetPath = normalizeMemberPath(entry.linkname);
      const target = fs.lookup(targetPath);
      if (target === undefined || target.type === "dir") {
        throw new ArtifactError(
          "ARTIFACT_MALFORMED",
          `${where}: hardlink ${path} → ${targetPath}: ${target === undefined ? "no such file" : "a directory"}`,
        );
      }
      if (target.type === "file") fs.put(loc, { type: "file", layer, content: target.content });
      else fs.put(loc, { ...target, layer });
      return;
    }
    case "other":
      fs.put(loc, { type: "other", layer });
  }
}

function mismatch(
  where: string,
  what: string,
  expected: string,
  actual: string,
  cause?: unknown,
): ArtifactError {
  return new ArtifactError(
    "ARTIFACT_DIGEST_MISMATCH",
    `${where}: ${what} is ${actual}, expected ${expected}`,
    cause === undefined ? undefined : { cause },
  );
}

/** After a failure: is the blob itself not what its digest says? Returns that error if so. */
async function recheck(
  layer: LayerSource,
  compression: Compression | undefined,
  where: string,
  cause: unknown,
) {
  // Without a stored-bytes digest, an uncompressed layer can still be checked against its diff_id.
  const expected = layer.digest ?? (compression === "none" ? layer.diffId : undefined);
  if (expected === undefined) return undefined;
  const check = new DigestCheck(expected, where);
  try {
    for await (const c of layer.read()) check.update(c);
  } catch {
    return undefined;
  }
  const actual = check.mismatch();
  return actual === undefined ? undefined : mismatch(where, "blob digest", expected, actual, cause);
}

async function applyLayer(fs: LayeredFs, layer: LayerSource, index: number, ctx: Context): Promise<void> {
  const where = `${ctx.name}: layer ${index + 1} (${layer.name})`;
  const rawCheck = layer.digest === undefined ? undefined : new DigestCheck(layer.digest, `${where} digest`);
  const diffCheck =
    layer.diffId === undefined ? undefined : new DigestCheck(layer.diffId, `${where} diff_id`);

  async function* raw(): AsyncGenerator<Uint8Array> {
    let n = 0;
    for await (const c of layer.read()) {
      n += c.length;
      rawCheck?.update(c);
      ctx.progress.add(c.length);
      yield c;
    }
    if (n !== layer.size) {
      throw new ArtifactError(
        "ARTIFACT_DIGEST_MISMATCH",
        `${where}: blob is ${n} bytes, expected ${layer.size}`,
      );
    }
    const actual = rawCheck?.mismatch();
    if (actual !== undefined && layer.digest !== undefined)
      throw mismatch(where, "blob digest", layer.digest, actual);
  }
  async function* uncompressed(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of src) {
      diffCheck?.update(c);
      yield c;
    }
    const actual = diffCheck?.mismatch();
    if (actual !== undefined && layer.diffId !== undefined) {
      throw mismatch(where, "uncompressed digest", `${layer.diffId} (diff_id)`, actual);
    }
  }

  let compression: Compression | undefined;
  try {
    const peeked = await peek(raw(), 8);
    try {
      compression = sniffCompression(peeked.head, where);
    } catch (err) {
      await peeked.close();
      throw err;
    }
    const plain = compression === "none" ? peeked.stream : decompress(peeked.stream, compression);
    for await (const entry of readTarStream(uncompressed(plain), where)) {
      await applyEntry(fs, entry, index, ctx, where);
    }
  } catch (err) {
    if (isStellaError(err, "ARTIFACT_DIGEST_MISMATCH")) throw err;
    if (err instanceof ArtifactError && err.code !== "ARTIFACT_MALFORMED") throw err;
    const tampered = await recheck(layer, compression, where, err);
    if (tampered) throw tampered;
    if (err instanceof ArtifactError) throw err;
    // zlib / zstd / stream errors carry a code; anything else (a throwing `keep`, a bug) passes through.
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") {
      throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/** Applies `layers` bottom to top and lists the result. */
export async function applyLayers(layers: readonly LayerSource[], ctx: Context): Promise<LayeredFiles> {
  ctx.progress.start(layers.reduce((n, l) => n + l.size, 0));
  const fs = new LayeredFs(ctx.name);
  for (const [i, layer] of layers.entries()) await applyLayer(fs, layer, i, ctx);
  return fs.collect();
}
