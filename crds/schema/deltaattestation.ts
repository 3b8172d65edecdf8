import {
  CATEGORIES,
  conditions,
  count,
  digest,
  dnsSubdomain,
  dsseEnvelope,
  immutable,
  int32,
  int64,
  type ConditionDoc,
  type KindDefinition,
  list,
  mapList,
  obj,
  observedGeneration,
  permille,
  str,
  bool,
} from "./common.ts";

const CONDITIONS: ConditionDoc[] = [
  {
    type: "Verified",
    meaning:
      "The envelope verifies with a trusted key and its delta predicate matches the spec; status.deltaRisk is computed.",
  },
];

const material = obj(
  "A dependency (material) of the artifact.",
  {
    name: str("Material name, e.g. a package or layer name.", 512, { minLength: 1 }),
    version: str("Material version.", 256),
    digest: str("Material digest as algorithm:hex, e.g. sha256:….", 256, {
      pattern: "^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
    }),
  },
  { required: ["name", "version"], tsName: "DeltaMaterial" },
);

const materials = (description: string) => list(description, material, 256);

/**
 * DeltaAttestation: the signed summary of a delta-manifest.json between two artifacts (base → target) and
 * the risk the operator computed from it.
 *
 * Cluster-scoped: an image digest means the same bytes in every namespace, so one attestation serves every
 * workload that rolls from base to target, and RolloutGate (also cluster-scoped) reads it without a
 * namespace to guess. Creating one is a cluster-level privilege, like trusting a signing key.
 */
export const deltaAttestation: KindDefinition = {
  kind: "DeltaAttestation",
  plural: "deltaattestations",
  singular: "deltaattestation",
  shortNames: ["da"],
  categories: CATEGORIES,
  scope: "Cluster",
  description:
    "DeltaAttestation is the signed summary of what changed between a base and a target artifact, and the delta risk the operator computed from it.",
  notes: [
    "Cluster-scoped: an image digest means the same bytes in every namespace, so one attestation serves every workload that rolls from base to target, and RolloutGate (also cluster-scoped) finds it without guessing a namespace. `baseDigest` and `targetDigest` are immutable: a different pair is a different attestation.",
  ],
  conditions: CONDITIONS,
  printerColumns: [
    { name: "Base", type: "string", jsonPath: ".spec.baseDigest" },
    { name: "Target", type: "string", jsonPath: ".spec.targetDigest" },
    { name: "Risk", type: "integer", jsonPath: ".status.deltaRisk", description: "delta risk, permille" },
    { name: "Verified", type: "string", jsonPath: '.status.conditions[?(@.type=="Verified")].status' },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
  spec: obj(
    "The delta between two artifacts and its signed envelope.",
    {
      baseDigest: immutable(digest("Digest of the base artifact (the release rolled from)."), "baseDigest"),
      targetDigest: immutable(
        digest("Digest of the target artifact (the release rolled to)."),
        "targetDigest",
      ),
      artifactType: str("Artifact type, e.g. application/vnd.oci.image.manifest.v1+json.", 255, {
        minLength: 1,
        pattern: "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+/-]*$",
      }),
      manifest: obj(
        "Summary of the delta's op stream.",
        {
          opsCopy: count("Number of COPY ops."),
          opsAdd: count("Number of ADD ops."),
          addBytes: count("Bytes carried by ADD ops (new bytes)."),
          changedChunks: count("Number of chunks that differ between base and target."),
        },
        { required: ["opsCopy", "opsAdd", "addBytes", "changedChunks"], tsName: "DeltaManifestSummary" },
      ),
      functionsChanged: obj(
        "Function-level changes of the executables in the delta.",
        {
          added: count("Functions only in the target."),
          removed: count("Functions only in the base."),
          modified: count("Functions in both whose bytes differ."),
          names: list("The most significant changed functions.", str("A symbol name.", 4096), 64),
        },
        { required: ["added", "removed", "modified"], tsName: "DeltaFunctionsChanged" },
      ),
      materialsDelta: obj(
        "Dependency changes.",
        {
          added: materials("Materials only in the target."),
          removed: materials("Materials only in the base."),
          changed: materials("Materials in both with a different version or digest (target values)."),
        },
        { tsName: "DeltaMaterialsDelta" },
      ),
      scoreInputs: {
        type: "object",
        description:
          "Pre-computed integer metrics the delta risk is computed from (e.g. provenance, entropy, deps), so scoring is reproducible.",
        additionalProperties: int64("A metric value."),
        maxProperties: 32,
        "x-kubernetes-validations": [
          {
            rule: "self.all(k, k.matches('^[a-z][a-zA-Z0-9_]{0,62}$'))",
            message: "score input names are identifiers of at most 63 characters",
          },
        ],
      },
      envelope: {
        ...dsseEnvelope,
        description: "The signed DSSE envelope: an in-toto statement with a stellaops.delta.v1 predicate.",
      },
      rollbackOf: obj(
        "Set when this delta rolls back an earlier one: the attestation it reverses.",
        {
          name: dnsSubdomain("Name of the DeltaAttestation being rolled back."),
        },
        { required: ["name"], tsName: "DeltaRollbackOf" },
      ),
    },
    {
      required: ["baseDigest", "targetDigest", "artifactType", "manifest", "envelope"],
      tsName: "DeltaAttestationSpec",
      "x-kubernetes-validations": [
        {
          rule: "self.baseDigest != self.targetDigest",
          message: "baseDigest and targetDigest must differ",
          fieldPath: ".targetDigest",
        },
      ],
    },
  ),
  status: obj(
    "Verification and the computed risk.",
    {
      observedGeneration: observedGeneration(),
      conditions: conditions(CONDITIONS),
      signatureVerified: bool("Whether the envelope verified against a trusted key."),
      deltaRisk: permille("delta_risk in permille: 0 is no risk, 1000 the highest."),
      breakdown: mapList(
        "Each factor's contribution to deltaRisk.",
        obj(
          "One factor.",
          {
            factor: str("Factor name, e.g. provenance, entropy, deps.", 63, {
              pattern: "^[a-z][a-zA-Z0-9_]*$",
            }),
            contribution: int32("Contribution in permille; negative factors lower the risk.", {
              minimum: -1000,
              maximum: 1000,
            }),
          },
          { required: ["factor", "contribution"], tsName: "DeltaRiskFactor" },
        ),
        ["factor"],
        32,
      ),
    },
    { tsName: "DeltaAttestationStatus" },
  ),
};
