/**
 * openDeltaInput on real inputs: zips repacked by `zip` (other order, timestamps, level) normalise to
 * the same entries; jar and .deb signatures stay listed; a .deb release pair diffs to the files that
 * changed; directory trees become a canonical tar that `tar` reads back with owners and times zeroed;
 * tarballs list as `tar -tv` does; OCI images built by umoci from real .deb contents (and converted
 * by skopeo) carry their dpkg database, and an added dependency layer shows in materialsDelta.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  copyFileSync,
} from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { ArtifactError } from "../artifacts/common.ts";
import { debFile, run, workDir } from "../artifacts/test-packages.ts";
import { diffEntries, type DeltaInput, type NormalizedEntry, openDeltaInput } from "./inputs.ts";
import { materialsDelta } from "./materials.ts";

let dir: string;

before(() => {
  dir = workDir("inputs");
});

/** A small tree: an ELF library, text, an empty file, a symlink, nested directories. */
function makeTree(root: string): void {
  mkdirSync(join(root, "lib", "sub"), { recursive: true });
  copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", join(root, "lib", "libz.so.1"));
  writeFileSync(join(root, "lib", "sub", "notes.txt"), "some notes\n".repeat(300));
  writeFileSync(join(root, "README"), "read me\n");
  writeFileSync(join(root, "empty"), "");
  symlinkSync("lib/libz.so.1", join(root, "libz"));
}

function touchAll(root: string, when: number): void {
  for (const rel of ["lib/libz.so.1", "lib/sub/notes.txt", "README", "empty", "lib/sub", "lib", "."]) {
    utimesSync(join(root, rel), when, when);
  }
}

describe("zip inputs", () => {
  it("a zip repacked with the same payload (other order, timestamps, level) has identical entries", async () => {
    const src = join(dir, "zsrc");
    makeTree(src);
    touchAll(src, 1_000_000_000);
    const a = join(dir, "a.zip");
    const b = join(dir, "b.zip");
    const names = run("find", [".", "-mindepth", "1"], { cwd: src }).trim().split("\n").sort();
    execFileSync("zip", ["-q", "-y", "-6", a, "-@"], { cwd: src, input: names.join("\n") });
    touchAll(src, 1_700_000_000);
    execFileSync("zip", ["-q", "-y", "-9", "-X", b, "-@"], {
      cwd: src,
      input: [...names].reverse().join("\n"),
    });
    const [ia, ib] = [await openDeltaInput(a), await openDeltaInput(b)];
    assert.equal(ia.type, "zip");
    assert.notEqual(ia.digest, ib.digest, "the archives differ byte-wise");
    assert.deepEqual(ia.entries, ib.entries);
    const d = diffEntries(ia.entries, ib.entries);
    assert.deepEqual(
      [d.added.length, d.removed.length, d.modified.length, d.unchanged],
      [0, 0, 0, ia.entries.length],
    );
    // The listing is unzip's.
    const oracle = run("unzip", ["-Z1", a])
      .trim()
      .split("\n")
      .map((n) => "/" + n.replace(/\/$/, ""))
      .sort();
    assert.deepEqual(
      ia.entries.map((e) => e.path),
      oracle,
    );
    assert.equal(ia.entries.find((e) => e.path === "/libz")?.linkTarget, "lib/libz.so.1");
  });

  it("a signed jar lists its signature members; signing shows as added entries", async () => {
    const src = join(dir, "jsrc");
    makeTree(src);
    const jar = join(dir, "app.jar");
    run("jar", ["cf", jar, "-C", src, "lib"]);
    const before = await openDeltaInput(jar);
    const signed = join(dir, "app-signed.jar");
    copyFileSync(jar, signed);
    const ks = join(dir, "ks.p12");
    run("keytool", [
      "-genkeypair",
      "-keystore",
      ks,
      "-storepass",
      "secret",
      "-keypass",
      "secret",
      "-alias",
      "rel",
      "-keyalg",
      "RSA",
      "-dname",
      "CN=stella-test",
      "-storetype",
      "PKCS12",
    ]);
    run("jarsigner", ["-keystore", ks, "-storepass", "secret", signed, "rel"]);
    const after = await openDeltaInput(signed);
    const d = diffEntries(before.entries, after.entries);
    assert.deepEqual(
      d.added.map((e) => e.path),
      ["/META-INF/REL.RSA", "/META-INF/REL.SF"],
    );
    assert.deepEqual(
      d.modified.map((m) => m.path),
      ["/META-INF/MANIFEST.MF"],
    );
  });
});

describe("deb inputs", () => {
  let base: DeltaInput;
  let target: DeltaInput;
  before(async () => {
    base = await openDeltaInput(debFile("libssl3=3.0.20-1~deb12u2"));
    target = await openDeltaInput(debFile("libssl3=3.0.22-1~deb12u2"));
  });

  it("reads the package's own control data as its package", () => {
    assert.equal(base.type, "deb");
    assert.deepEqual(base.packages, [
      {
        name: "libssl3",
        version: "3.0.20-1~deb12u2",
        arch: "amd64",
        digest: base.digest,
        source: "deb-control",
      },
    ]);
    const m = materialsDelta(base.packages, target.packages);
    assert.deepEqual(m.added, []);
    assert.deepEqual(m.removed, []);
    assert.deepEqual(
      m.changed.map((c) => [c.name, c.from.version, c.to.version]),
      [["libssl3", "3.0.20-1~deb12u2", "3.0.22-1~deb12u2"]],
    );
  });

  it("lists ar members, control files and data, and diffs a release pair to what changed", () => {
    const paths = base.entries.map((e) => e.path);
    for (const p of [
      "debian-binary",
      "control.tar.xz",
      "data.tar.xz",
      "DEBIAN/control",
      "DEBIAN/md5sums",
      "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    ]) {
      assert.ok(paths.includes(p), p);
    }
    assert.equal(
      base.entries.find((e) => e.path === "/usr/lib/x86_64-linux-gnu/libcrypto.so.3")?.member,
      "data.tar.xz",
    );
    const d = diffEntries(base.entries, target.entries);
    const modified = d.modified.map((m) => m.path);
    assert.ok(modified.includes("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
    assert.ok(modified.includes("DEBIAN/control"));
    assert.ok(!modified.includes("debian-binary"));
    assert.ok(d.unchanged > 0);
  });

  it("bytes() are the file, digest their sha256", async () => {
    const bytes = await base.bytes();
    assert.equal(bytes.length, readFileSync(base.path).length);
    assert.equal(`sha256:${run("sha256sum", [base.path]).split(" ")[0]}`, base.digest);
  });
});

describe("directory and tar inputs", () => {
  it("a tree is a canonical tar: sorted, owners and times zeroed, modes kept, same content → same bytes", async () => {
    const t1 = join(dir, "tree1");
    const t2 = join(dir, "tree2");
    makeTree(t1);
    touchAll(t1, 1_000_000_000);
    cpSync(t1, t2, { recursive: true, verbatimSymlinks: true });
    touchAll(t2, 1_600_000_000);
    const [a, b] = [await openDeltaInput(t1), await openDeltaInput(t2)];
    assert.equal(a.type, "directory");
    assert.equal(a.digest, b.digest);
    const tarFile = join(dir, "canonical.tar");
    writeFileSync(tarFile, await a.bytes());
    const listing = run("tar", ["-tvf", tarFile, "--numeric-owner", "--full-time"]).trim().split("\n");
    for (const l of listing) assert.match(l, / 0\/0 +\d+ 1970-01-01 00:00:00 /, l);
    const names = run("tar", ["-tf", tarFile]).trim().split("\n");
    assert.deepEqual(names, [...names].sort());
    const x = join(dir, "x");
    mkdirSync(x);
    run("tar", ["-xf", tarFile, "-C", x]);
    const c = await openDeltaInput(x);
    assert.deepEqual(c.entries, a.entries, "extracting the canonical tar gives the same tree");
  });

  it("a tarball lists as tar -tv does, and its dpkg status gives packages", async () => {
    const t = join(dir, "tree-tar");
    makeTree(t);
    mkdirSync(join(t, "var", "lib", "dpkg"), { recursive: true });
    writeFileSync(
      join(t, "var", "lib", "dpkg", "status"),
      run("dpkg-deb", ["-f", debFile("zlib1g"), "Package", "Version", "Architecture"]) +
        "Status: install ok installed\n",
    );
    const tarFile = join(dir, "tree.tar.gz");
    run("tar", ["-czf", tarFile, "-C", t, "."]);
    const input = await openDeltaInput(tarFile);
    assert.equal(input.type, "tar");
    const oracle = run("tar", ["-tzf", tarFile])
      .trim()
      .split("\n")
      .map((n) => n.replace(/^\.\/?/, "/").replace(/\/$/, ""))
      .filter((p) => p !== "/" && p !== "")
      .sort();
    assert.deepEqual(
      input.entries.map((e) => e.path),
      oracle,
    );
    assert.deepEqual(
      input.packages.map((p) => `${p.name} ${p.version} ${p.arch} ${p.source}`),
      ["zlib1g 1:1.2.13.dfsg-1 amd64 dpkg"],
    );
  });

  it("a distroless-style tree: one status.d file per package (md5sums ignored)", async () => {
    const t = join(dir, "distroless");
    mkdirSync(join(t, "var", "lib", "dpkg", "status.d"), { recursive: true });
    for (const spec of ["zlib1g", "libssl3=3.0.22-1~deb12u2"]) {
      const deb = debFile(spec);
      const name = run("dpkg-deb", ["-f", deb, "Package"]).trim();
      writeFileSync(join(t, "var", "lib", "dpkg", "status.d", name), run("dpkg-deb", ["-f", deb]));
      writeFileSync(
        join(t, "var", "lib", "dpkg", "status.d", `${name}.md5sums`),
        "d41d8cd98f00b204e9800998ecf8427e  usr/x\n",
      );
    }
    const input = await openDeltaInput(t);
    assert.deepEqual(
      input.packages.map((p) => `${p.name} ${p.version} ${p.arch} ${p.source}`),
      ["libssl3 3.0.22-1~deb12u2 amd64 dpkg", "zlib1g 1:1.2.13.dfsg-1 amd64 dpkg"],
    );
  });

  it("refuses what does not exist, and inputs over maxBytes", async () => {
    await assert.rejects(
      openDeltaInput(join(dir, "nope")),
      (e: unknown) => e instanceof ArtifactError && e.code === "ARTIFACT_NOT_FOUND",
    );
    await assert.rejects(
      openDeltaInput(debFile("zlib1g"), { maxBytes: 1000 }),
      (e: unknown) =>
        e instanceof ArtifactError &&
        e.code === "ARTIFACT_TOO_LARGE" &&
        /over the limit of 1000 bytes \(maxBytes\)/.test(e.message),
    );
  });
});

describe("OCI images built by umoci from real .deb contents", () => {
  let baseLayout: string;
  let targetLayout: string;

  /** A rootfs dir with a package's files and a dpkg status listing `pkgs` as installed. */
  function rootfs(name: string, debs: string[], statusOf: string[]): string {
    const r = join(dir, name);
    mkdirSync(join(r, "var", "lib", "dpkg"), { recursive: true });
    for (const d of debs) run("dpkg-deb", ["-x", d, r]);
    const status = statusOf
      .map(
        (d) =>
          run("dpkg-deb", ["-f", d, "Package", "Version", "Architecture"]) + "Status: install ok installed\n",
      )
      .join("\n");
    writeFileSync(join(r, "var", "lib", "dpkg", "status"), status);
    return r;
  }

  before(() => {
    const zlib = debFile("zlib1g");
    const ssl = debFile("libssl3=3.0.22-1~deb12u2");
    baseLayout = join(dir, "base-oci");
    run("umoci", ["init", "--layout", baseLayout]);
    run("umoci", ["new", "--image", `${baseLayout}:latest`]);
    run("umoci", ["insert", "--image", `${baseLayout}:latest`, rootfs("rootfs-base", [zlib], [zlib]), "/"]);
    targetLayout = join(dir, "target-oci");
    cpSync(baseLayout, targetLayout, { recursive: true });
    run("umoci", [
      "insert",
      "--image",
      `${targetLayout}:latest`,
      rootfs("rootfs-dep", [ssl], [zlib, ssl]),
      "/",
    ]);
  });

  it("an added dependency layer shows in materialsDelta.added and in the entries", async () => {
    const base = await openDeltaInput(baseLayout);
    const target = await openDeltaInput(targetLayout);
    assert.equal(base.type, "oci-layout");
    assert.deepEqual(
      base.packages.map((p) => `${p.name} ${p.version}`),
      ["zlib1g 1:1.2.13.dfsg-1"],
    );
    const m = materialsDelta(base.packages, target.packages);
    assert.deepEqual(
      m.added.map((p) => `${p.name} ${p.version} ${p.arch} ${p.source}`),
      ["libssl3 3.0.22-1~deb12u2 amd64 dpkg"],
    );
    assert.deepEqual([m.removed, m.changed], [[], []]);
    const d = diffEntries(base.entries, target.entries);
    const added = d.added.map((e) => e.path);
    assert.ok(added.includes("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"), added.join("\n"));
    assert.deepEqual(
      d.modified.map((x) => x.path),
      ["/var/lib/dpkg/status"],
    );
    const lib = target.entries.find((e) => e.path === "/usr/lib/x86_64-linux-gnu/libcrypto.so.3");
    assert.match(lib?.member ?? "", /^sha256:[0-9a-f]{64}$/);
    assert.notEqual(
      lib?.member,
      target.entries.find((e) => e.path === "/lib/x86_64-linux-gnu/libz.so.1.2.13")?.member,
    );
    // bytes(): the canonical tar of the layout directory.
    const tar = Buffer.from(await target.bytes());
    assert.equal(`sha256:${createHashHex(tar)}`, target.digest);
  });

  it("entries equal the rootfs umoci unpacks, after a repack that deletes files (whiteouts)", async () => {
    const layout = join(dir, "wh-oci");
    cpSync(targetLayout, layout, { recursive: true });
    const bundle = join(dir, "wh-bundle");
    run("umoci", ["unpack", "--image", `${layout}:latest`, bundle]);
    rmSync(join(bundle, "rootfs", "usr", "share", "doc", "zlib1g"), { recursive: true });
    rmSync(join(bundle, "rootfs", "usr", "lib", "x86_64-linux-gnu", "engines-3", "afalg.so"));
    run("umoci", ["repack", "--image", `${layout}:latest`, bundle]);
    const check = join(dir, "wh-check");
    run("umoci", ["unpack", "--image", `${layout}:latest`, check]);
    const oracle = await openDeltaInput(join(check, "rootfs"));
    const input = await openDeltaInput(layout);
    const strip = (es: readonly NormalizedEntry[]): string[] =>
      es.map(
        (e) => `${e.path} ${e.type} ${e.mode.toString(8)} ${e.size} ${e.sha256 ?? ""} ${e.linkTarget ?? ""}`,
      );
    assert.deepEqual(strip(input.entries), strip(oracle.entries));
    assert.ok(!input.entries.some((e) => e.path.startsWith("/usr/share/doc/zlib1g")));
    assert.ok(!input.entries.some((e) => e.path.includes(".wh.")));
    assert.deepEqual(input.packages, oracle.packages);
  });

  it("the same images as docker-archive and oci-archive (skopeo) give the same entries and packages", async () => {
    const oci = await openDeltaInput(targetLayout);
    for (const t of ["docker-archive", "oci-archive"] as const) {
      const out = join(dir, `target.${t}.tar`);
      run("skopeo", [
        "copy",
        "--quiet",
        `oci:${targetLayout}:latest`,
        `${t}:${out}${t === "docker-archive" ? ":stella/test:latest" : ""}`,
      ]);
      const input = await openDeltaInput(out);
      assert.equal(input.type, t);
      assert.deepEqual(input.packages, oci.packages);
      assert.deepEqual(
        input.entries.map((e) => [e.path, e.type, e.mode, e.size, e.sha256]),
        oci.entries.map((e) => [e.path, e.type, e.mode, e.size, e.sha256]),
      );
    }
  });
});

function createHashHex(b: Uint8Array): string {
  return run("sha256sum", [], { input: b }).split(" ")[0] ?? "";
}
