// Signing a richgraph (Level 0) and its edge bundles (Level 1) as in-toto statements in DSSE envelopes, and
// writing them to the reachability CAS.
//
// Graph statement: predicateType RICHGRAPH_PREDICATE_TYPE, one subject
//   {name: "richgraph", digest: {blake3: <graph_hash hex>, sha256: <SHA-256 of the same body bytes>}}
// (the body bytes are the CAS object: RFC 8785 JSON without graph_hash), and a predicate that summarises,
// not repeats, the graph: {graph_hash, schema, analyzer, policy_hash, nodes, edges, roots} (counts). The body
// itself is bound by the subject digests, so the envelope stays small whatever the graph's size.
//
// Bundle statement: predicateType EDGE_BUNDLE_PREDICATE_TYPE, one subject
//   {name: "richgraph-edges", digest: {sha256: <bundle_id hex>}}
// (bundle_id is SHA-256 of the bundle's canonical JSON without bundle_id, bundles.ts), predicate
// {graph_hash, bundle_id, bundle_reason, edges, revoked} (counts).
import { createHash } from "node:crypto";

import type { Envelope } from "../dsse/envelope.ts";
import { attest } from "../dsse/attest.ts";
import type { Signer } from "../dsse/sign.ts";
import { EdgeBundleError, type EdgeBundle } from "./bundles.ts";
import { putBundle, putEnvelope, putGraph, casPaths } from "./cas.ts";
import { EDGE_BUNDLE_PREDICATE_TYPE, RICHGRAPH_PREDICATE_TYPE, type RichGraph } from "./model.ts";
import { graphBodyBytes } from "./richgraph.ts";

export const GRAPH_SUBJECT_NAME = "richgraph";
export const BUNDLE_SUBJECT_NAME = "richgraph-edges";

export function graphPredicate(graph: RichGraph): Record<string, unknown> {
  return {
    graph_hash: graph.graph_hash,
    schema: graph.schema,
    analyzer: graph.analyzer,
    policy_hash: graph.policy_hash,
    nodes: graph.nodes.length,
    edges: graph.edges.length,
    roots: graph.roots.length,
  };
}

export function bundlePredicate(bundle: EdgeBundle): Record<string, unknown> {
  return {
    graph_hash: bundle.graph_hash,
    bundle_id: bundle.bundle_id,
    bundle_reason: bundle.bundle_reason,
    edges: bundle.edges.length,
    revoked: bundle.edges.filter((e) => e.revoked === true).length,
  };
}

/** The DSSE envelope over the graph's statement (see the file header). */
export async function attestGraph(graph: RichGraph, signers: readonly Signer[]): Promise<Envelope> {
  const body = graphBodyBytes(graph);
  return attest({
    subjects: [
      {
        name: GRAPH_SUBJECT_NAME,
        digest: {
          blake3: graph.graph_hash.replace(/^blake3:/, ""),
          sha256: createHash("sha256").update(body).digest("hex"),
        },
      },
    ],
    predicateType: RICHGRAPH_PREDICATE_TYPE,
    predicate: graphPredicate(graph),
    signers,
  });
}

/** The DSSE envelope over a bundle's statement (see the file header). */
export async function attestBundle(bundle: EdgeBundle, signers: readonly Signer[]): Promise<Envelope> {
  return attest({
    subjects: [{ name: BUNDLE_SUBJECT_NAME, digest: { sha256: bundle.bundle_id.replace(/^sha256:/, "") } }],
    predicateType: EDGE_BUNDLE_PREDICATE_TYPE,
    predicate: bundlePredicate(bundle),
    signers,
  });
}

export interface SignedBundle {
  bundle: EdgeBundle;
  envelope: Envelope;
}

export interface CasWriteResult {
  graph: string;
  graphEnvelope: string;
  bundles: { bundle: string; envelope: string }[];
}

/** Writes the graph body, its envelope, and each bundle and envelope into the CAS under `root`; returns paths. */
export function writeGraphToCas(
  root: string,
  graph: RichGraph,
  envelope: Envelope,
  bundles: readonly SignedBundle[] = [],
): CasWriteResult {
  const graphPath = putGraph(root, graph);
  const graphEnvelope = casPaths.graphEnvelope(root, graph.graph_hash);
  putEnvelope(graphEnvelope, envelope);
  const out: CasWriteResult["bundles"] = [];
  for (const b of bundles) {
    if (b.bundle.graph_hash !== graph.graph_hash) {
      throw new EdgeBundleError(
        "BUNDLE_MALFORMED",
        b.bundle.bundle_id,
        "graph_hash",
        `the bundle is for ${b.bundle.graph_hash}, not ${graph.graph_hash}`,
      );
    }
    const path = putBundle(root, b.bundle);
    const env = casPaths.bundleEnvelope(root, graph.graph_hash, b.bundle.bundle_id);
    putEnvelope(env, b.envelope);
    out.push({ bundle: path, envelope: env });
  }
  return { graph: graphPath, graphEnvelope, bundles: out };
}
