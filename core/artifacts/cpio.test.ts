/**
 * The cpio ("newc") reader against GNU cpio: archives written by `cpio -o -H newc` (and `-H crc`)
 * list as `cpio -it` lists them, hard links share their content hash, and bad magic, truncation and
 * `..` names are refused.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { ArtifactError } from "./common.ts";
import { listCpio } from "./cpio.ts";
import { sha256 } from "./test-images.ts";
import { run, workDir } from "./test-packages.ts";

let dir: string;
let src: string;

function cpioOf(format: "newc" | "crc"): Buffer {
  const names = run("find", [".", "-mindepth", "1"], { cwd: src }).trim().split("\n").sort();
  return execFileSync("cpio", ["-o", "--quiet", "-H", format], {
    cwd: src,
    input: names.join("\n") + "\n",
    maxBuffer: 64 << 20,
  });
}

before(() => {
  dir = workDir("cpio");
  src = join(dir, "src");
  mkdirSync(join(src, "usr", "lib"), { recursive: true });
  copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", join(src, "usr", "lib", "libz.so.1"));
  writeFileSync(join(src, "usr", "a.txt"), "alpha\n");
  linkSync(join(src, "usr", "a.txt"), join(src, "usr", "a-hardlink.txt"));
  symlinkSync("lib/libz.so.1", join(src, "usr", "libz"));
  writeFileSync(join(src, "empty"), "");
});

describe("listCpio", () => {
  for (const format of ["newc", "crc"] as const) {
    it(`lists a -H ${format} archive as cpio -it does, with content hashes`, () => {
      const archive = cpioOf(format);
      const members = listCpio(archive, "test.cpio");
      const oracle = execFileSync("cpio", ["-it", "--quiet"], { input: archive })
        .toString("utf8")
        .trim()
        .split("\n");
      assert.deepEqual(
        members.map((m) => m.name),
        oracle,
      );
      const byPath = new Map(members.map((m) => [m.path, m]));
      assert.equal(
        byPath.get("/usr/lib/libz.so.1")?.sha256,
        sha256(readFileSync(join(src, "usr/lib/libz.so.1"))),
      );
      assert.equal(byPath.get("/usr/a-hardlink.txt")?.sha256, sha256("alpha\n"));
      assert.equal(byPath.get("/usr/a.txt")?.sha256, sha256("alpha\n"));
      assert.equal(byPath.get("/usr/libz")?.type, "symlink");
      assert.equal(byPath.get("/usr/libz")?.linkname, "lib/libz.so.1");
      assert.equal(byPath.get("/empty")?.sha256, sha256(""));
      assert.equal(byPath.get("/usr")?.type, "directory");
    });
  }

  function expectError(fn: () => unknown, pattern: RegExp): void {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof ArtifactError, String(err));
      assert.equal(err.code, "ARTIFACT_MALFORMED");
      assert.match(err.message, pattern);
      return true;
    });
  }

  it("refuses bad magic", () => {
    const a = cpioOf("newc");
    a.write("070799", 0, "latin1");
    expectError(
      () => listCpio(a, "bad.cpio"),
      /bad\.cpio: cpio header at byte 0: bad magic "070799", expected 070701/,
    );
  });

  it("refuses the old portable (odc) format by name", () => {
    const names = "usr\n";
    const a = execFileSync("cpio", ["-o", "--quiet", "-H", "odc"], { cwd: src, input: names });
    expectError(
      () => listCpio(a, "odc.cpio"),
      /odc\.cpio: cpio header at byte 0: bad magic "070707" \(old portable format, not supported\)/,
    );
  });

  it("refuses a truncated archive", () => {
    const a = cpioOf("newc");
    expectError(
      () => listCpio(a.subarray(0, a.length >> 1), "cut.cpio"),
      /cut\.cpio: cpio (member ".+" needs \d+ bytes at \d+ but the data ends at \d+|header at byte \d+ is cut short)/,
    );
    expectError(
      () => listCpio(a.subarray(0, a.indexOf("TRAILER!!!") - 110), "notrailer.cpio"),
      /notrailer\.cpio: .*(cut short|ends)/,
    );
  });

  it('refuses a member named "../x"', () => {
    const a = execFileSync("cpio", ["-o", "--quiet", "-H", "newc"], {
      cwd: join(src, "usr"),
      input: "../empty\n",
    });
    expectError(
      () => listCpio(a, "trav.cpio"),
      /trav\.cpio: cpio member "\.\.\/empty" has a "\.\." component \(path traversal\)/,
    );
  });
});
