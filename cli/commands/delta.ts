/**
 * `stella delta create|verify|apply|rollback`: deterministic COPY/ADD deltas between two artifacts,
 * with a manifest saying what changed and why it is (or is not) safe, a signed in-toto statement, a
 * delta_risk breakdown and a signed rollback. User guide: docs/delta.md.
 */
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

import { InvalidArgumentError, type Command } from "commander";

import { canonicalJson } from "../../core/canonical-json.ts";
import type { ParsedDelta } from "../../core/delta/index.ts";
import type { DeltaInput } from "../../core/delta/inputs.ts";
import type { DeltaManifest, EvidenceDocument } from "../../core/delta/manifest.ts";
import {
  deltaAttestationResource,
  rollbackAttestationResource,
  type DeltaAttestationDoc,
} from "../../core/delta/resource.ts";
import type { ManifestRef } from "../../core/delta/rollback.ts";
import type { PublicKey } from "../../core/dsse/keys.ts";
import type { JsonObject, Subject } from "../../core/dsse/statement.ts";
import { StellaError } from "../../core/errors.ts";
import type { RiskPolicy } from "../../core/risk/policy.ts";
import type { RiskResult } from "../../core/risk/score.ts";
import { action, printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED } from "../exit-codes.ts";
import { collect, createdAt, progress, signersFrom } from "../options.ts";
import { VERSION } from "../version.ts";

/**
 * The delta engine, risk scoring and DSSE modules, loaded when a delta command runs rather than on
 * every `stella` start (they cost ~0.5 s to load).
 */
async function loadLib() {
  const [
    delta,
    inputs,
    manifest,
    materials,
    normalize,
    rollback,
    attestM,
    envelope,
    keys,
    policy,
    score,
    table,
  ] = await Promise.all([
    import("../../core/delta/index.ts"),
    import("../../core/delta/inputs.ts"),
    import("../../core/delta/manifest.ts"),
    import("../../core/delta/materials.ts"),
    import("../../core/delta/normalize.ts"),
    import("../../core/delta/rollback.ts"),
    import("../../core/dsse/attest.ts"),
    import("../../core/dsse/envelope.ts"),
    import("../../core/dsse/keys.ts"),
    import("../../core/risk/policy.ts"),
    import("../../core/risk/score.ts"),
    import("../../core/risk/table.ts"),
  ]);
  return {
    applyDelta: delta.applyDelta,
    DeltaError: delta.DeltaError,
    parseDelta: delta.parseDelta,
    DEFAULT_MAX_INPUT_BYTES: inputs.DEFAULT_MAX_INPUT_BYTES,
    openDeltaInput: inputs.openDeltaInput,
    ATTESTATIONS_DIR: manifest.ATTESTATIONS_DIR,
    checkAttestationFiles: manifest.checkAttestationFiles,
    checkManifestAgainstDelta: manifest.checkManifestAgainstDelta,
    computeDelta: manifest.computeDelta,
    DELTA_FILE: manifest.DELTA_FILE,
    DELTA_PREDICATE_TYPE: manifest.DELTA_PREDICATE_TYPE,
    ENVELOPE_FILE: manifest.ENVELOPE_FILE,
    MANIFEST_FILE: manifest.MANIFEST_FILE,
    ManifestError: manifest.ManifestError,
    manifestBytes: manifest.manifestBytes,
    parseManifest: manifest.parseManifest,
    sha256Digest: manifest.sha256Digest,
    verifyStatementEnvelope: manifest.verifyStatementEnvelope,
    packagesFromSbom: materials.packagesFromSbom,
    canonicalTar: normalize.canonicalTar,
    walkTree: normalize.walkTree,
    buildRollbackPredicate: rollback.buildRollbackPredicate,
    checkRollback: rollback.checkRollback,
    parseRollbackPredicate: rollback.parseRollbackPredicate,
    ROLLBACK_DIR: rollback.ROLLBACK_DIR,
    ROLLBACK_ENVELOPE_FILE: rollback.ROLLBACK_ENVELOPE_FILE,
    ROLLBACK_PREDICATE_TYPE: rollback.ROLLBACK_PREDICATE_TYPE,
    RollbackError: rollback.RollbackError,
    rollbackSubjects: rollback.rollbackSubjects,
    attest: attestM.attest,
    envelopeToJson: envelope.envelopeToJson,
    loadPublicKeyFile: keys.loadPublicKeyFile,
    DEFAULT_POLICY: policy.DEFAULT_POLICY,
    loadPolicy: policy.loadPolicy,
    deltaRisk: score.deltaRisk,
    renderRiskTable: table.renderRiskTable,
  };
}

let lib: Awaited<ReturnType<typeof loadLib>>;

/** Wraps a command body so that the library is loaded first. */
function withLib<A extends unknown[]>(
  body: (...args: A) => number | Promise<number>,
): (...args: A) => Promise<number> {
  return async (...args: A) => {
    lib ??= await loadLib();
    return body(...args);
  };
}

interface CreateOptions {
  base: string;
  target: string;
  out: string;
  sign?: string[];
  policy?: string;
  sbomBase?: string;
  sbomTarget?: string;
  provenance?: string[];
  attestation?: string[];
  trustedKey?: string[];
  rollback?: boolean;
  created?: string;
  level?: number;
  platform?: string;
  emitCr?: string;
  json?: boolean;
}

interface VerifyOptions {
  base: string;
  delta: string;
  key?: string[];
  policy?: string;
  json?: boolean;
}

interface ApplyOptions extends VerifyOptions {
  out: string;
}

interface RollbackOptions {
  target: string;
  delta: string;
  out: string;
  key: string[];
  json?: boolean;
}

/** A check that failed: the delta (or the artifact given) is not what it claims; exit 1. */
class Refused extends Error {
  readonly code: string;
  readonly file: string;
  readonly field: string;
  constructor(code: string, file: string, field: string, message: string) {
    super(message);
    this.code = code;
    this.file = file;
    this.field = field;
  }
}

/** lib.DeltaError codes that mean "this delta or base is wrong" rather than "cannot run". */
const DELTA_REFUSALS = new Set([
  "DELTA_MALFORMED",
  "DELTA_CHECKSUM",
  "DELTA_TOO_LARGE",
  "DELTA_OUT_OF_RANGE",
  "DELTA_UNKNOWN_CHUNK",
  "DELTA_BASE_MISMATCH",
  "DELTA_TARGET_MISMATCH",
]);

/** `DIR/delta.bin: header: …` → field "header". */
function fieldOf(message: string, file: string): string {
  const rest = message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
  const i = rest.indexOf(": ");
  return i > 0 ? rest.slice(0, i) : "(file)";
}

/** Runs `fn`, turning verification failures into Refused. */
function refusing<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof lib.ManifestError || err instanceof lib.RollbackError) {
      throw new Refused(err.code, err.file, err.field, err.message);
    }
    if (err instanceof lib.DeltaError && DELTA_REFUSALS.has(err.code)) {
      throw new Refused(err.code, file, fieldOf(err.message, file), err.message);
    }
    throw err;
  }
}

function usage(message: string): number {
  process.stderr.write(`stella: usage: ${message}\n`);
  return EXIT_USAGE;
}

function level(value: string): number {
  if (!/^[0-9]{1,2}$/.test(value) || Number(value) < 1 || Number(value) > 22) {
    throw new InvalidArgumentError("expected a zstd level in [1, 22]");
  }
  return Number(value);
}

function readInput(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new StellaError("DELTA_IO", `${path}: cannot read (${(cause as Error).message})`, { cause });
  }
}

function readOptional(path: string): Uint8Array | undefined {
  return existsSync(path) ? readInput(path) : undefined;
}

/** Writes through a temporary file in the same directory, renamed over `path` only on success. */
function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    writeFileSync(tmp, data, { flag: "wx" });
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw new StellaError("DELTA_IO", `${path}: cannot write (${(cause as Error).message})`, { cause });
  }
}

/** The bytes a delta is computed over: a file's own, or a directory's canonical tar (docs/delta-inputs.md). */
function artifactBytes(path: string): Uint8Array {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (cause) {
    throw new StellaError("DELTA_IO", `${path}: ${(cause as Error).message}`, { cause });
  }
  return isDir ? lib.canonicalTar(lib.walkTree(path), lib.DEFAULT_MAX_INPUT_BYTES, path) : readInput(path);
}

function policyFrom(path: string | undefined): RiskPolicy {
  return path === undefined ? lib.DEFAULT_POLICY : lib.loadPolicy(path);
}

function evidence(paths: string[] | undefined): EvidenceDocument[] {
  return (paths ?? []).map((p) => ({ name: p, bytes: readInput(p) }));
}

function keysFrom(paths: string[] | undefined): PublicKey[] {
  return (paths ?? []).map(lib.loadPublicKeyFile);
}

function statementSubjects(m: DeltaManifest, targetPath: string): Subject[] {
  const name = basename(targetPath.replace(/\/+$/, "")) || "target";
  const out: Subject[] = [{ name, digest: { sha256: m.target_digest.slice(7) } }];
  const image = m.image_digests?.target;
  if (image !== undefined && image !== m.target_digest && image.startsWith("sha256:")) {
    out.push({ name: `${name}@image`, digest: { sha256: image.slice(7) } });
  }
  return out;
}

function pct(n: number, d: number): string {
  return d === 0 ? "0%" : `${((100 * n) / d).toFixed(1)}%`;
}

/** Human summary of a manifest (create prints it, followed by the risk table). */
function describe(m: DeltaManifest, out: string): string {
  const o = m.ops;
  const f = m.functions_changed;
  const md = m.materials_delta;
  const e = m.entries_delta;
  return [
    `delta ${out}: ${m.base_artifact_type} ${m.base_digest} → ${m.artifact_type} ${m.target_digest}`,
    `  delta.bin ${m.delta.size} bytes for a ${m.target_size}-byte target (${pct(m.delta.size, m.target_size)}), ${o.opCount} ops, codec ${m.delta.codec}`,
    `  COPY ${o.copiedBytes} bytes (${pct(o.copiedBytes, m.target_size)}; ${o.copyChunkOps} chunk runs of ${o.copiedChunks} chunks, ${o.copyRangeOps} ranges)`,
    `  ADD  ${o.addedBytes} bytes (${o.addOps} ops, ${o.addRelBytes} relative), ${o.changedBytes} bytes new, ${o.addedBytesCompressed} compressed`,
    `  changed chunks ${m.changed_chunks_total}; entries +${e.added} -${e.removed} ~${e.modified} (=${e.unchanged})`,
    `  functions: ${f.binaries} binaries, +${f.added} -${f.removed} ~${f.modified}${
      f.top_symbols.length > 0
        ? ` (top: ${f.top_symbols
            .slice(0, 5)
            .map((s) => `${s.change} ${s.symbol}`)
            .join(", ")})`
        : ""
    }`,
    `  materials (${md.source}): +${md.added.length} -${md.removed.length} ~${md.changed.length}${md.added.length > 0 ? ` (added: ${md.added.map((p) => `${p.name} ${p.version}`).join(", ")})` : ""}`,
    "",
  ].join("\n");
}

/** Removes files of ours a previous run left that this run does not write (a stale signature, rollback). */
function clearStale(dir: string, keep: ReadonlySet<string>): void {
  const ours = [
    lib.ENVELOPE_FILE,
    join(lib.ROLLBACK_DIR, lib.DELTA_FILE),
    join(lib.ROLLBACK_DIR, lib.MANIFEST_FILE),
    join(lib.ROLLBACK_DIR, lib.ROLLBACK_ENVELOPE_FILE),
  ];
  for (const rel of ours) if (!keep.has(rel)) rmSync(join(dir, rel), { force: true });
  const att = join(dir, lib.ATTESTATIONS_DIR);
  if (existsSync(att)) {
    for (const f of readdirSync(att)) {
      const rel = `${lib.ATTESTATIONS_DIR}/${f}`;
      if (/^[0-9a-f]{64}\.json$/.test(f) && !keep.has(rel)) rmSync(join(att, f), { force: true });
    }
  }
}

async function createCommand(opts: CreateOptions): Promise<number> {
  if ((opts.sbomBase === undefined) !== (opts.sbomTarget === undefined)) {
    return usage("delta create: --sbom-base and --sbom-target go together");
  }
  if (opts.rollback === true && (opts.sign ?? []).length === 0) {
    return usage(
      "delta create: --rollback needs --sign KEY (a rollback is only accepted with a signed rollback attestation)",
    );
  }
  if (opts.emitCr !== undefined && (opts.sign ?? []).length === 0) {
    return usage("delta create: --emit-cr needs --sign KEY (a DeltaAttestation carries the signed envelope)");
  }
  const created = createdAt(opts.created);
  const policy = policyFrom(opts.policy);
  const signers = signersFrom(opts.sign);
  const trustedKeys = keysFrom(opts.trustedKey);
  const bar = progress("delta");
  const phases = ["reading inputs", "computing the delta", "comparing functions", "scoring"];
  const onPhase = (p: string): void => {
    bar.update(Math.max(0, phases.indexOf(p)), phases.length, p);
  };
  let base: DeltaInput;
  let target: DeltaInput;
  let computed;
  let rollback;
  const platform = opts.platform === undefined ? {} : { platform: opts.platform };
  try {
    [base, target] = [
      await lib.openDeltaInput(opts.base, platform),
      await lib.openDeltaInput(opts.target, platform),
    ];
    const sbom =
      opts.sbomBase !== undefined && opts.sbomTarget !== undefined
        ? { base: lib.packagesFromSbom(opts.sbomBase), target: lib.packagesFromSbom(opts.sbomTarget) }
        : undefined;
    const common = {
      ...(opts.level === undefined ? {} : { params: { level: opts.level } }),
      ...(created === undefined ? {} : { created }),
      ...platform,
      tool: { name: "stella", version: VERSION },
      trustedKeys,
      onPhase,
    };
    computed = await lib.computeDelta(base, target, {
      ...common,
      ...(sbom === undefined ? {} : { sbom }),
      provenance: evidence(opts.provenance),
      attestations: evidence(opts.attestation),
    });
    if (opts.rollback === true) {
      rollback = await lib.computeDelta(target, base, {
        ...common,
        ...(sbom === undefined ? {} : { sbom: { base: sbom.target, target: sbom.base } }),
      });
    }
  } finally {
    bar.stop();
  }
  const m = computed.manifest;
  const dir = opts.out;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (cause) {
    throw new StellaError("DELTA_IO", `${dir}: cannot create (${(cause as Error).message})`, { cause });
  }
  const written: string[] = [];
  const put = (rel: string, data: Uint8Array | string): void => {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeAtomic(p, data);
    written.push(rel);
  };
  const resources: DeltaAttestationDoc[] = [];
  put(lib.DELTA_FILE, computed.bin);
  const mBytes = lib.manifestBytes(m);
  put(lib.MANIFEST_FILE, mBytes);
  for (const [rel, bytes] of [...computed.attestationFiles].sort(([a], [b]) => (a < b ? -1 : 1)))
    put(rel, bytes);
  if (signers.length > 0) {
    const env = await lib.attest({
      subjects: statementSubjects(m, opts.target),
      predicateType: lib.DELTA_PREDICATE_TYPE,
      predicate: m as unknown as JsonObject,
      signers,
    });
    put(lib.ENVELOPE_FILE, `${lib.envelopeToJson(env)}\n`);
    if (opts.emitCr !== undefined) resources.push(deltaAttestationResource(m, env));
  }
  if (rollback !== undefined) {
    const rm = rollback.manifest;
    const rBytes = lib.manifestBytes(rm);
    put(join(lib.ROLLBACK_DIR, lib.DELTA_FILE), rollback.bin);
    put(join(lib.ROLLBACK_DIR, lib.MANIFEST_FILE), rBytes);
    const predicate = lib.buildRollbackPredicate(
      { manifest: m, manifestDigest: lib.sha256Digest(mBytes) },
      { manifest: rm, manifestDigest: lib.sha256Digest(rBytes) },
      created,
    );
    const env = await lib.attest({
      subjects: lib.rollbackSubjects(predicate),
      predicateType: lib.ROLLBACK_PREDICATE_TYPE,
      predicate: predicate as unknown as JsonObject,
      signers,
    });
    put(join(lib.ROLLBACK_DIR, lib.ROLLBACK_ENVELOPE_FILE), `${lib.envelopeToJson(env)}\n`);
    const forwardCr = resources[0];
    if (forwardCr !== undefined) resources.push(rollbackAttestationResource(forwardCr, rm, env));
  }
  if (opts.emitCr !== undefined) {
    // One YAML document per resource: the forward delta, then its rollback (kubectl apply -f takes both).
    const { stringify } = await import("yaml");
    const docs = resources.map((r) => stringify(r, { lineWidth: 0, sortMapEntries: true }));
    writeAtomic(opts.emitCr, docs.join("---\n"));
  }
  clearStale(dir, new Set(written));
  const risk = lib.deltaRisk(m.score_inputs, policy);
  if (opts.json === true) {
    printOut(
      canonicalJson({
        out: dir,
        files: [...written].sort(),
        base_digest: m.base_digest,
        target_digest: m.target_digest,
        artifact_type: m.artifact_type,
        delta_size: m.delta.size,
        ops: m.ops,
        functions_changed: {
          binaries: m.functions_changed.binaries,
          added: m.functions_changed.added,
          removed: m.functions_changed.removed,
          modified: m.functions_changed.modified,
          top_symbols: m.functions_changed.top_symbols,
        },
        materials_delta: {
          added: m.materials_delta.added.length,
          removed: m.materials_delta.removed.length,
          changed: m.materials_delta.changed.length,
        },
        delta_risk: risk,
        ...(opts.emitCr === undefined ? {} : { cr: opts.emitCr }),
      }),
    );
  } else {
    process.stdout.write(describe(m, dir));
    if (opts.emitCr !== undefined) process.stdout.write(`  DeltaAttestation: ${opts.emitCr}\n`);
    process.stdout.write(`  files: ${[...written].sort().join(", ")}\n\n`);
    process.stdout.write(lib.renderRiskTable(risk));
  }
  return EXIT_OK;
}

interface Verified {
  manifest: DeltaManifest;
  target: Uint8Array;
  signature: { checked: boolean; keyids: readonly string[] };
  risk: RiskResult;
}

/**
 * Everything verify and apply check, in order: the manifest parses and is canonical; delta.bin parses
 * and agrees with it; the attestation files match their digests; the envelope (with --key) verifies
 * and signs exactly this manifest about its target; the base is the manifest's base; the delta
 * applies (every COPY chunk rehashed) and rebuilds the target digest. Refused on the first failure.
 */
function verifyDir(opts: VerifyOptions): Verified {
  const dir = opts.delta;
  const mPath = join(dir, lib.MANIFEST_FILE);
  const dPath = join(dir, lib.DELTA_FILE);
  const ePath = join(dir, lib.ENVELOPE_FILE);
  const keys = keysFrom(opts.key);
  const policy = policyFrom(opts.policy);
  const mBytes = readInput(mPath);
  const bin = readInput(dPath);
  const m = refusing(mPath, () => lib.parseManifest(mBytes, mPath));
  const parsed: ParsedDelta = refusing(dPath, () => lib.parseDelta(bin, dPath));
  refusing(mPath, () => {
    lib.checkManifestAgainstDelta(m, bin, parsed, { manifest: mPath, delta: dPath });
    lib.checkAttestationFiles(m, (rel) => readOptional(join(dir, rel)), mPath);
  });
  let signature: Verified["signature"] = { checked: false, keyids: [] };
  if (keys.length > 0) {
    const env = readOptional(ePath);
    if (env === undefined) {
      throw new Refused(
        "MANIFEST_SIGNATURE",
        ePath,
        "(file)",
        `${ePath}: missing: --key was given but the delta is not signed`,
      );
    }
    const r = refusing(ePath, () =>
      lib.verifyStatementEnvelope(
        env,
        keys,
        { predicateType: lib.DELTA_PREDICATE_TYPE, subjectDigest: m.target_digest, predicate: m },
        ePath,
      ),
    );
    signature = { checked: true, keyids: r.verifiedKeyids };
  }
  const baseBytes = artifactBytes(opts.base);
  const baseDigest = lib.sha256Digest(baseBytes);
  if (baseDigest !== m.base_digest) {
    throw new Refused(
      "DELTA_BASE_MISMATCH",
      opts.base,
      "base_digest",
      `${opts.base}: base_digest: is ${baseDigest}, the delta was made from ${m.base_digest}`,
    );
  }
  const target = refusing(dPath, () => lib.applyDelta(baseBytes, bin, { name: dPath }));
  return { manifest: m, target, signature, risk: lib.deltaRisk(m.score_inputs, policy) };
}

function refusal(err: Refused, json: boolean, extra: Record<string, unknown>): number {
  if (json) {
    printOut(
      canonicalJson({
        ...extra,
        error: { code: err.code, file: err.file, field: err.field, message: err.message },
      }),
    );
  }
  process.stderr.write(`stella: ${err.code}: ${err.message}\n`);
  return EXIT_VERIFY_FAILED;
}

function verifyCommand(opts: VerifyOptions): number {
  let v: Verified;
  try {
    v = verifyDir(opts);
  } catch (err) {
    if (err instanceof Refused)
      return refusal(err, opts.json === true, { verified: false, delta: opts.delta });
    throw err;
  }
  const m = v.manifest;
  if (opts.json === true) {
    printOut(
      canonicalJson({
        verified: true,
        delta: opts.delta,
        base_digest: m.base_digest,
        target_digest: m.target_digest,
        artifact_type: m.artifact_type,
        signature: v.signature,
        delta_risk: v.risk,
      }),
    );
  } else {
    const sig = v.signature.checked
      ? `signed by [${v.signature.keyids.join(", ")}]`
      : existsSync(join(opts.delta, lib.ENVELOPE_FILE))
        ? `signature NOT checked (no --key)`
        : "unsigned";
    printOut(
      `verified ${opts.delta}: ${m.base_digest} → ${m.target_digest} (${m.artifact_type}, ${m.ops.opCount} ops); ${sig}; delta_risk ${v.risk.score}`,
    );
  }
  return EXIT_OK;
}

function applyCommand(opts: ApplyOptions): number {
  let v: Verified;
  try {
    v = verifyDir(opts);
  } catch (err) {
    if (err instanceof Refused)
      return refusal(err, opts.json === true, { applied: false, delta: opts.delta });
    throw err;
  }
  writeAtomic(opts.out, v.target);
  const m = v.manifest;
  if (opts.json === true) {
    printOut(
      canonicalJson({
        applied: true,
        out: opts.out,
        digest: m.target_digest,
        size: v.target.length,
        artifact_type: m.artifact_type,
        signature: v.signature,
        delta_risk: v.risk,
      }),
    );
  } else {
    const tree = m.artifact_type === "directory" || m.artifact_type === "oci-layout";
    printOut(
      `wrote ${opts.out}: ${m.target_digest} (${v.target.length} bytes${tree ? `, the canonical tar of the ${m.artifact_type}: extract with tar -xf` : ""})`,
    );
  }
  return EXIT_OK;
}

function rollbackCommand(opts: RollbackOptions): number {
  const dir = join(opts.delta, lib.ROLLBACK_DIR);
  const mPath = join(dir, lib.MANIFEST_FILE);
  const dPath = join(dir, lib.DELTA_FILE);
  const ePath = join(dir, lib.ROLLBACK_ENVELOPE_FILE);
  const fPath = join(opts.delta, lib.MANIFEST_FILE);
  const keys = keysFrom(opts.key);
  let result: { target: Uint8Array; manifest: DeltaManifest; keyids: readonly string[] };
  try {
    const env = readOptional(ePath);
    if (env === undefined) {
      throw new Refused(
        "ROLLBACK_DENIED",
        ePath,
        "(file)",
        `${ePath}: missing: a rollback is refused without a signed rollback attestation (stella delta create --rollback --sign KEY writes it)`,
      );
    }
    const mBytes = readOptional(mPath);
    const bin = readOptional(dPath);
    if (mBytes === undefined || bin === undefined) {
      throw new Refused(
        "ROLLBACK_DENIED",
        mBytes === undefined ? mPath : dPath,
        "(file)",
        `${mBytes === undefined ? mPath : dPath}: missing`,
      );
    }
    const m = refusing(mPath, () => lib.parseManifest(mBytes, mPath));
    const parsed = refusing(dPath, () => lib.parseDelta(bin, dPath));
    refusing(mPath, () => {
      lib.checkManifestAgainstDelta(m, bin, parsed, { manifest: mPath, delta: dPath });
    });
    const check = refusing(ePath, () =>
      lib.verifyStatementEnvelope(
        env,
        keys,
        { predicateType: lib.ROLLBACK_PREDICATE_TYPE, subjectDigest: m.target_digest },
        ePath,
      ),
    );
    const predicate = refusing(ePath, () => lib.parseRollbackPredicate(check.statement.predicate, ePath));
    const fBytes = readOptional(fPath);
    const forward: ManifestRef | undefined =
      fBytes === undefined
        ? undefined
        : {
            manifest: refusing(fPath, () => lib.parseManifest(fBytes, fPath)),
            manifestDigest: lib.sha256Digest(fBytes),
          };
    const current = artifactBytes(opts.target);
    refusing(ePath, () => {
      lib.checkRollback(
        predicate,
        {
          currentDigest: lib.sha256Digest(current),
          ...(forward === undefined ? {} : { forward }),
          rollback: { manifest: m, manifestDigest: lib.sha256Digest(mBytes) },
          rollbackDeltaDigest: lib.sha256Digest(bin),
        },
        ePath,
      );
    });
    const target = refusing(dPath, () => lib.applyDelta(current, bin, { name: dPath }));
    const got = lib.sha256Digest(target);
    if (got !== predicate.to.digest) {
      throw new Refused(
        "ROLLBACK_DENIED",
        ePath,
        "predicate.to.digest",
        `${ePath}: predicate.to.digest: the rollback produced ${got}, not ${predicate.to.digest}`,
      );
    }
    result = { target, manifest: m, keyids: check.verifiedKeyids };
  } catch (err) {
    if (err instanceof Refused)
      return refusal(err, opts.json === true, { rolledBack: false, delta: opts.delta });
    throw err;
  }
  writeAtomic(opts.out, result.target);
  if (opts.json === true) {
    printOut(
      canonicalJson({
        rolledBack: true,
        out: opts.out,
        from: result.manifest.base_digest,
        digest: result.manifest.target_digest,
        size: result.target.length,
        signature: { checked: true, keyids: result.keyids },
      }),
    );
  } else {
    printOut(
      `rolled back to ${opts.out}: ${result.manifest.target_digest} (${result.target.length} bytes) from ${result.manifest.base_digest}; rollback attestation signed by [${result.keyids.join(", ")}]`,
    );
  }
  return EXIT_OK;
}

const CREATE_HELP = `
Examples:
  $ stella delta create --base app-1.0.tar --target app-1.1.tar --out delta/
  $ stella delta create --base old.deb --target new.deb --out d/ --sign key.pem --rollback \\
      --provenance new.intoto.jsonl --trusted-key builder.pub --policy policy.yaml --json
  $ SOURCE_DATE_EPOCH=1700000000 stella delta create --base A --target B --out d/   # reproducible

Writes DIR/delta.bin and DIR/delta-manifest.json (same inputs → same bytes), DIR/attestations/ (copies
of --provenance/--attestation), with --sign DIR/delta.dsse.json (in-toto statement, predicate
stellaops.delta.v1 = the manifest, subject = the target), with --rollback DIR/rollback/. Prints the ops
summary and the delta_risk breakdown. Exit: 0 written, 2 usage, 3 unreadable input.`;

const VERIFY_HELP = `
Examples:
  $ stella delta verify --base app-1.0.tar --delta d/
  $ stella delta verify --base app-1.0.tar --delta d/ --key release.pub --json

Checks delta-manifest.json ↔ delta.bin ↔ base, the attestation files, the signature (with --key), and
that applying the delta rebuilds the target digest. Nothing is written.
Exit: 0 verified, 1 refused (the message names the file and field), 2 usage, 3 unreadable input.`;

const APPLY_HELP = `
Examples:
  $ stella delta apply --base app-1.0.tar --delta d/ --out app-1.1.tar --key release.pub

Runs every check of verify, then writes the target through a temporary file renamed over OUT: a
corrupt or hostile delta leaves nothing behind. For directory and OCI-layout inputs the result is the
canonical tar of the tree (extract with tar -xf). Exit: 0 written, 1 refused, 2 usage, 3 unreadable input.`;

const ROLLBACK_HELP = `
Examples:
  $ stella delta rollback --target app-1.1.tar --delta d/ --out app-1.0.tar --key release.pub

Applies DIR/rollback/delta.bin (B → A) only if DIR/rollback/rollback.dsse.json verifies with --key and
binds the rollback files, the artifact given (from) and the forward delta's base (to), and the result
hashes to that earlier digest. Exit: 0 written, 1 refused (nothing written), 2 usage, 3 unreadable input.`;

export function registerDelta(program: Command): void {
  const cmd = program
    .command("delta")
    .description(
      "Deterministic COPY/ADD deltas between artifacts, with a signed manifest, delta_risk and rollback",
    );

  cmd
    .command("create")
    .description("Compute delta.bin and delta-manifest.json from --base to --target into --out DIR")
    .requiredOption(
      "--base <artifact>",
      "the artifact rolled from (file, tree, tar, OCI layout or archive, zip, deb, rpm, ELF)",
    )
    .requiredOption("--target <artifact>", "the artifact rolled to")
    .requiredOption("--out <dir>", "output directory (created)")
    .option(
      "--sign <key.pem>",
      "sign the manifest as an in-toto statement (DIR/delta.dsse.json); repeatable",
      collect,
    )
    .option("--policy <policy.yaml>", "delta_risk weights and thresholds (default: the built-in policy)")
    .option("--sbom-base <sbom.json>", "CycloneDX or SPDX JSON for the base's packages (with --sbom-target)")
    .option("--sbom-target <sbom.json>", "CycloneDX or SPDX JSON for the target's packages")
    .option(
      "--provenance <envelope>",
      "SLSA provenance of the target (DSSE envelope or sigstore bundle); repeatable",
      collect,
    )
    .option(
      "--attestation <envelope>",
      "other signed evidence about the target (a vendor signature); repeatable",
      collect,
    )
    .option("--trusted-key <pub.pem>", "key trusted to sign --provenance/--attestation; repeatable", collect)
    .option(
      "--rollback",
      "also write the reverse delta and a signed rollback attestation to DIR/rollback/ (needs --sign)",
    )
    .option(
      "--created <time>",
      "RFC 3339 creation time recorded in the manifest (default: SOURCE_DATE_EPOCH, else none)",
    )
    .option("--level <n>", "zstd level of delta.bin's sections (default 19)", level)
    .option("--platform <os/arch>", "image platform to read (default linux/amd64 or the only one)")
    .option(
      "--emit-cr <file>",
      "also write a DeltaAttestation resource (YAML, for kubectl apply) carrying the signed envelope (needs --sign)",
    )
    .option("--json", "print the summary and delta_risk as JSON")
    .addHelpText("after", CREATE_HELP)
    .action(action(withLib((opts: CreateOptions) => createCommand(opts))));

  cmd
    .command("verify")
    .description("Check a delta directory against its base without writing anything")
    .requiredOption("--base <artifact>", "the base artifact")
    .requiredOption("--delta <dir>", "the directory delta create wrote")
    .option(
      "--key <pub.pem>",
      "trusted public key: DIR/delta.dsse.json must verify with one; repeatable",
      collect,
    )
    .option("--policy <policy.yaml>", "policy for the printed delta_risk")
    .option("--json", "print the result as JSON")
    .addHelpText("after", VERIFY_HELP)
    .action(action(withLib((opts: VerifyOptions) => verifyCommand(opts))));

  cmd
    .command("apply")
    .description("Verify a delta, then rebuild the target from the base into --out")
    .requiredOption("--base <artifact>", "the base artifact")
    .requiredOption("--delta <dir>", "the directory delta create wrote")
    .requiredOption("--out <file>", "where to write the target")
    .option(
      "--key <pub.pem>",
      "trusted public key: DIR/delta.dsse.json must verify with one; repeatable",
      collect,
    )
    .option("--policy <policy.yaml>", "policy for the delta_risk reported with --json")
    .option("--json", "print the result as JSON")
    .addHelpText("after", APPLY_HELP)
    .action(action(withLib((opts: ApplyOptions) => applyCommand(opts))));

  cmd
    .command("rollback")
    .description("Roll --target back to the delta's base, only with a valid signed rollback attestation")
    .requiredOption("--target <artifact>", "the artifact to roll back from (the forward delta's target)")
    .requiredOption("--delta <dir>", "the directory delta create --rollback wrote")
    .requiredOption("--out <file>", "where to write the restored artifact")
    .requiredOption("--key <pub.pem>", "trusted public key for the rollback attestation; repeatable", collect)
    .option("--json", "print the result as JSON")
    .addHelpText("after", ROLLBACK_HELP)
    .action(action(withLib((opts: RollbackOptions) => rollbackCommand(opts))));
}
