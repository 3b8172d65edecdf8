/**
 * Test support for the package readers: real inputs built by real tools. Debian packages are fetched
 * on demand with `apt-get download` into core/testdata/out/debs (ignored by git); zip, cpio and rpm
 * files are written by `zip`, `cpio` and `rpmbuild`. Needs the Debian packages zip, unzip, cpio, rpm
 * (and xz-utils, dpkg, binutils, which Debian always has); a missing tool fails the test.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export const OUT = join(import.meta.dirname, "..", "testdata", "out");

export const run = (
  cmd: string,
  args: readonly string[],
  opts?: { cwd?: string; input?: Uint8Array | string },
): string =>
  execFileSync(cmd, args, {
    encoding: "utf8",
    maxBuffer: 256 << 20,
    stdio: ["pipe", "pipe", "pipe"],
    ...opts,
  });

/** The .deb for `pkg` (`name` or `name=version`), downloading it the first time. */
export function debFile(spec: string): string {
  const dir = join(OUT, "debs");
  mkdirSync(dir, { recursive: true });
  const [name = "", version] = spec.split("=");
  const want = (f: string): boolean =>
    f.endsWith(".deb") &&
    f.startsWith(`${name}_`) &&
    (version === undefined ||
      decodeURIComponent(f).startsWith(`${name}_${version.replace(/^[0-9]+:/, "")}_`));
  let found = readdirSync(dir).find(want);
  if (found === undefined) {
    run("apt-get", ["download", spec], { cwd: dir });
    found = readdirSync(dir).find(want);
  }
  if (found === undefined) throw new Error(`apt-get download ${spec} left no .deb in ${dir}`);
  return join(dir, found);
}

const made: string[] = [];
process.on("exit", () => {
  if (process.env.STELLA_KEEP_TEST_FILES) return;
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under core/testdata/out/work, removed when the process exits (unless STELLA_KEEP_TEST_FILES is set). */
export function workDir(name: string): string {
  const dir = join(OUT, "work", `${name}-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  made.push(dir);
  return dir;
}

export function have(tool: string): boolean {
  return ["/usr/bin", "/bin", "/usr/local/bin"].some((d) => existsSync(join(d, tool)));
}
