/**
 * Normalisation for the delta engine's inputs: every archive's listing becomes `NormalizedEntry`s
 * with only what describes the content (path, type, permission bits, size, content sha256, link
 * target) and nothing that changes when the same content is packed again (timestamps, owners, order,
 * compression level). Also writes the canonical tar that stands for a directory tree.
 *
 * Path conventions (see docs/delta-inputs.md): paths starting with "/" are content (a file in a
 * tree, tar, image, a .deb's data.tar, an rpm payload, a zip member); paths without a leading "/"
 * are package structure kept beside the content: a .deb's ar members (`debian-binary`,
 * `control.tar.xz`, `_gpgorigin`) and its control files (`DEBIAN/control`), an rpm's header and
 * signature-header tags (`RPM-HEADER`, `RPM-SIGNATURE/RSAHEADER`). Signatures are never dropped.
 */
import { type Dirent, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

import { ArtifactError, comparePaths, sha256Hex } from "../artifacts/common.ts";
import type { CpioMember } from "../artifacts/cpio.ts";
import type { DebPackage } from "../artifacts/deb.ts";
import type { RpmPackage } from "../artifacts/rpm.ts";
import type { ListedMember } from "../artifacts/tar-list.ts";
import type { ZipReader } from "../artifacts/zip.ts";
import type { NormalizedEntry } from "./inputs.ts";

export function compareEntries(a: NormalizedEntry, b: NormalizedEntry): number {
  return comparePaths(a.path, b.path) || comparePaths(a.member ?? "", b.member ?? "");
}

export function sortEntries(entries: NormalizedEntry[]): NormalizedEntry[] {
  return entries.sort(compareEntries);
}

function entry(
  path: string,
  type: NormalizedEntry["type"],
  mode: number,
  size: number,
  extra: { sha256?: string | undefined; linkTarget?: string | undefined; member?: string | undefined },
): NormalizedEntry {
  const e: NormalizedEntry = { path, type, mode: mode & 0o7777, size };
  if (extra.sha256 !== undefined) e.sha256 = extra.sha256;
  if (extra.linkTarget !== undefined) e.linkTarget = extra.linkTarget;
  if (extra.member !== undefined) e.member = extra.member;
  return e;
}

/**
 * Tar members (from `listTarBuffer`) as entries: the root and duplicate names dropped (the last one
 * wins, as on extraction); hardlinks keep type "link" and take their target's sha256 and size.
 */
export function entriesFromTar(members: readonly ListedMember[], member?: string): NormalizedEntry[] {
  const byPath = new Map<string, NormalizedEntry>();
  for (const m of members) {
    if (m.path === "/") continue;
    let sha256 = m.sha256;
    let size = m.size;
    if (m.type === "link" && m.linkname !== undefined) {
      const target = byPath.get(posixAbs(m.linkname));
      sha256 = target?.sha256;
      size = target?.size ?? 0;
    }
    byPath.set(m.path, entry(m.path, m.type, m.mode, size, { sha256, linkTarget: m.linkname, member }));
  }
  return sortEntries([...byPath.values()]);
}

function posixAbs(name: string): string {
  const parts: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") parts.pop();
    else parts.push(c);
  }
  return "/" + parts.join("/");
}

/** A zip's members: `/` + name (directories without the trailing `/`); symlinks read their target. */
export function entriesFromZip(zip: ZipReader): NormalizedEntry[] {
  const out: NormalizedEntry[] = [];
  for (const m of zip.members) {
    const path = "/" + (m.name.endsWith("/") ? m.name.slice(0, -1) : m.name);
    if (m.type === "directory") out.push(entry(path, "directory", m.mode, 0, {}));
    else if (m.type === "symlink" && zip.canDecode(m)) {
      out.push(entry(path, "symlink", m.mode, 0, { linkTarget: zip.content(m).toString("utf8") }));
    } else {
      out.push(entry(path, "file", m.mode, m.size, { sha256: zip.sha256(m) }));
    }
  }
  // Signature members (isZipSignatureMember) are plain entries, listed like any other: nothing filters them.
  return sortEntries(out);
}

/** A .deb: its ar members, its control files under `DEBIAN/`, and its data.tar content. */
export function entriesFromDeb(deb: DebPackage): NormalizedEntry[] {
  const out: NormalizedEntry[] = deb.members.map((m) =>
    entry(m.name, "file", m.mode, m.size, { sha256: m.sha256 }),
  );
  for (const e of entriesFromTar(deb.controlEntries, deb.controlMember)) {
    out.push({ ...e, path: "DEBIAN" + e.path });
  }
  out.push(...entriesFromTar(deb.dataEntries, deb.dataMember));
  return sortEntries(out);
}

export function entriesFromCpio(members: readonly CpioMember[], member: string): NormalizedEntry[] {
  const byPath = new Map<string, NormalizedEntry>();
  for (const m of members) {
    if (m.path === "/") continue;
    byPath.set(
      m.path,
      entry(m.path, m.type, m.mode, m.size, { sha256: m.sha256, linkTarget: m.linkname, member }),
    );
  }
  return sortEntries([...byPath.values()]);
}

/** An rpm: `RPM-HEADER`, one `RPM-SIGNATURE/<TAG>` per signature-header tag, and the payload. */
export function entriesFromRpm(rpm: RpmPackage): NormalizedEntry[] {
  const out: NormalizedEntry[] = [entry("RPM-HEADER", "other", 0, 0, { sha256: rpm.headerSha256 })];
  for (const t of rpm.signatureTags) {
    out.push(entry(`RPM-SIGNATURE/${t.name}`, "other", 0, t.size, { sha256: t.sha256 }));
  }
  out.push(
    ...entriesFromCpio(
      rpm.entries,
      `payload.cpio${rpm.payloadCodec === "none" ? "" : "." + rpm.payloadCodec}`,
    ),
  );
  return sortEntries(out);
}

/** One image layer's listing, for `mergeLayers`. */
export interface LayerListing {
  /** The layer's digest (or its path in a docker-archive). */
  member: string;
  members: readonly ListedMember[];
}

/**
 * The filesystem an image's layers build, as entries: `.wh.<name>` removes `<name>` (and what is
 * below it) left by lower layers, `.wh..wh..opq` empties its directory of what lower layers put
 * there; whiteouts never hide what their own layer adds. Each entry's `member` is the layer that last
 * wrote it. Paths are taken as written (a layer writing through a symlinked parent directory is not
 * resolved the way `openArtifact`'s model does; real builders record real paths).
 */
export function mergeLayers(layers: readonly LayerListing[]): NormalizedEntry[] {
  const fs = new Map<string, { e: NormalizedEntry; layer: number }>();
  const removeUnder = (dir: string, layer: number, self: boolean): void => {
    const prefix = dir === "/" ? "/" : dir + "/";
    for (const [p, v] of fs) {
      if (v.layer < layer && ((self && p === dir) || p.startsWith(prefix))) fs.delete(p);
    }
  };
  layers.forEach((l, i) => {
    for (const m of l.members) {
      const slash = m.path.lastIndexOf("/");
      const parent = slash <= 0 ? "/" : m.path.slice(0, slash);
      const base = m.path.slice(slash + 1);
      if (base === ".wh..wh..opq") removeUnder(parent, i, false);
      else if (base.startsWith(".wh..wh.")) continue;
      else if (base.startsWith(".wh."))
        removeUnder((parent === "/" ? "" : parent) + "/" + base.slice(4), i, true);
    }
    const added = entriesFromTar(
      l.members.filter((m) => !m.path.slice(m.path.lastIndexOf("/") + 1).startsWith(".wh.")),
      l.member,
    );
    for (const e of added) {
      const prev = fs.get(e.path);
      if (prev !== undefined && prev.e.type !== "directory" && e.type === "directory")
        removeUnder(e.path, i, false);
      fs.set(e.path, { e, layer: i });
    }
  });
  return sortEntries([...fs.values()].map((v) => v.e));
}

// ---- directory trees and the canonical tar ---------------------------------------------------------

export interface TreeFile {
  path: string;
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  abs: string;
  linkTarget?: string;
}

/** Walks `root` without following symlinks, sorted; sockets, fifos and devices are skipped. */
export function walkTree(root: string): TreeFile[] {
  const out: TreeFile[] = [];
  const visit = (abs: string, path: string): void => {
    let list: Dirent[];
    try {
      list = readdirSync(abs, { withFileTypes: true });
    } catch (cause) {
      throw new ArtifactError("ARTIFACT_IO", `${abs}: ${(cause as Error).message}`, { cause });
    }
    list.sort((a, b) => comparePaths(a.name, b.name));
    for (const d of list) {
      const a = join(abs, d.name);
      const p = `${path}/${d.name}`;
      const st = lstatSync(a);
      if (d.isSymbolicLink())
        out.push({
          path: p,
          type: "symlink",
          mode: st.mode & 0o7777,
          size: 0,
          abs: a,
          linkTarget: readlinkSync(a),
        });
      else if (d.isDirectory()) {
        out.push({ path: p, type: "directory", mode: st.mode & 0o7777, size: 0, abs: a });
        visit(a, p);
      } else if (d.isFile())
        out.push({ path: p, type: "file", mode: st.mode & 0o7777, size: st.size, abs: a });
    }
  };
  visit(root, "");
  return out.sort((a, b) => comparePaths(a.path, b.path));
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(
  name: string,
  type: "0" | "2" | "5" | "x",
  mode: number,
  size: number,
  linkname: string,
): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, "utf8");
  h.write(octal(mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii");
  h.write(octal(0, 8), 116, "ascii");
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(0, 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(type, 156, "ascii");
  h.write(linkname, 157, 100, "utf8");
  h.write("ustar\x0000", 257, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/**
 * The canonical tar of a tree: members in sorted path order (names relative, `usr/bin/ls`,
 * directories with a trailing `/`), ustar headers with uid/gid 0, empty owner names, mtime 0, the
 * permission bits kept; a pax `x` record carries names or link targets over 100 bytes; two zero
 * blocks end it. Same tree content → same bytes.
 */
export function canonicalTar(files: readonly TreeFile[], maxBytes: number, name: string): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const push = (b: Buffer): void => {
    total += b.length;
    if (total > maxBytes) {
      throw new ArtifactError(
        "ARTIFACT_TOO_LARGE",
        `${name}: the canonical tar of the tree exceeds the limit of ${maxBytes} bytes (maxBytes)`,
      );
    }
    parts.push(b);
  };
  for (const f of files) {
    const rel = f.path.slice(1) + (f.type === "directory" ? "/" : "");
    const link = f.linkTarget ?? "";
    const long = Buffer.byteLength(rel) > 100 || Buffer.byteLength(link) > 100;
    if (long) {
      let rec = paxRecord("path", rel);
      if (link !== "") rec += paxRecord("linkpath", link);
      const body = Buffer.from(rec, "utf8");
      push(header("PaxHeaders/" + sha256Hex(rel).slice(0, 16), "x", 0o644, body.length, ""));
      push(body);
      push(pad(body.length));
    }
    const shortName = long ? Buffer.from(rel).subarray(0, 100).toString("utf8") : rel;
    const shortLink = long ? Buffer.from(link).subarray(0, 100).toString("utf8") : link;
    if (f.type === "file") {
      push(header(shortName, "0", f.mode, f.size, ""));
      const data = readFileSync(f.abs);
      if (data.length !== f.size) {
        throw new ArtifactError(
          "ARTIFACT_IO",
          `${f.abs}: changed size while reading (${f.size} → ${data.length} bytes)`,
        );
      }
      push(data);
      push(pad(data.length));
    } else {
      push(header(shortName, f.type === "directory" ? "5" : "2", f.mode, 0, shortLink));
    }
  }
  push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** Entries for a tree, hashing files. */
export function entriesFromTree(files: readonly TreeFile[]): NormalizedEntry[] {
  return sortEntries(
    files.map((f) =>
      f.type === "file"
        ? entry(f.path, "file", f.mode, f.size, { sha256: sha256Hex(readFileSync(f.abs)) })
        : entry(f.path, f.type, f.mode, 0, { linkTarget: f.linkTarget }),
    ),
  );
}
