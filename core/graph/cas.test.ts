/**
 * The reachability CAS on a real directory: the seed's layout, names = content hashes (BLAKE3 checked with
 * @noble/hashes), idempotent atomic writes, and a tampered object refused with the path and both hashes.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";

import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import { tempDir } from "../dsse/testdata/oracles.ts";
import { makeBundles, revokeEdges } from "./bundles.ts";
import {
  CasError,
  casPaths,
  getBundleBytes,
  getGraphBytes,
  listBundles,
  putBundle,
  putGraph,
} from "./cas.ts";
import { finalizeGraph, graphBodyBytes } from "./richgraph.ts";
import { appGraph, edge, sha } from "./test-helpers.ts";

function throwsCas(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CasError, `expected a CasError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  });
}

describe("reachability CAS", () => {
  const { dir, cleanup } = tempDir("stella-graph-cas-");
  after(cleanup);
  const app = appGraph();
  app.body.edges.push(edge(app.n.main, app.n.parse, "runtime", [sha("s")], 1));
  const g = finalizeGraph(app.body);
  const hex = g.graph_hash.slice("blake3:".length);

  it("stores the body under its BLAKE3 (checked with a second implementation), idempotently", () => {
    const path = putGraph(dir, g);
    assert.equal(path, join(dir, "reachability", "graphs", hex));
    const bytes = readFileSync(path);
    assert.equal(bytesToHex(nobleBlake3(bytes)), hex);
    assert.deepEqual(bytes, Buffer.from(graphBodyBytes(g)));
    const mtime = statSync(path).mtimeMs;
    assert.equal(putGraph(dir, g), path);
    assert.equal(statSync(path).mtimeMs, mtime, "an identical object is not rewritten");
    assert.deepEqual(readdirSync(join(dir, "reachability", "graphs")), [hex], "no temporary files left");
    assert.deepEqual(Buffer.from(getGraphBytes(dir, g.graph_hash)), bytes);
    assert.deepEqual(Buffer.from(getGraphBytes(dir, hex)), bytes);
  });

  it("refuses a body changed by one byte, naming the path and both hashes; a rewrite repairs it", () => {
    const path = casPaths.graph(dir, g.graph_hash);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    const at = bad.indexOf("helper");
    bad[at] = "H".charCodeAt(0);
    writeFileSync(path, bad);
    const got = bytesToHex(nobleBlake3(bad));
    throwsCas(() => getGraphBytes(dir, g.graph_hash), "CAS_TAMPERED", path, `blake3:${got}`, g.graph_hash);
    putGraph(dir, g);
    assert.deepEqual(readFileSync(path), good);
  });

  it("stores bundles under edges/{graph hex}/{bundle hex} and checks them on read", () => {
    const bundles = [...makeBundles(g), revokeEdges(g, [app.e.helperVuln.id])];
    const paths = bundles.map((b) => putBundle(dir, b));
    for (const [i, b] of bundles.entries()) {
      assert.equal(paths[i], join(dir, "reachability", "edges", hex, b.bundle_id.slice("sha256:".length)));
    }
    assert.deepEqual(listBundles(dir, g.graph_hash), bundles.map((b) => b.bundle_id).sort());
    const b0 = bundles[0]!;
    const path = paths[0]!;
    assert.deepEqual(Buffer.from(getBundleBytes(dir, g.graph_hash, b0.bundle_id)), readFileSync(path));
    const text = readFileSync(path, "utf8");
    writeFileSync(path, text.replace('"confidence":1', '"confidence":0'));
    throwsCas(
      () => getBundleBytes(dir, g.graph_hash, b0.bundle_id),
      "CAS_TAMPERED",
      path,
      b0.bundle_id,
      "content hashes to sha256:",
    );
    writeFileSync(path, text);
    throwsCas(() => getGraphBytes(dir, `blake3:${"0".repeat(64)}`), "CAS_MISSING", "not in the store");
    throwsCas(() => casPaths.bundle(dir, g.graph_hash, "../../etc/passwd"), "CAS_BAD_NAME");
    assert.deepEqual(listBundles(dir, `blake3:${"1".repeat(64)}`), []);
    assert.ok(!existsSync(join(dir, "reachability", "edges", "1".repeat(64))));
  });
});
