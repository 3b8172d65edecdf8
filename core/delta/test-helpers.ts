/**
 * Test inputs for the delta engine: a seeded PRNG (tests must not depend on Math.random) and real
 * release pairs from Debian, downloaded on demand with `apt-get download` into the ignored
 * core/testdata/out/debs/ and extracted with `dpkg-deb -x`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";

/** xorshift32 bytes: deterministic, fast, good enough for test data. */
export function prngBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A deterministic integer in [0, n) from a small PRNG state. */
export function makeRng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

export const DEBS_DIR = new URL("../testdata/out/debs/", import.meta.url).pathname;

/**
 * The extracted tree of `pkg=version` (amd64), downloading and extracting it if needed.
 * Throws with the command's output when the Debian archive is unreachable.
 */
export function debTree(pkg: string, version: string): string {
  const stem = `${pkg}_${version.replace(/^\d+:/, "")}_amd64`;
  const dir = `${DEBS_DIR}${stem}/`;
  if (existsSync(`${dir}.extracted`)) return dir;
  mkdirSync(DEBS_DIR, { recursive: true });
  const deb = `${DEBS_DIR}${stem}.deb`;
  if (!existsSync(deb)) {
    const r = spawnSync("apt-get", ["download", `${pkg}=${version}`], { cwd: DEBS_DIR, encoding: "utf8" });
    if (r.status !== 0 || !existsSync(deb)) {
      throw new Error(
        `cannot download ${pkg}=${version} with apt-get download into ${DEBS_DIR} ` +
          `(is the Debian archive reachable? run apt-get update): ${r.error?.message ?? ""}${r.stderr ?? ""}`,
      );
    }
  }
  mkdirSync(dir, { recursive: true });
  const x = spawnSync("dpkg-deb", ["-x", deb, dir], { encoding: "utf8" });
  if (x.status !== 0)
    throw new Error(`dpkg-deb -x ${deb} failed: ${x.error?.message ?? ""}${x.stderr ?? ""}`);
  spawnSync("touch", [`${dir}.extracted`]);
  return dir;
}

export const LIBSSL_OLD = "3.0.20-1~deb12u2";
export const LIBSSL_NEW = "3.0.22-1~deb12u2";

/** A file from both libssl3 releases: [3.0.20, 3.0.22]. */
export function libsslPair(file: string): [Uint8Array, Uint8Array] {
  const rel = `usr/lib/x86_64-linux-gnu/${file}`;
  return [
    readFileSync(debTree("libssl3", LIBSSL_OLD) + rel),
    readFileSync(debTree("libssl3", LIBSSL_NEW) + rel),
  ];
}
