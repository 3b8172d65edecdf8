/**
 * The rpm reader against rpm itself: packages built by rpmbuild (gzip, xz and zstd payloads),
 * listed as `rpm -qpl` lists them, identity as `rpm -qp --queryformat` prints it, content as
 * `rpm2cpio | cpio -i` extracts it; a package signed by rpmsign keeps its signature tags; the rpm
 * sqlite database written by `rpm -i --justdb` is read as `rpm -qa` reads it; damaged packages are
 * refused.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { packagesFromRpmDb } from "../delta/materials.ts";
import { ArtifactError } from "./common.ts";
import { readRpm } from "./rpm.ts";
import { sha256 } from "./test-images.ts";
import { run, workDir } from "./test-packages.ts";

let dir: string;
const built = new Map<string, string>();

const SPEC = `
Name: stella-hello
Version: 1.2.3
Release: 4
Epoch: 2
Summary: test package for the stella rpm reader
License: Apache-2.0
BuildArch: x86_64
%define debug_package %{nil}
%define __os_install_post %{nil}
%description
A test package.
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib/stella %{buildroot}/usr/share/doc/stella-hello
cp /usr/lib/x86_64-linux-gnu/libz.so.1 %{buildroot}/usr/lib/stella/libz.so.1
printf 'hello, rpm\\n' > %{buildroot}/usr/share/doc/stella-hello/README
ln -s ../lib/stella/libz.so.1 %{buildroot}/usr/bin/libz-link
printf '#!/bin/sh\\necho hi\\n' > %{buildroot}/usr/bin/hello
chmod 0755 %{buildroot}/usr/bin/hello
%files
%attr(0755,root,root) /usr/bin/hello
/usr/bin/libz-link
%dir /usr/lib/stella
/usr/lib/stella/libz.so.1
%doc /usr/share/doc/stella-hello/README
`;

function build(codec: string, io: string): string {
  const top = join(dir, `top-${codec}`);
  for (const d of ["SPECS", "RPMS", "BUILD", "BUILDROOT", "SOURCES", "SRPMS"])
    mkdirSync(join(top, d), { recursive: true });
  writeFileSync(join(top, "SPECS", "hello.spec"), SPEC);
  run("rpmbuild", [
    "-bb",
    "--quiet",
    "--define",
    `_topdir ${top}`,
    "--define",
    `_binary_payload ${io}`,
    "--nodeps",
    join(top, "SPECS", "hello.spec"),
  ]);
  const rpmDir = join(top, "RPMS", "x86_64");
  const f = readdirSync(rpmDir).find((n) => n.endsWith(".rpm"));
  assert.ok(f, `rpmbuild left no rpm in ${rpmDir}`);
  return join(rpmDir, f);
}

before(() => {
  dir = workDir("rpm");
  built.set("gzip", build("gzip", "w9.gzdio"));
  built.set("xz", build("xz", "w2.xzdio"));
  built.set("zstd", build("zstd", "w19.zstdio"));
});

describe("readRpm on packages built by rpmbuild", () => {
  for (const codec of ["gzip", "xz", "zstd"]) {
    it(`${codec} payload: files as rpm -qpl, identity as rpm -qp --queryformat`, () => {
      const f = built.get(codec) ?? "";
      const p = readRpm(f);
      assert.equal(p.payloadCodec, codec);
      const q = run("rpm", [
        "-qp",
        "--nosignature",
        "--queryformat",
        "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}",
        f,
      ]);
      assert.equal(`${p.name}|${p.epoch}|${p.version}|${p.release}|${p.arch}`, q);
      const listed = run("rpm", ["-qpl", "--nosignature", f]).trim().split("\n").sort();
      assert.deepEqual(p.entries.map((e) => e.path).sort(), listed);
    });
  }

  it("sizes, modes, digests and link targets as rpm -qp --dump reports them", () => {
    const f = built.get("zstd") ?? "";
    const p = readRpm(f);
    const dump = run("rpm", ["-qp", "--dump", "--nosignature", f]).trim().split("\n");
    const ours = p.entries.map((e) => {
      const typeBits = e.type === "file" ? 0o100000 : e.type === "directory" ? 0o40000 : 0o120000;
      const size = e.type === "symlink" ? (e.linkname ?? "").length : e.size;
      const digest = e.sha256 ?? "0".repeat(64);
      return `${e.path} ${size} ${digest} 0${(typeBits | e.mode).toString(8)} ${e.linkname ?? "X"}`;
    });
    const oracle = dump.map((l) => {
      const [path, size, , digest, mode, , , , , , link] = l.split(" ");
      return `${path} ${size} ${digest} ${mode} ${link}`;
    });
    assert.deepEqual(ours.sort(), oracle.sort());
  });

  it("hashes content as rpm2cpio | cpio -i extracts it", () => {
    const f = built.get("xz") ?? "";
    const x = join(dir, "extract");
    mkdirSync(x);
    const cpio = execFileSync("rpm2cpio", [f], { maxBuffer: 64 << 20 });
    execFileSync("cpio", ["-idm", "--quiet"], { cwd: x, input: cpio });
    const p = readRpm(f);
    let files = 0;
    for (const e of p.entries) {
      if (e.type !== "file") continue;
      files++;
      assert.equal(e.sha256, sha256(readFileSync(join(x, e.path))), e.path);
    }
    assert.equal(files, 3);
    assert.equal(p.entries.find((e) => e.path === "/usr/bin/libz-link")?.linkname, "../lib/stella/libz.so.1");
    assert.equal(p.entries.find((e) => e.path === "/usr/bin/hello")?.mode, 0o755);
  });

  it("keeps the signature tags rpmsign adds", () => {
    const gnupg = join(dir, "gnupg");
    mkdirSync(gnupg, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: gnupg };
    execFileSync(
      "gpg",
      [
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        "stella-rpm@example.invalid",
        "rsa2048",
        "sign",
        "never",
      ],
      { env, stdio: "ignore" },
    );
    const signed = join(dir, "signed.rpm");
    copyFileSync(built.get("gzip") ?? "", signed);
    const unsigned = readRpm(signed);
    execFileSync(
      "rpmsign",
      [
        "--define",
        "__gpg /usr/bin/gpg",
        "--define",
        "_gpg_name stella-rpm@example.invalid",
        "--define",
        `_gpg_path ${gnupg}`,
        "--addsign",
        signed,
      ],
      { env, stdio: "ignore" },
    );
    const p = readRpm(signed);
    const sigs = p.signatureTags.filter((t) => t.signature).map((t) => t.name);
    assert.ok(sigs.includes("RSAHEADER"), `signature tags: ${p.signatureTags.map((t) => t.name).join(", ")}`);
    assert.ok(!unsigned.signatureTags.some((t) => t.signature));
    // The signature covers the header, which signing does not change.
    assert.equal(p.headerSha256, unsigned.headerSha256);
    const oracle = run("rpm", ["-qp", "--nosignature", "--queryformat", "%{RSAHEADER:pgpsig}", signed]);
    assert.match(oracle, /^RSA\/SHA(256|512), /);
  });

  function expectError(fn: () => unknown, pattern: RegExp): void {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof ArtifactError, String(err));
      assert.equal(err.code, "ARTIFACT_MALFORMED", err.message);
      assert.match(err.message, pattern);
      return true;
    });
  }

  it("refuses a truncated package and a damaged header", () => {
    const b = readFileSync(built.get("gzip") ?? "");
    const cut = join(dir, "cut.rpm");
    writeFileSync(cut, b.subarray(0, 200));
    expectError(
      () => readRpm(cut),
      /cut\.rpm: (signature header|header): header at byte \d+: \d+ tags and \d+ data bytes run past the end|cut\.rpm: .*cut short/,
    );
    const cutPayload = join(dir, "cut-payload.rpm");
    writeFileSync(cutPayload, b.subarray(0, b.length - 200));
    expectError(() => readRpm(cutPayload), /cut-payload\.rpm: payload: cannot decompress \(gzip\)/);
    const noMagic = join(dir, "nomagic.rpm");
    const c = Buffer.from(b);
    c[96] = 0;
    writeFileSync(noMagic, c);
    expectError(
      () => readRpm(noMagic),
      /nomagic\.rpm: signature header: no header magic 8e ad e8 01 at byte 96/,
    );
  });
});

describe("packagesFromRpmDb", () => {
  it("reads an rpmdb.sqlite written by rpm -i --justdb as rpm -qa does", () => {
    const db = join(dir, "db");
    mkdirSync(db);
    run("rpm", ["--dbpath", db, "--initdb"]);
    run("rpm", [
      "--dbpath",
      db,
      "-i",
      "--justdb",
      "--nodeps",
      "--nosignature",
      "--ignorearch",
      built.get("xz") ?? "",
    ]);
    const oracle = run("rpm", [
      "--dbpath",
      db,
      "-qa",
      "--queryformat",
      "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH}\\n",
    ])
      .trim()
      .split("\n");
    const pkgs = packagesFromRpmDb(readFileSync(join(db, "rpmdb.sqlite")), "rpmdb.sqlite");
    assert.deepEqual(
      pkgs.map((p) => `${p.name} ${p.version} ${p.arch}`),
      oracle,
    );
    assert.equal(pkgs[0]?.source, "rpm");
  });

  it("refuses a file that is not an sqlite database", () => {
    assert.throws(
      () => packagesFromRpmDb(Buffer.from("not a database, just text".repeat(100)), "junk.sqlite"),
      /junk\.sqlite: (not an sqlite database|no readable Packages table)/,
    );
  });
});
