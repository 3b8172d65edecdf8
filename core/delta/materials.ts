/**
 * Packages found inside an artifact, and what changed between two artifacts (the delta manifest's
 * `materials_delta`). Sources: dpkg's status database (`/var/lib/dpkg/status`, and the
 * one-file-per-package `/var/lib/dpkg/status.d/` that distroless images use), rpm's sqlite database
 * (`rpmdb.sqlite`, read with node:sqlite), a package's own control data, and SBOMs (CycloneDX JSON,
 * SPDX 2.x JSON).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

import {
  ArtifactError,
  asArray,
  asObject,
  comparePaths,
  type JsonObject,
  parseJson,
} from "../artifacts/common.ts";
import { parseControlFile } from "../artifacts/deb.ts";
import { parseHeaderBlob, RPMTAG, tagNumber, tagString } from "../artifacts/rpm.ts";
import type { PackageRef } from "./inputs.ts";

/** Where package databases live inside a root filesystem. */
export const DPKG_STATUS = "/var/lib/dpkg/status";
export const DPKG_STATUS_D = "/var/lib/dpkg/status.d/";
export const RPMDB_PATHS = ["/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"];

export function isPackageDbPath(path: string): boolean {
  return (
    path === DPKG_STATUS ||
    (path.startsWith(DPKG_STATUS_D) && !path.endsWith(".md5sums")) ||
    RPMDB_PATHS.includes(path)
  );
}

export function comparePackages(a: PackageRef, b: PackageRef): number {
  return (
    comparePaths(a.name, b.name) ||
    comparePaths(a.arch ?? "", b.arch ?? "") ||
    comparePaths(a.version, b.version) ||
    comparePaths(a.source, b.source) ||
    comparePaths(a.digest ?? "", b.digest ?? "")
  );
}

/**
 * Packages of a dpkg status file (or one status.d file): paragraphs with `Package` and `Version`;
 * in `status`, only those whose `Status` says installed (half-installed, config-files and removed
 * packages are not there).
 */
export function packagesFromDpkgStatus(text: string, where: string): PackageRef[] {
  const out: PackageRef[] = [];
  for (const p of parseControlFile(text, where)) {
    const name = p.Package;
    const version = p.Version;
    if (name === undefined || version === undefined) continue;
    const status = p.Status;
    if (status !== undefined && !/\binstalled$/.test(status.trim())) continue;
    const arch = p.Architecture;
    out.push({ name, version, ...(arch === undefined ? {} : { arch }), source: "dpkg" });
  }
  return out.sort(comparePackages);
}

/**
 * Packages in an rpm sqlite database: table `Packages (hnum, blob)`, each blob a header blob
 * (u32 BE index count, u32 BE data size, 16-byte index entries, data store; no magic). NAME,
 * VERSION, RELEASE, EPOCH and ARCH are read; the version is `[epoch:]version-release`. The
 * `gpg-pubkey` pseudo-packages (imported keys) are skipped.
 */
export function packagesFromRpmDb(bytes: Uint8Array, where: string): PackageRef[] {
  const dir = mkdtempSync(join(tmpdir(), "stella-rpmdb-"));
  try {
    const file = join(dir, "rpmdb.sqlite");
    writeFileSync(file, bytes);
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(file, { readOnly: true });
    } catch (cause) {
      throw new ArtifactError(
        "ARTIFACT_MALFORMED",
        `${where}: not an sqlite database: ${(cause as Error).message}`,
        { cause },
      );
    }
    try {
      let rows: unknown[];
      try {
        rows = db.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum").all();
      } catch (cause) {
        throw new ArtifactError(
          "ARTIFACT_MALFORMED",
          `${where}: no readable Packages table: ${(cause as Error).message}`,
          { cause },
        );
      }
      const out: PackageRef[] = [];
      for (const row of rows) {
        const r = row as { hnum: number; blob: Uint8Array };
        const h = parseHeaderBlob(r.blob, 0, false, `${where}: Packages row ${r.hnum}`);
        const name = tagString(h, RPMTAG.NAME);
        const version = tagString(h, RPMTAG.VERSION);
        if (name === undefined || version === undefined || name === "gpg-pubkey") continue;
        const release = tagString(h, RPMTAG.RELEASE);
        const epoch = tagNumber(h, RPMTAG.EPOCH);
        const arch = tagString(h, RPMTAG.ARCH);
        out.push({
          name,
          version: rpmVersion(epoch, version, release),
          ...(arch === undefined ? {} : { arch }),
          source: "rpm",
        });
      }
      return out.sort(comparePackages);
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function rpmVersion(epoch: number | undefined, version: string, release: string | undefined): string {
  return `${epoch === undefined ? "" : `${epoch}:`}${version}${release === undefined ? "" : `-${release}`}`;
}

/** Packages from the database files of a root filesystem, keyed by in-image path. */
export function packagesFromDbFiles(files: ReadonlyMap<string, Uint8Array>, where: string): PackageRef[] {
  const out: PackageRef[] = [];
  for (const [path, data] of [...files].sort((a, b) => comparePaths(a[0], b[0]))) {
    if (RPMDB_PATHS.includes(path)) out.push(...packagesFromRpmDb(data, `${where}:${path}`));
    else if (isPackageDbPath(path))
      out.push(...packagesFromDpkgStatus(Buffer.from(data).toString("utf8"), `${where}:${path}`));
  }
  return dedupe(out);
}

function dedupe(list: PackageRef[]): PackageRef[] {
  const seen = new Map<string, PackageRef>();
  for (const p of list)
    seen.set(JSON.stringify([p.name, p.arch ?? "", p.version, p.source, p.digest ?? ""]), p);
  return [...seen.values()].sort(comparePackages);
}

// ---- SBOMs -------------------------------------------------------------------------------------

function purlArch(purl: string | undefined): string | undefined {
  if (purl === undefined) return undefined;
  const q = purl.indexOf("?");
  if (q === -1) return undefined;
  for (const kv of purl
    .slice(q + 1)
    .split("#")[0]
    ?.split("&") ?? []) {
    const [k, v] = kv.split("=");
    if (k === "arch" && v !== undefined) return decodeURIComponent(v);
  }
  return undefined;
}

function sha256Of(list: unknown, algKey: string, valueKey: string): string | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const h of list) {
    if (typeof h !== "object" || h === null) continue;
    const o = h as JsonObject;
    const algField = o[algKey];
    const alg = typeof algField === "string" ? algField.toUpperCase().replace("-", "") : "";
    const value = o[valueKey];
    if (alg === "SHA256" && typeof value === "string" && /^[0-9a-fA-F]{64}$/.test(value)) {
      return `sha256:${value.toLowerCase()}`;
    }
  }
  return undefined;
}

/**
 * Packages listed by an SBOM: CycloneDX JSON (`components[]`, nested `components` too: name,
 * version, `purl` for the arch qualifier, `hashes[]` SHA-256 as the digest) or SPDX 2.x JSON
 * (`packages[]`: name, versionInfo, `checksums[]` SHA256, a purl external reference).
 */
export function packagesFromSbom(path: string): PackageRef[] {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (cause) {
    throw new ArtifactError("ARTIFACT_IO", `${path}: ${(cause as Error).message}`, { cause });
  }
  const doc = asObject(parseJson(text, path), path);
  const out: PackageRef[] = [];
  if (doc.bomFormat === "CycloneDX") {
    const visit = (list: unknown, where: string): void => {
      if (list === undefined) return;
      for (const [i, c] of asArray(list, where).entries()) {
        const o = asObject(c, `${where}[${i}]`);
        const name = typeof o.group === "string" && o.group !== "" ? `${o.group}/${String(o.name)}` : o.name;
        if (typeof name === "string" && name !== "") {
          const purl = typeof o.purl === "string" ? o.purl : undefined;
          const arch = purlArch(purl);
          const digest = sha256Of(o.hashes, "alg", "content");
          out.push({
            name,
            version: typeof o.version === "string" ? o.version : "",
            ...(arch === undefined ? {} : { arch }),
            ...(digest === undefined ? {} : { digest }),
            source: "sbom",
          });
        }
        visit(o.components, `${where}[${i}].components`);
      }
    };
    visit(doc.components, `${path}: components`);
  } else if (typeof doc.spdxVersion === "string") {
    for (const [i, p] of asArray(doc.packages ?? [], `${path}: packages`).entries()) {
      const o = asObject(p, `${path}: packages[${i}]`);
      if (typeof o.name !== "string" || o.name === "") continue;
      let purl: string | undefined;
      if (Array.isArray(o.externalRefs)) {
        for (const r of o.externalRefs) {
          const ro = r as JsonObject;
          if (ro.referenceType === "purl" && typeof ro.referenceLocator === "string")
            purl = ro.referenceLocator;
        }
      }
      const arch = purlArch(purl);
      const digest = sha256Of(o.checksums, "algorithm", "checksumValue");
      out.push({
        name: o.name,
        version: typeof o.versionInfo === "string" ? o.versionInfo : "",
        ...(arch === undefined ? {} : { arch }),
        ...(digest === undefined ? {} : { digest }),
        source: "sbom",
      });
    }
  } else {
    throw new ArtifactError(
      "ARTIFACT_UNKNOWN",
      `${path}: neither a CycloneDX (bomFormat) nor an SPDX (spdxVersion) JSON document`,
    );
  }
  return dedupe(out);
}

// ---- the delta -----------------------------------------------------------------------------------

export interface MaterialsDelta {
  added: PackageRef[];
  removed: PackageRef[];
  changed: { name: string; arch?: string; from: PackageRef; to: PackageRef }[];
}

/**
 * Packages are matched by (name, arch). One on each side: a different version or digest is
 * `changed`. Several on a side (multi-version SBOMs): compared as sets of versions, the differences
 * are `removed` / `added`. Every list is sorted by name, arch, version.
 */
export function materialsDelta(base: readonly PackageRef[], target: readonly PackageRef[]): MaterialsDelta {
  const group = (list: readonly PackageRef[]): Map<string, PackageRef[]> => {
    const m = new Map<string, PackageRef[]>();
    for (const p of list) {
      const k = `${p.name}\0${p.arch ?? ""}`;
      const g = m.get(k);
      if (g === undefined) m.set(k, [p]);
      else if (!g.some((q) => q.version === p.version && (q.digest ?? "") === (p.digest ?? ""))) g.push(p);
    }
    return m;
  };
  const b = group(base);
  const t = group(target);
  const out: MaterialsDelta = { added: [], removed: [], changed: [] };
  for (const [k, bs] of b) {
    const ts = t.get(k);
    if (ts === undefined) {
      out.removed.push(...bs);
      continue;
    }
    const [b0] = bs;
    const [t0] = ts;
    if (bs.length === 1 && ts.length === 1 && b0 !== undefined && t0 !== undefined) {
      const digestDiffers = b0.digest !== undefined && t0.digest !== undefined && b0.digest !== t0.digest;
      if (b0.version !== t0.version || digestDiffers) {
        out.changed.push({
          name: b0.name,
          ...(b0.arch === undefined ? {} : { arch: b0.arch }),
          from: b0,
          to: t0,
        });
      }
      continue;
    }
    const key = (p: PackageRef): string => `${p.version}\0${p.digest ?? ""}`;
    const tk = new Set(ts.map(key));
    const bk = new Set(bs.map(key));
    out.removed.push(...bs.filter((p) => !tk.has(key(p))));
    out.added.push(...ts.filter((p) => !bk.has(key(p))));
  }
  for (const [k, ts] of t) if (!b.has(k)) out.added.push(...ts);
  out.added.sort(comparePackages);
  out.removed.sort(comparePackages);
  out.changed.sort((x, y) => comparePackages(x.from, y.from));
  return out;
}
