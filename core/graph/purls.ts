// Package URLs for the binaries of a Debian-based root filesystem (issue 8: nodes carry the purl of their
// package "where known", and a call between two packages is a third-party edge). dpkg records which package
// installed each path in /var/lib/dpkg/info/<package>[:<arch>].list, and the package's version and architecture
// in /var/lib/dpkg/status; the distribution comes from /etc/os-release (ID), as syft and Trivy name them.
import { parseControlFile } from "../artifacts/deb.ts";

export const DPKG_INFO_DIR = "/var/lib/dpkg/info/";
export const DPKG_STATUS_PATH = "/var/lib/dpkg/status";
export const OS_RELEASE_PATHS = ["/etc/os-release", "/usr/lib/os-release"];

/** Whether an artifact path is one of the files debPurls reads. */
export function isPurlSource(path: string): boolean {
  return (
    path === DPKG_STATUS_PATH ||
    OS_RELEASE_PATHS.includes(path) ||
    (path.startsWith(DPKG_INFO_DIR) && path.endsWith(".list"))
  );
}

/** purl-spec's percent-encoding for a name or version (RFC 3986 unreserved kept; ':' kept in versions). */
function encode(s: string, keepColon: boolean): string {
  const e = encodeURIComponent(s);
  return keepColon ? e.replaceAll("%3A", ":") : e;
}

/**
 * file path → `pkg:deb/<distro>/<name>@<version>?arch=<arch>` for every path a dpkg `.list` names, from the
 * database files of one root filesystem (keys are absolute paths inside it). Paths listed by packages dpkg
 * does not report installed are left out. Symlinked directories (/lib → /usr/lib on merged-/usr systems) are
 * matched through both spellings.
 */
export function debPurls(files: ReadonlyMap<string, Uint8Array>): Map<string, string> {
  const text = (p: string): string | undefined => {
    const b = files.get(p);
    return b === undefined ? undefined : Buffer.from(b).toString("utf8");
  };
  const osRelease = OS_RELEASE_PATHS.map(text).find((t) => t !== undefined) ?? "";
  const distro = /^ID=("?)([a-z0-9._-]+)\1$/m.exec(osRelease)?.[2] ?? "debian";
  const installed = new Map<string, { version: string; arch?: string }>();
  const status = text(DPKG_STATUS_PATH);
  if (status !== undefined) {
    for (const p of parseControlFile(status, DPKG_STATUS_PATH)) {
      if (p.Package === undefined || p.Version === undefined) continue;
      if (p.Status !== undefined && !/\binstalled$/.test(p.Status.trim())) continue;
      const key =
        p.Architecture !== undefined && p.Architecture !== "all"
          ? `${p.Package}:${p.Architecture}`
          : p.Package;
      installed.set(key, {
        version: p.Version,
        ...(p.Architecture === undefined ? {} : { arch: p.Architecture }),
      });
      if (!installed.has(p.Package)) installed.set(p.Package, installed.get(key) ?? { version: p.Version });
    }
  }
  const out = new Map<string, string>();
  const lists = [...files.keys()].filter((p) => p.startsWith(DPKG_INFO_DIR) && p.endsWith(".list")).sort();
  for (const list of lists) {
    const pkg = list.slice(DPKG_INFO_DIR.length, -".list".length);
    const info = installed.get(pkg) ?? installed.get(pkg.split(":")[0] ?? pkg);
    if (info === undefined) continue;
    const name = pkg.split(":")[0] ?? pkg;
    const purl =
      `pkg:deb/${distro}/${encode(name, false)}@${encode(info.version, true)}` +
      (info.arch === undefined ? "" : `?arch=${encode(info.arch, false)}`);
    for (const line of (text(list) ?? "").split("\n")) {
      const path = line.trim();
      if (!path.startsWith("/")) continue;
      out.set(path, purl);
      // Merged /usr: dpkg may list /lib/x86_64-linux-gnu/libz.so.1 while the image stores it under /usr/lib.
      const merged = /^\/(bin|sbin|lib|lib32|lib64|libx32)\//.test(path) ? `/usr${path}` : undefined;
      if (merged !== undefined && !out.has(merged)) out.set(merged, purl);
    }
  }
  return out;
}
