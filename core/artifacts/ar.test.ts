/**
 * The ar reader against binutils' `ar t` on real Debian packages, and on archives damaged from them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";

import { ArReader } from "./ar.ts";
import { ArtifactError } from "./common.ts";
import { sha256 } from "./test-images.ts";
import { debFile, run, workDir } from "./test-packages.ts";

let deb: string;
let dir: string;

before(() => {
  deb = debFile("zlib1g");
  dir = workDir("ar");
});

function expectError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ArtifactError, String(err));
    assert.equal(err.code, "ARTIFACT_MALFORMED");
    assert.match(err.message, pattern);
    return true;
  });
}

describe("ArReader", () => {
  it("lists what ar t lists, with the bytes ar p extracts", () => {
    const ar = ArReader.open(deb);
    try {
      assert.deepEqual(
        ar.members.map((m) => m.name),
        run("ar", ["t", deb]).trim().split("\n"),
      );
      const data = ar.members.find((m) => m.name.startsWith("data.tar"));
      assert.ok(data);
      assert.equal(sha256(ar.read(data)), sha256(execBytes(["p", deb, data.name])));
    } finally {
      ar.close();
    }
  });

  it("reads GNU long names written by ar", () => {
    const a = join(dir, "long.a");
    const longName = join(dir, "a-member-name-longer-than-sixteen-bytes.txt");
    writeFileSync(longName, "x");
    writeFileSync(join(dir, "short"), "yy");
    run("ar", ["rc", a, longName, join(dir, "short")]);
    const ar = ArReader.open(a);
    try {
      assert.deepEqual(
        ar.members.map((m) => m.name),
        run("ar", ["t", a]).trim().split("\n"),
      );
    } finally {
      ar.close();
    }
  });

  it("refuses a member that runs past the end of the file", () => {
    const b = readFileSync(deb);
    const f = join(dir, "cut.deb");
    writeFileSync(f, b.subarray(0, b.length - 100));
    expectError(
      () => ArReader.open(f),
      /cut\.deb: ar member "data\.tar\.\w+\/?" at byte \d+ needs \d+ bytes at \d+ but the file ends at \d+/,
    );
  });

  it("refuses a file without the ar magic", () => {
    const f = join(dir, "nomagic.deb");
    const b = readFileSync(deb);
    b.write("!<arcx>\n", 0, "latin1");
    writeFileSync(f, b);
    expectError(() => ArReader.open(f), /nomagic\.deb: no ar magic/);
  });

  it("refuses a header with a non-numeric size", () => {
    const f = join(dir, "badsize.deb");
    const b = readFileSync(deb);
    b.write("12x4      ", 8 + 48, "latin1");
    writeFileSync(f, b);
    expectError(
      () => ArReader.open(f),
      /badsize\.deb: ar header at byte 8: size field "12x4" is not a number/,
    );
  });
});

function execBytes(args: string[]): Buffer {
  return execFileSync("ar", args, { maxBuffer: 64 << 20 });
}
