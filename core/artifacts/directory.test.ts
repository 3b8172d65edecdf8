import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

import { FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, openArtifact } from "./artifact.ts";
import { sha256sum } from "./test-images.ts";

const LIBZ = realpathSync("/usr/lib/x86_64-linux-gnu/libz.so.1");
const LIBZ_NAME = basename(LIBZ);

/** Relative path in the tree → the Debian file copied there. */
const COPIES: Record<string, string> = {
  "bin/true": "/usr/bin/true",
  "bin/ls": "/usr/bin/ls",
  [`lib/${LIBZ_NAME}`]: LIBZ,
  "deep/a/b/c/echo": "/usr/bin/echo",
  "spaces and ünïcode/sleep": "/usr/bin/sleep",
  "etc/os-release": "/etc/os-release",
};
const ELVES = Object.keys(COPIES).filter((p) => p !== "etc/os-release");

let work: string;
let root: string;
let server: Server;

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stella-dir-test-"));
  root = join(work, "tree");
  for (const [rel, src] of Object.entries(COPIES)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    copyFileSync(src, join(root, rel));
  }
  symlinkSync(LIBZ_NAME, join(root, "lib/libz.so.1"));
  symlinkSync("/usr/bin", join(root, "outside-dir")); // must not be followed
  symlinkSync("/usr/bin/env", join(root, "bin/outside-file"));
  symlinkSync("../../..", join(root, "deep/a/up"));
  execFileSync("mkfifo", [join(root, "fifo")]);
  server = createServer();
  await new Promise<void>((resolve) => server.listen(join(root, "sock"), resolve));
});
after(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  rmSync(work, { recursive: true, force: true });
});

/** The documented canonical listing, computed independently. */
function expectedDigest(files: { path: string; mode: number; sha256: string }[]): string {
  const lines = [...files]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => `${f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`)
    .join("");
  return "sha256:" + createHash("sha256").update(lines, "utf8").digest("hex");
}

describe("directory artifacts", () => {
  it("lists the ELF files with sha256sum's hashes, records symlinks without following them, skips fifos and sockets", async () => {
    const a = await openArtifact(root);
    assert.equal(a.kind, "directory");
    assert.equal(a.name, root);
    assert.equal(a.platform, undefined);
    const oracle = sha256sum(...ELVES.map((p) => join(root, p)));
    assert.deepEqual(
      a.files.map((f) => f.path),
      ELVES.map((p) => `/${p}`).sort(),
    );
    for (const f of a.files) {
      assert.equal(f.sha256, oracle.get(join(root, f.path)), f.path);
      assert.equal(f.mode, statSync(join(root, f.path)).mode & 0o7777, f.path);
    }
    assert.deepEqual(a.links, [
      { path: "/bin/outside-file", target: "/usr/bin/env" },
      { path: "/deep/a/up", target: "../../.." },
      { path: "/lib/libz.so.1", target: LIBZ_NAME },
      { path: "/outside-dir", target: "/usr/bin" },
    ]);
    assert.equal(a.digest, expectedDigest(a.files));
  });

  it("opens files lazily from disk", async () => {
    const a = await openArtifact(root);
    const f = a.files.find((x) => x.path === "/bin/ls")!;
    const src = f.open();
    try {
      assert.ok(src instanceof FileByteSource);
      assert.deepEqual([...src.read(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
      assert.equal(src.bytesRead, 4);
      assert.equal(src.size, f.size);
    } finally {
      src.close();
    }
  });

  it("digest: stable across calls; changes when one byte or a mode changes; ignores files not kept", async () => {
    const first = (await openArtifact(root)).digest;
    assert.equal((await openArtifact(root)).digest, first);

    const target = join(root, "bin/ls");
    const original = readFileSync(target);
    const changed = Buffer.from(original);
    changed[5000] = (changed[5000] ?? 0) ^ 0x01;
    writeFileSync(target, changed);
    try {
      const b = await openArtifact(root);
      assert.notEqual(b.digest, first);
      assert.equal(b.files.find((f) => f.path === "/bin/ls")?.sha256, sha256sum(target).get(target));
    } finally {
      writeFileSync(target, original);
    }
    assert.equal((await openArtifact(root)).digest, first);

    chmodSync(target, 0o700);
    try {
      assert.notEqual((await openArtifact(root)).digest, first);
    } finally {
      chmodSync(target, 0o755);
    }

    const text = join(root, "etc/os-release");
    writeFileSync(text, "changed\n");
    try {
      assert.equal((await openArtifact(root)).digest, first, "only kept files make up the digest");
    } finally {
      copyFileSync("/etc/os-release", text);
    }
  });

  it("progress counts kept bytes; maxFileBytes names the file and the limit", async () => {
    const calls: [number, number][] = [];
    const a = await openArtifact(root, { onProgress: (d, t) => calls.push([d, t]) });
    const total = a.files.reduce((s, f) => s + f.size, 0);
    assert.deepEqual(calls.at(-1), [total, total]);
    await assert.rejects(openArtifact(root, { maxFileBytes: 140_000 }), (err: unknown) => {
      assert.ok(err instanceof ArtifactError && err.code === "ARTIFACT_TOO_LARGE");
      assert.match(err.message, /\/bin\/ls is 151344 bytes.*140000/);
      return true;
    });
  });

  it("an empty directory is an artifact with no files", async () => {
    const empty = join(work, "empty");
    mkdirSync(empty);
    const a = await openArtifact(empty);
    assert.deepEqual(a.files, []);
    assert.equal(a.digest, `sha256:${createHash("sha256").update("").digest("hex")}`);
  });
});

describe("single ELF file artifacts", () => {
  it("is one file at /<basename>, digest = sha256sum of the file", async () => {
    const oracle = sha256sum("/usr/bin/true").get("/usr/bin/true")!;
    const a = await openArtifact("/usr/bin/true");
    assert.equal(a.kind, "elf");
    assert.equal(a.digest, `sha256:${oracle}`);
    assert.deepEqual(
      a.files.map((f) => [f.path, f.sha256, f.size]),
      [["/true", oracle, readFileSync("/usr/bin/true").length]],
    );
    assert.deepEqual(a.links, []);
    const lib = await openArtifact(LIBZ);
    assert.equal(lib.kind, "elf");
    assert.deepEqual(
      lib.files.map((f) => f.path),
      [`/${LIBZ_NAME}`],
    );
  });

  it("keep can still reject it", async () => {
    const a = await openArtifact("/usr/bin/true", { keep: () => false });
    assert.equal(a.kind, "elf");
    assert.deepEqual(a.files, []);
  });
});
