// Against a real Rekor v2 log (sigstore/rekor-tiles, POSIX backend): `make rekor-server` builds it. The log runs only
// while the entries are submitted (in `before`); every verification below is offline, from bundles on disk.
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import type { SerializedBundle } from "@sigstore/bundle";

import { encodeBase64, type Envelope } from "../dsse/envelope.ts";
import { loadPrivateKey, loadPublicKey, type PrivateKey } from "../dsse/keys.ts";
import { keySigner, signEnvelope } from "../dsse/sign.ts";
import { isStellaError } from "../errors.ts";
import { startRekor, type TestRekor } from "../testing/rekor.ts";
import { bundleWithTlog } from "./bundle.ts";
import { submitDsse, type TlogEntryJson } from "./rekor.ts";
import { makeTrustedRoot } from "./trusted-root.ts";
import { verifyTlogBundle } from "./verify.ts";

const STATEMENT_TYPE = "application/vnd.in-toto+json";

function newKey(): PrivateKey {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return loadPrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "test signing key");
}

function statement(n: number): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ name: `artifact-${String(n)}`, digest: { sha256: "ab".repeat(32) } }],
      predicateType: "stellaops.funcproof.v1",
      predicate: { n },
    }),
  );
}

type Json = Record<string, unknown>;
const clone = (b: SerializedBundle): Json => JSON.parse(JSON.stringify(b)) as Json;
function entryOf(b: Json, i = 0): Json {
  const vm = b["verificationMaterial"] as Json;
  const entries = vm["tlogEntries"] as Json[];
  const e = entries[i];
  assert.ok(e !== undefined);
  return e;
}
const proofOf = (b: Json): Json => entryOf(b)["inclusionProof"] as Json;
const checkpointOf = (b: Json): Json => proofOf(b)["checkpoint"] as Json;
function flipBase64(text: string, byte = 0): string {
  const bytes = Buffer.from(text, "base64");
  bytes[byte] = (bytes[byte] ?? 0) ^ 0x01;
  return bytes.toString("base64");
}

describe("verifyTlogBundle against a real Rekor v2 log, offline", () => {
  let rekor: TestRekor | undefined;
  let dir = "";
  let key: PrivateKey;
  let otherLogRoot: object;
  const envelopes: Envelope[] = [];
  const entries: TlogEntryJson[] = [];
  const bundles: SerializedBundle[] = [];
  let trustedRoot: object;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "stella-tlog-"));
    key = newKey();
    rekor = await startRekor();
    trustedRoot = rekor.trustedRoot;
    // Three entries, one after the other, so that later proofs have sibling hashes.
    for (let n = 0; n < 3; n++) {
      const env = await signEnvelope(STATEMENT_TYPE, statement(n), [keySigner(key)]);
      const entry = await submitDsse({ url: rekor.url }, env, key.publicKey);
      envelopes.push(env);
      entries.push(entry);
      const bundle = bundleWithTlog(env, [entry]);
      bundles.push(bundle);
      await writeFile(join(dir, `bundle-${String(n)}.json`), JSON.stringify(bundle, null, 2));
    }
    // Same origin, another key: what a second log (or an impostor under the same name) would be trusted as.
    const other = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    otherLogRoot = makeTrustedRoot({
      tlogs: [{ baseUrl: rekor.url, origin: rekor.origin, publicKeyPem: other }],
    });
    await rekor.stop();
  });

  after(async () => {
    await rekor?.stop();
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  const verify = (bundle: unknown, root: object = trustedRoot, publicKey = key.publicKey) =>
    verifyTlogBundle(bundle, { trustedRoot: root, publicKey, name: "bundle.json" });

  function refused(bundle: unknown, code: string, root?: object, publicKey = key.publicKey): void {
    assert.throws(
      () => verify(bundle, root, publicKey),
      (err: unknown) => {
        assert.ok(isStellaError(err), `not a StellaError: ${String(err)}`);
        assert.equal(err.code, code, err.message);
        assert.match(err.message, /bundle\.json/);
        return true;
      },
    );
  }

  test("the log is no longer running: what follows is offline", async () => {
    assert.ok(rekor !== undefined);
    await assert.rejects(fetch(`${rekor.url}/healthz`, { signal: AbortSignal.timeout(2000) }));
  });

  test("bundles read back from disk verify offline; log indexes increase; checkpoints cover them", async () => {
    const logId = ((trustedRoot as Json)["tlogs"] as Json[])[0]?.["logId"] as Json;
    for (let n = 0; n < 3; n++) {
      const text = await readFile(join(dir, `bundle-${String(n)}.json`), "utf8");
      const result = verify(JSON.parse(text));
      assert.deepEqual(result.envelope, envelopes[n]);
      assert.equal(result.entries.length, 1);
      const e = result.entries[0];
      assert.ok(e !== undefined);
      assert.equal(e.logIndex, String(n));
      assert.ok(BigInt(e.treeSize) >= BigInt(n) + 1n, `tree size ${e.treeSize} covers index ${String(n)}`);
      assert.equal(e.kind, "hashedrekord");
      assert.equal(e.version, "0.0.2");
      assert.equal(e.logId, logId["keyId"]);
    }
  });

  test("the bundle is a v0.3 public-key DSSE bundle whose entry is the log's answer", () => {
    const b = bundles[1];
    assert.ok(b !== undefined);
    assert.equal(b.mediaType, "application/vnd.dev.sigstore.bundle.v0.3+json");
    assert.equal(b.verificationMaterial.publicKey?.hint, key.publicKey.keyid);
    assert.deepEqual(b.verificationMaterial.tlogEntries[0], entries[1]);
    assert.ok(
      b.verificationMaterial.tlogEntries[0]?.inclusionProof?.checkpoint.envelope.startsWith(
        `${rekor?.origin ?? ""}\n`,
      ),
    );
  });

  test("an inclusion-proof hash flipped: TLOG_INCLUSION", () => {
    const b = clone(bundles[2] as SerializedBundle);
    const hashes = proofOf(b)["hashes"] as string[];
    assert.ok(hashes.length > 0);
    hashes[0] = flipBase64(hashes[0] ?? "");
    refused(b, "TLOG_INCLUSION");
  });

  test("the entry's unsigned rootHash changed: TLOG_INCLUSION", () => {
    const b = clone(bundles[2] as SerializedBundle);
    proofOf(b)["rootHash"] = flipBase64(proofOf(b)["rootHash"] as string);
    refused(b, "TLOG_INCLUSION");
  });

  test("the checkpoint's root hash changed (its signature no longer covers it): TLOG_CHECKPOINT", () => {
    const b = clone(bundles[2] as SerializedBundle);
    const note = checkpointOf(b)["envelope"] as string;
    const lines = note.split("\n");
    lines[2] = flipBase64(lines[2] ?? "");
    checkpointOf(b)["envelope"] = lines.join("\n");
    proofOf(b)["rootHash"] = lines[2];
    refused(b, "TLOG_CHECKPOINT");
  });

  test("the checkpoint signature flipped: TLOG_CHECKPOINT", () => {
    const b = clone(bundles[2] as SerializedBundle);
    const note = checkpointOf(b)["envelope"] as string;
    checkpointOf(b)["envelope"] = note.replace(/(\u2014 \S+ )(\S+)\n/, (_m, head: string, sig: string) => {
      return `${head}${flipBase64(sig, 10)}\n`;
    });
    assert.notEqual(checkpointOf(b)["envelope"], note);
    refused(b, "TLOG_CHECKPOINT");
  });

  test("the checkpoint re-signed by another key under the log's name and key hint: TLOG_CHECKPOINT", () => {
    const b = clone(bundles[2] as SerializedBundle);
    const note = checkpointOf(b)["envelope"] as string;
    const body = note.slice(0, note.indexOf("\n\n") + 1);
    const m = /\u2014 (\S+) (\S+)\n/.exec(note);
    assert.ok(m?.[1] !== undefined && m[2] !== undefined);
    const hint = Buffer.from(m[2], "base64").subarray(0, 4);
    const forged = sign(null, Buffer.from(body), generateKeyPairSync("ed25519").privateKey);
    checkpointOf(b)["envelope"] =
      `${body}\n\u2014 ${m[1]} ${Buffer.concat([hint, forged]).toString("base64")}\n`;
    refused(b, "TLOG_CHECKPOINT");
  });

  test("a trusted root for another log (another key): TLOG_UNTRUSTED", () => {
    refused(clone(bundles[0] as SerializedBundle), "TLOG_UNTRUSTED", otherLogRoot);
  });

  test("canonicalizedBody changed (not what the log committed to): TLOG_INCLUSION", () => {
    const b = clone(bundles[1] as SerializedBundle);
    const body = JSON.parse(
      Buffer.from(entryOf(b)["canonicalizedBody"] as string, "base64").toString(),
    ) as Json;
    body["apiVersion"] = "0.0.2 ";
    entryOf(b)["canonicalizedBody"] = Buffer.from(JSON.stringify(body)).toString("base64");
    refused(b, "TLOG_INCLUSION");
  });

  test("a genuinely logged entry for another envelope: TLOG_BODY", () => {
    const b = clone(bundles[0] as SerializedBundle);
    (b["verificationMaterial"] as Json)["tlogEntries"] = [entries[1]];
    refused(b, "TLOG_BODY");
  });

  test("the envelope payload changed: TLOG_BODY (the logged PAE digest no longer matches)", () => {
    const b = clone(bundles[1] as SerializedBundle);
    const env = b["dsseEnvelope"] as Json;
    env["payload"] = encodeBase64(statement(99));
    refused(b, "TLOG_BODY");
  });

  test("another trusted key: TLOG_SIGNATURE, also when the bundle's hint names it", () => {
    const other = newKey().publicKey;
    refused(clone(bundles[1] as SerializedBundle), "TLOG_SIGNATURE", undefined, other);
    const b = clone(bundles[1] as SerializedBundle);
    ((b["verificationMaterial"] as Json)["publicKey"] as Json)["hint"] = other.keyid;
    const sig = ((b["dsseEnvelope"] as Json)["signatures"] as Json[])[0];
    assert.ok(sig !== undefined);
    sig["keyid"] = other.keyid;
    refused(b, "TLOG_SIGNATURE", undefined, other);
  });

  test("a bundle without tlog entries: TLOG_MISSING; an entry without its proof is not a v0.3 bundle", () => {
    const none = clone(bundles[0] as SerializedBundle);
    (none["verificationMaterial"] as Json)["tlogEntries"] = [];
    refused(none, "TLOG_MISSING");
    delete (none["verificationMaterial"] as Json)["tlogEntries"];
    refused(none, "TLOG_MISSING");
    const noProof = clone(bundles[0] as SerializedBundle);
    delete entryOf(noProof)["inclusionProof"];
    refused(noProof, "BUNDLE_INVALID");
  });

  test("logIndex changed: TLOG_INCLUSION, whether only the entry's or also the proof's", () => {
    const top = clone(bundles[1] as SerializedBundle);
    entryOf(top)["logIndex"] = "0";
    refused(top, "TLOG_INCLUSION");
    const both = clone(bundles[1] as SerializedBundle);
    entryOf(both)["logIndex"] = "0";
    proofOf(both)["logIndex"] = "0";
    refused(both, "TLOG_INCLUSION");
  });

  test("the same entry twice does not count twice: TLOG_INVALID", () => {
    const b = clone(bundles[1] as SerializedBundle);
    (b["verificationMaterial"] as Json)["tlogEntries"] = [entryOf(b), entryOf(b)];
    refused(b, "TLOG_INVALID");
  });

  test("a public key loaded from PEM verifies like the generated one", () => {
    const pem = key.publicKey.key.export({ type: "spki", format: "pem" }).toString();
    const result = verify(bundles[0], trustedRoot, loadPublicKey(pem, "signer.pub"));
    assert.equal(result.entries[0]?.logIndex, "0");
  });
});
