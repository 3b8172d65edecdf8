/**
 * Example objects of every kind, typed with the generated types, and writes the API server must reject,
 * each with the part of the error message it must give. `crds/crds.test.ts` checks them against the
 * structural schema (everything but CEL); the e2e suite can apply them to a real kube-apiserver, where the
 * CEL rules run too (`kubectl create --dry-run=server`, an update, or a status-subresource write).
 *
 * Only types are imported from the generated code: this module has no runtime dependency outside crds/.
 */
import type {
  DeltaAttestation,
  DsseEnvelope,
  FuncProof,
  RolloutGate,
  VexStatement,
} from "../operator/api/generated/index.ts";

const API_VERSION = "evidence.stella-ops.org/v1alpha1";

export type StellaObject = FuncProof | VexStatement | DeltaAttestation | RolloutGate;

const hex64 = (c: string): string => c.repeat(64);
const digestOf = (c: string): string => `sha256:${hex64(c)}`;

const BUILD_ID = "15dfff3239aa7c3b16a71e6b2e3b6e4009dab998";

export const exampleEnvelope: DsseEnvelope = {
  payloadType: "application/vnd.in-toto+json",
  payload: Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}').toString("base64"),
  signatures: [
    {
      keyid: hex64("1"),
      // The length of a DER-encoded ECDSA P-256 signature; the bytes are not one.
      sig: Buffer.alloc(71, 0x30).toString("base64"),
    },
  ],
};

export const exampleFuncProof: FuncProof = {
  apiVersion: API_VERSION,
  kind: "FuncProof",
  metadata: { name: BUILD_ID, labels: { "app.kubernetes.io/managed-by": "stella" } },
  spec: {
    buildId: BUILD_ID,
    file: { name: "/usr/bin/ls", sha256: hex64("c"), size: 151344 },
    arch: "x86_64",
    sections: [
      { name: ".rodata", offset: 86016, size: 20912, sha256: hex64("d") },
      { name: ".text", offset: 16384, size: 69009, sha256: hex64("e"), blake3: hex64("f") },
      { name: ".symtab", offset: 0, size: 0, skipped: "size 0 exceeds the section limit of 0 bytes" },
    ],
    functionCount: 6,
    bodyDigest: digestOf("9"),
    envelope: exampleEnvelope,
  },
  status: {
    observedGeneration: 1,
    conditions: [
      {
        type: "Verified",
        status: "True",
        reason: "Verified",
        message: "signed by 1111…; spec matches the signed FuncProof",
        lastTransitionTime: "2026-01-13T12:00:00Z",
        observedGeneration: 1,
      },
    ],
    verifiedKeyIds: [hex64("1")],
    observed: { lastSeen: "2026-01-13T12:00:00Z", nodes: ["node-a"], pods: 3 },
  },
};

/** A FuncProof whose envelope is too large to inline: referenced by digest. */
export const exampleFuncProofByRef: FuncProof = {
  ...exampleFuncProof,
  metadata: { name: "93ac61ec5a8eb1396f9fbd350e3169a558528a40" },
  spec: {
    buildId: "93ac61ec5a8eb1396f9fbd350e3169a558528a40",
    file: { name: "/usr/lib/x86_64-linux-gnu/libc.so.6", sha256: hex64("a"), size: 1922136 },
    arch: "x86_64",
    functionCount: 2822,
    bodyDigest: digestOf("b"),
    bodyRef: "registry.example/evidence/libc@sha256:" + hex64("b"),
    envelopeRef: { digest: digestOf("c"), location: "registry.example/evidence/libc@sha256:" + hex64("c") },
  },
};

export const exampleVexStatement: VexStatement = {
  apiVersion: API_VERSION,
  kind: "VexStatement",
  metadata: { name: "cve-2024-1234-shop", namespace: "shop" },
  spec: {
    vulnerability: { id: "CVE-2024-1234", aliases: ["GHSA-abcd-efgh-ijkl"] },
    product: { imageDigest: digestOf("a"), purl: "pkg:deb/debian/openssl@3.0.11-1" },
    symbols: [{ name: "EVP_DecryptUpdate", buildIds: [BUILD_ID] }, { name: "ssl3_read_bytes" }],
    policy: { windowSeconds: 3600, minSamples: 1, notAffectedAfterSeconds: 86400, revisitSeconds: 3600 },
    author: "stella-operator",
  },
  status: {
    observedGeneration: 1,
    conditions: [
      {
        type: "Decided",
        status: "True",
        reason: "NotObserved",
        message: "no vulnerable symbol sampled for 86400 s",
        lastTransitionTime: "2026-01-14T12:00:00Z",
      },
    ],
    vexStatus: "not_affected",
    justification: "vulnerable_code_not_in_execute_path",
    evidence: {
      windowStart: "2026-01-13T12:00:00Z",
      windowEnd: "2026-01-14T12:00:00Z",
      samples: 172800,
      cpuSharePermille: 0,
      buildIds: [BUILD_ID],
      pods: ["shop/web-7d4b9c-x2x9z"],
      nodes: ["node-a"],
      topStacks: [],
    },
    documentDigest: digestOf("d"),
    transitions: [
      { to: "under_investigation", at: "2026-01-13T12:00:00Z", reason: "Created" },
      { from: "under_investigation", to: "not_affected", at: "2026-01-14T12:00:00Z", reason: "NotObserved" },
    ],
  },
};

export const exampleDeltaAttestation: DeltaAttestation = {
  apiVersion: API_VERSION,
  kind: "DeltaAttestation",
  metadata: { name: "shop-web-1.4.1-to-1.4.2" },
  spec: {
    baseDigest: digestOf("1"),
    targetDigest: digestOf("2"),
    artifactType: "application/vnd.oci.image.manifest.v1+json",
    manifest: { opsCopy: 1200, opsAdd: 14, addBytes: 52133, changedChunks: 14 },
    functionsChanged: { added: 1, removed: 0, modified: 3, names: ["ssl3_read_bytes"] },
    materialsDelta: {
      added: [],
      removed: [],
      changed: [{ name: "openssl", version: "3.0.11-1~deb12u2", digest: digestOf("3") }],
    },
    scoreInputs: { provenance: 1000, entropy: 120, deps: 0, attestation_validity: 1000, fn_impact: 40 },
    envelope: exampleEnvelope,
  },
  status: {
    observedGeneration: 1,
    signatureVerified: true,
    deltaRisk: 87,
    breakdown: [
      { factor: "entropy", contribution: 60 },
      { factor: "fn_impact", contribution: 27 },
    ],
  },
};

export const exampleRolloutGate: RolloutGate = {
  apiVersion: API_VERSION,
  kind: "RolloutGate",
  metadata: { name: "production" },
  spec: {
    namespaceSelector: { matchLabels: { "stella-ops.org/gate": "production" } },
    selector: { matchExpressions: [{ key: "app.kubernetes.io/name", operator: "Exists" }] },
    maxDeltaRisk: 300,
    minProvenance: "verified",
    missingAttestation: "deny",
    rollback: { requireSignedAttestation: true },
    trustedKeys: [{ secretRef: { namespace: "stella-system", name: "release-keys", key: "cosign.pub" } }],
    mode: "enforce",
  },
  status: { observedGeneration: 1, decisions: { allowed: 10, denied: 1, audited: 0 } },
};

export const EXAMPLES: readonly StellaObject[] = [
  exampleFuncProof,
  exampleFuncProofByRef,
  exampleVexStatement,
  exampleDeltaAttestation,
  exampleRolloutGate,
];

/** A write the API server must refuse. */
export interface InvalidWrite {
  name: string;
  /**
   * create: create `object`; update: create `base` (without status), then replace it with `object`;
   * status: create `base`, then write `object.status` through the status subresource.
   */
  op: "create" | "update" | "status";
  base?: StellaObject;
  object: unknown;
  /** A substring of the API server's error. */
  expect: string;
  /** True when only a CEL rule catches it (an offline structural check cannot). */
  cel: boolean;
}

type Mutable = Record<string, unknown>;

/** A deep copy of `base` changed by `edit` (typed loosely: invalid objects do not fit the types). */
function variant(
  base: StellaObject,
  edit: (o: Mutable & { spec: Mutable; status: Mutable }) => void,
): unknown {
  const copy = structuredClone(base) as unknown as Mutable & { spec: Mutable; status: Mutable };
  edit(copy);
  return copy;
}

const fp = exampleFuncProof;
const vex = exampleVexStatement;
const da = exampleDeltaAttestation;
const rg = exampleRolloutGate;
const gateSpec = (o: Mutable & { spec: Mutable }) => o.spec;

export const INVALID_WRITES: readonly InvalidWrite[] = [
  {
    name: "FuncProof named other than its BuildID",
    op: "create",
    object: variant(fp, (o) => (o.metadata = { name: "deadbeef" })),
    expect: "metadata.name must equal spec.buildId",
    cel: true,
  },
  {
    name: "FuncProof with both envelope and envelopeRef",
    op: "create",
    object: variant(fp, (o) => (o.spec.envelopeRef = exampleFuncProofByRef.spec.envelopeRef)),
    expect: "exactly one of envelope or envelopeRef must be set",
    cel: true,
  },
  {
    name: "FuncProof with neither envelope nor envelopeRef",
    op: "create",
    object: variant(fp, (o) => delete o.spec.envelope),
    expect: "exactly one of envelope or envelopeRef must be set",
    cel: true,
  },
  {
    name: "FuncProof section with neither sha256 nor skipped",
    op: "create",
    object: variant(fp, (o) => (o.spec.sections = [{ name: ".text", offset: 0, size: 1 }])),
    expect: "a section has a sha256 or says why it was skipped",
    cel: true,
  },
  {
    name: "FuncProof bodyDigest without the sha256: prefix",
    op: "create",
    object: variant(fp, (o) => (o.spec.bodyDigest = hex64("9"))),
    expect: "spec.bodyDigest",
    cel: false,
  },
  {
    name: "FuncProof BuildID with upper-case hex",
    op: "create",
    object: variant(fp, (o) => {
      o.metadata = { name: "abcdef" };
      o.spec.buildId = "ABCDEF";
    }),
    expect: "spec.buildId",
    cel: false,
  },
  {
    name: "FuncProof with a fractional functionCount",
    op: "create",
    object: variant(fp, (o) => (o.spec.functionCount = 1.5)),
    expect: "spec.functionCount",
    cel: false,
  },
  {
    name: "FuncProof with the same section twice",
    op: "create",
    object: variant(fp, (o) => {
      const s = { name: ".text", offset: 0, size: 1, sha256: hex64("e") };
      o.spec.sections = [s, s];
    }),
    expect: "Duplicate value",
    cel: false,
  },
  {
    name: "FuncProof with 17 signatures",
    op: "create",
    object: variant(fp, (o) => {
      o.spec.envelope = { ...exampleEnvelope, signatures: Array(17).fill(exampleEnvelope.signatures[0]) };
    }),
    expect: "spec.envelope.signatures",
    cel: false,
  },
  {
    name: "VexStatement with neither imageDigest nor purl",
    op: "create",
    object: variant(vex, (o) => (o.spec.product = {})),
    expect: "set imageDigest, purl or both",
    cel: true,
  },
  {
    name: "VexStatement without symbols",
    op: "create",
    object: variant(vex, (o) => (o.spec.symbols = [])),
    expect: "spec.symbols",
    cel: false,
  },
  {
    name: "VexStatement with a 30 s window",
    op: "create",
    object: variant(vex, (o) => (o.spec.policy = { windowSeconds: 30 })),
    expect: "spec.policy.windowSeconds",
    cel: false,
  },
  {
    name: "VexStatement deciding not_affected faster than one window",
    op: "create",
    object: variant(vex, (o) => (o.spec.policy = { windowSeconds: 7200, notAffectedAfterSeconds: 3600 })),
    expect: "notAffectedAfterSeconds must be at least windowSeconds",
    cel: true,
  },
  {
    name: "VexStatement whose vulnerability changes",
    op: "update",
    base: vex,
    object: variant(vex, (o) => ((o.spec.vulnerability as Mutable).id = "CVE-2024-9999")),
    expect: "vulnerability.id (create a new statement instead) is immutable",
    cel: true,
  },
  {
    name: "VexStatement justification with status affected",
    op: "status",
    base: vex,
    object: variant(vex, (o) => (o.status.vexStatus = "affected")),
    expect: "justification is only allowed with vexStatus not_affected",
    cel: true,
  },
  {
    name: "VexStatement not_affected without justification or impact statement",
    op: "status",
    base: vex,
    object: variant(vex, (o) => delete o.status.justification),
    expect: "vexStatus not_affected needs a justification or an impactStatement",
    cel: true,
  },
  {
    name: "VexStatement evidence window ending before it starts",
    op: "status",
    base: vex,
    object: variant(vex, (o) => ((o.status.evidence as Mutable).windowEnd = "2026-01-12T12:00:00Z")),
    expect: "windowEnd must not be before windowStart",
    cel: true,
  },
  {
    name: "VexStatement with an unknown justification",
    op: "status",
    base: vex,
    object: variant(vex, (o) => (o.status.justification = "because")),
    expect: "status.justification",
    cel: false,
  },
  {
    name: "VexStatement CPU share over 1000 permille",
    op: "status",
    base: vex,
    object: variant(vex, (o) => ((o.status.evidence as Mutable).cpuSharePermille = 1001)),
    expect: "status.evidence.cpuSharePermille",
    cel: false,
  },
  {
    name: "DeltaAttestation from an image to itself",
    op: "create",
    object: variant(da, (o) => (o.spec.targetDigest = o.spec.baseDigest)),
    expect: "baseDigest and targetDigest must differ",
    cel: true,
  },
  {
    name: "DeltaAttestation whose target changes",
    op: "update",
    base: da,
    object: variant(da, (o) => (o.spec.targetDigest = digestOf("4"))),
    expect: "targetDigest is immutable",
    cel: true,
  },
  {
    name: "DeltaAttestation with a malformed score input name",
    op: "create",
    object: variant(da, (o) => (o.spec.scoreInputs = { "Not A Name": 1 })),
    expect: "score input names are identifiers",
    cel: true,
  },
  {
    name: "DeltaAttestation with a fractional score input",
    op: "create",
    object: variant(da, (o) => (o.spec.scoreInputs = { entropy: 0.5 })),
    expect: "spec.scoreInputs.entropy",
    cel: false,
  },
  {
    name: "DeltaAttestation without an envelope",
    op: "create",
    object: variant(da, (o) => delete o.spec.envelope),
    expect: "spec.envelope",
    cel: false,
  },
  {
    name: "RolloutGate without trusted keys",
    op: "create",
    object: variant(rg, (o) => (gateSpec(o).trustedKeys = [])),
    expect: "spec.trustedKeys",
    cel: false,
  },
  {
    name: "RolloutGate In requirement without values",
    op: "create",
    object: variant(rg, (o) => (o.spec.selector = { matchExpressions: [{ key: "app", operator: "In" }] })),
    expect: "values must be non-empty for In and NotIn",
    cel: true,
  },
  {
    name: "RolloutGate Exists requirement with values",
    op: "create",
    object: variant(
      rg,
      (o) => (o.spec.selector = { matchExpressions: [{ key: "app", operator: "Exists", values: ["x"] }] }),
    ),
    expect: "values must be non-empty for In and NotIn",
    cel: true,
  },
  {
    name: "RolloutGate with an unknown mode",
    op: "create",
    object: variant(rg, (o) => (o.spec.mode = "dry-run")),
    expect: "spec.mode",
    cel: false,
  },
  {
    name: "RolloutGate admitting a risk over 1000 permille",
    op: "create",
    object: variant(rg, (o) => (o.spec.maxDeltaRisk = 1001)),
    expect: "spec.maxDeltaRisk",
    cel: false,
  },
];
