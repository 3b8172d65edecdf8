/**
 * Normalisation details: layer merging (whiteouts, opaque directories, the same-layer rule), hard
 * links in tars, and the canonical tar for long names and link targets, read back by GNU tar.
 */
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { sha256Hex } from "../artifacts/common.ts";
import type { ListedMember } from "../artifacts/tar-list.ts";
import { listTarBuffer } from "../artifacts/tar-list.ts";
import { makeTar } from "../artifacts/test-images.ts";
import { run, workDir } from "../artifacts/test-packages.ts";
import { canonicalTar, entriesFromTar, mergeLayers, walkTree } from "./normalize.ts";

const file = (path: string, data = path): ListedMember => ({
  name: "." + path,
  path,
  type: "file",
  mode: 0o644,
  size: data.length,
  sha256: sha256Hex(data),
});
const dirm = (path: string): ListedMember => ({
  name: "." + path + "/",
  path,
  type: "directory",
  mode: 0o755,
  size: 0,
});

describe("mergeLayers", () => {
  it("applies whiteouts and opaque directories to lower layers only", () => {
    const l1 = [dirm("/a"), file("/a/x"), file("/a/y"), dirm("/b"), file("/b/old"), file("/c")];
    // The whiteout comes after the file it would hide in the same layer: the same-layer rule keeps it.
    const l2 = [file("/a/.wh.x"), file("/b/new"), file("/b/.wh..wh..opq"), file("/d"), file("/.wh.d")];
    const merged = mergeLayers([
      { member: "L1", members: l1 },
      { member: "L2", members: l2 },
    ]);
    assert.deepEqual(
      merged.map((e) => `${e.path}@${e.member ?? ""}`),
      ["/a@L1", "/a/y@L1", "/b@L1", "/b/new@L2", "/c@L1", "/d@L2"],
    );
  });

  it("a whiteout of a directory removes what is below it", () => {
    const merged = mergeLayers([
      { member: "L1", members: [dirm("/t"), dirm("/t/u"), file("/t/u/v"), file("/tt")] },
      { member: "L2", members: [file("/.wh.t")] },
    ]);
    assert.deepEqual(
      merged.map((e) => e.path),
      ["/tt"],
    );
  });
});

describe("entriesFromTar", () => {
  it("gives hard links their target's content hash, and drops the root", async () => {
    const tar = await makeTar([
      { path: "./", type: "directory" },
      { path: "./bin/", type: "directory" },
      { path: "./bin/a", data: Buffer.from("payload") },
      { path: "./bin/b", type: "link", target: "./bin/a" },
    ]);
    const entries = entriesFromTar(await listTarBuffer(tar, "t.tar"), "layer");
    assert.deepEqual(
      entries.map((e) => [e.path, e.type, e.size, e.sha256 ?? ""]),
      [
        ["/bin", "directory", 0, ""],
        ["/bin/a", "file", 7, sha256Hex("payload")],
        ["/bin/b", "link", 7, sha256Hex("payload")],
      ],
    );
  });
});

describe("canonicalTar", () => {
  it("carries names and link targets over 100 bytes in pax records that GNU tar reads", () => {
    const root = workDir("canon");
    const deep = join(root, "d".repeat(60), "e".repeat(60));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, "f".repeat(80)), "long\n");
    symlinkSync("../".repeat(10) + "t".repeat(90), join(root, "longlink"));
    const tar = canonicalTar(walkTree(root), 1 << 20, root);
    const out = join(workDir("canon-out"), "c.tar");
    writeFileSync(out, tar);
    const names = run("tar", ["-tf", out]).trim().split("\n");
    assert.deepEqual(names, [
      "d".repeat(60) + "/",
      `${"d".repeat(60)}/${"e".repeat(60)}/`,
      `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(80)}`,
      "longlink",
    ]);
    assert.match(run("tar", ["-tvf", out, "longlink"]), new RegExp(`longlink -> (\\.\\./){10}t{90}`));
    assert.deepEqual(canonicalTar(walkTree(root), 1 << 20, root), tar, "same tree, same bytes");
    assert.throws(
      () => canonicalTar(walkTree(root), 1000, root),
      /exceeds the limit of 1000 bytes \(maxBytes\)/,
    );
  });
});
