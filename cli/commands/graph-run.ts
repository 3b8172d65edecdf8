/**
 * The `stella graph` commands' implementations (loaded on use: core/graph initialises BLAKE3's WebAssembly at
 * import, which other commands should not pay for). Registration and help: graph.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

import { isElfHead, openArtifact } from "../../core/artifacts/artifact.ts";
import { debPurls, isPurlSource } from "../../core/graph/purls.ts";
import type { ByteSource } from "../../core/io/byte-source.ts";
import { canonicalJson } from "../../core/canonical-json.ts";
import type { PublicKey } from "../../core/dsse/keys.ts";
import { loadPublicKeyFile } from "../../core/dsse/keys.ts";
import { attestBundle, attestGraph, writeGraphToCas } from "../../core/graph/attest.ts";
import { makeBundles, revokeEdges } from "../../core/graph/bundles.ts";
import { getGraphBytes, putBundle, putEnvelope, casPaths } from "../../core/graph/cas.ts";
import { buildStaticGraph, type StaticGraphInput } from "../../core/graph/callgraph.ts";
import { RICHGRAPH_SCHEMA, type RichGraph, type RichGraphBody } from "../../core/graph/model.ts";
import {
  addressResolver,
  finalizeGraph,
  mergeRuntimeEdges,
  parseGraph,
  stacksFromRecording,
} from "../../core/graph/richgraph.ts";
import { explainTraces, resolveSinks, shortestTraces, type Trace } from "../../core/graph/traces.ts";
import { verifyGraphFromCas, GraphVerifyError } from "../../core/graph/verify.ts";
import { ElfFile, readBuildId } from "../../core/elf/index.ts";
import type { ProgramHeader } from "../../core/elf/index.ts";
import { buildFuncProof } from "../../core/funcproof/funcproof.ts";
import { createHash } from "node:crypto";
import { printOut } from "../action.ts";
import { EXIT_INPUT, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED } from "../exit-codes.ts";
import { progress, signersFrom } from "../options.ts";
import { VERSION } from "../version.ts";

export interface BuildOptions {
  out: string;
  sign?: string[];
  runtime?: string[];
  sinks?: string;
  sink?: string[];
  dispute?: string[];
  funcproofOut?: string;
  json?: boolean;
}

export interface VerifyOptions {
  graph: string;
  cas: string;
  key?: string[];
  edgeBundles?: boolean;
  sinks?: string;
  sink?: string[];
  json?: boolean;
}

export interface ExplainOptions {
  graph: string;
  cas: string;
  sink: string;
  k: string;
  json?: boolean;
}

export interface RevokeOptions {
  graph: string;
  cas: string;
  edge: string[];
  sign?: string[];
  json?: boolean;
}

const PT_LOAD = 1;

/** Sinks from --sinks FILE (one symbol or node id per line, # comments) and --sink. */
function sinksFrom(file: string | undefined, list: string[] | undefined): string[] {
  const out = [...(list ?? [])];
  if (file !== undefined) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const s = line.replace(/#.*/, "").trim();
      if (s !== "") out.push(s);
    }
  }
  return [...new Set(out)].sort();
}

function sha256Ref(text: string): string {
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

/** Maps a binary's file offsets to virtual addresses through its PT_LOAD segments (runtime frames carry offsets). */
function offsetMapper(loads: Map<string, ProgramHeader[]>) {
  return (buildId: string, fileOffset: number): bigint | undefined => {
    for (const ph of loads.get(buildId) ?? []) {
      if (fileOffset >= ph.offset && fileOffset < ph.offset + ph.filesz) {
        return ph.vaddr + BigInt(fileOffset - ph.offset);
      }
    }
    return undefined;
  };
}

function shortId(id: string): string {
  return id.length > 24 ? `${id.slice(0, 24)}…` : id;
}

export async function buildCommand(artifacts: string[], opts: BuildOptions): Promise<number> {
  const signers = signersFrom(opts.sign);
  if (signers.length === 0) {
    process.stderr.write("stella: graph build needs --sign KEY.pem: every graph is signed (Level 0)\n");
    return EXIT_USAGE;
  }
  const sinks = sinksFrom(opts.sinks, opts.sink);
  const bar = progress("graph");
  const sources: ByteSource[] = [];
  const inputs: StaticGraphInput[] = [];
  const loads = new Map<string, ProgramHeader[]>();
  const proofInputs: { name: string; open: () => ByteSource }[] = [];
  try {
    for (const path of artifacts) {
      // ELF files, plus the dpkg database that names their packages (purls) in images and root filesystems.
      const artifact = await openArtifact(path, { keep: (p, head) => isElfHead(head) || isPurlSource(p) });
      const single = artifact.kind === "elf";
      const db = new Map<string, Uint8Array>();
      for (const file of artifact.files) {
        if (single || !isPurlSource(file.path)) continue;
        const src = file.open();
        try {
          db.set(file.path, src.read(0, src.size));
        } finally {
          src.close();
        }
      }
      const purls = debPurls(db);
      for (const file of artifact.files) {
        if (!single && isPurlSource(file.path)) continue;
        const name = single ? basename(path) : file.path;
        const src = file.open();
        sources.push(src);
        const purl = purls.get(file.path);
        inputs.push({ file: name, bytes: src, ...(purl === undefined ? {} : { purl }) });
        proofInputs.push({ name, open: () => file.open() });
        const elf = ElfFile.open(src);
        const id = readBuildId(elf) ?? "";
        if (id !== "")
          loads.set(
            id,
            elf.programHeaders().filter((p) => p.type === PT_LOAD),
          );
      }
    }
    bar.update(0, 3, "call graph");
    const stat = buildStaticGraph(inputs);
    let body: RichGraphBody = {
      schema: RICHGRAPH_SCHEMA,
      analyzer: { name: "stella", version: VERSION, arch: stat.arch },
      policy_hash: sha256Ref(canonicalJson({ sinks, disputed: [...(opts.dispute ?? [])].sort() })),
      inputs: stat.inputs,
      nodes: stat.nodes,
      edges: stat.edges,
      roots: stat.roots,
    };
    bar.update(1, 3, "runtime edges");
    for (const rec of opts.runtime ?? []) {
      const stacks = stacksFromRecording(JSON.parse(readFileSync(rec, "utf8")) as unknown, rec);
      body = mergeRuntimeEdges(body, stacks, { resolver: addressResolver(body, offsetMapper(loads)) });
    }
    const graph = finalizeGraph(body);
    bar.update(2, 3, "signing");
    const bundles = makeBundles(graph, { disputed: opts.dispute ?? [] });
    const envelope = await attestGraph(graph, signers);
    const signed = [];
    for (const bundle of bundles) signed.push({ bundle, envelope: await attestBundle(bundle, signers) });
    const written = writeGraphToCas(opts.out, graph, envelope, signed);
    const traces = shortestTraces(graph, sinks);
    const hex = graph.graph_hash.replace(/^blake3:/, "");
    const tracesFile = join(opts.out, "reachability", "traces", `${hex}.json`);
    mkdirSync(join(opts.out, "reachability", "traces"), { recursive: true });
    writeFileSync(tracesFile, `${canonicalJson({ graph_hash: graph.graph_hash, sinks, traces })}\n`);
    const proofFiles =
      opts.funcproofOut === undefined ? [] : writeFuncProofs(graph, traces, proofInputs, opts.funcproofOut);
    bar.stop();
    const unknown = [...resolveSinks(graph, sinks)].filter(([, ids]) => ids.length === 0).map(([s]) => s);
    const byReason: Record<string, number> = {};
    for (const e of graph.edges) byReason[e.reason] = (byReason[e.reason] ?? 0) + 1;
    if (opts.json === true) {
      printOut(
        canonicalJson({
          graph_hash: graph.graph_hash,
          graph: written.graph,
          envelope: written.graphEnvelope,
          nodes: graph.nodes.length,
          edges: byReason,
          roots: graph.roots.length,
          bundles: written.bundles,
          traces,
          traces_file: tracesFile,
          unknown_sinks: unknown,
          funcproofs: proofFiles,
          warnings: stat.warnings,
        }),
      );
    } else {
      const lines = [
        `graph ${graph.graph_hash}`,
        `  ${graph.nodes.length} nodes, ${graph.edges.length} edges (${Object.entries(byReason)
          .map(([r, n]) => `${r} ${n}`)
          .join(", ")}), ${graph.roots.length} roots`,
        `  ${written.graph}`,
        `  ${written.graphEnvelope}`,
        `  ${bundles.length} edge bundle(s)${bundles.map((b) => `\n    ${b.bundle_reason} ${b.edges.length} edges ${b.bundle_id}`).join("")}`,
        ...traces.map(
          (t) => `  trace ${t.sink}: ${t.nodes.length - 1} edge(s) from ${t.root} (${t.edge_list_hash})`,
        ),
        ...unknown.map((s) => `  sink ${s}: no such symbol in the graph`),
        ...proofFiles.map((f) => `  funcproof ${f}`),
        ...(stat.warnings.length > 0
          ? [`  ${stat.warnings.length} warning(s), first: ${stat.warnings[0] ?? ""}`]
          : []),
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    }
    return EXIT_OK;
  } finally {
    bar.stop();
    for (const s of sources) s.close();
  }
}

/**
 * FuncProofs whose `traces[]` carry the edge-list hashes of the traces that end in one of the binary's
 * functions (seed "Evolving Evidence Models": FuncProof carries its entry→sink traces).
 */
function writeFuncProofs(
  graph: RichGraph,
  traces: readonly Trace[],
  files: readonly { name: string; open: () => ByteSource }[],
  dir: string,
): string[] {
  mkdirSync(dir, { recursive: true });
  const fileOf = new Map(graph.nodes.map((n) => [n.id, n.file]));
  const out: string[] = [];
  for (const f of files) {
    const src = f.open();
    try {
      const proof = buildFuncProof(src, { name: f.name, tool: `stella ${VERSION}` });
      proof.traces = traces
        .filter((t) => fileOf.get(t.sink) === f.name)
        .map((t) => t.edge_list_hash)
        .sort();
      const path = join(dir, `${f.name.replace(/^\/+/, "").replaceAll("/", "_")}.funcproof.json`);
      writeFileSync(path, `${canonicalJson(proof)}\n`);
      out.push(path);
    } finally {
      src.close();
    }
  }
  return out;
}

function keysFrom(paths: string[] | undefined): PublicKey[] {
  return (paths ?? []).map((p) => loadPublicKeyFile(p));
}

function normalizeHash(h: string): string {
  return h.includes(":") ? h : `blake3:${h}`;
}

export function verifyCommand(opts: VerifyOptions): number {
  const keys = keysFrom(opts.key);
  if (keys.length === 0) {
    process.stderr.write(
      "stella: graph verify needs --key PUB.pem (the keys trusted to sign graphs and bundles)\n",
    );
    return EXIT_USAGE;
  }
  const sinks = sinksFrom(opts.sinks, opts.sink);
  try {
    const report = verifyGraphFromCas(opts.cas, normalizeHash(opts.graph), keys, {
      edgeBundles: opts.edgeBundles === true,
      sinks,
    });
    if (opts.json === true) {
      printOut(canonicalJson({ verified: true, ...report }));
      return EXIT_OK;
    }
    const lines = [
      `verified ${report.graph_hash}: signed by ${report.keyids.join(", ")}; body re-hashed`,
      `  ${report.counts.nodes} nodes, ${report.counts.edges} edges, ${report.counts.roots} roots; ` +
        `${report.reachable.all} nodes reachable, ${report.reachable.after_revocation} with revoked edges dropped`,
      ...report.bundles.map(
        (b) =>
          `  bundle ${b.bundle_reason} ${b.bundle_id}: ${b.edges} edges, signed by ${b.keyids.join(", ")}` +
          (b.revoked.length > 0 ? `, revokes ${b.revoked.length}` : ""),
      ),
      ...report.sinks.map(
        (s) =>
          `  sink ${s.sink} (${s.node}): ${s.reachable ? "reachable" : "unreachable"}` +
          (s.reachable && !s.reachable_after_revocation
            ? " → UNREACHABLE once revoked edges are dropped"
            : ""),
      ),
      ...report.unknown_sinks.map((s) => `  sink ${s}: no such symbol in the graph`),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    return EXIT_OK;
  } catch (err: unknown) {
    if (err instanceof GraphVerifyError) {
      if (opts.json === true) {
        printOut(
          canonicalJson({
            verified: false,
            error: { code: err.code, file: err.file, field: err.field, message: err.message },
          }),
        );
      } else {
        process.stderr.write(`stella: ${err.code}: ${err.message}\n`);
      }
      return EXIT_VERIFY_FAILED;
    }
    throw err;
  }
}

function loadGraph(cas: string, hash: string): RichGraph {
  const h = normalizeHash(hash);
  return parseGraph(getGraphBytes(cas, h), casPaths.graph(cas, h), { expectHash: h });
}

export function explainCommand(opts: ExplainOptions): number {
  const k = Number(opts.k);
  if (!Number.isInteger(k) || k < 1 || k > 64) {
    process.stderr.write("stella: --k must be an integer 1..64\n");
    return EXIT_USAGE;
  }
  const graph = loadGraph(opts.cas, opts.graph);
  const ids = resolveSinks(graph, [opts.sink]).get(opts.sink) ?? [];
  if (ids.length === 0) {
    process.stderr.write(`stella: ${opts.sink}: no such symbol or node in graph ${graph.graph_hash}\n`);
    return EXIT_INPUT;
  }
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const edges = new Map(graph.edges.map((e) => [e.id, e]));
  const traces = ids.flatMap((id) => explainTraces(graph, id, k));
  if (opts.json === true) {
    printOut(
      canonicalJson({
        graph_hash: graph.graph_hash,
        sink: opts.sink,
        traces: traces.map((t) => ({
          ...t,
          runtime: t.edges.map((e) => edges.get(e)?.reason === "runtime"),
        })),
      }),
    );
    return EXIT_OK;
  }
  if (traces.length === 0) {
    process.stdout.write(`${opts.sink}: not reachable from any root of ${graph.graph_hash}\n`);
    return EXIT_OK;
  }
  const out: string[] = [];
  for (const [i, t] of traces.entries()) {
    out.push(`path ${i + 1} (${t.edges.length} edges, ${t.edge_list_hash}):`);
    const root = graph.roots.find((r) => r.node === t.root);
    out.push(`  ${nodes.get(t.root)?.symbol ?? t.root}  [root: ${root?.reason ?? "?"}] ${shortId(t.root)}`);
    for (const [j, eid] of t.edges.entries()) {
      const e = edges.get(eid);
      const to = nodes.get(t.nodes[j + 1] ?? "");
      const mark = e?.reason === "runtime" ? "runtime-observed" : (e?.reason ?? "?");
      out.push(`  → ${to?.symbol ?? "?"}  [${mark}] ${to?.file ?? ""}`);
    }
  }
  process.stdout.write(`${out.join("\n")}\n`);
  return EXIT_OK;
}

export async function revokeCommand(opts: RevokeOptions): Promise<number> {
  const signers = signersFrom(opts.sign);
  if (signers.length === 0) {
    process.stderr.write("stella: graph revoke needs --sign KEY.pem: a revocation is a signed edge bundle\n");
    return EXIT_USAGE;
  }
  const graph = loadGraph(opts.cas, opts.graph);
  const bundle = revokeEdges(graph, opts.edge);
  const envelope = await attestBundle(bundle, signers);
  const path = putBundle(opts.cas, bundle);
  putEnvelope(casPaths.bundleEnvelope(opts.cas, graph.graph_hash, bundle.bundle_id), envelope);
  if (opts.json === true)
    printOut(canonicalJson({ bundle: path, bundle_id: bundle.bundle_id, revoked: opts.edge }));
  else
    process.stdout.write(`revocation bundle ${bundle.bundle_id}: ${opts.edge.length} edge(s)\n  ${path}\n`);
  return EXIT_OK;
}
