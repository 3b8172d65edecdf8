import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";

import { ArtifactError, makeContext, type OpenOptions } from "./common.ts";
import { applyLayers, type LayeredFiles, type LayerSource } from "./tar-layers.ts";
import { makeTar, sha256, sha256sum, type TarItem } from "./test-images.ts";

const TRUE = readFileSync("/usr/bin/true");
const FALSE = readFileSync("/usr/bin/false");
const ENV = readFileSync("/usr/bin/env");
const ORACLE = sha256sum("/usr/bin/true", "/usr/bin/false", "/usr/bin/env");
const H_TRUE = ORACLE.get("/usr/bin/true")!;
const H_FALSE = ORACLE.get("/usr/bin/false")!;
const H_ENV = ORACLE.get("/usr/bin/env")!;
const E = Buffer.alloc(0);

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) {
    await Promise.resolve();
    yield bytes.subarray(i, i + size);
  }
}

/** A layer from bytes, delivered in chunks of `chunk` bytes (to exercise every buffer boundary). */
function layerOf(bytes: Buffer, name: string, chunk: number): LayerSource {
  return {
    name,
    size: bytes.length,
    digest: `sha256:${sha256(bytes)}`,
    read: () => chunks(bytes, chunk),
  };
}

async function apply(layers: TarItem[][], opts: OpenOptions = {}, chunk = 1 << 20): Promise<LayeredFiles> {
  const sources = await Promise.all(
    layers.map(async (items, i) => layerOf(await makeTar(items), `L${i + 1}`, chunk)),
  );
  return applyLayers(sources, makeContext("img", opts));
}

const listing = (r: LayeredFiles): Record<string, string> =>
  Object.fromEntries(r.files.map((f) => [f.path, f.sha256]));

describe("layer application", () => {
  for (const chunk of [31, 500, 1 << 20]) {
    it(`whiteouts hide lower layers only, in either order within a layer (chunks of ${chunk})`, async () => {
      const r = await apply(
        [
          [
            { path: "a/x", data: TRUE },
            { path: "a/y", data: TRUE },
            { path: "b/old", data: TRUE },
            { path: "c/keep", data: TRUE },
          ],
          [
            { path: "a/x", data: FALSE }, // same layer: the whiteout below must not hide it
            { path: "a/.wh.x", data: E },
            { path: "b/new", data: ENV },
            { path: "b/.wh..wh..opq", data: E }, // listed after b/new: b/new stays, b/old goes
            { path: "c/", type: "directory", mode: 0o700 }, // merges
          ],
        ],
        {},
        chunk,
      );
      assert.deepEqual(listing(r), {
        "/a/x": H_FALSE,
        "/a/y": H_TRUE,
        "/b/new": H_ENV,
        "/c/keep": H_TRUE,
      });
    });
  }

  it("whiteout of a directory removes the subtree; a higher layer can bring the name back", async () => {
    const r = await apply([
      [
        { path: "opt/app/bin/one", data: TRUE },
        { path: "opt/app/lib/two", data: TRUE },
      ],
      [{ path: "opt/.wh.app", data: E }],
      [{ path: "opt/app/bin/three", data: ENV }],
    ]);
    assert.deepEqual(listing(r), { "/opt/app/bin/three": H_ENV });
  });

  it("a whiteout and a new entry of the same name in one layer: the new one wins, the old subtree is gone", async () => {
    const r = await apply([
      [{ path: "d/inner/f", data: TRUE }],
      [
        { path: "d/fresh", data: FALSE },
        { path: ".wh.d", data: E },
      ],
    ]);
    assert.deepEqual(listing(r), { "/d/fresh": H_FALSE });
  });

  it("a file replaces a directory and a directory replaces a file", async () => {
    const r = await apply([
      [
        { path: "x/under", data: TRUE },
        { path: "y", data: TRUE },
      ],
      [
        { path: "x", data: FALSE },
        { path: "y", type: "directory" },
        { path: "y/z", data: ENV },
      ],
    ]);
    assert.deepEqual(listing(r), { "/x": H_FALSE, "/y/z": H_ENV });
  });

  it("parents that are symlinks resolve inside the image (merged /usr)", async () => {
    const r = await apply([
      [
        { path: "usr/lib/", type: "directory" },
        { path: "lib", type: "symlink", target: "usr/lib" },
      ],
      [
        { path: "lib/libfoo.so", data: TRUE },
        { path: "lib/.wh.gone", data: E },
      ],
      [
        { path: "lib/.wh.libfoo.so", data: E },
        { path: "usr/lib/libbar.so", data: ENV },
      ],
    ]);
    assert.deepEqual(listing(r), { "/usr/lib/libbar.so": H_ENV });
    assert.deepEqual(r.links, [{ path: "/lib", target: "usr/lib" }]);
  });

  it("hardlinks share content and survive removal of their target; links to symlinks stay symlinks", async () => {
    const r = await apply([
      [
        { path: "bin/a", data: TRUE },
        { path: "bin/b", type: "link", target: "bin/a" },
        { path: "bin/s", type: "symlink", target: "a" },
        { path: "bin/t", type: "link", target: "./bin/s" },
        { path: "dev/fifo", type: "fifo" },
      ],
      [{ path: "bin/.wh.a", data: E }],
    ]);
    assert.deepEqual(listing(r), { "/bin/b": H_TRUE });
    assert.deepEqual(r.links, [
      { path: "/bin/s", target: "a" },
      { path: "/bin/t", target: "a" },
    ]);
  });

  it("symlink loops in parents are a named error, not a hang", async () => {
    await assert.rejects(
      apply([
        [
          { path: "a", type: "symlink", target: "b" },
          { path: "b", type: "symlink", target: "a" },
          { path: "a/x", data: TRUE },
        ],
      ]),
      (err: unknown) =>
        err instanceof ArtifactError &&
        err.code === "ARTIFACT_MALFORMED" &&
        /symbolic links/.test(err.message),
    );
  });

  it("long names (pax / ustar prefix) keep their full path", async () => {
    const long = `${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(120)}.so`;
    const r = await apply([[{ path: long, data: TRUE }]]);
    assert.deepEqual(listing(r), { [`/${long}`]: H_TRUE });
  });

  it("a layer without end-of-archive blocks or last padding is accepted (umoci 0.4.7 writes these)", async () => {
    const tar = await makeTar([
      { path: "bin/x", data: TRUE },
      { path: "bin/y", data: ENV.subarray(0, 1000) },
      { path: "bin/z", data: FALSE },
    ]);
    // bin/x header + data + padding, then bin/y header + 1000 data bytes: cut there, no padding, no trailer.
    const cut = 512 + Math.ceil(TRUE.length / 512) * 512 + 512 + 1000;
    const open = (end: number): Promise<LayeredFiles> =>
      applyLayers([layerOf(tar.subarray(0, end), "L1", 4096)], makeContext("img", { keep: () => true }));
    for (const end of [cut, cut + 10, cut + 24]) {
      assert.deepEqual(
        (await open(end)).files.map((f) => [f.path, f.sha256]),
        [
          ["/bin/x", H_TRUE],
          ["/bin/y", sha256(ENV.subarray(0, 1000))],
        ],
        `cut at ${end}`,
      );
    }
    // Ending inside data, or inside the next header, is not.
    for (const end of [cut - 1, cut + 24 + 100]) {
      await assert.rejects(
        open(end),
        (err: unknown) =>
          err instanceof ArtifactError && err.code === "ARTIFACT_MALFORMED" && /L1/.test(err.message),
        `cut at ${end}`,
      );
    }
  });

  it("detects gzip by magic bytes whatever the caller thinks, and verifies diff_id", async () => {
    const tar = await makeTar([{ path: "x", data: TRUE }]);
    const gz = gzipSync(tar);
    const ok = { ...layerOf(gz, "L1", 1000), diffId: `sha256:${sha256(tar)}` };
    assert.deepEqual(listing(await applyLayers([ok], makeContext("img", {}))), { "/x": H_TRUE });
    const bad = { ...ok, diffId: `sha256:${sha256("something else")}` };
    await assert.rejects(
      applyLayers([bad], makeContext("img", {})),
      (err: unknown) =>
        err instanceof ArtifactError &&
        err.code === "ARTIFACT_DIGEST_MISMATCH" &&
        /diff_id/.test(err.message),
    );
  });

  it("refuses xz layers by name instead of misparsing them", async () => {
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0, 0, 0]);
    await assert.rejects(
      applyLayers([{ ...layerOf(xz, "L1", 10), digest: undefined }], makeContext("img", {})),
      (err: unknown) =>
        err instanceof ArtifactError && err.code === "ARTIFACT_UNSUPPORTED" && /xz/.test(err.message),
    );
  });
});
