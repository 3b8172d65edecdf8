// The self-signed PKI, checked with the openssl CLI as an independent implementation: chains verify, extensions
// are what RFC 5280 and the API server need, keys match; renewal boundaries; and a real TLS handshake against
// WebhookServer with the in-memory pair, trusting only the generated CA.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket } from "node:tls";
import { after, before, describe, test } from "node:test";

import { WebhookServer } from "./server.ts";
import {
  CLOCK_SKEW_BACKDATE_MS,
  generateCa,
  issueServingCert,
  needsRenewal,
  pemCertificates,
  servingNames,
  subjectAltNames,
  type CertKeyPem,
} from "./tls.ts";

const DAY_MS = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), "stella-webhook-tls-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** Writes `pem` to a fresh file and returns its path. */
function file(pem: string): string {
  const p = join(dir, `f${n++}.pem`);
  writeFileSync(p, pem);
  return p;
}

function openssl(...args: string[]): { code: number; out: string } {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

const names = servingNames({
  serviceName: "stella-webhook",
  namespace: "stella-system",
  clusterDomain: "cluster.local",
  extraSans: " 127.0.0.1, ::1,,webhook.example.test ",
});

test("servingNames: the Service's names, then extra DNS names and IPs sorted into their kinds", () => {
  assert.deepEqual(names, {
    dnsNames: [
      "stella-webhook.stella-system.svc",
      "stella-webhook.stella-system.svc.cluster.local",
      "webhook.example.test",
    ],
    ips: ["127.0.0.1", "::1"],
  });
});

describe("generateCa and issueServingCert, checked by openssl", () => {
  let ca: CertKeyPem;
  let leaf: CertKeyPem;
  const start = new Date();

  before(async () => {
    ca = await generateCa();
    leaf = await issueServingCert(ca, { ...names, validityDays: 30 });
  });

  test("the CA: self-signed, P-256/SHA-256, basicConstraints CA:TRUE critical, keyUsage keyCertSign critical", () => {
    const caFile = file(ca.cert);
    assert.match(openssl("verify", "-CAfile", caFile, caFile).out, /: OK/);
    const text = execFileSync("openssl", ["x509", "-in", caFile, "-noout", "-text"], { encoding: "utf8" });
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:TRUE/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign/);
    assert.match(text, /X509v3 Subject Key Identifier/);
    assert.match(text, /Subject: CN ?= ?stella-webhook-ca@\d+/);
    const x = new X509Certificate(ca.cert);
    assert.equal(x.ca, true);
    assert.ok(x.checkPrivateKey(createPrivateKey(ca.key)));
    const lifetime = x.validToDate.getTime() - x.validFromDate.getTime();
    assert.equal(lifetime, 3650 * DAY_MS, "ten years by default");
  });

  test("the serving certificate verifies against the CA (purpose sslserver) and only against it", async () => {
    const caFile = file(ca.cert);
    const leafFile = file(leaf.cert);
    const ok = openssl("verify", "-purpose", "sslserver", "-CAfile", caFile, leafFile);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /: OK/);
    const other = await generateCa();
    const bad = openssl("verify", "-CAfile", file(other.cert), leafFile);
    assert.notEqual(bad.code, 0, "another CA with its own key must not verify it");
    assert.match(bad.out, /unable to get local issuer certificate|signature failure/);
  });

  test("the serving certificate's extensions: SANs, serverAuth, digitalSignature, CA:FALSE; empty subject", () => {
    const leafFile = file(leaf.cert);
    const ext = execFileSync(
      "openssl",
      [
        "x509",
        ...["-in", leafFile, "-noout", "-subject"],
        ...["-ext", "subjectAltName,extendedKeyUsage,basicConstraints,keyUsage,authorityKeyIdentifier"],
      ],
      { encoding: "utf8" },
    );
    assert.match(ext, /^subject=\s*$/m, "no subject: the SANs carry the names");
    assert.match(ext, /X509v3 Subject Alternative Name: critical\n\s+(.*)/);
    const san = /X509v3 Subject Alternative Name: critical\n\s+(.*)/.exec(ext)?.[1] ?? "";
    assert.deepEqual(
      san.split(", ").sort(),
      [
        "DNS:stella-webhook.stella-system.svc",
        "DNS:stella-webhook.stella-system.svc.cluster.local",
        "DNS:webhook.example.test",
        "IP Address:0:0:0:0:0:0:0:1",
        "IP Address:127.0.0.1",
      ].sort(),
    );
    assert.match(ext, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    assert.match(ext, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    assert.match(ext, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    assert.match(ext, /X509v3 Authority Key Identifier/);
  });

  test("key matches certificate (openssl's public keys agree), fresh keys and random serials each time", async () => {
    const fromCert = execFileSync("openssl", ["x509", "-in", file(leaf.cert), "-noout", "-pubkey"], {
      encoding: "utf8",
    });
    const fromKey = execFileSync("openssl", ["pkey", "-in", file(leaf.key), "-pubout"], { encoding: "utf8" });
    assert.equal(fromCert, fromKey);
    const again = await issueServingCert(ca, names);
    const a = new X509Certificate(leaf.cert);
    const b = new X509Certificate(again.cert);
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.notEqual(
      a.publicKey.export({ format: "pem", type: "spki" }),
      b.publicKey.export({ format: "pem", type: "spki" }),
    );
    assert.equal(a.serialNumber.length, 32, "16 octets, no leading zero octet");
    assert.ok(Number.parseInt(a.serialNumber.slice(0, 2), 16) < 0x80, "positive (RFC 5280 §4.1.2.2)");
  });

  test("validity: backdated against clock skew, validityDays long, never past the CA", async () => {
    const x = new X509Certificate(leaf.cert);
    const backdate = start.getTime() - x.validFromDate.getTime();
    assert.ok(
      backdate > CLOCK_SKEW_BACKDATE_MS - 60_000 && backdate < CLOCK_SKEW_BACKDATE_MS + 60_000,
      `${backdate}`,
    );
    assert.equal(x.validToDate.getTime() - x.validFromDate.getTime(), 30 * DAY_MS);
    const shortCa = await generateCa({ validityDays: 10 });
    const cut = new X509Certificate((await issueServingCert(shortCa, { ...names, validityDays: 365 })).cert);
    assert.equal(cut.validToDate.getTime(), new X509Certificate(shortCa.cert).validToDate.getTime());
  });

  test("refused input: no names, a non-IP as IP, a CA key that is not the CA's", async () => {
    await assert.rejects(issueServingCert(ca, { dnsNames: [] }), { code: "WEBHOOK_TLS_INPUT" });
    await assert.rejects(issueServingCert(ca, { dnsNames: ["a"], ips: ["example.com"] }), {
      code: "WEBHOOK_TLS_INPUT",
    });
    await assert.rejects(issueServingCert({ cert: ca.cert, key: leaf.key }, names), {
      code: "WEBHOOK_TLS_INPUT",
      message: /CA key does not belong/,
    });
  });
});

describe("needsRenewal", () => {
  // Whole seconds: X.509 times have second precision.
  const t0 = new Date(Date.UTC(2026, 0, 1));
  let ca: CertKeyPem;
  let leaf: CertKeyPem;
  const at = (ms: number): Date => new Date(t0.getTime() + ms);

  before(async () => {
    ca = await generateCa({ notBefore: t0, validityDays: 3650 });
    leaf = await issueServingCert(ca, { ...names, notBefore: t0, validityDays: 30 });
  });

  test("renews once less than a third of the lifetime remains", () => {
    assert.equal(needsRenewal(leaf.cert, at(0)), undefined);
    assert.equal(needsRenewal(leaf.cert, at(20 * DAY_MS - 1000)), undefined, "10 days and 1 s left of 30");
    assert.equal(needsRenewal(leaf.cert, at(20 * DAY_MS + 1000)), "expiring", "1 s less than a third");
    assert.equal(needsRenewal(leaf.cert, at(10 * DAY_MS + 1000), { renewBeforeFraction: 2 / 3 }), "expiring");
    assert.equal(needsRenewal(leaf.cert, at(10 * DAY_MS - 1000), { renewBeforeFraction: 2 / 3 }), undefined);
    assert.equal(needsRenewal(leaf.cert, at(-1000)), "not-yet-valid");
    assert.equal(needsRenewal(leaf.cert, at(30 * DAY_MS)), "expired");
  });

  test("renews when the CA expires before the certificate", async () => {
    assert.equal(needsRenewal(leaf.cert, at(DAY_MS), { caPem: ca.cert }), undefined);
    const shortCa = await generateCa({ notBefore: t0, validityDays: 29 });
    assert.equal(needsRenewal(leaf.cert, at(DAY_MS), { caPem: shortCa.cert }), "ca-expires-first");
  });

  test("renews when the SANs differ from the wanted ones (as sets; DNS case and IPv6 spelling do not matter)", () => {
    const now = at(DAY_MS);
    assert.equal(needsRenewal(leaf.cert, now, names), undefined);
    const shuffled = {
      dnsNames: [...names.dnsNames].reverse().map((s) => s.toUpperCase()),
      ips: ["0:0:0:0:0:0:0:1", "127.0.0.1"],
    };
    assert.equal(needsRenewal(leaf.cert, now, shuffled), undefined);
    assert.equal(needsRenewal(leaf.cert, now, { ...names, ips: ["127.0.0.1"] }), "sans-differ");
    assert.equal(
      needsRenewal(leaf.cert, now, { ...names, dnsNames: [...names.dnsNames, "new.example.test"] }),
      "sans-differ",
    );
    assert.deepEqual(subjectAltNames(leaf.cert)?.ips.length, 2);
  });

  test("a certificate that does not parse is renewed", () => {
    assert.equal(needsRenewal("garbage", at(0)), "unparseable");
    assert.equal(needsRenewal(leaf.cert.replace(/[A-Za-z]{8}\n/, "AAAAAAAA\n"), at(0)), "unparseable");
  });
});

describe("WebhookServer with the in-memory certificate", () => {
  let ca: CertKeyPem;
  let leaf: CertKeyPem;
  let server: WebhookServer;
  let port = 0;

  before(async () => {
    ca = await generateCa();
    leaf = await issueServingCert(ca, names);
    server = new WebhookServer({
      address: "127.0.0.1:0",
      tls: { cert: leaf.cert, key: leaf.key },
      handle: () => ({ allowed: false, message: "no" }),
    });
    port = await server.start();
  });
  after(async () => {
    await server.stop();
  });

  /** GET /healthz on a new connection, trusting only `trust`; resolves with the peer certificate's serial. */
  function serialSeen(trust: string, servername?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/healthz",
          ca: trust,
          agent: false,
          ...(servername ? { servername } : {}),
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const socket = res.socket;
            if (socket instanceof TLSSocket) resolve(socket.getPeerCertificate().serialNumber);
            else reject(new Error("not a TLS socket"));
          });
        },
      );
      req.on("error", reject);
      req.end();
    });
  }
  const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;

  test("the handshake verifies with the CA as the only trust root, by IP and by the Service name", async () => {
    assert.equal(await serialSeen(ca.cert), serialOf(leaf.cert));
    assert.equal(await serialSeen(ca.cert, "stella-webhook.stella-system.svc"), serialOf(leaf.cert));
    await assert.rejects(serialSeen(ca.cert, "other.stella-system.svc"), {
      code: "ERR_TLS_CERT_ALTNAME_INVALID",
    });
    const other = await generateCa();
    await assert.rejects(serialSeen(other.cert), /unable to verify|self.signed|UNABLE_TO_VERIFY/i);
  });

  test("setCertificate: a new connection gets the new certificate; a bad pair is refused and the old one kept", async () => {
    const next = await issueServingCert(ca, names);
    const reloads = server.stats.certReloads;
    assert.equal(server.setCertificate(next.cert, leaf.key), false, "key of another certificate");
    assert.equal(server.setCertificate(next.cert.slice(0, 200), next.key), false, "truncated certificate");
    assert.equal(server.stats.certReloads, reloads);
    assert.equal(await serialSeen(ca.cert), serialOf(leaf.cert));
    assert.equal(server.setCertificate(next.cert, next.key), true);
    assert.equal(server.stats.certReloads, reloads + 1);
    assert.notEqual(serialOf(next.cert), serialOf(leaf.cert));
    assert.equal(await serialSeen(ca.cert), serialOf(next.cert));
  });

  test("a CA bundle of two CAs trusts certificates of either (what the caBundle holds after a CA rotation)", async () => {
    const newCa = await generateCa();
    const bundle = newCa.cert + ca.cert;
    assert.equal(pemCertificates(bundle).length, 2);
    const fromNew = await issueServingCert(newCa, names);
    assert.equal(server.setCertificate(fromNew.cert, fromNew.key), true);
    assert.equal(await serialSeen(bundle), serialOf(fromNew.cert));
    assert.equal(server.setCertificate(leaf.cert, leaf.key), true);
    assert.equal(await serialSeen(bundle), serialOf(leaf.cert));
  });
});
