/**
 * Reading images written by other tools: umoci builds an OCI layout (inserts, a whiteout, an opaque
 * directory, an unpack/modify/repack round), skopeo converts it to a docker-archive and an OCI archive,
 * and umoci's own unpack of the final image is the oracle for the file set and hashes.
 * Needs the Debian packages `umoci` and `skopeo` (.ci/run installs them); fails without them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Artifact, isElfHead, openArtifact } from "./artifact.ts";
import { sha256sum } from "./test-images.ts";

function have(tool: string): boolean {
  try {
    execFileSync(tool, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const missing = ["umoci", "skopeo"].filter((t) => !have(t));
// Never skipped: a missing oracle is a broken test machine, not a pass.

const LIBZ = realpathSync("/usr/lib/x86_64-linux-gnu/libz.so.1");
const LIBZ_NAME = basename(LIBZ);
const ARCH = process.arch === "x64" ? "amd64" : process.arch;

const run = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: "utf8" });

function put(dir: string, rel: string, src: string): void {
  mkdirSync(dirname(join(dir, rel)), { recursive: true });
  copyFileSync(src, join(dir, rel));
}

/** sha256 of every ELF regular file under `root`, by absolute in-image path: the oracle. */
function elfHashes(root: string): Record<string, string> {
  const elves: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isElfHead(readFileSync(p).subarray(0, 4))) elves.push(p);
    }
  };
  walk(root);
  const sums = sha256sum(...elves);
  return Object.fromEntries(elves.sort().map((p) => [`/${relative(root, p)}`, sums.get(p) ?? ""]));
}

const listing = (a: Artifact): Record<string, string> =>
  Object.fromEntries(a.files.map((f) => [f.path, f.sha256]));

describe("images written by umoci and skopeo", () => {
  let work = "";
  let layout = "";
  let oracle: Record<string, string> = {};

  before(() => {
    assert.deepEqual(missing, [], "needs Debian packages umoci and skopeo: apt-get install -y umoci skopeo");
    work = mkdtempSync(join(tmpdir(), "stella-interop-"));
    layout = join(work, "layout");
    const src = join(work, "src");
    put(src, "bin/true", "/usr/bin/true");
    put(src, "bin/ls", "/usr/bin/ls");
    put(src, "bin/cat", "/usr/bin/cat");
    put(src, "plug/a.so", "/usr/bin/echo");
    put(src, "plug/sub/b.so", "/usr/bin/sleep");
    put(src, `lib/${LIBZ_NAME}`, LIBZ);
    symlinkSync(LIBZ_NAME, join(src, "lib/libz.so.1"));
    put(src, "etc/os-release", "/etc/os-release");
    put(work, "false", "/usr/bin/false");
    put(work, "p2/c.so", "/usr/bin/env");

    const image = `${layout}:latest`;
    run("umoci", "init", "--layout", layout);
    run("umoci", "new", "--image", image);
    run("umoci", "insert", "--image", image, src, "/");
    run("umoci", "insert", "--image", image, join(work, "false"), "/bin/true");
    run("umoci", "insert", "--image", image, "--whiteout", "/bin/cat");
    run("umoci", "insert", "--image", image, "--opaque", join(work, "p2"), "/plug");
    // A round of unpack / modify / repack: umoci computes this layer (and its whiteouts) from a diff.
    const bundle = join(work, "bundle");
    const rootless = process.getuid?.() === 0 ? [] : ["--rootless"];
    run("umoci", "unpack", ...rootless, "--image", image, bundle);
    rmSync(join(bundle, "rootfs/bin/ls"));
    put(join(bundle, "rootfs"), "usr/local/bin/dir", "/usr/bin/dir");
    run("umoci", "repack", "--image", image, bundle);
    // umoci's own unpack of the final image is the oracle.
    const check = join(work, "check");
    run("umoci", "unpack", ...rootless, "--image", image, check);
    oracle = elfHashes(join(check, "rootfs"));
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("the oracle is what the steps should give", () => {
    const sums = sha256sum("/usr/bin/false", "/usr/bin/env", "/usr/bin/dir", LIBZ);
    assert.deepEqual(oracle, {
      "/bin/true": sums.get("/usr/bin/false"),
      [`/lib/${LIBZ_NAME}`]: sums.get(LIBZ),
      "/plug/c.so": sums.get("/usr/bin/env"),
      "/usr/local/bin/dir": sums.get("/usr/bin/dir"),
    });
  });

  it("reads umoci's OCI layout as umoci unpacks it", async () => {
    const a = await openArtifact(layout);
    assert.equal(a.kind, "oci-layout");
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    assert.equal(a.digest, index.manifests[0]?.digest);
    assert.deepEqual(a.platform, { os: "linux", architecture: ARCH });
    assert.deepEqual(listing(a), oracle);
    assert.deepEqual(a.links, [{ path: "/lib/libz.so.1", target: LIBZ_NAME }]);
  });

  it("reads skopeo's docker-archive and oci-archive of the same image", async () => {
    const docker = join(work, "image.docker.tar");
    const oci = join(work, "image.oci.tar");
    run("skopeo", "copy", "--quiet", `oci:${layout}:latest`, `docker-archive:${docker}:stella/interop:1`);
    run("skopeo", "copy", "--quiet", `oci:${layout}:latest`, `oci-archive:${oci}`);

    const d = await openArtifact(docker);
    assert.equal(d.kind, "docker-archive");
    const manifest = JSON.parse(run("tar", "-xOf", docker, "manifest.json")) as { Config: string }[];
    assert.equal(d.digest, `sha256:${manifest[0]?.Config.replace(/\.json$/, "").replace(/^.*\//, "")}`);
    assert.deepEqual(listing(d), oracle);

    const o = await openArtifact(oci);
    assert.equal(o.kind, "oci-archive");
    const index = JSON.parse(run("tar", "-xOf", oci, "index.json")) as { manifests: { digest: string }[] };
    assert.equal(o.digest, index.manifests[0]?.digest);
    assert.deepEqual(listing(o), oracle);
  });
});
