// An OCI layout that also holds OCI 1.1 referrers of its image (as `oras copy -r --to-oci-layout` and
// `stella export` write it) still opens as that image: referrer entries are not image candidates.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { openArtifact } from "./artifact.ts";
import { buildImage, type Descriptor, ociLayoutFiles, sha256, writeFiles } from "./test-images.ts";

const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(56, 1)]);
const EMPTY = Buffer.from("{}");

/** A referrer manifest (empty config, one layer) of `subject`, its blobs added to `blobs`. */
function referrer(
  subject: Descriptor,
  artifactType: string,
  payload: string,
  blobs: Map<string, Buffer>,
): { desc: Descriptor; bytes: Buffer } {
  const layer = Buffer.from(payload);
  blobs.set(`sha256:${sha256(EMPTY)}`, EMPTY);
  blobs.set(`sha256:${sha256(layer)}`, layer);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: `sha256:${sha256(EMPTY)}`, size: 2 },
      layers: [{ mediaType: "text/plain", digest: `sha256:${sha256(layer)}`, size: layer.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
  );
  const digest = `sha256:${sha256(bytes)}`;
  blobs.set(digest, bytes);
  return {
    desc: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: bytes.length },
    bytes,
  };
}

test("a layout with the image plus referrers (with and without artifactType) opens the image", async () => {
  const dir = await mkdtemp(join(tmpdir(), "stella-layout-ref-"));
  try {
    const image = await buildImage([
      { items: [{ path: "usr/bin/app", data: ELF, mode: 0o755 }], compression: "gzip" },
    ]);
    const extra = new Map<string, Buffer>();
    const sig = referrer(image.manifest, "application/vnd.stella.test+json", "signature", extra);
    const sbom = referrer(image.manifest, "application/spdx+json", "sbom", extra);
    const imageEntry = { ...image.manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } };
    delete imageEntry.platform; // as skopeo and pullToLayout write it: the platform comes from the config
    const manifests: Descriptor[] = [
      // listed as oras lists referrers: with artifactType
      { ...sig.desc, artifactType: "application/vnd.stella.test+json" } as Descriptor,
      imageEntry,
      // no artifactType on the descriptor: recognised by the manifest's subject
      sbom.desc,
    ];
    writeFiles(dir, ociLayoutFiles([image], manifests, extra));
    const a = await openArtifact(dir);
    assert.equal(a.kind, "oci-layout");
    assert.equal(a.digest, image.manifest.digest);
    assert.deepEqual(
      a.files.map((f) => [f.path, f.sha256]),
      [["/usr/bin/app", sha256(ELF)]],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a layout that holds only referrers has no image", async () => {
  const dir = await mkdtemp(join(tmpdir(), "stella-layout-ref-"));
  try {
    const image = await buildImage([{ items: [{ path: "app", data: ELF }], compression: "none" }]);
    const extra = new Map<string, Buffer>();
    const sig = referrer(image.manifest, "application/vnd.stella.test+json", "signature", extra);
    writeFiles(dir, ociLayoutFiles([image], [sig.desc], extra));
    await assert.rejects(openArtifact(dir), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /lists no images/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
