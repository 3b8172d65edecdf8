// Against a real registry process (Debian docker-registry = distribution 2.8): apt-get install docker-registry
// apache2-utils skopeo. The Bearer token dance runs against a node:http front proxying to that registry.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";

import { isStellaError } from "../errors.ts";
import {
  blobPath,
  startBearerFront,
  countingFetch,
  startRegistry,
  type TestRegistry,
  testClient,
} from "../testing/registry.ts";
import { run } from "../testing/run.ts";
import {
  EMPTY_DESCRIPTOR,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  RegistryClient,
  referrersTag,
  sha256Digest,
  type Descriptor,
} from "./client.ts";

const enc = new TextEncoder();

interface Image {
  manifest: Uint8Array;
  digest: string;
  descriptor: Descriptor;
  layer: Uint8Array;
  layerDigest: string;
}

/** A small runnable-shaped OCI image: one gzip'd tar layer (a single file) and an image config. */
async function pushImage(c: RegistryClient, repo: string, tag: string, content: string): Promise<Image> {
  const tar = makeTar("hello.txt", enc.encode(content));
  const layer = new Uint8Array(gzipSync(tar, { level: 9 }));
  const layerDesc = await c.pushBlob(repo, layer, "application/vnd.oci.image.layer.v1.tar+gzip");
  const config = enc.encode(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [sha256Digest(tar)] },
      config: {},
    }),
  );
  const configDesc = await c.pushBlob(repo, config, "application/vnd.oci.image.config.v1+json");
  const manifest = enc.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: configDesc,
      layers: [layerDesc],
    }),
  );
  const digest = await c.pushManifest(repo, tag, manifest, MEDIA_TYPE_OCI_MANIFEST);
  return {
    manifest,
    digest,
    descriptor: { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest, size: manifest.length },
    layer,
    layerDigest: layerDesc.digest,
  };
}

/** ustar with one regular file. */
function makeTar(name: string, data: Uint8Array): Uint8Array {
  const header = new Uint8Array(512);
  const put = (s: string, off: number): void => {
    header.set(enc.encode(s), off);
  };
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(data.length.toString(8).padStart(11, "0") + "\0", 124);
  put("00000000000\0", 136);
  put("        ", 148);
  put("0", 156);
  put("ustar\0", 257);
  put("00", 263);
  let sum = 0;
  for (const b of header) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const padded = Math.ceil(data.length / 512) * 512;
  const out = new Uint8Array(512 + padded + 1024);
  out.set(header, 0);
  out.set(data, 512);
  return out;
}

function assertCode(code: string, ...mustInclude: string[]): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
    for (const s of mustInclude) assert.ok(err.message.includes(s), `message lacks ${s}: ${err.message}`);
    return true;
  };
}

describe("RegistryClient against docker-registry (distribution 2.8)", () => {
  let reg: TestRegistry;
  let client: RegistryClient;
  const log: string[] = [];

  before(async () => {
    reg = await startRegistry();
    client = testClient(reg.host, { fetch: countingFetch(log) });
  });
  after(async () => {
    await reg.stop();
  });

  test("push blob + manifest, pull back with digests verified; existing blob is not uploaded again", async () => {
    const img = await pushImage(client, "stella/app", "v1", "hello world\n");
    assert.equal(img.digest, sha256Digest(img.manifest));
    const pulled = await client.pullManifest("stella/app", "v1");
    assert.equal(pulled.mediaType, MEDIA_TYPE_OCI_MANIFEST);
    assert.equal(pulled.digest, img.digest);
    assert.deepEqual(pulled.bytes, img.manifest);
    const layer = await client.pullBlob("stella/app", img.layerDigest, { maxBytes: 1 << 20 });
    assert.deepEqual(layer, img.layer);
    assert.equal(await client.blobExists("stella/app", img.layerDigest), true);
    assert.equal(await client.blobExists("stella/app", sha256Digest(enc.encode("absent"))), false);

    log.length = 0;
    const again = await client.pushBlob(
      "stella/app",
      img.layer,
      "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    assert.equal(again.digest, img.layerDigest);
    assert.deepEqual(log, [`HEAD /v2/stella/app/blobs/${img.layerDigest}`]);
  });

  test("a manifest by digest; an unknown digest is OCI_NOT_FOUND naming it", async () => {
    const img = await pushImage(client, "stella/bydigest", "t", "by digest\n");
    const pulled = await client.pullManifest("stella/bydigest", img.digest);
    assert.equal(pulled.digest, img.digest);
    assert.deepEqual(pulled.bytes, img.manifest);
    const missing = sha256Digest(enc.encode("nope"));
    await assert.rejects(
      client.pullManifest("stella/bydigest", missing),
      assertCode("OCI_NOT_FOUND", missing),
    );
  });

  test("tags list; delete by digest removes the tag", async () => {
    await pushImage(client, "stella/tags", "b", "1");
    await pushImage(client, "stella/tags", "a", "2");
    const c = await pushImage(client, "stella/tags", "c", "3");
    assert.deepEqual((await client.listTags("stella/tags")).sort(), ["a", "b", "c"]);
    await client.deleteManifest("stella/tags", c.digest);
    assert.deepEqual((await client.listTags("stella/tags")).sort(), ["a", "b"]);
    await assert.rejects(client.pullManifest("stella/tags", "c"), assertCode("OCI_NOT_FOUND", "stella/tags"));
    await assert.rejects(client.listTags("stella/none"), assertCode("OCI_NOT_FOUND", "stella/none"));
  });

  test("skopeo reads a manifest the client pushed, byte for byte, and copies its blobs", async () => {
    const img = await pushImage(client, "stella/skopeo", "x", "for skopeo\n");
    const raw = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/stella/skopeo:x`,
    ]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha256Digest(enc.encode(raw.stdout)), img.digest);
    const dir = await mkdtemp(join(tmpdir(), "stella-skopeo-"));
    try {
      const cp = await run("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${reg.host}/stella/skopeo:x`,
        `oci:${dir}:x`,
      ]);
      assert.equal(cp.code, 0, cp.stderr);
      // and back the other way under a new name: the client then reads what skopeo pushed
      const back = await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        `oci:${dir}:x`,
        `docker://${reg.host}/stella/from-skopeo:y`,
      ]);
      assert.equal(back.code, 0, back.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const m = await client.pullManifest("stella/from-skopeo", "y");
    const parsed = JSON.parse(new TextDecoder().decode(m.bytes)) as { layers: Descriptor[] };
    const layer = parsed.layers[0];
    assert.ok(layer !== undefined);
    assert.equal(layer.digest, img.layerDigest);
    assert.deepEqual(
      await client.pullBlob("stella/from-skopeo", layer.digest, { maxBytes: 1 << 20 }),
      img.layer,
    );
  });

  test("referrers: two artifacts attached, listed via the tag-schema fallback, filtered by artifactType; re-attach is idempotent", async () => {
    const repo = "stella/refs";
    const img = await pushImage(client, repo, "v1", "subject image\n");

    // No referrers yet: the fallback answers an empty list, and says it was the fallback.
    const none = await client.referrers(repo, img.digest);
    assert.deepEqual(none, { manifests: [], source: "tag-schema" });

    const sbom = await client.attachReferrer(repo, img.descriptor, {
      artifactType: "application/spdx+json",
      blobs: [{ mediaType: "application/spdx+json", bytes: enc.encode('{"spdxVersion":"SPDX-2.3"}') }],
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
    });
    assert.equal(sbom.referrersApi, false, "distribution 2.8 has no referrers API: no OCI-Subject header");
    assert.equal(sbom.fallbackTagUpdated, true);
    const sig = await client.attachReferrer(repo, img.descriptor, {
      artifactType: "application/vnd.dev.stella.funcproof+json",
    });
    assert.equal(sig.referrersApi, false);

    const all = await client.referrers(repo, img.digest);
    assert.equal(all.source, "tag-schema");
    assert.deepEqual(
      all.manifests.map((d) => d.digest),
      [sbom.descriptor.digest, sig.descriptor.digest].sort(),
    );
    const bySbom = all.manifests.find((d) => d.digest === sbom.descriptor.digest);
    assert.equal(bySbom?.artifactType, "application/spdx+json");
    assert.deepEqual(bySbom.annotations, { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" });

    const filtered = await client.referrers(repo, img.digest, { artifactType: "application/spdx+json" });
    assert.deepEqual(filtered.manifests, [sbom.descriptor]);

    // The pushed artifact is an OCI 1.1 artifact manifest: subject, artifactType, empty config when none given.
    const art = await client.pullManifest(repo, sig.descriptor.digest);
    const am = JSON.parse(new TextDecoder().decode(art.bytes)) as Record<string, unknown>;
    assert.equal(am.artifactType, "application/vnd.dev.stella.funcproof+json");
    assert.deepEqual(am.subject, img.descriptor);
    assert.deepEqual(am.config, { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_DESCRIPTOR.digest, size: 2 });
    assert.deepEqual(am.layers, [EMPTY_DESCRIPTOR]);
    assert.deepEqual(await client.pullBlob(repo, EMPTY_DESCRIPTOR.digest, { maxBytes: 2 }), enc.encode("{}"));

    // Fallback tag holds an image index with both, sorted by digest.
    const tagIndex = await client.pullManifest(repo, referrersTag(img.digest), [MEDIA_TYPE_OCI_INDEX]);
    assert.equal(tagIndex.mediaType, MEDIA_TYPE_OCI_INDEX);
    assert.ok((await client.listTags(repo)).includes(`sha256-${img.digest.slice(7)}`));

    // Re-attach: same manifest digest, no index rewrite, still two entries.
    const again = await client.attachReferrer(repo, img.descriptor, {
      artifactType: "application/vnd.dev.stella.funcproof+json",
    });
    assert.equal(again.descriptor.digest, sig.descriptor.digest);
    assert.equal(again.fallbackTagUpdated, false);
    const after2 = await client.pullManifest(repo, referrersTag(img.digest), [MEDIA_TYPE_OCI_INDEX]);
    assert.equal(after2.digest, tagIndex.digest);
    assert.equal((await client.referrers(repo, img.digest)).manifests.length, 2);
  });

  test("a blob corrupted in the registry's storage: pullBlob refuses, naming both digests", async () => {
    const repo = "stella/corrupt";
    const data = enc.encode("precious evidence bytes ".repeat(100));
    const desc = await client.pushBlob(repo, data);
    const file = blobPath(reg.root, desc.digest);
    const onDisk = await readFile(file);
    assert.deepEqual(new Uint8Array(onDisk), data, "blob file located in storage");
    onDisk[100] = (onDisk[100] ?? 0) ^ 0x01;
    await writeFile(file, onDisk);
    const corrupted = sha256Digest(new Uint8Array(onDisk));
    await assert.rejects(
      client.pullBlob(repo, desc.digest, { maxBytes: 1 << 20 }),
      assertCode("OCI_DIGEST_MISMATCH", desc.digest, corrupted, repo),
    );
  });

  test("a manifest corrupted in storage: pullManifest by tag and by digest refuses", async () => {
    const repo = "stella/corrupt-manifest";
    const img = await pushImage(client, repo, "v1", "manifest to corrupt\n");
    const file = blobPath(reg.root, img.digest);
    const onDisk = new Uint8Array(await readFile(file));
    // change the layer's size digit in place: still a valid manifest the registry serves, but other bytes
    const text = new TextDecoder().decode(onDisk);
    const tampered = text.replace(
      /"size":(\d+)}\]/,
      (_m, n: string) => `"size":${String((Number(n) % 9) + 1)}${n.slice(1)}}]`,
    );
    assert.notEqual(tampered, text);
    assert.equal(tampered.length, text.length);
    await writeFile(file, tampered);
    const served = sha256Digest(enc.encode(tampered));
    // by tag: Docker-Content-Digest (the registry's link) against the content
    await assert.rejects(
      client.pullManifest(repo, "v1"),
      assertCode("OCI_DIGEST_MISMATCH", img.digest, served, repo),
    );
    // by digest: the reference against the content
    await assert.rejects(
      client.pullManifest(repo, img.digest),
      assertCode("OCI_DIGEST_MISMATCH", img.digest, served, repo),
    );
  });

  test("chunked upload: PATCH chunks with Content-Range, then PUT ?digest=; the registry stores the same bytes", async () => {
    const repo = "stella/chunked";
    const data = new Uint8Array(4500);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    log.length = 0;
    const desc = await client.pushBlob(repo, data, "application/octet-stream", { chunkSize: 1000 });
    assert.equal(log.filter((l) => l.startsWith("PATCH ")).length, 5, log.join("\n"));
    assert.equal(log.filter((l) => l.startsWith("PUT ")).length, 1);
    assert.deepEqual(new Uint8Array(await readFile(blobPath(reg.root, desc.digest))), data);
    assert.deepEqual(await client.pullBlob(repo, desc.digest, { maxBytes: 4500 }), data);
  });

  test("size limits: maxBytes on blobs, 4 MiB on manifests", async () => {
    const desc = await client.pushBlob("stella/limits", new Uint8Array(5000).fill(7));
    await assert.rejects(
      client.pullBlob("stella/limits", desc.digest, { maxBytes: 4999 }),
      assertCode("OCI_TOO_LARGE", "maxBytes", "4999", desc.digest),
    );
    const big = new Uint8Array(4 * 1024 * 1024 + 1).fill(0x20);
    await assert.rejects(
      client.pushManifest("stella/limits", "big", big, MEDIA_TYPE_OCI_MANIFEST),
      assertCode("OCI_TOO_LARGE", "maxManifestBytes", String(4 * 1024 * 1024)),
    );
    const small = testClient(reg.host, { maxManifestBytes: 100 });
    const img = await pushImage(client, "stella/limits", "m", "x");
    await assert.rejects(small.pullManifest("stella/limits", img.digest), assertCode("OCI_TOO_LARGE", "100"));
  });
});

/**
 * distribution 2.8 has no referrers API, so this wraps fetch around the real registry to add what a 1.1 registry
 * does: `OCI-Subject` on a manifest PUT with a subject, and `GET /v2/<name>/referrers/<digest>` answering an index.
 * It is the only simulated registry behaviour in this file.
 */
function referrersApiFetch(): typeof fetch {
  const bySubject = new Map<string, Descriptor[]>();
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const ref = /^\/v2\/(.+)\/referrers\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (ref !== null && (init?.method ?? "GET") === "GET") {
      const want = url.searchParams.get("artifactType");
      const list = (bySubject.get(ref[2] ?? "") ?? []).filter(
        (d) => want === null || d.artifactType === want,
      );
      const headers: Record<string, string> = { "content-type": MEDIA_TYPE_OCI_INDEX };
      if (want !== null) headers["oci-filters-applied"] = "artifactType";
      return new Response(
        JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: list }),
        {
          status: 200,
          headers,
        },
      );
    }
    const res = await fetch(input, init);
    if (init?.method === "PUT" && url.pathname.includes("/manifests/") && init.body instanceof Uint8Array) {
      const m = JSON.parse(new TextDecoder().decode(init.body)) as {
        subject?: Descriptor;
        artifactType?: string;
        annotations?: Record<string, string>;
      };
      if (m.subject !== undefined && res.status === 201) {
        const d: Descriptor = {
          mediaType: MEDIA_TYPE_OCI_MANIFEST,
          digest: sha256Digest(init.body),
          size: init.body.length,
        };
        if (m.artifactType !== undefined) d.artifactType = m.artifactType;
        if (m.annotations !== undefined) d.annotations = m.annotations;
        const list = bySubject.get(m.subject.digest) ?? [];
        if (!list.some((x) => x.digest === d.digest)) list.push(d);
        bySubject.set(m.subject.digest, list);
        const headers = new Headers(res.headers);
        headers.set("oci-subject", m.subject.digest);
        return new Response(res.body, { status: res.status, headers });
      }
    }
    return res;
  };
}

test("referrers API (simulated on top of the real registry): used when present, no fallback tag written", async () => {
  const reg = await startRegistry();
  try {
    const c = testClient(reg.host, { fetch: referrersApiFetch() });
    const repo = "stella/api";
    const img = await pushImage(c, repo, "v1", "api subject\n");
    const a = await c.attachReferrer(repo, img.descriptor, { artifactType: "application/x.a" });
    const b = await c.attachReferrer(repo, img.descriptor, { artifactType: "application/x.b" });
    assert.equal(a.referrersApi, true);
    assert.equal(a.fallbackTagUpdated, false);
    const all = await c.referrers(repo, img.digest);
    assert.equal(all.source, "api");
    assert.deepEqual(
      all.manifests.map((d) => d.digest).sort(),
      [a.descriptor.digest, b.descriptor.digest].sort(),
    );
    const onlyB = await c.referrers(repo, img.digest, { artifactType: "application/x.b" });
    assert.deepEqual(onlyB, { manifests: [b.descriptor], source: "api" });
    assert.deepEqual(await c.listTags(repo), ["v1"], "no referrers tag when the API is there");
  } finally {
    await reg.stop();
  }
});

describe("auth", () => {
  const creds = { username: "stella", password: "s3cret-pw" };
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ basicAuth: creds });
  });
  after(async () => {
    await reg.stop();
  });

  test("Basic auth against the registry's htpasswd; wrong password is OCI_AUTH", async () => {
    const c = testClient(reg.host, { auth: creds });
    const img = await pushImage(c, "stella/basic", "v1", "basic\n");
    assert.equal((await c.pullManifest("stella/basic", "v1")).digest, img.digest);
    const anon = testClient(reg.host);
    await assert.rejects(anon.pullManifest("stella/basic", "v1"), assertCode("OCI_AUTH", "401", reg.host));
    const wrong = testClient(reg.host, { auth: { username: "stella", password: "wrong" } });
    await assert.rejects(wrong.pullManifest("stella/basic", "v1"), assertCode("OCI_AUTH", "401"));
  });

  test("Bearer: challenge → token (Basic creds at the realm) → retry; tokens cached per scope", async () => {
    const upstream = await startRegistry();
    const front = await startBearerFront(upstream, creds);
    try {
      const c = testClient(front.host, { auth: creds });
      const img = await pushImage(c, "stella/bearer", "v1", "bearer\n");
      assert.equal((await c.pullManifest("stella/bearer", "v1")).digest, img.digest);
      assert.deepEqual(await c.pullBlob("stella/bearer", img.layerDigest, { maxBytes: 1 << 20 }), img.layer);
      // one token per scope: pull (HEAD blob) and pull,push (upload) — then reused from the cache
      const scopes = front.tokenRequests.map((s) => s[0]);
      assert.deepEqual([...new Set(scopes)].sort(), [
        "repository:stella/bearer:pull",
        "repository:stella/bearer:pull,push",
      ]);
      assert.equal(front.tokenRequests.length, 2, JSON.stringify(front.tokenRequests));

      const wrong = testClient(front.host, { auth: { username: "stella", password: "nope" } });
      await assert.rejects(wrong.pullManifest("stella/bearer", "v1"), assertCode("OCI_AUTH", "token", "401"));
      // anonymous: the client still asks the realm (as for public repositories); this realm refuses anonymous tokens
      const anon = testClient(front.host);
      const before = front.tokenRequests.length;
      await assert.rejects(anon.pullManifest("stella/bearer", "v1"), assertCode("OCI_AUTH", "token", "401"));
      assert.equal(front.tokenRequests.length, before + 1);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });
});

test("timeouts: a registry that never answers is OCI_TIMEOUT naming the registry", async () => {
  const server = createServer(() => {
    // never respond
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve();
    });
  });
  const addr = server.address();
  const host = `127.0.0.1:${String(typeof addr === "object" && addr !== null ? addr.port : 0)}`;
  try {
    const c = testClient(host, { timeoutMs: 300 });
    await assert.rejects(c.pullManifest("a/b", "v1"), assertCode("OCI_TIMEOUT", host, "300 ms"));
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  }
});
