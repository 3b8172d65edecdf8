// Reachability graph of libcrypto.so.3 (issue 8): static call-graph build time (against `objdump -d` of the same
// file in the same run, the disassembly any call-graph tool starts from), graph size, signing, verify time, and
// edge-bundle verification time per bundle (bundles of 512 disputed edges). Times are medians of --runs.
// Run: node bench/graph.bench.ts [--runs N] [--file PATH]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { generateKeyPair, loadPrivateKey, loadPublicKey } from "../core/dsse/keys.ts";
import { keySigner } from "../core/dsse/sign.ts";
import { attestBundle, attestGraph, writeGraphToCas } from "../core/graph/attest.ts";
import { makeBundles } from "../core/graph/bundles.ts";
import { buildStaticGraph } from "../core/graph/callgraph.ts";
import { RICHGRAPH_SCHEMA, type RichGraph } from "../core/graph/model.ts";
import { finalizeGraph, graphBodyBytes } from "../core/graph/richgraph.ts";
import { verifyGraphFromCas } from "../core/graph/verify.ts";
import { median } from "./timing.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg("--runs") ?? 3);
const FILE = arg("--file") ?? "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

function timeIn<T>(fn: () => T, runs = RUNS): { ms: number; value: T } {
  const ms: number[] = [];
  let value: T | undefined;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    value = fn();
    ms.push(performance.now() - t);
  }
  return { ms: median(ms), value: value as T };
}

async function main(): Promise<void> {
  const bytes = readFileSync(FILE);
  const objdump = timeIn(() => {
    const r = spawnSync("objdump", ["-d", "--no-show-raw-insn", FILE], { maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`objdump: ${r.stderr.toString()}`);
    return r.stdout.length;
  });
  const built = timeIn(() => buildStaticGraph([{ file: FILE, bytes }]));
  const s = built.value;
  const fin = timeIn(() =>
    finalizeGraph({
      schema: RICHGRAPH_SCHEMA,
      analyzer: { name: "stella", version: "bench", arch: s.arch },
      policy_hash: `sha256:${"0".repeat(64)}`,
      inputs: s.inputs,
      nodes: s.nodes,
      edges: s.edges,
      roots: s.roots,
    }),
  );
  const graph: RichGraph = fin.value;
  const body = graphBodyBytes(graph);
  const pair = generateKeyPair("ecdsa-p256");
  const signer = keySigner(loadPrivateKey(pair.privatePem, "bench"));
  const pub = loadPublicKey(pair.publicPem, "bench");
  const signT = performance.now();
  const envelope = await attestGraph(graph, [signer]);
  const signMs = performance.now() - signT;

  // Bundles: every edge disputed, so there are many full (512-edge) bundles to verify.
  const disputed = graph.edges.map((e) => e.id);
  const bundles = makeBundles(graph, { disputed });
  const signed = [];
  for (const bundle of bundles) signed.push({ bundle, envelope: await attestBundle(bundle, [signer]) });
  const dir = mkdtempSync(join(tmpdir(), "stella-graph-bench-"));
  try {
    writeGraphToCas(dir, graph, envelope, signed);
    const plain = timeIn(() => verifyGraphFromCas(dir, graph.graph_hash, [pub], { edgeBundles: false }));
    const withBundles = timeIn(() => verifyGraphFromCas(dir, graph.graph_hash, [pub], { edgeBundles: true }));
    const perBundle = (withBundles.ms - plain.ms) / Math.max(1, bundles.length);
    const byReason: Record<string, number> = {};
    for (const e of graph.edges) byReason[e.reason] = (byReason[e.reason] ?? 0) + 1;
    const out = [
      `file: ${FILE} (${(bytes.length / 1e6).toFixed(2)} MB), ${RUNS} run(s), medians`,
      `graph: ${graph.nodes.length} nodes, ${graph.edges.length} edges (${Object.entries(byReason)
        .map(([r, n]) => `${r} ${n}`)
        .join(", ")}), ${graph.roots.length} roots, ${s.warnings.length} warnings`,
      `build (static call graph): ${built.ms.toFixed(0)} ms; objdump -d of the same file: ${objdump.ms.toFixed(0)} ms → ${(built.ms / objdump.ms).toFixed(2)}× objdump`,
      `finalize (sort, check, BLAKE3 graph_hash): ${fin.ms.toFixed(0)} ms`,
      `graph body: ${(body.length / 1e6).toFixed(2)} MB canonical JSON (${(gzipSync(body).length / 1e6).toFixed(2)} MB gzip), ${(body.length / graph.edges.length).toFixed(0)} B/edge`,
      `sign (DSSE, ECDSA P-256): ${signMs.toFixed(1)} ms`,
      `verify graph (envelope + re-hash + reachability): ${plain.ms.toFixed(0)} ms`,
      `verify with ${bundles.length} edge bundles (≤512 edges each): ${withBundles.ms.toFixed(0)} ms → ${perBundle.toFixed(2)} ms per bundle`,
    ];
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
