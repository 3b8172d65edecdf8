import {
  buildId,
  CATEGORIES,
  conditions,
  count,
  dateTime,
  digest,
  dnsSubdomain,
  enumOf,
  immutable,
  int32,
  type ConditionDoc,
  type KindDefinition,
  list,
  mapList,
  obj,
  observedGeneration,
  permille,
  REASON_PATTERN,
  seconds,
  setList,
  str,
} from "./common.ts";

const CONDITIONS: ConditionDoc[] = [
  { type: "Decided", meaning: "status.vexStatus holds a decision backed by status.evidence." },
  {
    type: "Signed",
    meaning: "The OpenVEX document of the decision is signed; status.documentDigest names it.",
  },
];

/** OpenVEX v0.2.0 statuses (https://github.com/openvex/spec/blob/main/OPENVEX-SPEC.md#status-labels). */
export const VEX_STATUSES = ["not_affected", "affected", "fixed", "under_investigation"];
/** OpenVEX v0.2.0 justifications for not_affected. */
export const VEX_JUSTIFICATIONS = [
  "component_not_present",
  "vulnerable_code_not_present",
  "vulnerable_code_not_in_execute_path",
  "vulnerable_code_cannot_be_controlled_by_adversary",
  "inline_mitigations_already_exist",
];

/** CVE-2024-1234, GHSA-xxxx-xxxx-xxxx, OSV and distribution advisory IDs. */
const vulnId = (description: string) =>
  str(description, 128, { minLength: 1, pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]*$" });

/** `namespace/name` of a pod. */
const podRef = str("A pod as namespace/name.", 317, {
  pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
});

const vexStatus = (description: string) => enumOf(description, VEX_STATUSES);

/**
 * VexStatement: the claim "is this image affected by this vulnerability?", decided by the operator from
 * runtime evidence and emitted as a signed OpenVEX document.
 *
 * Namespaced: a statement belongs to the team that runs the workload, and its evidence (pods) is
 * namespaced; RBAC on the namespace decides who may ask.
 */
export const vexStatement: KindDefinition = {
  kind: "VexStatement",
  plural: "vexstatements",
  singular: "vexstatement",
  shortNames: ["vex"],
  categories: CATEGORIES,
  scope: "Namespaced",
  description:
    "VexStatement asks whether a product is affected by a vulnerability; the operator decides from runtime evidence whether the vulnerable symbols execute and signs the OpenVEX result.",
  notes: [
    "Namespaced: a statement belongs to the team that runs the workload, and its evidence (pods) is namespaced. `spec.policy` may be omitted; its fields then take their defaults. The operator owns `status`, including the OpenVEX decision and its history.",
  ],
  conditions: CONDITIONS,
  printerColumns: [
    { name: "CVE", type: "string", jsonPath: ".spec.vulnerability.id" },
    { name: "Status", type: "string", jsonPath: ".status.vexStatus" },
    { name: "Justification", type: "string", jsonPath: ".status.justification" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
  spec: obj(
    "The vulnerability, the product, the vulnerable symbols and the decision policy.",
    {
      vulnerability: obj(
        "The vulnerability the statement is about.",
        {
          id: immutable(
            vulnId("Vulnerability ID, e.g. CVE-2024-1234."),
            "vulnerability.id (create a new statement instead)",
          ),
          aliases: setList("Other IDs of the same vulnerability.", vulnId("An alias."), 32),
        },
        { required: ["id"], tsName: "VexVulnerability" },
      ),
      product: obj(
        "The product the statement is about: an image, a package, or both.",
        {
          imageDigest: digest("Image (manifest or index) digest."),
          purl: str("Package URL, e.g. pkg:deb/debian/openssl@3.0.11-1.", 2048, {
            pattern: "^pkg:[A-Za-z0-9.+-]+/.+$",
          }),
        },
        {
          tsName: "VexProduct",
          "x-kubernetes-validations": [
            { rule: "has(self.imageDigest) || has(self.purl)", message: "set imageDigest, purl or both" },
          ],
        },
      ),
      symbols: mapList(
        "The vulnerable functions; the product is affected when any of them executes.",
        obj(
          "A vulnerable function.",
          {
            name: str("Symbol name as in the symbol table (mangled for C++ and Rust).", 4096, {
              minLength: 1,
            }),
            buildIds: setList(
              "Restrict matching to these BuildIDs; unset matches the symbol in any binary.",
              buildId("A BuildID."),
              16,
            ),
          },
          { required: ["name"], tsName: "VexSymbol" },
        ),
        ["name"],
        256,
        { minItems: 1 },
      ),
      policy: obj(
        "How runtime evidence turns into a decision.",
        {
          windowSeconds: seconds("Length of one sampling window.", 60, { default: 3600 }),
          minSamples: int32("Samples of a vulnerable symbol in a window that make the product affected.", {
            minimum: 1,
            default: 1,
          }),
          notAffectedAfterSeconds: seconds(
            "How long the symbols must go unobserved, while the product runs, before it is not_affected.",
            60,
            { default: 86400 },
          ),
          revisitSeconds: seconds("How often a decision is re-evaluated.", 60, { default: 3600 }),
        },
        {
          default: {},
          tsName: "VexPolicy",
          "x-kubernetes-validations": [
            {
              rule: "!has(self.notAffectedAfterSeconds) || !has(self.windowSeconds) || self.notAffectedAfterSeconds >= self.windowSeconds",
              message: "notAffectedAfterSeconds must be at least windowSeconds",
              fieldPath: ".notAffectedAfterSeconds",
            },
          ],
        },
      ),
      author: str("Author of the OpenVEX document; defaults to the operator's identity.", 256),
    },
    { required: ["vulnerability", "product", "symbols"], tsName: "VexStatementSpec" },
  ),
  status: obj(
    "The decision, its evidence and its history.",
    {
      observedGeneration: observedGeneration(),
      conditions: conditions(CONDITIONS),
      vexStatus: vexStatus("OpenVEX status of the last decision."),
      justification: enumOf("OpenVEX justification; only with not_affected.", VEX_JUSTIFICATIONS),
      impactStatement: str("OpenVEX impact_statement.", 4096),
      evidence: obj(
        "The runtime observations the decision rests on.",
        {
          windowStart: dateTime("Start of the observation window."),
          windowEnd: dateTime("End of the observation window."),
          samples: count("Stack samples in the window that hit the product."),
          cpuSharePermille: permille(
            "Share of the product's samples whose stacks contain a vulnerable symbol, in permille.",
          ),
          buildIds: setList("BuildIDs the vulnerable symbols were seen in.", buildId("A BuildID."), 64),
          pods: setList("Pods (namespace/name) where they executed.", podRef, 64),
          nodes: setList("Nodes where they executed.", dnsSubdomain("A node name."), 64),
          topStacks: list(
            "The most frequent stacks through a vulnerable symbol, leaf first, frames joined by ';'.",
            str("One folded stack.", 4096),
            16,
          ),
        },
        {
          tsName: "VexEvidence",
          "x-kubernetes-validations": [
            {
              // date-time strings are CEL timestamps, so this compares instants, not strings.
              rule: "!has(self.windowStart) || !has(self.windowEnd) || self.windowEnd >= self.windowStart",
              message: "windowEnd must not be before windowStart",
              fieldPath: ".windowEnd",
            },
          ],
        },
      ),
      documentDigest: digest("sha256 of the signed OpenVEX document (DSSE envelope) last emitted."),
      transitions: list(
        "Status changes, oldest first; the operator keeps the last 32.",
        obj(
          "One status change.",
          {
            from: vexStatus("Status before; unset for the first decision."),
            to: vexStatus("Status after."),
            at: dateTime("When."),
            reason: str("CamelCase reason.", 1024, { minLength: 1, pattern: REASON_PATTERN }),
          },
          { required: ["to", "at", "reason"], tsName: "VexTransition" },
        ),
        32,
      ),
    },
    {
      tsName: "VexStatementStatus",
      "x-kubernetes-validations": [
        {
          rule: "!has(self.justification) || (has(self.vexStatus) && self.vexStatus == 'not_affected')",
          message: "justification is only allowed with vexStatus not_affected",
          fieldPath: ".justification",
        },
        {
          // OpenVEX v0.2.0: not_affected requires a justification or an impact statement.
          rule: "!has(self.vexStatus) || self.vexStatus != 'not_affected' || has(self.justification) || has(self.impactStatement)",
          message: "vexStatus not_affected needs a justification or an impactStatement",
          fieldPath: ".vexStatus",
        },
      ],
    },
  ),
};
