// Test and benchmark support: an OCI image layout made of the real files of installed Debian packages
// (`dpkg -L`), read from the host filesystem, written with the project's own image writer (test-images.ts).
// Deterministic: the same packages (same installed versions) and the same `mutate` give the same digest.
import { lstatSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { basename, dirname, posix } from "node:path";

import { buildImage, ociLayoutFiles, type TarItem, writeFiles } from "../artifacts/test-images.ts";
import { run } from "./run.ts";

export interface DebianImageOptions {
  /** Installed packages whose files go into the image, e.g. `["coreutils", "libc6"]`. */
  packages: string[];
  /** Written as `org.opencontainers.image.ref.name` of the image in index.json. */
  tag: string;
  /** Called with each file's image path (`/usr/bin/ls`) and content; a Buffer returned replaces the content. */
  mutate?: (path: string, data: Buffer) => Buffer | undefined;
}

export interface DebianImage {
  /** `sha256:` of the image manifest. */
  digest: string;
  /** Regular files in the image. */
  files: number;
  /** Of them, ELF files. */
  elfFiles: number;
}

/** Top-level merged-/usr links (`/bin -> usr/bin`, …) as the host has them. */
const MERGED_USR_LINKS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

function isElf(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46;
}

/**
 * The regular files of `pkg`, as canonical absolute paths: the directory part is resolved on the host, so that
 * `/lib/x86_64-linux-gnu/libc.so.6` (what dpkg recorded) becomes `/usr/lib/x86_64-linux-gnu/libc.so.6` on a
 * merged-/usr system. Symlinks, directories and diversions are left out.
 */
async function packageFiles(pkg: string): Promise<string[]> {
  const r = await run("dpkg", ["-L", pkg]);
  if (r.code !== 0) throw new Error(`dpkg -L ${pkg} failed (is it installed?): ${r.stderr.trim()}`);
  const out: string[] = [];
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("/")) continue; // "package diverts others to: …" and blank lines
    let st;
    try {
      st = lstatSync(line);
    } catch {
      continue; // listed but not present (e.g. removed conffile, path excluded by dpkg path-exclude)
    }
    if (!st.isFile()) continue;
    out.push(posix.join(realpathSync(dirname(line)), basename(line)));
  }
  return out;
}

/**
 * Writes an OCI image layout to `outDir` (replacing what is there): one gzip'd layer with the regular files of
 * `packages` (paths sorted, modes as on the host, mtime 0), plus the host's merged-/usr top-level symlinks.
 */
export async function buildDebianImage(outDir: string, opts: DebianImageOptions): Promise<DebianImage> {
  const paths = new Set<string>();
  for (const pkg of opts.packages) for (const p of await packageFiles(pkg)) paths.add(p);
  const items: TarItem[] = [];
  let elfFiles = 0;
  for (const link of MERGED_USR_LINKS) {
    try {
      if (lstatSync(`/${link}`).isSymbolicLink()) {
        items.push({ path: link, type: "symlink", target: readlinkSync(`/${link}`) });
      }
    } catch {
      // not on this host
    }
  }
  let files = 0;
  for (const path of [...paths].sort()) {
    let data: Buffer;
    let mode: number;
    try {
      data = readFileSync(path);
      mode = lstatSync(path).mode & 0o7777;
    } catch {
      continue; // unreadable on this host
    }
    data = opts.mutate?.(path, data) ?? data;
    if (isElf(data)) elfFiles++;
    files++;
    items.push({ path: path.slice(1), data, mode });
  }
  const image = await buildImage([{ items, compression: "gzip" }]);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  writeFiles(
    outDir,
    ociLayoutFiles(
      [image],
      [{ ...image.manifest, annotations: { "org.opencontainers.image.ref.name": opts.tag } }],
    ),
  );
  return { digest: image.manifest.digest, files, elfFiles };
}
