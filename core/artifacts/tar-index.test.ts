import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ArtifactError, openArtifact } from "./artifact.ts";
import { TarIndex } from "./tar-index.ts";
import { buildImage, ociLayoutFiles, sha256, sha256sum, writeFiles } from "./test-images.ts";

let work: string;
let src: string;
const LONG = `${"long-directory-name-".repeat(8)}/${"x".repeat(150)}.so`;

before(() => {
  work = mkdtempSync(join(tmpdir(), "stella-tar-test-"));
  src = join(work, "src");
  for (const [rel, from] of [
    ["bin/ls", "/usr/bin/ls"],
    [LONG, "/usr/bin/true"],
    ["ünïcode/env", "/usr/bin/env"],
  ] as const) {
    mkdirSync(dirname(join(src, rel)), { recursive: true });
    copyFileSync(from, join(src, rel));
  }
  symlinkSync("../bin/ls", join(src, "ünïcode/ls-link"));
  linkSync(join(src, "bin/ls"), join(src, "bin/ls-hard"));
});
after(() => {
  rmSync(work, { recursive: true, force: true });
});

async function readAll(index: TarIndex, rel: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of index.read(rel)) chunks.push(c);
  return Buffer.concat(chunks);
}

describe("TarIndex over archives written by GNU tar", () => {
  for (const format of ["gnu", "pax", "ustar"] as const) {
    it(`${format} format: long names, unicode, symlinks and hardlinks resolve to the right bytes`, async (t) => {
      const tar = join(work, `src.${format}.tar`);
      try {
        execFileSync("tar", ["-C", src, `--format=${format}`, "-cf", tar, "."], { stdio: "pipe" });
      } catch (err) {
        // ustar cannot store a 300-character name: GNU tar refuses, and so there is nothing to read.
        if (format === "ustar") {
          t.diagnostic(`tar --format=ustar refused the long name: ${String(err).split("\n")[0]}`);
          execFileSync("tar", ["-C", src, `--format=${format}`, "-cf", tar, "bin", "ünïcode"], {
            stdio: "pipe",
          });
        } else throw err;
      }
      const index = TarIndex.build(tar, tar);
      const sums = sha256sum("/usr/bin/ls", "/usr/bin/true", "/usr/bin/env");
      assert.equal(sha256(await readAll(index, "bin/ls")), sums.get("/usr/bin/ls"));
      assert.equal(sha256(await readAll(index, "./bin/ls-hard")), sums.get("/usr/bin/ls"));
      assert.equal(sha256(await readAll(index, "/ünïcode/ls-link")), sums.get("/usr/bin/ls"));
      assert.equal(sha256(await readAll(index, "ünïcode/env")), sums.get("/usr/bin/env"));
      if (format !== "ustar") assert.equal(sha256(await readAll(index, LONG)), sums.get("/usr/bin/true"));
      assert.equal(index.size("bin"), undefined, "directories are not files");
      assert.equal(index.size("nope"), undefined);
    });
  }

  it("`tar -czf` of an OCI layout directory is an oci-archive", async () => {
    const image = await buildImage([
      { compression: "gzip", items: [{ path: "bin/true", data: readFileSync("/usr/bin/true") }] },
    ]);
    const dir = join(work, "layout");
    writeFiles(dir, ociLayoutFiles([image]));
    const tgz = join(work, "layout.tar.gz");
    execFileSync("tar", ["-C", dir, "-czf", tgz, "."]);
    const a = await openArtifact(tgz);
    assert.equal(a.kind, "oci-archive");
    assert.equal(a.digest, image.manifest.digest);
    assert.deepEqual(
      a.files.map((f) => [f.path, f.sha256]),
      [["/bin/true", sha256sum("/usr/bin/true").get("/usr/bin/true")]],
    );
  });

  it("end of file: accepted at a member boundary, refused inside a header or inside data", () => {
    const tar = join(work, "eof.tar");
    execFileSync("tar", ["-C", src, "--format=gnu", "-cf", tar, "bin/ls", "ünïcode/env"]);
    const whole = readFileSync(tar);
    const cut = (n: number): string => {
      const p = join(work, `cut-${n}.tar`);
      writeFileSync(p, whole.subarray(0, n));
      return p;
    };
    const ls = TarIndex.build(tar, tar).members.get("/bin/ls");
    assert.ok(ls && ls.size > 100_000);
    const end = ls.offset + Math.ceil(ls.size / 512) * 512;
    assert.deepEqual([...TarIndex.build(cut(end), "x").members.keys()], ["/bin/ls"]);
    const pad = end - (ls.offset + ls.size);
    if (pad > 1) {
      const inPad = end - Math.floor(pad / 2);
      assert.deepEqual(
        [...TarIndex.build(cut(inPad), "x").members.keys()],
        ["/bin/ls"],
        "inside the padding",
      );
    }
    for (const n of [ls.offset - 400, ls.offset + 5000, end + 100]) {
      assert.throws(
        () => TarIndex.build(cut(n), `cut-${n}`),
        (err: unknown) =>
          err instanceof ArtifactError &&
          err.code === "ARTIFACT_MALFORMED" &&
          err.message.includes(`cut-${n}`),
        `cut at ${n}`,
      );
    }
  });
});
