// Publishing evidence next to an image: `stella funcproof IMAGE --push` and `stella attest attach`.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { openArtifact } from "../../core/artifacts/artifact.ts";
import { envelopeToBundle } from "../../core/dsse/bundle.ts";
import type { Envelope } from "../../core/dsse/envelope.ts";
import { loadPrivateKeyFile, loadPublicKeyFile, type PublicKey } from "../../core/dsse/keys.ts";
import { keySigner, signEnvelope } from "../../core/dsse/sign.ts";
import {
  IN_TOTO_PAYLOAD_TYPE,
  makeStatement,
  statementBytes,
  type Statement,
} from "../../core/dsse/statement.ts";
import { evidenceArtifact, readSignedInput, type SignedInput } from "../../core/evidence/attach.ts";
import { CYCLONEDX_MEDIA_TYPE, RICHGRAPH_BODY_MEDIA_TYPE } from "../../core/evidence/referrers.ts";
import {
  buildFuncProof,
  FUNCPROOF_MEDIA_TYPE,
  FUNCPROOF_PREDICATE_TYPE,
  type FuncProof,
} from "../../core/funcproof/funcproof.ts";
import { RICHGRAPH_PREDICATE_TYPE } from "../../core/graph/model.ts";
import type { Blake3 } from "../../core/hash/digest.ts";
import type { ArtifactBlob, Descriptor, RegistryClient } from "../../core/oci/client.ts";
import { pullToLayout } from "../../core/oci/layout-sync.ts";
import { elfSbom, type ElfFileInput } from "../../core/sbom/cyclonedx.ts";
import { bundleWithTlog } from "../../core/tlog/bundle.ts";
import { submitDsse } from "../../core/tlog/rekor.ts";
import { canonicalJson } from "../../core/canonical-json.ts";
import { printOut } from "../action.ts";
import { EXIT_OK, EXIT_USAGE } from "../exit-codes.ts";
import { progress } from "../options.ts";
import { registryTarget, type RegistryFlags, type RegistryTarget } from "../registry.ts";
import { VERSION } from "../version.ts";

export interface PublishedReferrer {
  digest: string;
  artifactType: string;
  path?: string;
  buildId?: string;
  source?: string;
  tlog?: { logIndex: string };
}

/** The image manifest's descriptor: the subject every referrer points at. */
async function subjectOf(t: RegistryTarget): Promise<Descriptor> {
  const m = await t.client.pullManifest(t.ref.repository, t.manifestRef);
  return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
}

/** Logs the envelope when a log URL is given; the bundle is what gets stored either way. */
interface Logged {
  bundle: Record<string, unknown>;
  logIndex?: string;
}

/** Envelopes being logged at once by `funcproof --push`. */
const TLOG_CONCURRENCY = 16;

async function toBundle(
  env: Envelope,
  tlog: { url: string; publicKey: PublicKey } | undefined,
): Promise<Logged> {
  if (tlog === undefined) return { bundle: envelopeToBundle(env) as unknown as Record<string, unknown> };
  const entry = await submitDsse({ url: tlog.url }, env, tlog.publicKey);
  const bundle = bundleWithTlog(env, [entry]) as unknown as Record<string, unknown>;
  // proto3 JSON leaves a zero index out.
  const logIndex = (entry as { logIndex?: unknown }).logIndex;
  return { bundle, logIndex: typeof logIndex === "string" ? logIndex : "0" };
}

async function attachOne(
  client: RegistryClient,
  repo: string,
  subject: Descriptor,
  input: SignedInput,
  extra: { path?: string; buildId?: string; bodies?: ArtifactBlob[] },
): Promise<Descriptor> {
  return (await client.attachReferrer(repo, subject, evidenceArtifact(input, extra))).descriptor;
}

export interface PushOptions extends RegistryFlags {
  sign?: string[];
  tlog?: string;
  sbom: boolean;
  sections: string[];
  maxSectionSize: number;
  json?: boolean;
}

/** `stella funcproof IMAGE --push`: a signed FuncProof referrer per ELF file, and a CycloneDX SBOM linking them. */
export async function pushFuncproofs(
  reference: string,
  opts: PushOptions,
  blake3: Blake3 | undefined,
): Promise<number> {
  const keys = opts.sign ?? [];
  if (keys.length !== 1) {
    process.stderr.write(
      "stella: usage: --push needs exactly one --sign KEY.pem (a sigstore bundle holds one signature)\n",
    );
    return EXIT_USAGE;
  }
  const privateKey = loadPrivateKeyFile(keys[0] ?? "");
  const signer = keySigner(privateKey);
  const tlog = opts.tlog === undefined ? undefined : { url: opts.tlog, publicKey: privateKey.publicKey };
  const target = registryTarget(reference, opts);
  const repo = target.ref.repository;
  const subject = await subjectOf(target);
  const dir = mkdtempSync(join(tmpdir(), "stella-push-"));
  try {
    await pullToLayout(target.client, repo, subject.digest, dir);
    const artifact = await openArtifact(dir);
    const bar = progress("funcproof --push");
    // Build and sign in order; log up to TLOG_CONCURRENCY envelopes at once (each waits for a checkpoint, and
    // entries submitted together share one); attach in order (the tag-schema fallback index is read-modify-write).
    const pending: { proof: FuncProof; envelope: Envelope; statement: Statement; logged: Promise<Logged> }[] =
      [];
    const inFlight = new Set<Promise<void>>();
    for (const [i, file] of artifact.files.entries()) {
      bar.update(i, artifact.files.length, file.path);
      const src = file.open();
      let proof;
      try {
        proof = buildFuncProof(src, {
          name: file.path,
          tool: `stella ${VERSION}`,
          sections: opts.sections,
          maxSectionBytes: opts.maxSectionSize,
          ...(blake3 ? { blake3 } : {}),
        });
      } finally {
        src.close();
      }
      // The statement is kept: evidenceArtifact reads its predicate type and subject (no re-parse of the payload).
      const statement = makeStatement(
        [{ name: proof.file.name, digest: { sha256: proof.file.sha256 } }],
        FUNCPROOF_PREDICATE_TYPE,
        proof as unknown as Record<string, unknown>,
      );
      const envelope = await signEnvelope(IN_TOTO_PAYLOAD_TYPE, statementBytes(statement), [signer]);
      if (inFlight.size >= TLOG_CONCURRENCY) await Promise.race(inFlight);
      const logged = toBundle(envelope, tlog);
      const settled: Promise<void> = logged.then(
        () => {
          inFlight.delete(settled);
        },
        () => {
          inFlight.delete(settled); // the error is rethrown where `logged` is awaited
        },
      );
      inFlight.add(settled);
      pending.push({ proof, envelope, statement, logged });
    }
    const published: PublishedReferrer[] = [];
    const sbomFiles: ElfFileInput[] = [];
    for (const [i, { proof, envelope, statement, logged }] of pending.entries()) {
      const path = proof.file.name;
      bar.update(i, pending.length, `attach ${path}`);
      const { bundle, logIndex } = await logged;
      const buildId = proof.buildId === undefined ? {} : { buildId: proof.buildId };
      const { digest } = await attachOne(
        target.client,
        repo,
        subject,
        { bundle, envelope, statement },
        {
          path,
          ...buildId,
        },
      );
      published.push({
        digest,
        artifactType: FUNCPROOF_MEDIA_TYPE,
        path,
        ...buildId,
        ...(logIndex === undefined ? {} : { tlog: { logIndex } }),
      });
      sbomFiles.push({
        path,
        sha256: proof.file.sha256,
        size: proof.file.size,
        ...buildId,
        funcproof: proof,
        funcproofRef: {
          digest,
          mediaType: FUNCPROOF_MEDIA_TYPE,
          registryRef: `${target.ref.registry}/${repo}@${digest}`,
        },
      });
    }
    bar.stop();
    if (opts.sbom) {
      const sbom = elfSbom({ image: { name: target.display, digest: subject.digest }, files: sbomFiles });
      const res = await target.client.attachReferrer(repo, subject, {
        artifactType: CYCLONEDX_MEDIA_TYPE,
        blobs: [{ mediaType: CYCLONEDX_MEDIA_TYPE, bytes: Buffer.from(sbom) }],
      });
      published.push({ digest: res.descriptor.digest, artifactType: CYCLONEDX_MEDIA_TYPE });
    }
    if (opts.json === true) {
      printOut(canonicalJson({ image: target.display, digest: subject.digest, referrers: published }));
    } else {
      const proofs = published.filter((p) => p.artifactType === FUNCPROOF_MEDIA_TYPE).length;
      printOut(
        `${target.display}@${subject.digest}: attached ${proofs} FuncProof referrer(s)` +
          `${opts.sbom ? " and a CycloneDX SBOM" : ""}${tlog ? `, logged in ${tlog.url}` : ""}`,
      );
    }
    return EXIT_OK;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface AttachOptions extends RegistryFlags {
  image: string;
  attestation: string[];
  body?: string;
  tlog?: string;
  publicKey?: string;
  json?: boolean;
}

/** `stella attest attach`: any signed document (FuncProof, BinaryDiffV1, delta, richgraph, VEX) as a referrer. */
export async function attachAttestations(opts: AttachOptions): Promise<number> {
  if (opts.tlog !== undefined && opts.publicKey === undefined) {
    process.stderr.write(
      "stella: usage: --tlog needs --public-key PUB.pem (the log checks the signature with it)\n",
    );
    return EXIT_USAGE;
  }
  if (opts.body !== undefined && opts.attestation.length !== 1) {
    process.stderr.write("stella: usage: --body goes with exactly one --attestation\n");
    return EXIT_USAGE;
  }
  const publicKey = opts.publicKey === undefined ? undefined : loadPublicKeyFile(opts.publicKey);
  const target = registryTarget(opts.image, opts);
  const subject = await subjectOf(target);
  const published: PublishedReferrer[] = [];
  for (const file of opts.attestation) {
    const input = readSignedInput(readFileSync(file, "utf8"), file);
    let logIndex: string | undefined;
    if (publicKey !== undefined && opts.tlog !== undefined) {
      const logged = await toBundle(input.envelope, { url: opts.tlog, publicKey });
      input.bundle = logged.bundle;
      logIndex = logged.logIndex;
    }
    const bodies = bodiesFor(input, file, opts.body);
    const subjectPath =
      input.statement.predicateType === FUNCPROOF_PREDICATE_TYPE
        ? input.statement.subject[0]?.name
        : undefined;
    const attached = await attachOne(target.client, target.ref.repository, subject, input, {
      ...(subjectPath === undefined ? {} : { path: subjectPath }),
      bodies,
    });
    published.push({
      digest: attached.digest,
      artifactType: attached.artifactType ?? "",
      source: file,
      ...(logIndex === undefined ? {} : { tlog: { logIndex } }),
    });
  }
  if (opts.json === true) {
    printOut(canonicalJson({ image: target.display, digest: subject.digest, referrers: published }));
  } else {
    for (const p of published)
      printOut(
        `${p.source ?? ""} → ${target.display}@${subject.digest}: referrer ${p.digest} (${p.artifactType})`,
      );
  }
  return EXIT_OK;
}

/** The body a richgraph envelope commits to: --body, else the CAS sibling (`<hash>.dsse` → `<hash>`). */
function bodiesFor(input: SignedInput, file: string, body: string | undefined): ArtifactBlob[] {
  const isGraph = input.statement.predicateType === RICHGRAPH_PREDICATE_TYPE;
  let path = body;
  if (path === undefined && isGraph && file.endsWith(".dsse") && existsSync(file.slice(0, -5))) {
    path = file.slice(0, -5);
  }
  if (path === undefined) return [];
  return [
    {
      mediaType: isGraph ? RICHGRAPH_BODY_MEDIA_TYPE : "application/octet-stream",
      bytes: readFileSync(path),
    },
  ];
}
