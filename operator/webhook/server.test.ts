import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { X509Certificate } from "node:crypto";

import { makeTestPki } from "../../core/testing/test-pki.ts";
import type { ReviewRequest } from "./review.ts";
import { WebhookServer } from "./server.ts";

const dir = mkdtempSync(join(tmpdir(), "stella-webhook-"));
const first = join(dir, "one");
const second = join(dir, "two");
const serving = join(dir, "serving");
let server: WebhookServer;
let port = 0;
const seen: ReviewRequest[] = [];

before(async () => {
  makeTestPki(first);
  makeTestPki(second);
  makeTestPki(serving);
  copyFileSync(join(first, "server.crt"), join(serving, "server.crt"));
  copyFileSync(join(first, "server.key"), join(serving, "server.key"));
  server = new WebhookServer({
    address: "127.0.0.1:0",
    tls: { certFile: join(serving, "server.crt"), keyFile: join(serving, "server.key") },
    maxBodyBytes: 64 * 1024,
    certPollMs: 60_000,
    handle: (r) => {
      seen.push(r);
      if (r.name === "boom") throw new Error("index not ready");
      return r.name === "bad" ? { allowed: false, message: "delta_risk 0.9 > 0.3" } : { allowed: true };
    },
  });
  port = await server.start();
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** POSTs over TLS, trusting only `caDir`'s CA; resolves with status, body and the peer certificate. */
function post(
  body: string,
  caDir = first,
  path = "/validate-rollout",
  toPort = port,
): Promise<{ status: number; json: Record<string, unknown>; cert: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: toPort,
        path,
        method: "POST",
        ca: readFileSync(join(caDir, "ca.crt")),
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const cert =
            res.socket && "getPeerCertificate" in res.socket
              ? (res.socket as import("node:tls").TLSSocket).getPeerCertificate().fingerprint256
              : "";
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
            cert,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const review = (name: string): string =>
  JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `uid-${name}`,
      kind: { group: "apps", version: "v1", kind: "Deployment" },
      operation: "UPDATE",
      namespace: "shop",
      name,
      object: {},
      oldObject: {},
    },
  });

test("a review over TLS is answered with the decision, under its uid", async () => {
  const ok = await post(review("web"));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: "uid-web", allowed: true },
  });
  const no = await post(review("bad"));
  assert.deepEqual(no.json.response, {
    uid: "uid-bad",
    allowed: false,
    status: { code: 403, reason: "Forbidden", message: "delta_risk 0.9 > 0.3" },
  });
  assert.equal(seen.at(-1)?.namespace, "shop");
});

test("malformed, oversized, wrong path: refused with a status that says why; handler errors are 500", async () => {
  const bad = await post("{not json");
  assert.equal(bad.status, 400);
  assert.match(String(bad.json.error), /^AdmissionReview: body: /);
  const wrong = await post(JSON.stringify({ apiVersion: "v1", kind: "AdmissionReview" }));
  assert.equal(wrong.status, 400);
  assert.match(String(wrong.json.error), /apiVersion: v1, expected admission\.k8s\.io\/v1/);
  // The server answers 413 and drops the connection; the client may see the answer or the reset first.
  const refused = server.stats.refused;
  const handled = seen.length;
  const big = await post(JSON.stringify({ pad: "x".repeat(100 * 1024) })).catch((e: unknown) => {
    assert.match((e as NodeJS.ErrnoException).code ?? "", /^(ECONNRESET|EPIPE)$/);
    return { status: 413, json: {}, cert: "" };
  });
  assert.equal(big.status, 413);
  assert.equal(server.stats.refused, refused + 1, "counted as refused");
  assert.equal(seen.length, handled, "never reached the handler");
  assert.equal((await post(review("web"), first, "/other")).status, 404);
  const boom = await post(review("boom"));
  assert.equal(boom.status, 500);
  assert.match(String(boom.json.error), /index not ready/);
  assert.ok(server.stats.refused >= 4 && server.stats.errors === 1);
});

test("certificate rotation: after a reload new connections get the new certificate, decisions continue", async () => {
  const before = await post(review("web"), first);
  const oldFp = new X509Certificate(readFileSync(join(first, "server.crt"))).fingerprint256;
  assert.equal(before.cert, oldFp);
  copyFileSync(join(second, "server.key"), join(serving, "server.key"));
  copyFileSync(join(second, "server.crt"), join(serving, "server.crt"));
  assert.equal(server.reloadCertificate(), true);
  const afterRotation = await post(review("web"), second);
  assert.equal(afterRotation.status, 200);
  assert.equal(
    afterRotation.cert,
    new X509Certificate(readFileSync(join(second, "server.crt"))).fingerprint256,
  );
  await assert.rejects(
    post(review("web"), first),
    /self.signed|unable to verify|certificate/i,
    "the old CA no longer matches",
  );
});

test("a file-watching server refuses a bad pair on reload and keeps serving the old one", async () => {
  const current = readFileSync(join(serving, "server.crt"));
  const fp = new X509Certificate(current).fingerprint256;
  const reloads = server.stats.certReloads;
  // Key of `first`, certificate of `second`: a rotation caught half-written.
  copyFileSync(join(first, "server.key"), join(serving, "server.key"));
  assert.equal(server.reloadCertificate(), false);
  assert.equal(server.stats.certReloads, reloads);
  assert.equal((await post(review("web"), second)).cert, fp);
  copyFileSync(join(second, "server.key"), join(serving, "server.key"));
});

test("in-memory certificate: served from the start, swapped by setCertificate, a bad pair refused", async () => {
  const pem = (d: string, f: string): string => readFileSync(join(d, f), "utf8");
  const mem = new WebhookServer({
    address: "127.0.0.1:0",
    tls: { cert: pem(first, "server.crt"), key: readFileSync(join(first, "server.key")) },
    handle: () => ({ allowed: true }),
  });
  const memPort = await mem.start();
  try {
    const fp = (d: string): string => new X509Certificate(pem(d, "server.crt")).fingerprint256;
    assert.equal((await post(review("web"), first, undefined, memPort)).cert, fp(first));
    assert.equal(mem.reloadCertificate(), false, "no files to reload");
    assert.equal(
      mem.setCertificate(pem(second, "server.crt"), pem(first, "server.key")),
      false,
      "key mismatch",
    );
    assert.equal(mem.setCertificate("not a certificate", pem(first, "server.key")), false);
    assert.equal(mem.stats.certReloads, 0);
    assert.equal((await post(review("web"), first, undefined, memPort)).cert, fp(first), "old pair kept");
    assert.equal(mem.setCertificate(pem(second, "server.crt"), pem(second, "server.key")), true);
    assert.equal(mem.stats.certReloads, 1);
    const swapped = await post(review("web"), second, undefined, memPort);
    assert.equal(swapped.status, 200);
    assert.equal(swapped.cert, fp(second));
  } finally {
    await mem.stop();
  }
});

test("start refuses a pair whose key does not match the certificate", async () => {
  const bad = new WebhookServer({
    address: "127.0.0.1:0",
    tls: { cert: readFileSync(join(first, "server.crt")), key: readFileSync(join(second, "server.key")) },
    handle: () => ({ allowed: true }),
  });
  await assert.rejects(bad.start(), /key values mismatch|KEY_VALUES_MISMATCH/i);
  await bad.stop();
});
