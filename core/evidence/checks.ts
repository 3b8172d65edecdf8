// The checks `verifyImage` runs on each referrer and on what it collects. A failing check throws Refused (its
// message is the reason shown to the auditor) or returns reasons; nothing here trusts an unsigned field.
import { bundleFromObject, isBundleDocument } from "../dsse/bundle.ts";
import { envelopeFromObject, type Envelope } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement, type Statement } from "../dsse/statement.ts";
import { verifyEnvelope } from "../dsse/verify.ts";
import { StellaError } from "../errors.ts";
import type { FuncProof } from "../funcproof/funcproof.ts";
import type { RichGraph } from "../graph/model.ts";
import { validateCycloneDx16 } from "../sbom/validate.ts";
import { verifyTlogBundle } from "../tlog/verify.ts";
import type { GraphReport, TlogProof } from "./report.ts";

export interface SignatureTrust {
  keys: readonly PublicKey[];
  trustedRoot?: object;
}

export class Refused extends StellaError<"REFUSED"> {
  constructor(message: string) {
    super("REFUSED", message);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface ParsedManifest {
  artifactType?: string;
  subject?: string;
  layers: { mediaType: string; digest: string; size: number }[];
}

export function parseReferrerManifest(bytes: Uint8Array, where: string): ParsedManifest {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new Refused(`${where}: manifest is not JSON`);
  }
  if (typeof value !== "object" || value === null) throw new Refused(`${where}: manifest is not an object`);
  const m = value as Record<string, unknown>;
  const layersIn = Array.isArray(m.layers) ? (m.layers as unknown[]) : [];
  const layers = layersIn.flatMap((l) => {
    if (typeof l !== "object" || l === null) return [];
    const d = l as Record<string, unknown>;
    return typeof d.mediaType === "string" && typeof d.digest === "string" && typeof d.size === "number"
      ? [{ mediaType: d.mediaType, digest: d.digest, size: d.size }]
      : [];
  });
  const config = m.config as Record<string, unknown> | undefined;
  const subject = m.subject as Record<string, unknown> | undefined;
  const artifactType =
    typeof m.artifactType === "string"
      ? m.artifactType
      : typeof config?.mediaType === "string"
        ? config.mediaType
        : undefined;
  return {
    ...(artifactType === undefined ? {} : { artifactType }),
    ...(typeof subject?.digest === "string" ? { subject: subject.digest } : {}),
    layers,
  };
}

export interface VerifiedDocument {
  envelope: Envelope;
  statement: Statement;
  keyids: string[];
  tlog: TlogProof[];
}

/** Verifies one signed document (a sigstore bundle or a bare DSSE envelope) as the options demand. */
export function verifySigned(bytes: Uint8Array, where: string, opts: SignatureTrust): VerifiedDocument {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new Refused(`${where}: not JSON`);
  }
  let envelope: Envelope;
  let bundle: unknown;
  try {
    if (isBundleDocument(value)) {
      envelope = bundleFromObject(value, where).envelope;
      bundle = value;
    } else {
      envelope = envelopeFromObject(value, where);
    }
  } catch (err) {
    throw new Refused(errorText(err));
  }
  if (opts.keys.length === 0) throw new Refused(`${where}: no --key given to check its signature`);
  let verified;
  try {
    verified = verifyEnvelope(envelope, opts.keys, { payloadTypes: [IN_TOTO_PAYLOAD_TYPE], name: where });
  } catch (err) {
    throw new Refused(`signature: ${errorText(err)}`);
  }
  const tlog: TlogProof[] = [];
  if (opts.trustedRoot !== undefined) {
    const entries = bundle === undefined ? [] : tlogEntriesOf(bundle);
    if (entries === 0) throw new Refused(`${where}: no transparency-log entry (a trusted root was given)`);
    const keyid = verified.verifiedKeyids[0];
    const key = opts.keys.find((k) => k.keyid === keyid);
    if (key === undefined) throw new Refused(`${where}: no key for ${keyid ?? "(none)"}`);
    try {
      const r = verifyTlogBundle(bundle, { trustedRoot: opts.trustedRoot, publicKey: key, name: where });
      for (const e of r.entries) tlog.push({ logIndex: e.logIndex, treeSize: e.treeSize, logId: e.logId });
    } catch (err) {
      throw new Refused(`transparency log: ${errorText(err)}`);
    }
  }
  let statement: Statement;
  try {
    statement = parseStatement(verified.payload, where);
  } catch (err) {
    throw new Refused(errorText(err));
  }
  return { envelope, statement, keyids: [...verified.verifiedKeyids], tlog };
}

function tlogEntriesOf(bundle: unknown): number {
  const vm = (bundle as { verificationMaterial?: { tlogEntries?: unknown } }).verificationMaterial;
  return Array.isArray(vm?.tlogEntries) ? vm.tlogEntries.length : 0;
}

/** Graph nodes of replayed binaries must carry the function hashes the FuncProofs recomputed. */
export function crossCheckGraph(
  g: { referrer: string; graph: RichGraph; reasons: string[] },
  replayed: ReadonlyMap<string, FuncProof>,
): GraphReport {
  const reasons = [...g.reasons];
  let nodesChecked = 0;
  const byStart = new Map<string, Map<string, string>>();
  for (const [buildId, proof] of replayed) {
    byStart.set(buildId, new Map(proof.functions.map((f) => [f.start, f.sha256])));
  }
  for (const node of g.graph.nodes) {
    if (node.kind !== "function" || node.symbol_digest === undefined || node.address === undefined) continue;
    const fns = byStart.get(node.build_id);
    const sha = fns?.get(node.address.start);
    if (sha === undefined) continue;
    nodesChecked++;
    if (node.symbol_digest !== `sha256:${sha}`) {
      reasons.push(
        `node ${node.symbol} (${node.build_id.slice(0, 12)}@${node.address.start}): symbol_digest differs from the replayed function`,
      );
    }
  }
  return { referrer: g.referrer, graphHash: g.graph.graph_hash, nodesChecked, reasons: reasons.slice(0, 50) };
}

/** An SBOM's ELF components must state the hashes of the files the image holds. */
export async function checkSbom(
  referrer: string,
  json: string,
  files: readonly { path: string; sha256: string }[],
): Promise<{ referrer: string; components: number; reasons: string[] }> {
  const reasons: string[] = [];
  const validation = await validateCycloneDx16(json);
  if (!validation.valid) reasons.push(`not valid CycloneDX 1.6: ${validation.errors.slice(0, 3).join("; ")}`);
  interface Component {
    type?: string;
    name?: string;
    hashes?: { alg?: string; content?: string }[];
    components?: Component[];
  }
  let doc: { components?: Component[]; metadata?: { component?: Component } };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    return { referrer, components: 0, reasons: ["not JSON"] };
  }
  const have = new Map(files.map((f) => [f.path, f.sha256]));
  const components: Component[] = [];
  const walk = (list: Component[] | undefined): void => {
    for (const c of list ?? []) {
      if (c.type === "file") components.push(c);
      walk(c.components);
    }
  };
  walk(doc.components);
  walk(doc.metadata?.component?.components);
  for (const c of components) {
    const sha = c.hashes?.find((h) => h.alg === "SHA-256")?.content;
    if (c.name === undefined || sha === undefined) continue;
    const actual = have.get(c.name);
    if (actual === undefined) reasons.push(`component ${c.name} is not in the image`);
    else if (actual !== sha) {
      reasons.push(
        `component ${c.name}: SHA-256 ${sha.slice(0, 16)}… is not the file's ${actual.slice(0, 16)}…`,
      );
    }
  }
  return { referrer, components: components.length, reasons: reasons.slice(0, 50) };
}
