import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync, zstdCompressSync } from "node:zlib";

import { type Artifact, ArtifactError, openArtifact } from "./artifact.ts";
import {
  buildImage,
  type BuiltImage,
  dockerArchiveFiles,
  imageIndex,
  type LayerSpec,
  makeTar,
  ociLayoutFiles,
  sha256,
  sha256sum,
  type TarItem,
  tarOfFiles,
  writeFiles,
} from "./test-images.ts";

const LIBZ = realpathSync("/usr/lib/x86_64-linux-gnu/libz.so.1");
const LIBZ_NAME = basename(LIBZ);
const bytes = (p: string): Buffer => readFileSync(p);
const EMPTY = Buffer.alloc(0);

/**
 * Three layers from real Debian binaries:
 * 1 (gzip): true, ls, cat, libz (+ libz.so.1 symlink), /opt/plugins/{a.so, sub/b.so}, /srv/old/bin/sleep, a text file;
 * 2 (zstd): replaces true with false, whiteouts cat, makes /opt/plugins opaque and adds c.so, hardlinks ls;
 * 3 (plain tar): deletes the /srv/old directory, adds /usr/local/bin/dir.
 */
function debianLayers(): LayerSpec[] {
  return [
    {
      compression: "gzip",
      items: [
        { path: "usr/", type: "directory" },
        { path: "usr/bin/", type: "directory" },
        { path: "./usr/bin/true", data: bytes("/usr/bin/true") },
        { path: "usr/bin/ls", data: bytes("/usr/bin/ls") },
        { path: "usr/bin/cat", data: bytes("/usr/bin/cat") },
        { path: `usr/lib/x86_64-linux-gnu/${LIBZ_NAME}`, data: bytes(LIBZ), mode: 0o644 },
        { path: "usr/lib/x86_64-linux-gnu/libz.so.1", type: "symlink", target: LIBZ_NAME },
        { path: "opt/plugins/a.so", data: bytes("/usr/bin/echo") },
        { path: "opt/plugins/sub/b.so", data: bytes("/usr/bin/sleep") },
        { path: "srv/old/bin/sleep", data: bytes("/usr/bin/sleep") },
        { path: "etc/os-release", data: bytes("/etc/os-release"), mode: 0o644 },
      ],
    },
    {
      compression: "zstd",
      items: [
        { path: "usr/bin/true", data: bytes("/usr/bin/false") },
        { path: "usr/bin/.wh.cat", data: EMPTY },
        { path: "opt/plugins/", type: "directory" },
        { path: "opt/plugins/.wh..wh..opq", data: EMPTY },
        { path: "opt/plugins/c.so", data: bytes("/usr/bin/env") },
        { path: "usr/bin/ls-hard", type: "link", target: "usr/bin/ls" },
      ],
    },
    {
      compression: "none",
      items: [
        { path: "srv/.wh.old", data: EMPTY },
        { path: "./usr/local/bin/dir", data: bytes("/usr/bin/dir") },
      ],
    },
  ];
}

/** What the three layers leave, and where each file's bytes came from. */
const EXPECTED: Record<string, string> = {
  "/opt/plugins/c.so": "/usr/bin/env",
  "/usr/bin/ls": "/usr/bin/ls",
  "/usr/bin/ls-hard": "/usr/bin/ls",
  "/usr/bin/true": "/usr/bin/false",
  [`/usr/lib/x86_64-linux-gnu/${LIBZ_NAME}`]: LIBZ,
  "/usr/local/bin/dir": "/usr/bin/dir",
};

function assertDebianImage(a: Artifact): void {
  const oracle = sha256sum(...new Set(Object.values(EXPECTED)));
  assert.deepEqual(
    a.files.map((f) => f.path),
    Object.keys(EXPECTED).sort(),
  );
  for (const f of a.files) {
    const src = EXPECTED[f.path]!;
    assert.equal(f.sha256, oracle.get(src), `${f.path} should hash like ${src}`);
    assert.equal(f.size, bytes(src).length);
    const s = f.open();
    try {
      assert.equal(s.size, f.size);
      assert.equal(sha256(s.read(0, s.size)), oracle.get(src), `${f.path}: open() gives the content`);
    } finally {
      s.close();
    }
  }
  assert.equal(a.files.find((f) => f.path.endsWith(LIBZ_NAME))?.mode, 0o644);
  assert.equal(a.files.find((f) => f.path === "/usr/bin/ls")?.mode, 0o755);
  assert.deepEqual(a.links, [{ path: "/usr/lib/x86_64-linux-gnu/libz.so.1", target: LIBZ_NAME }]);
  assert.deepEqual(a.platform, { os: "linux", architecture: "amd64" });
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<ArtifactError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ArtifactError, `expected ArtifactError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

function flipByte(file: string, offset: number): void {
  const b = readFileSync(file);
  b[offset] = (b[offset] ?? 0) ^ 0x01;
  writeFileSync(file, b);
}

let work: string;
let image: BuiltImage;
let n = 0;
const fresh = (name: string): string => join(work, `${n++}-${name}`);

before(async () => {
  work = mkdtempSync(join(tmpdir(), "stella-artifact-test-"));
  image = await buildImage(debianLayers());
});
after(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("images from real Debian binaries", () => {
  it("docker-archive: layers in order, whiteouts, opaque dir, hardlink, symlink", async () => {
    const path = fresh("docker.tar");
    writeFileSync(path, await tarOfFiles(dockerArchiveFiles(image)));
    const a = await openArtifact(path);
    assert.equal(a.kind, "docker-archive");
    assert.equal(a.name, path);
    assert.equal(a.digest, image.config.digest, "docker-archive digest is the image ID (config digest)");
    assertDebianImage(a);
  });

  it("OCI layout directory", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const a = await openArtifact(dir);
    assert.equal(a.kind, "oci-layout");
    assert.equal(a.digest, image.manifest.digest);
    assertDebianImage(a);
  });

  it("OCI archive (tar of a layout)", async () => {
    const path = fresh("oci.tar");
    writeFileSync(path, await tarOfFiles(ociLayoutFiles([image])));
    const a = await openArtifact(path);
    assert.equal(a.kind, "oci-archive");
    assert.equal(a.digest, image.manifest.digest);
    assertDebianImage(a);
  });

  it("gzip-compressed docker-archive and zstd-compressed OCI archive", async () => {
    const gz = fresh("docker.tar.gz");
    writeFileSync(gz, gzipSync(await tarOfFiles(dockerArchiveFiles(image))));
    const a = await openArtifact(gz);
    assert.equal(a.kind, "docker-archive");
    assertDebianImage(a);
    const zst = fresh("oci.tar.zst");
    writeFileSync(zst, zstdCompressSync(await tarOfFiles(ociLayoutFiles([image]))));
    const b = await openArtifact(zst);
    assert.equal(b.kind, "oci-archive");
    assertDebianImage(b);
  });

  it("Docker 25+ docker save (blobs/sha256 paths, OCI layout alongside), one layer reached by symlink", async () => {
    const files = ociLayoutFiles([image]);
    const hex = (d: string): string => d.slice("sha256:".length);
    const layers = image.layerBlobs.map((b) => `blobs/sha256/${hex(b.digest)}`);
    layers[1] = "legacy/layer.tar"; // skopeo writes `<id>/layer.tar -> ../<diffid>.tar`
    files.set(
      "manifest.json",
      Buffer.from(
        JSON.stringify([
          { Config: `blobs/sha256/${hex(image.config.digest)}`, RepoTags: null, Layers: layers },
        ]),
      ),
    );
    const items: TarItem[] = [...files].map(([path, data]) => ({ path, data }));
    items.push({
      path: "legacy/layer.tar",
      type: "symlink",
      target: `../blobs/sha256/${hex(image.layerBlobs[1]!.digest)}`,
    });
    const path = fresh("docker25.tar");
    writeFileSync(path, await makeTar(items));
    const a = await openArtifact(path);
    assert.equal(a.kind, "docker-archive");
    assertDebianImage(a);
  });

  it("is deterministic: two opens give the same listing", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const strip = (x: Artifact): unknown => ({
      ...x,
      files: x.files.map((f) => ({ path: f.path, size: f.size, mode: f.mode, sha256: f.sha256 })),
    });
    assert.deepEqual(strip(await openArtifact(dir)), strip(await openArtifact(dir)));
  });

  it("reports progress up to the sum of the layer blob sizes", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const calls: [number, number][] = [];
    await openArtifact(dir, { onProgress: (d, t) => calls.push([d, t]) });
    const total = image.layerBlobs.reduce((s, b) => s + b.bytes.length, 0);
    assert.ok(calls.length > 2);
    assert.ok(calls.every(([, t]) => t === total));
    assert.ok(calls.every(([d], i) => i === 0 || d >= calls[i - 1]![0]));
    assert.deepEqual(calls.at(-1), [total, total]);
  });

  it("keep: consulted with up to 64 head bytes of every regular file; can keep non-ELF files", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const seen = new Map<string, number>();
    const a = await openArtifact(dir, {
      keep: (path, head) => {
        seen.set(path, head.length);
        return path === "/etc/os-release";
      },
    });
    assert.deepEqual(
      a.files.map((f) => [f.path, f.sha256]),
      [["/etc/os-release", sha256sum("/etc/os-release").get("/etc/os-release")]],
    );
    assert.equal(seen.get("/usr/bin/ls"), 64);
    assert.equal(seen.get("/etc/os-release"), Math.min(64, bytes("/etc/os-release").length));
    assert.ok(seen.has("/opt/plugins/a.so"), "files later hidden were still seen when their layer was read");
    assert.ok(!seen.has("/usr/lib/x86_64-linux-gnu/libz.so.1"), "symlinks are not regular files");
  });

  it("maxFileBytes: a kept file over the limit is an error naming the file and the limit", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    await rejectsWith(
      openArtifact(dir, { maxFileBytes: 100_000 }),
      "ARTIFACT_TOO_LARGE",
      /\/usr\/bin\/ls.*100000/,
    );
  });
});

describe("platform selection", () => {
  let arm: BuiltImage;
  before(async () => {
    arm = await buildImage(
      [{ compression: "gzip", items: [{ path: "bin/true", data: bytes("/usr/bin/true") }] }],
      {
        os: "linux",
        architecture: "arm64",
        variant: "v8",
      },
    );
  });

  function attestation(): {
    desc: {
      mediaType: string;
      digest: string;
      size: number;
      platform: { os: string; architecture: string };
      annotations: Record<string, string>;
    };
    blobs: Map<string, Buffer>;
  } {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
    const digest = `sha256:${sha256(body)}`;
    return {
      desc: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest,
        size: body.length,
        platform: { os: "unknown", architecture: "unknown" },
        annotations: { "vnd.docker.reference.type": "attestation-manifest" },
      },
      blobs: new Map([[digest, body]]),
    };
  }

  it("index.json with two platforms and an attestation: linux/amd64 by default, `platform` picks another", async () => {
    const att = attestation();
    const dir = fresh("multi");
    writeFiles(dir, ociLayoutFiles([image, arm], [image.manifest, arm.manifest, att.desc], att.blobs));
    const a = await openArtifact(dir);
    assert.equal(a.digest, image.manifest.digest);
    assertDebianImage(a);
    const b = await openArtifact(dir, { platform: "linux/arm64" });
    assert.equal(b.digest, arm.manifest.digest);
    assert.deepEqual(b.platform, { os: "linux", architecture: "arm64", variant: "v8" });
    assert.deepEqual(
      b.files.map((f) => f.path),
      ["/bin/true"],
    );
    assert.equal((await openArtifact(dir, { platform: "linux/arm64/v8" })).digest, arm.manifest.digest);
    await rejectsWith(
      openArtifact(dir, { platform: "linux/s390x" }),
      "ARTIFACT_NOT_FOUND",
      /linux\/s390x.*linux\/amd64.*linux\/arm64/,
    );
    await rejectsWith(openArtifact(dir, { platform: "linux" }), "ARTIFACT_INVALID_OPTION");
  });

  it("nested image index; descriptors without platform are resolved from the config", async () => {
    const extra = new Map<string, Buffer>();
    const strip = (d: BuiltImage["manifest"]): BuiltImage["manifest"] => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
    });
    const idx = imageIndex([strip(arm.manifest), strip(image.manifest)], extra);
    const dir = fresh("nested");
    writeFiles(dir, ociLayoutFiles([image, arm], [idx], extra));
    assert.equal((await openArtifact(dir)).digest, image.manifest.digest);
    assert.equal((await openArtifact(dir, { platform: "linux/arm64" })).digest, arm.manifest.digest);
  });

  it("two different images for the platform are ambiguous; one image listed under two tags is not", async () => {
    const other = await buildImage([
      { compression: "none", items: [{ path: "bin/env", data: bytes("/usr/bin/env") }] },
    ]);
    const tag = (d: BuiltImage["manifest"], name: string): BuiltImage["manifest"] => ({
      ...d,
      annotations: { "org.opencontainers.image.ref.name": name },
    });
    const dir = fresh("two");
    writeFiles(dir, ociLayoutFiles([image, other], [tag(image.manifest, "a"), tag(other.manifest, "b")]));
    await rejectsWith(openArtifact(dir), "ARTIFACT_AMBIGUOUS", /2 images for linux\/amd64: a .*, b /);
    const same = fresh("same");
    writeFiles(same, ociLayoutFiles([image], [tag(image.manifest, "a"), tag(image.manifest, "latest")]));
    assert.equal((await openArtifact(same)).digest, image.manifest.digest);
  });

  it("a lone image of another platform is taken unless a platform was asked for", async () => {
    const dir = fresh("arm-only");
    writeFiles(dir, ociLayoutFiles([arm]));
    assert.equal((await openArtifact(dir)).digest, arm.manifest.digest);
    await rejectsWith(
      openArtifact(dir, { platform: "linux/amd64" }),
      "ARTIFACT_NOT_FOUND",
      /available: .*linux\/arm64/,
    );
  });
});

describe("integrity and malformed input", () => {
  it("a tampered gzip layer blob (one byte flipped) is a digest mismatch naming the blob", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const layer = image.layerBlobs[0]!;
    flipByte(join(dir, "blobs/sha256", layer.digest.slice(7)), Math.floor(layer.bytes.length / 2));
    const err = await rejectsWith(openArtifact(dir), "ARTIFACT_DIGEST_MISMATCH");
    assert.ok(err.message.includes(layer.digest), err.message);
  });

  it("a tampered plain-tar layer (a data byte flipped: still parses) is a digest mismatch", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const layer = image.layerBlobs[2]!;
    flipByte(join(dir, "blobs/sha256", layer.digest.slice(7)), 512 * 3 + 100);
    const err = await rejectsWith(openArtifact(dir), "ARTIFACT_DIGEST_MISMATCH", /blob digest is sha256:/);
    assert.ok(err.message.includes(layer.digest), err.message);
  });

  it("a tampered tar header (parsing fails before the blob ends) is still reported as a digest mismatch", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const layer = image.layerBlobs[2]!;
    flipByte(join(dir, "blobs/sha256", layer.digest.slice(7)), 10);
    const err = await rejectsWith(openArtifact(dir), "ARTIFACT_DIGEST_MISMATCH");
    assert.ok(err.message.includes(layer.digest), err.message);
    assert.ok(
      err.cause instanceof ArtifactError && err.cause.code === "ARTIFACT_MALFORMED",
      "the parse error is the cause",
    );
  });

  it("a tampered config or manifest blob is a digest mismatch naming it", async () => {
    for (const digest of [image.config.digest, image.manifest.digest]) {
      const dir = fresh("oci");
      writeFiles(dir, ociLayoutFiles([image]));
      flipByte(join(dir, "blobs/sha256", digest.slice(7)), 5);
      const err = await rejectsWith(openArtifact(dir), "ARTIFACT_DIGEST_MISMATCH");
      assert.ok(err.message.includes(digest), err.message);
    }
  });

  it("a layer blob in an OCI archive tampered inside the tar", async () => {
    const tar = await tarOfFiles(ociLayoutFiles([image]));
    const layer = image.layerBlobs[1]!;
    const at = tar.indexOf(layer.bytes);
    assert.ok(at > 0);
    tar[at + 40] = (tar[at + 40] ?? 0) ^ 0x80;
    const path = fresh("oci.tar");
    writeFileSync(path, tar);
    const err = await rejectsWith(openArtifact(path), "ARTIFACT_DIGEST_MISMATCH");
    assert.ok(err.message.includes(layer.digest), err.message);
  });

  it("docker-archive: a tampered layer fails its diff_id; a tampered config fails its name", async () => {
    const files = dockerArchiveFiles(image);
    const layer = Buffer.from(files.get("layer2/layer.tar")!);
    layer[512 * 3 + 7] = (layer[512 * 3 + 7] ?? 0) ^ 0x01;
    files.set("layer2/layer.tar", layer);
    const p1 = fresh("docker.tar");
    writeFileSync(p1, await tarOfFiles(files));
    await rejectsWith(openArtifact(p1), "ARTIFACT_DIGEST_MISMATCH", /layer2\/layer\.tar/);

    const files2 = dockerArchiveFiles(image);
    const configName = `${image.config.digest.slice(7)}.json`;
    files2.set(configName, Buffer.from(files2.get(configName)!.toString().replace("amd64", "arm64")));
    const p2 = fresh("docker.tar");
    writeFileSync(p2, await tarOfFiles(files2));
    await rejectsWith(openArtifact(p2), "ARTIFACT_DIGEST_MISMATCH", new RegExp(configName));
  });

  it("OCI: a config whose diff_ids lie is a mismatch even though every blob digest holds", async () => {
    const liar = await buildImage(debianLayers(), undefined, (cfg) => {
      cfg.rootfs.diff_ids[1] = `sha256:${"0".repeat(64)}`;
    });
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([liar]));
    await rejectsWith(openArtifact(dir), "ARTIFACT_DIGEST_MISMATCH", /diff_id/);
  });

  it("a truncated tarball is ARTIFACT_MALFORMED; cut anywhere, it is always an ArtifactError", async () => {
    const tar = await tarOfFiles(dockerArchiveFiles(image));
    const half = fresh("half.tar");
    writeFileSync(half, tar.subarray(0, Math.floor(tar.length / 2)));
    await rejectsWith(openArtifact(half), "ARTIFACT_MALFORMED", /truncated/);
    const gz = fresh("half.tar.gz");
    const zipped = gzipSync(tar);
    writeFileSync(gz, zipped.subarray(0, Math.floor(zipped.length / 2)));
    await rejectsWith(openArtifact(gz), "ARTIFACT_MALFORMED");

    const oci = await tarOfFiles(ociLayoutFiles([image]));
    for (const src of [tar, oci]) {
      for (let i = 1; i < 40; i++) {
        const cut = Math.floor((src.length * i) / 40) + (i % 3) * 7;
        const p = fresh("cut.tar");
        writeFileSync(p, src.subarray(0, cut));
        try {
          await openArtifact(p);
          assert.fail(`cut at ${cut} of ${src.length} was accepted`);
        } catch (err) {
          assert.ok(err instanceof ArtifactError, `cut at ${cut}: ${String(err)}`);
        }
      }
    }
  });

  it("a truncated layer blob in an OCI layout is a named error", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const layer = image.layerBlobs[0]!;
    const file = join(dir, "blobs/sha256", layer.digest.slice(7));
    writeFileSync(file, layer.bytes.subarray(0, 1000));
    await rejectsWith(
      openArtifact(dir),
      "ARTIFACT_DIGEST_MISMATCH",
      new RegExp(`${layer.digest}.*1000 bytes`),
    );
  });

  it("manifest.json that is not JSON, or has a wrong field, is ARTIFACT_MALFORMED naming it", async () => {
    const files = dockerArchiveFiles(image);
    files.set("manifest.json", Buffer.from("[{ this is not json"));
    const p = fresh("docker.tar");
    writeFileSync(p, await tarOfFiles(files));
    await rejectsWith(openArtifact(p), "ARTIFACT_MALFORMED", /manifest\.json: not valid JSON/);

    files.set("manifest.json", Buffer.from(JSON.stringify([{ Config: 5, Layers: [] }])));
    const p2 = fresh("docker.tar");
    writeFileSync(p2, await tarOfFiles(files));
    await rejectsWith(
      openArtifact(p2),
      "ARTIFACT_MALFORMED",
      /manifest\.json: \[0\]\.Config: expected a string/,
    );

    const oci = ociLayoutFiles([image]);
    oci.set("index.json", Buffer.from("{"));
    const dir = fresh("oci");
    writeFiles(dir, oci);
    await rejectsWith(openArtifact(dir), "ARTIFACT_MALFORMED", /index\.json: not valid JSON/);

    const oci2 = ociLayoutFiles([image], [{ ...image.manifest, digest: "sha256:../../../etc/passwd" }]);
    const dir2 = fresh("oci");
    writeFiles(dir2, oci2);
    await rejectsWith(openArtifact(dir2), "ARTIFACT_MALFORMED", /manifests\[0\]\.digest/);
  });

  it("path traversal in a layer is clamped to the image root, never escapes", async () => {
    const elf = bytes("/usr/bin/true");
    const marker = `stella-escape-${process.pid}-${Date.now()}`;
    const evil = await buildImage([
      {
        compression: "none",
        items: [
          { path: "../../etc/passwd", data: elf },
          { path: `./../../../tmp/${marker}.so`, data: elf },
          { path: "escape", type: "symlink", target: "../../../../../tmp" },
          { path: "abs", type: "symlink", target: "/../../usr" },
          { path: `escape/${marker}-2.so`, data: elf },
          { path: `abs/${marker}-3.so`, data: elf },
          { path: "../hard", type: "link", target: "../../etc/passwd" },
        ],
      },
    ]);
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([evil]));
    const a = await openArtifact(dir);
    assert.deepEqual(
      a.files.map((f) => f.path),
      ["/etc/passwd", "/hard", `/tmp/${marker}-2.so`, `/tmp/${marker}.so`, `/usr/${marker}-3.so`],
    );
    assert.deepEqual(
      a.links.map((l) => l.path),
      ["/abs", "/escape"],
    );
    for (const f of a.files) assert.ok(f.path.startsWith("/") && !f.path.split("/").includes(".."), f.path);
    assert.ok(
      !existsSync(`/tmp/${marker}.so`) &&
        !existsSync(`/tmp/${marker}-2.so`) &&
        !existsSync(`/usr/${marker}-3.so`),
    );
  });

  it("a blob that is a symlink out of the layout is refused; a throwing keep is not relabelled", async () => {
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([image]));
    const layer = join(dir, "blobs/sha256", image.layerBlobs[0]!.digest.slice(7));
    const outside = fresh("outside-blob");
    renameSync(layer, outside);
    symlinkSync(outside, layer);
    await rejectsWith(openArtifact(dir), "ARTIFACT_MALFORMED", /symlink leading outside the layout/);

    const ok = fresh("oci");
    writeFiles(ok, ociLayoutFiles([image]));
    const boom = new Error("keep failed");
    await assert.rejects(
      openArtifact(ok, {
        keep: () => {
          throw boom;
        },
      }),
      (err: unknown) => err === boom,
    );
  });

  it("a hardlink to a missing file is malformed, naming the layer and the link", async () => {
    const bad = await buildImage([
      { compression: "none", items: [{ path: "a", type: "link", target: "nope" }] },
    ]);
    const dir = fresh("oci");
    writeFiles(dir, ociLayoutFiles([bad]));
    await rejectsWith(openArtifact(dir), "ARTIFACT_MALFORMED", /layer 1 .*hardlink \/a → \/nope/);
  });
});

describe("detection", () => {
  it("unknown files, tars of something else and missing paths are named errors", async () => {
    const text = fresh("notes.txt");
    writeFileSync(text, "hello, this is not an image\n");
    await rejectsWith(openArtifact(text), "ARTIFACT_UNKNOWN", new RegExp(`${text}.*saw .*"hello, this is n`));
    const zip = fresh("x.zip");
    writeFileSync(zip, Buffer.from("PK\x03\x04rest of a zip file", "latin1"));
    await rejectsWith(openArtifact(zip), "ARTIFACT_UNKNOWN", /zip/);
    const tar = fresh("other.tar");
    writeFileSync(tar, await makeTar([{ path: "README", data: Buffer.from("hi") }]));
    await rejectsWith(openArtifact(tar), "ARTIFACT_UNKNOWN", /neither manifest\.json.*README/);
    const gzText = fresh("x.gz");
    writeFileSync(gzText, gzipSync(Buffer.alloc(2000, 0x41)));
    await rejectsWith(openArtifact(gzText), "ARTIFACT_UNKNOWN", /gzip-compressed data that is not a tar/);
    await rejectsWith(openArtifact(fresh("missing")), "ARTIFACT_NOT_FOUND");
    const empty = fresh("empty");
    writeFileSync(empty, "");
    await rejectsWith(openArtifact(empty), "ARTIFACT_UNKNOWN", /empty file/);
  });
});
