// What `verifyImage` reports: a verdict per binary, per referrer, per graph, VEX document and SBOM.
import type { ReplayMismatch } from "../funcproof/replay.ts";
import type { EvidenceKind } from "./referrers.ts";

export interface TlogProof {
  logIndex: string;
  treeSize: string;
  logId: string;
}

export interface ReferrerReport {
  digest: string;
  artifactType: string;
  kind: EvidenceKind;
  predicateType?: string;
  /** The binary a FuncProof is about (from the signed predicate). */
  path?: string;
  status: "verified" | "refused";
  reasons: string[];
  keyids: string[];
  tlog: TlogProof[];
}

export type BinaryVerdict = "verified" | "mismatch" | "unattested";

export interface BinaryReport {
  path: string;
  sha256: string;
  buildId?: string;
  verdict: BinaryVerdict;
  reasons: string[];
  /** Digests of the FuncProof referrers replayed against this binary. */
  funcproofs: string[];
  /** Of the closest proof (the one with the fewest mismatches) when none replays clean. */
  mismatches: ReplayMismatch[];
  checked: { sections: number; functions: number };
}

export interface GraphReport {
  referrer: string;
  graphHash: string;
  /** Function nodes whose symbol_digest was compared with a replayed FuncProof. */
  nodesChecked: number;
  reasons: string[];
}

export interface VexReport {
  referrer: string;
  statements: { vulnerability: string; status: string }[];
  reasons: string[];
}

export interface ImageVerification {
  image: { where: string; digest: string };
  verdict: "pass" | "fail";
  /** Image-level reasons (referrers refused, proofs naming absent files, …). */
  reasons: string[];
  binaries: BinaryReport[];
  referrers: ReferrerReport[];
  graphs: GraphReport[];
  vex: VexReport[];
  sbom: { referrer: string; components: number; reasons: string[] }[];
  /**
   * Wall-clock phases: fetching and verifying the referrers; fetching the image's layers and extracting its ELF
   * files; replaying (hashing). Not deterministic, unlike the rest of the report.
   */
  timings: { referrersMs: number; imageMs: number; replayMs: number; totalMs: number };
}
