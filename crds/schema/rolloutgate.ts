import {
  bool,
  CATEGORIES,
  conditions,
  count,
  enumOf,
  type ConditionDoc,
  type KindDefinition,
  labelSelector,
  list,
  obj,
  observedGeneration,
  permille,
  secretKeyRef,
} from "./common.ts";

const CONDITIONS: ConditionDoc[] = [
  {
    type: "Ready",
    meaning: "The trusted keys are loaded and the admission webhook enforces (or audits) the gate.",
  },
];

/**
 * RolloutGate: the admission policy for rollouts from one image to another, by delta risk, provenance
 * and rollback attestation.
 *
 * Cluster-scoped like Kyverno's ClusterPolicy: it selects namespaces itself and names trusted keys in
 * Secrets of any namespace, which only a cluster administrator should be able to decide.
 */
export const rolloutGate: KindDefinition = {
  kind: "RolloutGate",
  plural: "rolloutgates",
  singular: "rolloutgate",
  shortNames: ["rg"],
  categories: CATEGORIES,
  scope: "Cluster",
  description:
    "RolloutGate admits or denies workload rollouts from one image to another by the DeltaAttestation's delta risk, its provenance and, for rollbacks, a signed rollback attestation.",
  notes: [
    "Cluster-scoped like Kyverno's ClusterPolicy: it selects namespaces itself and names Secrets in any namespace. The defaults are the strict choices: `mode: enforce`, `minProvenance: verified`, `missingAttestation: deny`, and rollbacks need a signed attestation.",
  ],
  conditions: CONDITIONS,
  printerColumns: [
    { name: "Mode", type: "string", jsonPath: ".spec.mode" },
    { name: "MaxRisk", type: "integer", jsonPath: ".spec.maxDeltaRisk", description: "permille" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
  spec: obj(
    "Which workloads the gate applies to and what it requires.",
    {
      namespaceSelector: {
        ...labelSelector,
        description: "Namespaces the gate applies to; unset or empty selects all.",
      },
      selector: {
        ...labelSelector,
        description: "Workloads (by their labels) the gate applies to; unset or empty selects all.",
      },
      maxDeltaRisk: permille("Highest delta risk (permille) admitted."),
      minProvenance: enumOf(
        "Least provenance a rollout's DeltaAttestation needs: none, signed (any signature), or verified (a signature by a trusted key).",
        ["none", "signed", "verified"],
        { default: "verified" },
      ),
      missingAttestation: enumOf(
        "What to do when no DeltaAttestation covers the rollout.",
        ["deny", "warn"],
        {
          default: "deny",
        },
      ),
      rollback: obj(
        "Rules for rollbacks (rolling to an image that ran before).",
        {
          requireSignedAttestation: bool(
            "Whether a rollback needs a signed DeltaAttestation with rollbackOf set.",
            { default: true },
          ),
        },
        { default: {}, tsName: "RolloutGateRollback" },
      ),
      trustedKeys: list(
        "Public keys (PEM) that may sign attestations.",
        obj(
          "A trusted public key.",
          { secretRef: secretKeyRef },
          { required: ["secretRef"], tsName: "RolloutGateTrustedKey" },
        ),
        16,
        { minItems: 1 },
      ),
      mode: enumOf("enforce denies rollouts; audit only records what it would deny.", ["enforce", "audit"], {
        default: "enforce",
      }),
    },
    { required: ["maxDeltaRisk", "trustedKeys"], tsName: "RolloutGateSpec" },
  ),
  status: obj(
    "Readiness and decision counters.",
    {
      observedGeneration: observedGeneration(),
      conditions: conditions(CONDITIONS),
      decisions: obj(
        "Admission decisions since the gate was created.",
        {
          allowed: count("Rollouts admitted."),
          denied: count("Rollouts denied."),
          audited: count("Rollouts that would have been denied in enforce mode."),
        },
        { tsName: "RolloutGateDecisions" },
      ),
    },
    { tsName: "RolloutGateStatus" },
  ),
};
