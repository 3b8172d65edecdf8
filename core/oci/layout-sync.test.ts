// pushLayout / pullToLayout against a real registry (Debian docker-registry = distribution 2.8), cross-checked with
// skopeo (an independent OCI implementation) and with openArtifact; images made of real Debian package files.
import assert from "node:assert/strict";
import { readFile, mkdtemp, rm, stat, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { openArtifact } from "../artifacts/artifact.ts";
import { isStellaError } from "../errors.ts";
import { buildDebianImage } from "../testing/debian-image.ts";
import {
  blobPath,
  countingFetch,
  startRegistry,
  type TestRegistry,
  testClient,
} from "../testing/registry.ts";
import { run } from "../testing/run.ts";
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, RegistryClient, sha256Digest } from "./client.ts";
import { layoutBlobPath, pullToLayout, pushLayout, readLayoutReferrers } from "./layout-sync.ts";

async function filesOf(dir: string): Promise<string[][]> {
  const a = await openArtifact(dir);
  return a.files.map((f) => [f.path, f.sha256]);
}

async function skopeo(args: string[]): Promise<string> {
  const r = await run("skopeo", args);
  assert.equal(r.code, 0, `skopeo ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

describe("layout sync against docker-registry", () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  let work: string;
  let src: string;
  let srcDigest: string;
  const log: string[] = [];

  before(async () => {
    reg = await startRegistry();
    client = testClient(reg.host, { fetch: countingFetch(log) });
    work = await mkdtemp(join(tmpdir(), "stella-layout-sync-"));
    src = join(work, "src");
    const built = await buildDebianImage(src, { packages: ["coreutils"], tag: "v1" });
    // Re-store the manifest pretty-printed: pushLayout must push the stored bytes, not a re-serialisation.
    const compact = await readFile(layoutBlobPath(src, built.digest), "utf8");
    const pretty = Buffer.from(JSON.stringify(JSON.parse(compact), null, 2) + "\n");
    srcDigest = sha256Digest(pretty);
    await writeFile(layoutBlobPath(src, srcDigest), pretty);
    const index = JSON.parse(await readFile(join(src, "index.json"), "utf8")) as {
      manifests: { digest: string; size: number }[];
    };
    const entry = index.manifests[0];
    assert.ok(entry !== undefined);
    entry.digest = srcDigest;
    entry.size = pretty.length;
    await writeFile(join(src, "index.json"), JSON.stringify(index));
  });
  after(async () => {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  });

  test("pushLayout: skopeo reads the same manifest bytes; skopeo's copy back opens to the same ELF files", async () => {
    const progress: number[][] = [];
    const pushed = await pushLayout(client, src, "stella/coreutils", "v1", {
      onProgress: (d, t) => progress.push([d, t]),
    });
    assert.equal(pushed.digest, srcDigest);
    assert.equal(pushed.mediaType, MEDIA_TYPE_OCI_MANIFEST);
    const stored = await readFile(layoutBlobPath(src, srcDigest));
    const raw = await skopeo([
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/stella/coreutils:v1`,
    ]);
    assert.equal(raw, stored.toString("utf8"));
    assert.equal(sha256Digest(Buffer.from(raw)), srcDigest);
    assert.equal(pushed.size, stored.length);
    const last = progress.at(-1);
    assert.ok(last !== undefined);
    const [done, total] = last as [number, number];
    assert.ok(done === total && total > stored.length, `progress ${String(done)}/${String(total)}`);

    const back = join(work, "skopeo-back");
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      `docker://${reg.host}/stella/coreutils:v1`,
      `oci:${back}:v1`,
    ]);
    const orig = await filesOf(src);
    assert.ok(orig.length > 50, `coreutils has many ELF files, got ${String(orig.length)}`);
    assert.deepEqual(await filesOf(back), orig);
    assert.equal((await openArtifact(back)).digest, srcDigest);

    // Pushing again under another tag uploads no blob (the registry has them all).
    log.length = 0;
    await pushLayout(client, src, "stella/coreutils", "v2");
    assert.deepEqual(
      log.filter((l) => l.startsWith("POST") || l.startsWith("PATCH")),
      [],
    );
  });

  test("pushLayout refuses a layout blob whose content does not match its digest, before uploading it", async () => {
    const bad = join(work, "bad-src");
    const built = await buildDebianImage(bad, { packages: ["libacl1"], tag: "v1" });
    const manifest = JSON.parse(await readFile(layoutBlobPath(bad, built.digest), "utf8")) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]?.digest ?? "";
    const path = layoutBlobPath(bad, layer);
    const bytes = await readFile(path);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    log.length = 0;
    await assert.rejects(pushLayout(client, bad, "stella/bad", "v1"), (err: unknown) => {
      assert.ok(isStellaError(err, "OCI_DIGEST_MISMATCH"), String(err));
      assert.ok(err.message.includes(layer), err.message);
      return true;
    });
    // The good config blob may go up first; the corrupt bytes never do (under any digest), nor the manifest.
    const uploaded = log
      .filter((l) => l.startsWith("PUT"))
      .map((l) => new URL(l.slice(4), "http://x").searchParams.get("digest"));
    assert.deepEqual(uploaded, [manifest.config.digest]);
    assert.equal(await client.blobExists("stella/bad", layer), false);
  });

  test("pullToLayout of a skopeo-pushed image gives the source's files; a corrupted registry blob is refused", async () => {
    const built = await buildDebianImage(join(work, "libssl"), {
      packages: ["libssl3", "libacl1"],
      tag: "s1",
    });
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${join(work, "libssl")}:s1`,
      `docker://${reg.host}/stella/ssl:s1`,
    ]);
    const out = join(work, "pulled");
    const r = await pullToLayout(client, "stella/ssl", "s1", out);
    assert.deepEqual(r.referrers, []);
    assert.deepEqual(await filesOf(out), await filesOf(join(work, "libssl")));
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]?.digest, r.digest);
    assert.equal(index.manifests[0]?.annotations?.["org.opencontainers.image.ref.name"], "s1");
    const marker = JSON.parse(await readFile(join(out, "oci-layout"), "utf8")) as {
      imageLayoutVersion: string;
    };
    assert.equal(marker.imageLayoutVersion, "1.0.0");
    // skopeo agrees it is a valid layout
    const raw = await skopeo(["inspect", "--raw", `oci:${out}:s1`]);
    assert.equal(sha256Digest(Buffer.from(raw)), r.digest);
    // no temp files left behind
    const names = await readdir(join(out, "blobs", "sha256"));
    assert.deepEqual(
      names.filter((n) => n.includes(".tmp-")),
      [],
    );
    // skopeo may rewrite the manifest but the files are the same; the image is the one skopeo pushed
    assert.ok(built.elfFiles > 3);

    // Corrupt the (largest) layer in the registry's storage: same length, one byte changed.
    const manifest = JSON.parse(raw) as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0]?.digest ?? "";
    const data = blobPath(reg.root, layer);
    const bytes = await readFile(data);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x01;
    await writeFile(data, bytes);
    const out2 = join(work, "pulled-corrupt");
    await assert.rejects(pullToLayout(client, "stella/ssl", "s1", out2), (err: unknown) => {
      assert.ok(isStellaError(err, "OCI_DIGEST_MISMATCH"), String(err));
      assert.ok(err.message.includes(layer), err.message);
      return true;
    });
    // nothing lists the image, and the bad blob was not written
    await assert.rejects(stat(join(out2, "index.json")));
    await assert.rejects(stat(layoutBlobPath(out2, layer)));
  });

  test("pullToLayout of a multi-platform index pulls linux/amd64 and keeps the index blob", async () => {
    const amd = join(work, "amd");
    const amdImage = await buildDebianImage(amd, { packages: ["libacl1"], tag: "x" });
    await pushLayout(client, amd, "stella/multi", "amd64");
    const amdManifest = await client.pullManifest("stella/multi", amdImage.digest);
    const arm = join(work, "arm");
    const armImage = await buildDebianImage(arm, { packages: ["libattr1"], tag: "x" });
    await pushLayout(client, arm, "stella/multi", "arm64-but-really-amd64-bytes");
    const armManifest = await client.pullManifest("stella/multi", armImage.digest);
    const index = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_INDEX,
        manifests: [
          {
            mediaType: MEDIA_TYPE_OCI_MANIFEST,
            digest: armImage.digest,
            size: armManifest.bytes.length,
            platform: { os: "linux", architecture: "arm64" },
          },
          {
            mediaType: MEDIA_TYPE_OCI_MANIFEST,
            digest: amdImage.digest,
            size: amdManifest.bytes.length,
            platform: { os: "linux", architecture: "amd64" },
          },
        ],
      }),
    );
    const indexDigest = await client.pushManifest("stella/multi", "multi", index, MEDIA_TYPE_OCI_INDEX);
    const out = join(work, "multi");
    const r = await pullToLayout(client, "stella/multi", "multi", out);
    assert.equal(r.digest, amdImage.digest);
    assert.equal(r.indexDigest, indexDigest);
    assert.deepEqual(await filesOf(out), await filesOf(amd));
    assert.equal((await stat(layoutBlobPath(out, indexDigest))).size, index.length);
  });

  test("pullToLayout adds to an existing layout (Docker v2s2 image too); a layout of two images needs a ref", async () => {
    // skopeo converts to a Docker schema 2 manifest on the way in
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      "--format",
      "v2s2",
      `oci:${src}:v1`,
      `docker://${reg.host}/stella/docker:d1`,
    ]);
    const out = join(work, "two");
    const first = await pullToLayout(client, "stella/docker", "d1", out);
    const docker = await client.pullManifest("stella/docker", "d1");
    assert.equal(docker.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    assert.equal(first.digest, docker.digest);
    await pushLayout(client, src, "stella/oci", "v1");
    const second = await pullToLayout(client, "stella/oci", "v1", out);
    assert.equal(second.digest, srcDigest);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[];
    };
    assert.deepEqual(
      index.manifests.map((m) => [
        m.annotations?.["org.opencontainers.image.ref.name"],
        m.digest,
        m.mediaType,
      ]),
      [
        ["d1", first.digest, docker.mediaType],
        ["v1", srcDigest, MEDIA_TYPE_OCI_MANIFEST],
      ],
    );
    // both images are linux/amd64: openArtifact cannot choose, nor can pushLayout without a ref
    await assert.rejects(openArtifact(out), /2 images for linux\/amd64/);
    await assert.rejects(pushLayout(client, out, "stella/x", "t"), (err: unknown) =>
      isStellaError(err, "OCI_AMBIGUOUS"),
    );
    // by ref, each pushes back to the same digest, and opens to the source's files
    assert.equal((await pushLayout(client, out, "stella/again", "d1", { ref: "d1" })).digest, first.digest);
    assert.equal((await pushLayout(client, out, "stella/again", "v1", { ref: "v1" })).digest, srcDigest);
    // pulling the same tag again replaces its entry rather than adding one
    await pullToLayout(client, "stella/oci", "v1", out);
    const again = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: unknown[] };
    assert.equal(again.manifests.length, 2);
    // the Docker-format pull holds the same files as the OCI source
    const dockerOnly = join(work, "docker-only");
    await pullToLayout(client, "stella/docker", "d1", dockerOnly);
    assert.deepEqual(await filesOf(dockerOnly), await filesOf(src));
  });

  test("readLayoutReferrers: empty for a layout without referrers; bad digests are refused", async () => {
    assert.deepEqual(await readLayoutReferrers(src, srcDigest), []);
    await assert.rejects(readLayoutReferrers(src, "sha256:../../etc"), (err: unknown) =>
      isStellaError(err, "OCI_INVALID"),
    );
  });
});

describe("buildDebianImage", () => {
  test("is deterministic, and mutate changes exactly one file's sha256", async () => {
    const work = await mkdtemp(join(tmpdir(), "stella-debimg-"));
    try {
      const a = await buildDebianImage(join(work, "a"), { packages: ["coreutils", "libacl1"], tag: "t" });
      const b = await buildDebianImage(join(work, "b"), { packages: ["coreutils", "libacl1"], tag: "t" });
      assert.equal(a.digest, b.digest);
      assert.ok(a.elfFiles > 50 && a.files >= a.elfFiles, JSON.stringify(a));
      let mutated = 0;
      const c = await buildDebianImage(join(work, "c"), {
        packages: ["coreutils", "libacl1"],
        tag: "t",
        mutate: (path, data) => {
          if (path !== "/usr/bin/ls") return undefined;
          mutated++;
          const copy = Buffer.from(data);
          copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0xff;
          return copy;
        },
      });
      assert.equal(mutated, 1);
      assert.notEqual(c.digest, a.digest);
      const fa = new Map(await filesOf(join(work, "a")).then((l) => l.map(([p, h]) => [p, h] as const)));
      const fc = new Map(await filesOf(join(work, "c")).then((l) => l.map(([p, h]) => [p, h] as const)));
      assert.deepEqual([...fa.keys()], [...fc.keys()]);
      const changed = [...fa.keys()].filter((p) => fa.get(p) !== fc.get(p));
      assert.deepEqual(changed, ["/usr/bin/ls"]);
      const sum = (await run("sha256sum", ["/usr/bin/ls"])).stdout.split(" ")[0];
      assert.equal(fa.get("/usr/bin/ls"), sum);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
