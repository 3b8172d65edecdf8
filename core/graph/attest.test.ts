/**
 * Graph and bundle envelopes: the statement's subjects and predicate checked against independently computed
 * digests (@noble/hashes BLAKE3 and SHA-256), and the signatures checked by OpenSSL over PAE bytes built
 * here by hand (`openssl pkeyutl -verify -rawin` for Ed25519, `openssl dgst -sha256 -verify` for P-256).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import type { Envelope } from "../dsse/envelope.ts";
import { generateKeyPair, loadPrivateKey, type KeyType } from "../dsse/keys.ts";
import { keySigner } from "../dsse/sign.ts";
import { opensslVerify, tempDir } from "../dsse/testdata/oracles.ts";
import { attestBundle, attestGraph } from "./attest.ts";
import { revokeEdges } from "./bundles.ts";
import { EDGE_BUNDLE_PREDICATE_TYPE, RICHGRAPH_PREDICATE_TYPE } from "./model.ts";
import { finalizeGraph, graphBodyBytes } from "./richgraph.ts";
import { appGraph } from "./test-helpers.ts";

function handPae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `),
    payload,
  ]);
}

function statementOf(env: Envelope): Record<string, unknown> {
  return JSON.parse(Buffer.from(env.payload, "base64").toString("utf8")) as Record<string, unknown>;
}

describe("attestGraph and attestBundle", () => {
  const { dir, cleanup } = tempDir("stella-graph-attest-");
  after(cleanup);
  const { body, e } = appGraph();
  const g = finalizeGraph(body);
  const bodyBytes = graphBodyBytes(g);

  for (const type of ["ed25519", "ecdsa-p256"] as KeyType[]) {
    it(`signs the graph statement (${type}), and OpenSSL verifies the signature over the PAE`, async () => {
      const pair = generateKeyPair(type);
      const env = await attestGraph(g, [keySigner(loadPrivateKey(pair.privatePem, "k"))]);
      assert.equal(env.payloadType, "application/vnd.in-toto+json");
      const st = statementOf(env);
      assert.equal(st["_type"], "https://in-toto.io/Statement/v1");
      assert.equal(st["predicateType"], RICHGRAPH_PREDICATE_TYPE);
      assert.deepEqual(st["subject"], [
        {
          name: "richgraph",
          digest: { blake3: bytesToHex(nobleBlake3(bodyBytes)), sha256: bytesToHex(nobleSha256(bodyBytes)) },
        },
      ]);
      assert.deepEqual(st["predicate"], {
        graph_hash: g.graph_hash,
        schema: "richgraph-v1",
        analyzer: g.analyzer,
        policy_hash: g.policy_hash,
        nodes: 9,
        edges: 7,
        roots: 2,
      });
      assert.equal(env.signatures.length, 1);
      assert.equal(env.signatures[0]?.keyid, pair.keyid);
      const pae = handPae(env.payloadType, Buffer.from(env.payload, "base64"));
      const sig = Buffer.from(env.signatures[0]?.sig ?? "", "base64");
      const ok = await opensslVerify(dir, type, pair.publicPem, pae, sig);
      assert.equal(ok.code, 0, ok.stderr);
      // One changed payload byte: OpenSSL says no.
      const bad = Buffer.from(pae);
      bad.writeUInt8(bad.readUInt8(bad.length - 2) ^ 1, bad.length - 2);
      const no = await opensslVerify(dir, type, pair.publicPem, bad, sig);
      assert.notEqual(no.code, 0);
    });
  }

  it("signs a bundle statement whose subject is the bundle id", async () => {
    const pair = generateKeyPair("ed25519");
    const bundle = revokeEdges(g, [e.helperVuln.id]);
    const env = await attestBundle(bundle, [keySigner(loadPrivateKey(pair.privatePem, "k"))]);
    const st = statementOf(env);
    assert.equal(st["predicateType"], EDGE_BUNDLE_PREDICATE_TYPE);
    assert.deepEqual(st["subject"], [
      { name: "richgraph-edges", digest: { sha256: bundle.bundle_id.slice("sha256:".length) } },
    ]);
    assert.deepEqual(st["predicate"], {
      graph_hash: g.graph_hash,
      bundle_id: bundle.bundle_id,
      bundle_reason: "disputed",
      edges: 1,
      revoked: 1,
    });
    const pae = handPae(env.payloadType, Buffer.from(env.payload, "base64"));
    const ok = await opensslVerify(
      dir,
      "ed25519",
      pair.publicPem,
      pae,
      Buffer.from(env.signatures[0]?.sig ?? "", "base64"),
    );
    assert.equal(ok.code, 0, ok.stderr);
  });
});
