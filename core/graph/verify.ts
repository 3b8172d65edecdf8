// `stella graph verify` in core: a graph (and optionally its edge bundles) read back from the reachability
// CAS and checked end to end, offline. Every failure is a GraphVerifyError naming the file and the field.
import { createHash } from "node:crypto";

import { StellaError } from "../errors.ts";
import { DSSE_VERIFY_FAILURES, DsseError, type Envelope } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement, type Statement } from "../dsse/statement.ts";
import { verifyEnvelope } from "../dsse/verify.ts";
import { BUNDLE_SUBJECT_NAME, GRAPH_SUBJECT_NAME } from "./attest.ts";
import { checkBundleAgainstGraph, parseBundle, type BundleReason } from "./bundles.ts";
import { casPaths, getBundleBytes, getEnvelope, getGraphBytes, listBundles } from "./cas.ts";
import { EDGE_BUNDLE_PREDICATE_TYPE, RICHGRAPH_PREDICATE_TYPE, type RichGraph } from "./model.ts";
import { compareStrings, parseGraph } from "./richgraph.ts";
import { reachable, resolveSinks, shortestTraces, type Trace } from "./traces.ts";

export type GraphVerifyErrorCode =
  | "VERIFY_MISSING"
  | "VERIFY_TAMPERED"
  | "VERIFY_MALFORMED"
  | "VERIFY_SIGNATURE"
  | "VERIFY_SUBJECT"
  | "VERIFY_PREDICATE"
  | "VERIFY_BUNDLE";

export class GraphVerifyError extends StellaError<GraphVerifyErrorCode> {
  readonly file: string;
  readonly field: string;
  constructor(code: GraphVerifyErrorCode, file: string, field: string, why: string, cause?: unknown) {
    super(code, `${file}: ${field}: ${why}`, cause === undefined ? undefined : { cause });
    this.file = file;
    this.field = field;
  }
}

export interface VerifyGraphOptions {
  /** Also verify every edge bundle stored for the graph (and apply their revocations). */
  edgeBundles: boolean;
  /** Sinks (node ids or symbol names) to report reachability for. */
  sinks?: readonly string[];
}

export interface BundleReport {
  file: string;
  envelope: string;
  bundle_id: string;
  bundle_reason: BundleReason;
  edges: number;
  revoked: string[];
  keyids: string[];
}

export interface SinkReport {
  /** As asked (node id or symbol name). */
  sink: string;
  node: string;
  reachable: boolean;
  /** Reachable once revoked edges are dropped. */
  reachable_after_revocation: boolean;
  /** The shortest trace once revoked edges are dropped, when reachable. */
  trace?: Trace;
}

export interface GraphVerifyReport {
  graph_hash: string;
  file: string;
  envelope: string;
  keyids: string[];
  counts: { nodes: number; edges: number; roots: number };
  bundles: BundleReport[];
  /** Edge ids revoked by verified bundles, sorted. */
  revoked_edges: string[];
  reachable: { all: number; after_revocation: number };
  sinks: SinkReport[];
  /** Sink names asked for that name no node of the graph. */
  unknown_sinks: string[];
  /** Sink node ids reachable with every edge and unreachable once revoked edges are dropped. */
  newly_unreachable: string[];
}

function codeFor(err: StellaError): GraphVerifyErrorCode {
  if (err.code === "CAS_MISSING") return "VERIFY_MISSING";
  if (
    err.code === "CAS_TAMPERED" ||
    err.code === "GRAPH_HASH_MISMATCH" ||
    err.code === "BUNDLE_ID_MISMATCH"
  ) {
    return "VERIFY_TAMPERED";
  }
  if (err.code === "BUNDLE_UNKNOWN_EDGE") return "VERIFY_BUNDLE";
  if (err instanceof DsseError && DSSE_VERIFY_FAILURES.has(err.code)) return "VERIFY_SIGNATURE";
  return "VERIFY_MALFORMED";
}

/** Runs `fn`, turning a StellaError into a GraphVerifyError on `file` (its own field when it names one). */
function step<T>(file: string, field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof GraphVerifyError || !(err instanceof StellaError)) throw err;
    const se: StellaError = err as StellaError;
    const own = (se as { field?: unknown }).field;
    const prefix = `${file}: `;
    let why = se.message.startsWith(prefix) ? se.message.slice(prefix.length) : se.message;
    const f = typeof own === "string" ? own : field;
    if (why.startsWith(`${f}: `)) why = why.slice(f.length + 2);
    throw new GraphVerifyError(codeFor(se), file, f, `${se.code}: ${why}`, se);
  }
}

interface CheckedEnvelope {
  keyids: string[];
  statement: Statement;
}

function checkEnvelope(path: string, keys: readonly PublicKey[], predicateType: string): CheckedEnvelope {
  const env: Envelope = step(path, "(document)", () => getEnvelope(path));
  const result = step(path, "signatures", () =>
    verifyEnvelope(env, keys, { name: path, payloadTypes: [IN_TOTO_PAYLOAD_TYPE] }),
  );
  const statement = step(path, "payload", () => parseStatement(result.payload, path));
  if (statement.predicateType !== predicateType) {
    throw new GraphVerifyError(
      "VERIFY_PREDICATE",
      path,
      "payload.predicateType",
      `expected ${predicateType}, got ${statement.predicateType}`,
    );
  }
  return { keyids: [...result.verifiedKeyids], statement };
}

function subjectNamed(path: string, st: Statement, name: string): Readonly<Record<string, string>> {
  const s = st.subject.find((x) => x.name === name);
  if (s === undefined) {
    throw new GraphVerifyError(
      "VERIFY_SUBJECT",
      path,
      "payload.subject",
      `no subject named ${JSON.stringify(name)} (subjects: ${st.subject.map((x) => x.name).join(", ")})`,
    );
  }
  return s.digest;
}

function predicateField(path: string, st: Statement, field: string, want: string): void {
  const got = st.predicate?.[field];
  if (got !== want) {
    throw new GraphVerifyError(
      "VERIFY_PREDICATE",
      path,
      `payload.predicate.${field}`,
      `the signed statement says ${JSON.stringify(got) ?? "nothing"}, expected ${want}`,
    );
  }
}

/** The statement subject's `alg` digest must be `want`; the error says what was signed and what was verified. */
function subjectDigest(
  envelope: string,
  digest: Record<string, string>,
  alg: "blake3" | "sha256",
  want: string,
  signedIs: string,
  verifiedIs: string,
): void {
  if (digest[alg] === want) return;
  throw new GraphVerifyError(
    "VERIFY_SUBJECT",
    envelope,
    `payload.subject.digest.${alg}`,
    `${signedIs} ${digest[alg] ?? "(none)"}, ${verifiedIs} ${want}`,
  );
}

/**
 * Verifies the graph `graphHash` ("blake3:<hex>" or the hex) stored under `root`:
 * 1. the body object: BLAKE3 of its bytes is its name, it parses (shape, limits, canonical order, references)
 *    and hashes to graphHash;
 * 2. its envelope: a signature by one of `keys`, an in-toto statement of RICHGRAPH_PREDICATE_TYPE with a
 *    subject "richgraph" whose blake3 is the graph hash and whose sha256 is SHA-256 of the body bytes, and
 *    predicate.graph_hash equal to it;
 * 3. with opts.edgeBundles, every bundle stored for the graph: content hash = name, parse (bundle_id
 *    re-hashed), every edge an edge of the graph with the same from/to/reason, and its envelope (signature,
 *    EDGE_BUNDLE_PREDICATE_TYPE, subject "richgraph-edges" with sha256 = bundle_id, predicate graph_hash and
 *    bundle_id equal);
 * 4. reachability from the roots with all edges and with the revoked edges dropped, and for opts.sinks which
 *    are reachable, which are not once revocations apply, and the shortest remaining trace.
 * The first failure throws GraphVerifyError naming the file and the field.
 */
export function verifyGraphFromCas(
  root: string,
  graphHash: string,
  keys: readonly PublicKey[],
  opts: VerifyGraphOptions,
): GraphVerifyReport {
  const hashText = graphHash.startsWith("blake3:") ? graphHash : `blake3:${graphHash}`;
  const file = step("<arguments>", "graph", () => casPaths.graph(root, hashText));
  const bytes = step(file, "(content)", () => getGraphBytes(root, hashText));
  const graph: RichGraph = step(file, "(document)", () => parseGraph(bytes, file, { expectHash: hashText }));

  const envelope = casPaths.graphEnvelope(root, hashText);
  const env = checkEnvelope(envelope, keys, RICHGRAPH_PREDICATE_TYPE);
  const digest = subjectNamed(envelope, env.statement, GRAPH_SUBJECT_NAME);
  const hex = hashText.slice("blake3:".length);
  subjectDigest(envelope, digest, "blake3", hex, "the signed graph is", "the graph verified is");
  const sha = createHash("sha256").update(bytes).digest("hex");
  subjectDigest(envelope, digest, "sha256", sha, "the signed body is", `${file} is`);
  predicateField(envelope, env.statement, "graph_hash", hashText);

  const bundles: BundleReport[] = [];
  const revoked = new Set<string>();
  if (opts.edgeBundles) {
    for (const id of step(casPaths.bundleDir(root, hashText), "(listing)", () =>
      listBundles(root, hashText),
    )) {
      const bfile = casPaths.bundle(root, hashText, id);
      const bbytes = step(bfile, "(content)", () => getBundleBytes(root, hashText, id));
      const bundle = step(bfile, "(document)", () => parseBundle(bbytes, bfile));
      step(bfile, "edges", () => {
        checkBundleAgainstGraph(bundle, graph, bfile);
      });
      const benv = casPaths.bundleEnvelope(root, hashText, id);
      const checked = checkEnvelope(benv, keys, EDGE_BUNDLE_PREDICATE_TYPE);
      const bdigest = subjectNamed(benv, checked.statement, BUNDLE_SUBJECT_NAME);
      const bhex = bundle.bundle_id.slice("sha256:".length);
      subjectDigest(benv, bdigest, "sha256", bhex, "the signed bundle is", `${bfile} is`);
      predicateField(benv, checked.statement, "graph_hash", hashText);
      predicateField(benv, checked.statement, "bundle_id", bundle.bundle_id);
      const rev = bundle.edges.filter((e) => e.revoked === true).map((e) => e.edge_id);
      for (const r of rev) revoked.add(r);
      bundles.push({
        file: bfile,
        envelope: benv,
        bundle_id: bundle.bundle_id,
        bundle_reason: bundle.bundle_reason,
        edges: bundle.edges.length,
        revoked: rev,
        keyids: checked.keyids,
      });
    }
  }

  const all = reachable(graph);
  const after = reachable(graph, { dropEdges: revoked });
  const sinks: SinkReport[] = [];
  const unknown: string[] = [];
  const newly = new Set<string>();
  for (const [sink, nodes] of resolveSinks(graph, opts.sinks ?? [])) {
    if (nodes.length === 0) unknown.push(sink);
    for (const node of nodes) {
      const r: SinkReport = {
        sink,
        node,
        reachable: all.has(node),
        reachable_after_revocation: after.has(node),
      };
      if (r.reachable_after_revocation) {
        const [trace] = shortestTraces(graph, [node], { dropEdges: revoked });
        if (trace !== undefined) r.trace = trace;
      }
      if (r.reachable && !r.reachable_after_revocation) newly.add(node);
      sinks.push(r);
    }
  }
  return {
    graph_hash: hashText,
    file,
    envelope,
    keyids: env.keyids,
    counts: { nodes: graph.nodes.length, edges: graph.edges.length, roots: graph.roots.length },
    bundles,
    revoked_edges: [...revoked].sort(compareStrings),
    reachable: { all: all.size, after_revocation: after.size },
    sinks,
    unknown_sinks: unknown,
    newly_unreachable: [...newly].sort(compareStrings),
  };
}
