// Hand-built graphs for the core/graph tests: small enough to work out reachability on paper.
import { createHash } from "node:crypto";

import {
  edgeId,
  nodeId,
  RICHGRAPH_SCHEMA,
  type EdgeReason,
  type GraphEdge,
  type GraphNode,
  type RichGraphBody,
} from "./model.ts";

export const BID = "aabbccdd";
export const LIBC = "11223344";

export function sha(text: string): string {
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

export function fn(start: string, symbol: string, build = BID, purl?: string): GraphNode {
  const end = `0x${(BigInt(start) + 0x40n).toString(16)}`;
  const n: GraphNode = {
    id: nodeId("function", build, start),
    kind: "function",
    build_id: build,
    file: build === BID ? "/usr/bin/app" : "/lib/libc.so.6",
    symbol,
    address: { start, end },
    symbol_digest: sha(`${build}:${symbol}`),
  };
  if (purl !== undefined) n.purl = purl;
  return n;
}

export function ext(symbol: string, build = BID): GraphNode {
  return {
    id: nodeId("external", build, symbol),
    kind: "external",
    build_id: build,
    file: "/usr/bin/app",
    symbol,
  };
}

export function init(build = BID): GraphNode {
  return {
    id: nodeId("synthetic", build, ""),
    kind: "synthetic",
    build_id: build,
    file: "/usr/bin/app",
    symbol: "<init>",
  };
}

export function edge(
  from: GraphNode,
  to: GraphNode,
  reason: EdgeReason = "direct-call",
  evidence: string[] = ["0x1"],
  confidence = 0.9,
): GraphEdge {
  const runtime = reason === "runtime";
  return {
    id: edgeId(from.id, to.id, reason),
    from: from.id,
    to: to.id,
    reason,
    confidence,
    phase: runtime ? "runtime" : "static",
    evidence,
  };
}

/**
 * The app graph:
 *
 *   root main ─▶ parse ─▶ helper ─▶ vuln ◀─ dead        (dead is no root and has no callers)
 *   root <init> ─init-root▶ ctor ─plt▶ ext:system
 *   main ─third-party▶ libc:memcpy (another package)
 *
 * Reachable: main, parse, helper, vuln, <init>, ctor, system, memcpy. Not: dead.
 * The only reachable edge into vuln is helper → vuln.
 */
export function appGraph(): {
  body: RichGraphBody;
  n: Record<"main" | "parse" | "helper" | "vuln" | "dead" | "ctor" | "system" | "memcpy" | "init", GraphNode>;
  e: Record<
    "mainParse" | "parseHelper" | "helperVuln" | "deadVuln" | "initCtor" | "ctorSystem" | "mainMemcpy",
    GraphEdge
  >;
} {
  const n = {
    main: fn("0x1000", "main", BID, "pkg:deb/debian/app@1.0"),
    parse: fn("0x1100", "parse", BID, "pkg:deb/debian/app@1.0"),
    helper: fn("0x1200", "helper", BID, "pkg:deb/debian/app@1.0"),
    vuln: fn("0x1300", "vuln", BID, "pkg:deb/debian/app@1.0"),
    dead: fn("0x1400", "dead", BID, "pkg:deb/debian/app@1.0"),
    ctor: fn("0x1500", "ctor", BID, "pkg:deb/debian/app@1.0"),
    system: ext("system"),
    memcpy: fn("0x2000", "memcpy", LIBC, "pkg:deb/debian/libc6@2.36"),
    init: init(),
  };
  const e = {
    mainParse: edge(n.main, n.parse, "direct-call", ["0x1010"]),
    parseHelper: edge(n.parse, n.helper, "direct-call", ["0x1110"]),
    helperVuln: edge(n.helper, n.vuln, "direct-call", ["0x1210", "0x1220"]),
    deadVuln: edge(n.dead, n.vuln, "direct-call", ["0x1410"]),
    initCtor: edge(n.init, n.ctor, "init-root", [], 1),
    ctorSystem: edge(n.ctor, n.system, "plt", ["0x1510"]),
    mainMemcpy: edge(n.main, n.memcpy, "third-party", ["0x1020"], 0.8),
  };
  const body: RichGraphBody = {
    schema: RICHGRAPH_SCHEMA,
    analyzer: { name: "stella", version: "0.1.0", arch: ["x86_64"] },
    policy_hash: sha("policy"),
    inputs: [
      { file: "/usr/bin/app", build_id: BID, sha256: "a".repeat(64), purl: "pkg:deb/debian/app@1.0" },
      { file: "/lib/libc.so.6", build_id: LIBC, sha256: "b".repeat(64), purl: "pkg:deb/debian/libc6@2.36" },
    ],
    nodes: Object.values(n),
    edges: Object.values(e),
    roots: [
      { node: n.main.id, reason: "main" },
      { node: n.init.id, reason: "init" },
    ],
  };
  return { body, n, e };
}

/** Deterministic shuffle (a small LCG) so a failure reproduces. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
