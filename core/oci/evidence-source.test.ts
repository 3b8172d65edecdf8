// registrySource and layoutSource (after exportImage) answer alike, against a real registry (docker-registry 2.8,
// which has no referrers API: the referrers tag schema is used); every manifest and blob is digest-checked.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { openArtifact } from "../artifacts/artifact.ts";
import { isStellaError } from "../errors.ts";
import { buildDebianImage } from "../testing/debian-image.ts";
import { blobPath, startRegistry, type TestRegistry, testClient } from "../testing/registry.ts";
import { run } from "../testing/run.ts";
import { MEDIA_TYPE_OCI_MANIFEST, RegistryClient, sha256Digest } from "./client.ts";
import { exportImage, layoutSource, registrySource, type EvidenceSource } from "./evidence-source.ts";
import { layoutBlobPath, pushLayout, readLayoutReferrers } from "./layout-sync.ts";

const enc = new TextEncoder();
const SIG_TYPE = "application/vnd.stellaops.test.signature+json";
const FP_TYPE = "application/vnd.stellaops.funcproof+json";

function rejectsNaming(p: Promise<unknown>, code: string, digest: string): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(isStellaError(err, code), String(err));
    assert.ok(err.message.includes(digest), err.message);
    return true;
  });
}

describe("evidence sources against docker-registry", () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  let work: string;
  let imageDigest: string;
  let exported: string;
  const repo = "stella/evidence";
  const payload = enc.encode('{"funcproof":"payload"}');
  let sigDigest: string;
  let fpDigest: string;
  let exportResult: { digest: string; referrers: number; bytes: number };

  before(async () => {
    reg = await startRegistry();
    client = testClient(reg.host);
    work = await mkdtemp(join(tmpdir(), "stella-evsrc-"));
    const src = join(work, "src");
    await buildDebianImage(src, { packages: ["libacl1", "libattr1"], tag: "v1" });
    const pushed = await pushLayout(client, src, repo, "v1");
    imageDigest = pushed.digest;
    const subject = { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size };
    const sig = await client.attachReferrer(repo, subject, {
      artifactType: SIG_TYPE,
      blobs: [{ mediaType: "application/octet-stream", bytes: enc.encode("signature bytes") }],
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
    });
    const fp = await client.attachReferrer(repo, subject, {
      artifactType: FP_TYPE,
      blobs: [{ mediaType: FP_TYPE, bytes: payload }],
    });
    sigDigest = sig.descriptor.digest;
    fpDigest = fp.descriptor.digest;
    exported = join(work, "export");
    exportResult = await exportImage(client, repo, "v1", exported);
  });
  after(async () => {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  });

  test("exportImage → layoutSource answers like registrySource; openArtifact still opens the image", async () => {
    const r = exportResult;
    assert.equal(r.digest, imageDigest);
    assert.equal(r.referrers, 2);
    assert.ok(r.bytes > 1000);
    const online = await registrySource(client, repo, "v1");
    const offline = await layoutSource(exported);
    assert.equal(online.imageDigest, imageDigest);
    assert.equal(offline.imageDigest, imageDigest);
    assert.equal(online.where, `registry ${reg.host}/${repo}`);
    assert.equal(offline.where, `layout ${exported}`);

    const on = await online.referrers();
    const off = await offline.referrers();
    assert.deepEqual(off, on);
    assert.deepEqual(
      on.map((d) => d.digest),
      [sigDigest, fpDigest].sort(),
    );
    assert.deepEqual(on.map((d) => d.artifactType).sort(), [FP_TYPE, SIG_TYPE].sort());
    assert.equal(
      off.find((d) => d.digest === sigDigest)?.annotations?.["org.opencontainers.image.created"],
      "2026-01-01T00:00:00Z",
    );
    for (const s of [online, offline]) {
      const only = await s.referrers({ artifactType: FP_TYPE });
      assert.deepEqual(
        only.map((d) => d.digest),
        [fpDigest],
      );
      assert.deepEqual(await s.referrers({ artifactType: "application/x-none" }), []);
    }

    // The same manifest and payload bytes through both sources.
    for (const s of [online, offline]) {
      const m = await s.manifest(fpDigest);
      assert.equal(sha256Digest(m), fpDigest);
      const doc = JSON.parse(new TextDecoder().decode(m)) as {
        subject: { digest: string };
        layers: { digest: string }[];
      };
      assert.equal(doc.subject.digest, imageDigest);
      const layer = doc.layers[0]?.digest ?? "";
      assert.deepEqual(await s.blob(layer, 1024), payload);
      await assert.rejects(s.blob(layer, 5), (err: unknown) => isStellaError(err, "OCI_TOO_LARGE"));
      await assert.rejects(s.blob("sha256:../../x", 5), (err: unknown) => isStellaError(err, "OCI_INVALID"));
    }

    // openArtifact of the exported layout selects the image (not a referrer), same files as the registry's pull.
    const a = await openArtifact(exported);
    assert.equal(a.digest, imageDigest);
    assert.ok(a.files.length >= 2);
    const viaRegistry = await online.layoutDir();
    assert.equal(await online.layoutDir(), viaRegistry, "pulled once");
    const b = await openArtifact(viaRegistry);
    assert.deepEqual(
      b.files.map((f) => [f.path, f.sha256]),
      a.files.map((f) => [f.path, f.sha256]),
    );
    await online.close();
    await assert.rejects(stat(viaRegistry));

    // skopeo reads the exported layout too
    const raw = await run("skopeo", ["inspect", "--raw", `oci:${exported}:v1`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha256Digest(enc.encode(raw.stdout)), imageDigest);
  });

  test("layoutSource by ref: tag name or digest; unknown ref names what is there", async () => {
    assert.equal((await layoutSource(exported, "v1")).imageDigest, imageDigest);
    assert.equal((await layoutSource(exported, imageDigest)).imageDigest, imageDigest);
    await assert.rejects(layoutSource(exported, "v2"), (err: unknown) => {
      assert.ok(isStellaError(err, "OCI_NOT_FOUND"), String(err));
      assert.match(err.message, /"v2".*has v1/);
      return true;
    });
    // a referrer digest is not an image
    await assert.rejects(layoutSource(exported, fpDigest), (err: unknown) =>
      isStellaError(err, "OCI_NOT_FOUND"),
    );
  });

  test("a corrupted blob is refused naming its digest: in the exported layout and in the registry", async () => {
    const copy = join(work, "export-corrupt");
    await exportImage(client, repo, "v1", copy);
    const source: EvidenceSource = await layoutSource(copy);
    const m = JSON.parse(new TextDecoder().decode(await source.manifest(sigDigest))) as {
      layers: { digest: string }[];
    };
    const layer = m.layers[0]?.digest ?? "";
    await writeFile(layoutBlobPath(copy, layer), "signature bytez");
    await rejectsNaming(source.blob(layer, 1024), "OCI_DIGEST_MISMATCH", layer);
    // a corrupted referrer manifest: manifest() and referrers() both refuse it
    const mpath = layoutBlobPath(copy, fpDigest);
    const mbytes = await readFile(mpath);
    await writeFile(mpath, Buffer.from(mbytes.toString("utf8").replace("funcproof", "funcprooF")));
    await rejectsNaming(source.manifest(fpDigest), "OCI_DIGEST_MISMATCH", fpDigest);
    await rejectsNaming(source.referrers(), "OCI_DIGEST_MISMATCH", fpDigest);

    // registry side: the payload blob altered in the registry's storage
    const online = await registrySource(client, repo, "v1");
    const fp = JSON.parse(new TextDecoder().decode(await online.manifest(fpDigest))) as {
      layers: { digest: string }[];
    };
    const payloadDigest = fp.layers[0]?.digest ?? "";
    const data = blobPath(reg.root, payloadDigest);
    const orig = await readFile(data);
    await writeFile(data, Buffer.from(orig.toString("utf8").replace("payload", "pAyload")));
    try {
      await rejectsNaming(online.blob(payloadDigest, 1024), "OCI_DIGEST_MISMATCH", payloadDigest);
      // and an export now fails rather than write a layout with a bad blob
      await rejectsNaming(
        exportImage(client, repo, "v1", join(work, "export-from-bad")),
        "OCI_DIGEST_MISMATCH",
        payloadDigest,
      );
    } finally {
      await writeFile(data, orig);
    }
  });

  test("registrySource by digest resolves the same image and referrers", async () => {
    const s = await registrySource(client, repo, imageDigest);
    assert.equal(s.imageDigest, imageDigest);
    assert.equal((await s.referrers()).length, 2);
    const m = await client.pullManifest(repo, imageDigest);
    assert.equal(m.mediaType, MEDIA_TYPE_OCI_MANIFEST);
  });

  test("referrers of referrers (a signature on the funcproof) are exported too; the image's list is unchanged", async () => {
    const fpManifest = await client.pullManifest(repo, fpDigest);
    const subject = { mediaType: fpManifest.mediaType, digest: fpDigest, size: fpManifest.bytes.length };
    const nested = await client.attachReferrer(repo, subject, {
      artifactType: SIG_TYPE,
      blobs: [{ mediaType: "application/octet-stream", bytes: enc.encode("signature over the funcproof") }],
    });
    const dir = join(work, "export-nested");
    const r = await exportImage(client, repo, "v1", dir);
    assert.equal(r.referrers, 3);
    const offline = await layoutSource(dir);
    assert.deepEqual(
      (await offline.referrers()).map((d) => d.digest),
      [sigDigest, fpDigest].sort(),
    );
    const onNested = (await client.referrers(repo, fpDigest)).manifests;
    const offNested = await readLayoutReferrers(dir, fpDigest);
    assert.deepEqual(
      offNested.map((d) => [d.digest, d.artifactType]),
      onNested.map((d) => [d.digest, d.artifactType]),
    );
    assert.deepEqual(
      offNested.map((d) => d.digest),
      [nested.descriptor.digest],
    );
    const m = JSON.parse(new TextDecoder().decode(await offline.manifest(nested.descriptor.digest))) as {
      layers: { digest: string }[];
    };
    assert.equal(
      new TextDecoder().decode(await offline.blob(m.layers[0]?.digest ?? "", 100)),
      "signature over the funcproof",
    );
    // index.json lists each referrer the way oras does: with its artifactType
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
      manifests: { digest: string; artifactType?: string }[];
    };
    assert.deepEqual(
      index.manifests.filter((d) => d.artifactType !== undefined).map((d) => d.digest),
      [sigDigest, fpDigest, nested.descriptor.digest].sort(),
    );
    assert.equal((await openArtifact(dir)).digest, imageDigest);
  });
});
