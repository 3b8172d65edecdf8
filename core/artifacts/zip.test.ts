/**
 * The zip reader against `zip`/`unzip` and `jarsigner`: listings equal `unzip -Z1`, content hashes
 * equal what `unzip -p` extracts, signature members survive, and damaged or hostile archives derived
 * from real ones are refused with the member and field named.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { ArtifactError } from "./common.ts";
import { run, workDir } from "./test-packages.ts";
import { isZipSignatureMember, ZipReader } from "./zip.ts";
import { sha256 } from "./test-images.ts";

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ArtifactError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

let dir: string;
let archive: string;

before(() => {
  dir = workDir("zip");
  const src = join(dir, "src");
  mkdirSync(join(src, "lib", "sub"), { recursive: true });
  copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", join(src, "lib", "libz.so.1"));
  writeFileSync(join(src, "lib", "sub", "hello.txt"), "hello, zip\n".repeat(100));
  writeFileSync(join(src, "empty"), "");
  symlinkSync("lib/libz.so.1", join(src, "link"));
  archive = join(dir, "a.zip");
  run("zip", ["-q", "-r", "-y", archive, "."], { cwd: src });
});

describe("ZipReader on archives written by zip", () => {
  it("lists what unzip -Z1 lists, in the same order", () => {
    const z = ZipReader.open(archive);
    try {
      const oracle = run("unzip", ["-Z1", archive]).trim().split("\n");
      assert.deepEqual(
        z.members.map((m) => m.name),
        oracle,
      );
      assert.equal(z.members.find((m) => m.name === "link")?.type, "symlink");
      assert.equal(z.members.find((m) => m.name === "lib/")?.type, "directory");
    } finally {
      z.close();
    }
  });

  it("types, modes and sizes as zipinfo shows them", () => {
    const z = ZipReader.open(archive);
    try {
      const lines = run("zipinfo", [archive])
        .trim()
        .split("\n")
        .filter((l) => /^[-dl][-rwxsStT]{9} /.test(l));
      const oracle = lines.map((l) => {
        const f = l.split(/\s+/);
        const perms = f[0] ?? "";
        let mode = 0;
        for (let i = 0; i < 9; i++) if (perms[i + 1] !== "-") mode |= 1 << (8 - i);
        const type = perms[0] === "d" ? "directory" : perms[0] === "l" ? "symlink" : "file";
        return `${f.slice(8).join(" ")} ${type} ${mode.toString(8)} ${f[3] ?? ""}`;
      });
      assert.deepEqual(
        z.members.map((m) => `${m.name} ${m.type} ${m.mode.toString(8)} ${m.size}`),
        oracle,
      );
    } finally {
      z.close();
    }
  });

  it("hashes each member's content as unzip -p extracts it", () => {
    const z = ZipReader.open(archive);
    try {
      for (const m of z.members) {
        if (m.type !== "file") continue;
        const oracle = sha256(execBytes("unzip", ["-p", archive, m.name]));
        assert.equal(z.sha256(m), oracle, m.name);
      }
      assert.ok(
        z.members.some((m) => m.method === 8),
        "some members are deflated",
      );
    } finally {
      z.close();
    }
  });

  it("keeps jar signature members (jarsigner) and recognises them", () => {
    const jarDir = join(dir, "jar");
    mkdirSync(jarDir);
    const jar = join(jarDir, "app.jar");
    run("jar", ["cf", jar, "-C", join(dir, "src"), "lib"]);
    const ks = join(jarDir, "ks.p12");
    run("keytool", [
      "-genkeypair",
      "-keystore",
      ks,
      "-storepass",
      "secret",
      "-keypass",
      "secret",
      "-alias",
      "k",
      "-keyalg",
      "EC",
      "-dname",
      "CN=stella-test",
      "-storetype",
      "PKCS12",
    ]);
    run("jarsigner", ["-keystore", ks, "-storepass", "secret", jar, "k"]);
    const z = ZipReader.open(jar);
    try {
      const sigs = z.members
        .map((m) => m.name)
        .filter(isZipSignatureMember)
        .sort();
      assert.deepEqual(sigs, ["META-INF/K.EC", "META-INF/K.SF"]);
      assert.deepEqual(
        z.members.map((m) => m.name),
        run("unzip", ["-Z1", jar]).trim().split("\n"),
      );
    } finally {
      z.close();
    }
  });
});

function execBytes(cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { maxBuffer: 64 << 20 });
}

describe("ZipReader refuses damaged and hostile archives", () => {
  /** Offset of the end-of-central-directory record. */
  const eocd = (b: Buffer): number => b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));

  it("a central directory offset that points nowhere", () => {
    const b = readFileSync(archive);
    b.writeUInt32LE(b.readUInt32LE(eocd(b) + 16) + 7, eocd(b) + 16);
    const f = join(dir, "bad-cd-offset.zip");
    writeFileSync(f, b);
    expectError(
      () => ZipReader.open(f),
      "ARTIFACT_MALFORMED",
      /bad-cd-offset\.zip: .*(central directory offset|past the end record)/,
    );
  });

  it("a central directory that runs past the end record", () => {
    const b = readFileSync(archive);
    b.writeUInt32LE(b.length, eocd(b) + 16);
    const f = join(dir, "cd-past-end.zip");
    writeFileSync(f, b);
    expectError(
      () => ZipReader.open(f),
      "ARTIFACT_MALFORMED",
      /central directory offset \d+ \+ size \d+ runs past the end record/,
    );
  });

  it("a directory or a missing file is an IO error, not a crash", () => {
    expectError(() => ZipReader.open(dir), "ARTIFACT_IO", /EISDIR/);
    expectError(() => ZipReader.open(join(dir, "missing.zip")), "ARTIFACT_IO", /missing\.zip: cannot open/);
  });

  it("a truncated archive (no end record)", () => {
    const b = readFileSync(archive);
    const f = join(dir, "truncated.zip");
    writeFileSync(f, b.subarray(0, Math.floor(b.length / 2)));
    expectError(
      () => ZipReader.open(f),
      "ARTIFACT_MALFORMED",
      /truncated\.zip: no end-of-central-directory record/,
    );
  });

  it('a member named "../x" (path traversal)', () => {
    const f = join(dir, "traversal.zip");
    run("python3", [
      "-c",
      `import zipfile\nwith zipfile.ZipFile(${JSON.stringify(f)}, "w") as z:\n    z.writestr("ok.txt", "fine")\n    z.writestr("../x", "escape")`,
    ]);
    expectError(
      () => ZipReader.open(f),
      "ARTIFACT_MALFORMED",
      /traversal\.zip: member "\.\.\/x": a "\.\." component \(path traversal\?\)/,
    );
  });

  it("an absolute member name", () => {
    const f = join(dir, "absolute.zip");
    run("python3", [
      "-c",
      `import zipfile\nwith zipfile.ZipFile(${JSON.stringify(f)}, "w") as z:\n    z.writestr(zipfile.ZipInfo("/etc/passwd"), "x")`,
    ]);
    expectError(() => ZipReader.open(f), "ARTIFACT_MALFORMED", /member "\/etc\/passwd": an absolute path/);
  });

  it("a huge declared uncompressed size", () => {
    const b = readFileSync(archive);
    const cd = b.readUInt32LE(eocd(b) + 16);
    b.writeUInt32LE(0xfffffff0, cd + 24); // first central header's uncompressed size
    const f = join(dir, "huge.zip");
    writeFileSync(f, b);
    expectError(
      () => ZipReader.open(f, { maxMemberBytes: 1 << 30 }),
      "ARTIFACT_TOO_LARGE",
      /huge\.zip: member ".+" declares 4294967280 bytes uncompressed, over the limit of 1073741824 bytes/,
    );
  });

  it("a flipped byte in deflated data (CRC or inflate failure)", () => {
    const z0 = ZipReader.open(archive);
    const m = z0.members.find((x) => x.method === 8 && x.size > 1000);
    z0.close();
    assert.ok(m);
    const b = readFileSync(archive);
    b[m.dataOffset + Math.floor(m.compressedSize / 2)]! ^= 0xff;
    const f = join(dir, "flipped.zip");
    writeFileSync(f, b);
    const z = ZipReader.open(f);
    try {
      const mm = z.members.find((x) => x.name === m.name);
      assert.ok(mm);
      expectError(
        () => z.sha256(mm),
        "ARTIFACT_MALFORMED",
        new RegExp(`member "${m.name.replace(/\./g, "\\.")}": (cannot inflate|inflates to|CRC-32)`),
      );
    } finally {
      z.close();
    }
  });
});
