/**
 * cpio archives in the SVR4 "newc" format (magic `070701`, or `070702` with a checksum), as rpm
 * payloads and initramfs images use: a 110-byte ASCII-hex header (ino, mode, uid, gid, nlink, mtime,
 * filesize, dev/rdev major/minor, namesize, check), the NUL-terminated name padded to 4 bytes, the data
 * padded to 4 bytes, up to the `TRAILER!!!` entry. Hard links share an inode; newc stores their data
 * once, on the last link, so the content hash is shared across the group. Bad magic, non-hex fields,
 * names or data past the end, `..` components and a missing trailer are refused.
 */
import { createHash } from "node:crypto";

import { ArtifactError, normalizeMemberPath } from "./common.ts";

export interface CpioMember {
  /** As written (`./usr/bin/ls`). */
  name: string;
  /** Normalised absolute path. */
  path: string;
  type: "file" | "directory" | "symlink" | "other";
  mode: number;
  ino: number;
  nlink: number;
  size: number;
  sha256?: string;
  linkname?: string;
}

const S_IFMT = 0o170000;

function hex(b: Buffer, at: number): number | undefined {
  const s = b.toString("latin1", at, at + 8);
  return /^[0-9a-fA-F]{8}$/.test(s) ? parseInt(s, 16) : undefined;
}

export function isCpioHead(head: Uint8Array): boolean {
  const m = Buffer.from(head.subarray(0, 6)).toString("latin1");
  return m === "070701" || m === "070702";
}

export function listCpio(data: Uint8Array, where: string): CpioMember[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bad = (msg: string): ArtifactError => new ArtifactError("ARTIFACT_MALFORMED", `${where}: ${msg}`);
  const out: CpioMember[] = [];
  const dataByIno = new Map<number, string>();
  let off = 0;
  for (;;) {
    if (off + 110 > buf.length)
      throw bad(`cpio header at byte ${off} is cut short by the end of the data (no TRAILER!!!)`);
    const magic = buf.toString("latin1", off, off + 6);
    if (magic !== "070701" && magic !== "070702") {
      const odc = magic === "070707" ? " (old portable format, not supported)" : "";
      throw bad(
        `cpio header at byte ${off}: bad magic "${magic.replace(/[^\x20-\x7e]/g, ".")}"${odc}, expected 070701`,
      );
    }
    const f: number[] = [];
    for (let i = 0; i < 13; i++) {
      const v = hex(buf, off + 6 + i * 8);
      if (v === undefined) throw bad(`cpio header at byte ${off}: field ${i} is not hexadecimal`);
      f.push(v);
    }
    const [ino = 0, mode = 0, , , nlink = 0, , filesize = 0, , , , , namesize = 0] = f;
    const nameAt = off + 110;
    if (namesize === 0 || nameAt + namesize > buf.length)
      throw bad(`cpio header at byte ${off}: name of ${namesize} bytes runs past the end`);
    const name = buf.toString("utf8", nameAt, nameAt + namesize - 1);
    const dataAt = (nameAt + namesize + 3) & ~3;
    if (name === "TRAILER!!!") break;
    if (dataAt + filesize > buf.length) {
      throw bad(
        `cpio member "${name}" needs ${filesize} bytes at ${dataAt} but the data ends at ${buf.length}`,
      );
    }
    if (name.split("/").includes(".."))
      throw bad(`cpio member "${name}" has a ".." component (path traversal)`);
    const fmt = mode & S_IFMT;
    const type =
      fmt === 0o100000 ? "file" : fmt === 0o040000 ? "directory" : fmt === 0o120000 ? "symlink" : "other";
    const m: CpioMember = {
      name,
      path: normalizeMemberPath(name),
      type,
      mode: mode & 0o7777,
      ino,
      nlink,
      size: type === "file" ? filesize : 0,
    };
    const body = buf.subarray(dataAt, dataAt + filesize);
    if (type === "symlink") m.linkname = body.toString("utf8");
    if (type === "file" && (filesize > 0 || nlink <= 1)) {
      m.sha256 = createHash("sha256").update(body).digest("hex");
      if (nlink > 1) dataByIno.set(ino, m.sha256);
    }
    out.push(m);
    off = (dataAt + filesize + 3) & ~3;
  }
  // Hard links: earlier members of the group were written with size 0.
  for (const m of out) {
    if (m.type === "file" && m.nlink > 1) {
      const sha = dataByIno.get(m.ino);
      if (sha !== undefined && m.sha256 === undefined) {
        m.sha256 = sha;
        const sizeOf = out.find((o) => o.ino === m.ino && o.size > 0)?.size;
        if (sizeOf !== undefined) m.size = sizeOf;
      }
    }
  }
  return out;
}
