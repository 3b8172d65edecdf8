/**
 * `graph verify` end to end on a real CAS directory with keys made by `stella keygen`: the happy path, a
 * revocation that cuts the only edge to a sink, and every tampering refused with the file and the field
 * (graph body byte, bundle body, bundle envelope payload, foreign or swapped envelopes, a forged edge).
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import {
  generateKeyPair,
  loadPrivateKey,
  loadPrivateKeyFile,
  loadPublicKeyFile,
  type PublicKey,
} from "../dsse/keys.ts";
import { keySigner, type Signer } from "../dsse/sign.ts";
import { tempDir } from "../dsse/testdata/oracles.ts";
import { run } from "../testing/run.ts";
import { attestBundle, attestGraph, writeGraphToCas, type SignedBundle } from "./attest.ts";
import { bundleId, makeBundles, revokeEdges, type EdgeBundle } from "./bundles.ts";
import { casPaths } from "./cas.ts";
import type { RichGraph } from "./model.ts";
import { finalizeGraph } from "./richgraph.ts";
import { appGraph, edge, sha } from "./test-helpers.ts";
import { GraphVerifyError, verifyGraphFromCas } from "./verify.ts";

const CLI = join(import.meta.dirname, "..", "..", "cli", "stella.ts");

function throwsVerify(
  fn: () => unknown,
  code: string,
  file: string,
  field: string,
  ...fragments: string[]
): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof GraphVerifyError, `expected a GraphVerifyError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.file, file, err.message);
    assert.equal(err.field, field, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  });
}

describe("verifyGraphFromCas", () => {
  const { dir: tmp, cleanup } = tempDir("stella-graph-verify-");
  after(cleanup);
  let signer: Signer;
  let keys: PublicKey[];
  const app = appGraph();
  app.body.edges.push(edge(app.n.main, app.n.parse, "runtime", [sha("stack")], 1));
  const g: RichGraph = finalizeGraph(app.body);
  const hex = g.graph_hash.slice("blake3:".length);
  let n = 0;

  before(async () => {
    const prefix = join(tmp, "signing");
    const r = await run(process.execPath, [CLI, "keygen", "--type", "ed25519", "--out", prefix]);
    assert.equal(r.code, 0, r.stderr);
    signer = keySigner(loadPrivateKeyFile(`${prefix}.key`));
    keys = [loadPublicKeyFile(`${prefix}.pub`)];
  });

  /** A fresh store: the graph, its envelope, makeBundles' bundles and (optionally) a revocation, all signed. */
  async function store(revoke: string[] = []): Promise<{ root: string; bundles: EdgeBundle[] }> {
    const root = join(tmp, `cas${n++}`);
    const bundles = makeBundles(g);
    if (revoke.length > 0) bundles.push(revokeEdges(g, revoke));
    const signed: SignedBundle[] = [];
    for (const b of bundles) signed.push({ bundle: b, envelope: await attestBundle(b, [signer]) });
    writeGraphToCas(root, g, await attestGraph(g, [signer]), signed);
    return { root, bundles };
  }

  it("verifies a stored graph and its bundles; sinks reachable with a trace", async () => {
    const { root, bundles } = await store();
    const r = verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true, sinks: ["vuln", "nope"] });
    assert.equal(r.graph_hash, g.graph_hash);
    assert.deepEqual(r.keyids, [keys[0]!.keyid]);
    assert.deepEqual(r.counts, { nodes: 9, edges: 8, roots: 2 });
    assert.equal(r.bundles.length, 3);
    assert.deepEqual(r.bundles.map((b) => b.bundle_id).sort(), bundles.map((b) => b.bundle_id).sort());
    assert.deepEqual(r.revoked_edges, []);
    assert.deepEqual(r.reachable, { all: 8, after_revocation: 8 });
    assert.equal(r.sinks.length, 1);
    assert.equal(r.sinks[0]?.reachable, true);
    assert.equal(r.sinks[0]?.reachable_after_revocation, true);
    assert.deepEqual(r.sinks[0]?.trace?.nodes, [
      app.n.main.id,
      app.n.parse.id,
      app.n.helper.id,
      app.n.vuln.id,
    ]);
    assert.deepEqual(r.unknown_sinks, ["nope"]);
    assert.deepEqual(r.newly_unreachable, []);
    // The hex alone also names the graph.
    assert.equal(verifyGraphFromCas(root, hex, keys, { edgeBundles: false }).graph_hash, g.graph_hash);
  });

  it("revoking the only edge to a sink makes it unreachable (only when bundles are verified)", async () => {
    const { root } = await store([app.e.helperVuln.id]);
    const r = verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true, sinks: ["vuln", "helper"] });
    assert.deepEqual(r.revoked_edges, [app.e.helperVuln.id]);
    assert.deepEqual(r.newly_unreachable, [app.n.vuln.id]);
    const vuln = r.sinks.find((s) => s.sink === "vuln");
    assert.deepEqual(
      [vuln?.reachable, vuln?.reachable_after_revocation, vuln?.trace],
      [true, false, undefined],
    );
    assert.equal(r.sinks.find((s) => s.sink === "helper")?.reachable_after_revocation, true);
    assert.deepEqual(r.reachable, { all: 8, after_revocation: 7 });
    const disputed = r.bundles.find((b) => b.bundle_reason === "disputed");
    assert.deepEqual(disputed?.revoked, [app.e.helperVuln.id]);
    const plain = verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: false, sinks: ["vuln"] });
    assert.deepEqual(plain.newly_unreachable, []);
    assert.equal(plain.bundles.length, 0);
  });

  it("refuses a graph body with one byte changed: the path and both hashes", async () => {
    const { root } = await store();
    const path = casPaths.graph(root, g.graph_hash);
    const bytes = readFileSync(path);
    bytes[bytes.indexOf('"vuln"') + 1] = "V".charCodeAt(0);
    writeFileSync(path, bytes);
    const got = `blake3:${bytesToHex(nobleBlake3(bytes))}`;
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: false }),
      "VERIFY_TAMPERED",
      path,
      "(content)",
      got,
      g.graph_hash,
    );
  });

  it("refuses a changed bundle body", async () => {
    const { root, bundles } = await store();
    const b = bundles[0]!;
    const path = casPaths.bundle(root, g.graph_hash, b.bundle_id);
    writeFileSync(path, readFileSync(path, "utf8").replace('"confidence":1', '"confidence":0.5'));
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true }),
      "VERIFY_TAMPERED",
      path,
      "(content)",
      b.bundle_id,
    );
    // Not looked at without --edge-bundles.
    verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: false });
  });

  it("refuses a bundle envelope whose payload was changed", async () => {
    const { root, bundles } = await store([app.e.helperVuln.id]);
    const b = bundles.find((x) => x.bundle_reason === "disputed")!;
    const path = casPaths.bundleEnvelope(root, g.graph_hash, b.bundle_id);
    const env = JSON.parse(readFileSync(path, "utf8")) as { payload: string };
    const payload = Buffer.from(env.payload, "base64").toString("utf8").replace('"revoked":1', '"revoked":0');
    env.payload = Buffer.from(payload).toString("base64");
    writeFileSync(path, JSON.stringify(env));
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true }),
      "VERIFY_SIGNATURE",
      path,
      "signatures",
      "DSSE_SIG_INVALID",
    );
  });

  it("refuses an envelope by an unknown key, another graph's envelope, and swapped bundle envelopes", async () => {
    const { root, bundles } = await store();
    const envPath = casPaths.graphEnvelope(root, g.graph_hash);
    const other = generateKeyPair("ed25519");
    writeFileSync(
      envPath,
      JSON.stringify(await attestGraph(g, [keySigner(loadPrivateKey(other.privatePem, "o"))])),
    );
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: false }),
      "VERIFY_SIGNATURE",
      envPath,
      "signatures",
      "DSSE_NO_TRUSTED_KEY",
    );
    const g2 = finalizeGraph({ ...app.body, policy_hash: sha("another policy") });
    writeFileSync(envPath, JSON.stringify(await attestGraph(g2, [signer])));
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: false }),
      "VERIFY_SUBJECT",
      envPath,
      "payload.subject.digest.blake3",
      hex,
    );
    writeFileSync(envPath, JSON.stringify(await attestGraph(g, [signer])));
    const [b0, b1] = bundles;
    const p0 = casPaths.bundleEnvelope(root, g.graph_hash, b0!.bundle_id);
    const p1 = casPaths.bundleEnvelope(root, g.graph_hash, b1!.bundle_id);
    writeFileSync(p0, readFileSync(p1));
    const first = [b0!, b1!].sort((x, y) => (x.bundle_id < y.bundle_id ? -1 : 1))[0]!;
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true }),
      "VERIFY_SUBJECT",
      p0,
      "payload.subject.digest.sha256",
      b1!.bundle_id.slice("sha256:".length),
    );
    rmSync(p0);
    rmSync(p1);
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true }),
      "VERIFY_MISSING",
      casPaths.bundleEnvelope(root, g.graph_hash, first.bundle_id),
      "(document)",
    );
  });

  it("refuses a signed bundle naming an edge that is not in the graph", async () => {
    const { root } = await store();
    const ghost = edge(app.n.vuln, app.n.main);
    const base = revokeEdges(g, [app.e.helperVuln.id]);
    const forged = {
      ...base,
      edges: [{ ...base.edges[0]!, edge_id: ghost.id, from: ghost.from, to: ghost.to }],
    };
    const sealed: EdgeBundle = { ...forged, bundle_id: bundleId(forged) };
    writeGraphToCas(root, g, await attestGraph(g, [signer]), [
      { bundle: sealed, envelope: await attestBundle(sealed, [signer]) },
    ]);
    const path = casPaths.bundle(root, g.graph_hash, sealed.bundle_id);
    throwsVerify(
      () => verifyGraphFromCas(root, g.graph_hash, keys, { edgeBundles: true }),
      "VERIFY_BUNDLE",
      path,
      "edges[0].edge_id",
      ghost.id,
    );
  });
});
