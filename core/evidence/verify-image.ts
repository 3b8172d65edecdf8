// The auditor's replay (`stella verify --image`): every referrer of an image fetched (from a registry or an
// exported layout, through one EvidenceSource), each signed document verified (signature, transparency-log
// inclusion proof and checkpoint when a trusted root is given), then the image's ELF files re-extracted and
// every FuncProof replayed hash by hash. The result is a verdict per binary with the reason for each failure.
// Nothing here throws for bad evidence: a bad referrer is refused with its reason, and the image fails.
import { createHash } from "node:crypto";

import { openArtifact } from "../artifacts/artifact.ts";
import type { PublicKey } from "../dsse/keys.ts";
import type { Statement } from "../dsse/statement.ts";
import type { FuncProof } from "../funcproof/funcproof.ts";
import { describeMismatch, replayFuncProof, type ReplayMismatch } from "../funcproof/replay.ts";
import { asFuncProof } from "../funcproof/summary.ts";
import type { RichGraph } from "../graph/model.ts";
import { parseGraph } from "../graph/richgraph.ts";
import type { Blake3 } from "../hash/digest.ts";
import type { EvidenceSource } from "../oci/evidence-source.ts";
import { validateOpenVex, type OpenVexDocument } from "../vex/openvex.ts";
import {
  Refused,
  checkSbom,
  crossCheckGraph,
  errorText,
  parseReferrerManifest,
  verifySigned,
} from "./checks.ts";
import {
  BUNDLE_LAYER_MEDIA_TYPE,
  DSSE_LAYER_MEDIA_TYPE,
  RICHGRAPH_BODY_MEDIA_TYPE,
  artifactTypeFor,
  evidenceKind,
} from "./referrers.ts";
import type { BinaryReport, ImageVerification, ReferrerReport, VexReport } from "./report.ts";

export type * from "./report.ts";

/** Largest signed document or body read from a referrer (a FuncProof of a big library is a few MB). */
export const MAX_EVIDENCE_BLOB_BYTES = 64 * 1024 * 1024;
const MAX_REFERRER_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Referrers fetched at once: enough to hide registry round trips, few enough to be polite. */
const REFERRER_CONCURRENCY = 8;

export interface VerifyImageOptions {
  /** Signers' public keys; every signed referrer must verify with one of them. */
  keys: readonly PublicKey[];
  /** A sigstore trusted root: when given, every signed referrer must carry a verified inclusion proof. */
  trustedRoot?: object;
  /** Needed when FuncProofs record BLAKE3 hashes. */
  blake3?: Blake3;
  maxBlobBytes?: number;
  onProgress?: (stage: "referrers" | "binaries", done: number, total: number, what: string) => void;
}

interface Collected {
  proofs: { referrer: string; proof: FuncProof }[];
  graphs: { referrer: string; graph: RichGraph; reasons: string[] }[];
  vex: VexReport[];
  sboms: { referrer: string; json: string }[];
}

export async function verifyImage(
  source: EvidenceSource,
  opts: VerifyImageOptions,
): Promise<ImageVerification> {
  const t0 = performance.now();
  const maxBlob = opts.maxBlobBytes ?? MAX_EVIDENCE_BLOB_BYTES;
  const imageDigest = source.imageDigest;
  const reasons: string[] = [];
  const collected: Collected = { proofs: [], graphs: [], vex: [], sboms: [] };

  // Phase 1: every referrer fetched and verified, a few at a time (the registry round trips dominate).
  const descriptors = await source.referrers();
  const referrers: ReferrerReport[] = descriptors.map((desc) => {
    const artifactType = desc.artifactType ?? "";
    return {
      digest: desc.digest,
      artifactType,
      kind: evidenceKind(artifactType),
      status: "verified",
      reasons: [],
      keyids: [],
      tlog: [],
    };
  });
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < referrers.length; i = next++) {
      const report = referrers[i];
      if (report === undefined) continue;
      try {
        await checkReferrer(source, report.digest, report, collected, opts, maxBlob);
      } catch (err) {
        report.status = "refused";
        report.reasons.push(errorText(err));
      }
      opts.onProgress?.("referrers", ++done, referrers.length, report.digest);
    }
  };
  await Promise.all(Array.from({ length: Math.min(REFERRER_CONCURRENCY, referrers.length) }, worker));
  for (const report of referrers) {
    if (report.status === "refused") {
      reasons.push(
        `referrer ${report.digest} (${report.artifactType || "no artifactType"}) refused: ${report.reasons.join("; ")}`,
      );
    }
  }
  // Completion order is not deterministic; the report is.
  const byReferrer = (a: { referrer: string }, b: { referrer: string }): number =>
    a.referrer < b.referrer ? -1 : a.referrer > b.referrer ? 1 : 0;
  collected.proofs.sort(byReferrer);
  collected.graphs.sort(byReferrer);
  collected.vex.sort(byReferrer);
  collected.sboms.sort(byReferrer);
  const referrersMs = performance.now() - t0;

  // Re-extract the image's ELF files and replay every proof that names them.
  // Phase 2: the image's layers fetched (registry) and its ELF files extracted.
  const t1 = performance.now();
  const layout = await source.layoutDir();
  const artifact = await openArtifact(layout);
  const imageMs = performance.now() - t1;
  if (artifact.digest !== imageDigest) {
    // A layout holding several images: the replay must run on the one the evidence is about.
    reasons.push(`the ELF files were read from image ${artifact.digest}, not ${imageDigest}`);
  }
  const byPath = new Map<string, { referrer: string; proof: FuncProof }[]>();
  for (const p of collected.proofs) {
    const list = byPath.get(p.proof.file.name) ?? [];
    list.push(p);
    byPath.set(p.proof.file.name, list);
  }
  const binaries: BinaryReport[] = [];
  const replayed = new Map<string, FuncProof>(); // buildId → the proof that replayed clean
  // Phase 3: the replay, hash by hash.
  const h0 = performance.now();
  for (const [i, file] of artifact.files.entries()) {
    opts.onProgress?.("binaries", i, artifact.files.length, file.path);
    const proofs = byPath.get(file.path) ?? [];
    byPath.delete(file.path);
    const report: BinaryReport = {
      path: file.path,
      sha256: file.sha256,
      verdict: "unattested",
      reasons: [],
      funcproofs: proofs.map((p) => p.referrer),
      mismatches: [],
      checked: { sections: 0, functions: 0 },
    };
    if (proofs.length === 0) {
      report.reasons.push("no verified FuncProof referrer names this binary");
      binaries.push(report);
      continue;
    }
    let best: { mismatches: ReplayMismatch[]; checked: BinaryReport["checked"] } | undefined;
    for (const { proof } of proofs) {
      const src = file.open();
      let r;
      try {
        r = replayFuncProof(proof, src, opts.blake3 ? { blake3: opts.blake3 } : {});
      } finally {
        src.close();
      }
      if (proof.buildId !== undefined) report.buildId = proof.buildId;
      if (r.ok) {
        best = { mismatches: [], checked: r.checked };
        if (proof.buildId !== undefined) replayed.set(proof.buildId, proof);
        break;
      }
      if (best === undefined || r.mismatches.length < best.mismatches.length) {
        best = { mismatches: r.mismatches, checked: r.checked };
      }
    }
    if (best !== undefined) {
      report.checked = best.checked;
      report.mismatches = best.mismatches;
      report.verdict = best.mismatches.length === 0 ? "verified" : "mismatch";
      report.reasons = best.mismatches.map(describeMismatch);
    }
    binaries.push(report);
  }
  const replayMs = performance.now() - h0;
  for (const [path, proofs] of [...byPath.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    reasons.push(
      `FuncProof ${proofs.map((p) => p.referrer).join(", ")} names ${path}, which the image does not have`,
    );
  }

  const graphs = collected.graphs.map((g) => crossCheckGraph(g, replayed));
  const sbom = await Promise.all(
    collected.sboms.map(async (s) => checkSbom(s.referrer, s.json, artifact.files)),
  );
  for (const g of graphs) for (const r of g.reasons) reasons.push(`graph ${g.referrer}: ${r}`);
  for (const v of collected.vex) for (const r of v.reasons) reasons.push(`VEX ${v.referrer}: ${r}`);
  for (const s of sbom) for (const r of s.reasons) reasons.push(`SBOM ${s.referrer}: ${r}`);
  const bad = binaries.filter((b) => b.verdict !== "verified").length;
  if (bad > 0) reasons.push(`${bad} of ${binaries.length} binaries not verified`);
  return {
    image: { where: source.where, digest: imageDigest },
    verdict: reasons.length === 0 ? "pass" : "fail",
    reasons,
    binaries,
    referrers,
    graphs,
    vex: collected.vex,
    sbom,
    timings: {
      referrersMs: Math.round(referrersMs),
      imageMs: Math.round(imageMs),
      replayMs: Math.round(replayMs),
      totalMs: Math.round(performance.now() - t0),
    },
  };
}

async function checkReferrer(
  source: EvidenceSource,
  digest: string,
  report: ReferrerReport,
  collected: Collected,
  opts: VerifyImageOptions,
  maxBlob: number,
): Promise<void> {
  const where = `referrer ${digest}`;
  const manifestBytes = await source.manifest(digest);
  if (manifestBytes.length > MAX_REFERRER_MANIFEST_BYTES) throw new Refused(`${where}: manifest too large`);
  const manifest = parseReferrerManifest(manifestBytes, where);
  if (manifest.subject !== source.imageDigest) {
    throw new Refused(`${where}: subject is ${manifest.subject ?? "(none)"}, not ${source.imageDigest}`);
  }
  if (manifest.artifactType !== report.artifactType) {
    throw new Refused(
      `${where}: the manifest's artifactType ${manifest.artifactType ?? "(none)"} differs from the index's ${report.artifactType}`,
    );
  }
  const blobOf = async (layer: { digest: string; size: number }): Promise<Uint8Array> => {
    if (layer.size > maxBlob) {
      throw new Refused(
        `${where}: layer ${layer.digest} is ${layer.size} bytes, over the limit of ${maxBlob}`,
      );
    }
    return source.blob(layer.digest, maxBlob);
  };

  if (report.kind === "sbom") {
    const layer = manifest.layers[0];
    if (layer === undefined) throw new Refused(`${where}: no SBOM layer`);
    collected.sboms.push({ referrer: digest, json: Buffer.from(await blobOf(layer)).toString("utf8") });
    return;
  }
  const signedLayer = manifest.layers.find(
    (l) => l.mediaType === BUNDLE_LAYER_MEDIA_TYPE || l.mediaType === DSSE_LAYER_MEDIA_TYPE,
  );
  if (signedLayer === undefined) throw new Refused(`${where}: no sigstore bundle or DSSE layer`);
  const doc = verifySigned(await blobOf(signedLayer), `${where}: layer ${signedLayer.digest}`, opts);
  report.keyids = doc.keyids;
  report.tlog = doc.tlog;
  const { statement } = doc;
  report.predicateType = statement.predicateType;
  if (artifactTypeFor(statement.predicateType) !== report.artifactType) {
    throw new Refused(
      `${where}: artifactType ${report.artifactType} does not match the signed predicate type ${statement.predicateType}`,
    );
  }
  const predicate = statement.predicate ?? {};
  switch (report.kind) {
    case "funcproof": {
      const proof = asFuncProof(predicate, `${where}: predicate`);
      const subject = statement.subject[0];
      if (subject?.digest.sha256 !== proof.file.sha256) {
        throw new Refused(
          `${where}: subject sha256 ${subject?.digest.sha256 ?? "(none)"} is not the proof's file.sha256`,
        );
      }
      report.path = proof.file.name;
      collected.proofs.push({ referrer: digest, proof });
      return;
    }
    case "graph": {
      const bodyLayer = manifest.layers.find((l) => l.mediaType === RICHGRAPH_BODY_MEDIA_TYPE);
      if (bodyLayer === undefined)
        throw new Refused(`${where}: no graph body layer: the graph hash cannot be checked`);
      const body = await blobOf(bodyLayer);
      // The CAS body is bare (no graph_hash field): it must hash to what the signed predicate states.
      const signedHash = typeof predicate.graph_hash === "string" ? predicate.graph_hash : "(none)";
      const graph = parseGraph(body, `${where}: graph body`, { expectHash: signedHash });
      const graphReasons: string[] = [];
      if (predicate.graph_hash !== graph.graph_hash) {
        graphReasons.push(
          `graph_hash: signed ${String(predicate.graph_hash)}, body hashes to ${graph.graph_hash}`,
        );
      }
      const subject = statement.subject[0];
      if (subject?.digest.blake3 !== graph.graph_hash.replace(/^blake3:/, "")) {
        graphReasons.push(
          `subject blake3 ${subject?.digest.blake3 ?? "(none)"} is not the body's ${graph.graph_hash}`,
        );
      }
      const sha = createHash("sha256").update(body).digest("hex");
      if (graphReasons.length === 0 && subject?.digest.sha256 !== sha) {
        // The CAS body is the bare canonical body; the envelope's sha256 is over those bytes.
        graphReasons.push(`subject sha256 ${subject?.digest.sha256 ?? "(none)"} is not the body's ${sha}`);
      }
      if (graphReasons.length > 0) throw new Refused(`${where}: ${graphReasons.join("; ")}`);
      collected.graphs.push({ referrer: digest, graph, reasons: [] });
      return;
    }
    case "vex": {
      collected.vex.push(checkVex(digest, statement, predicate, report));
      return;
    }
    default:
      return;
  }

  function checkVex(
    referrer: string,
    stmt: Statement,
    doc: Record<string, unknown>,
    rep: ReferrerReport,
  ): VexReport {
    const vexReasons = validateOpenVex(doc).map((e) => `OpenVEX schema: ${e}`);
    const vex = doc as unknown as OpenVexDocument;
    const statements = Array.isArray(vex.statements) ? vex.statements : [];
    for (const [i, s] of statements.entries()) {
      const ids = (s.products ?? []).map((p) => p["@id"]);
      if (!ids.includes(source.imageDigest)) {
        vexReasons.push(
          `statements[${i}] (${s.vulnerability.name}) is about ${ids.join(", ") || "no product"}, not this image`,
        );
      }
    }
    if (stmt.subject[0]?.name !== source.imageDigest) {
      vexReasons.push(`the attestation's subject is ${stmt.subject[0]?.name ?? "(none)"}, not this image`);
    }
    if (vexReasons.length > 0) {
      rep.status = "refused";
      rep.reasons.push(...vexReasons);
    }
    return {
      referrer,
      statements: statements.map((s) => ({ vulnerability: s.vulnerability.name, status: s.status })),
      reasons: vexReasons,
    };
  }
}
