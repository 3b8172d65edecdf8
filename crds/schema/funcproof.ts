import {
  CATEGORIES,
  buildId,
  conditions,
  contentRef,
  count,
  dateTime,
  digest,
  dnsSubdomain,
  dsseEnvelope,
  HEX_SHA256_PATTERN,
  int64,
  type ConditionDoc,
  type KindDefinition,
  mapList,
  obj,
  observedGeneration,
  setList,
  str,
} from "./common.ts";

const CONDITIONS: ConditionDoc[] = [
  {
    type: "Verified",
    meaning:
      "The envelope verifies with a trusted key, carries a FuncProof statement about spec.file, and its body summarises to exactly the spec.",
    // The reasons of operator/controllers/funcproof-verify.ts (VerifiedReason).
    reasons: {
      Verified: "Signed by a trusted key and the spec matches the signed FuncProof.",
      SignatureInvalid: "A signature does not verify, or too few do.",
      UnknownKey: "No signature is by a trusted key.",
      SpecMismatch: "The spec disagrees with the signed body, or no subject has spec.file.sha256.",
      MalformedEnvelope: "The envelope or its statement cannot be parsed.",
      WrongPredicateType: "The statement is not a stellaops.funcproof.v1 predicate.",
      NameMismatch: "metadata.name is not spec.buildId.",
      NoTrustedKeys: "No trusted public keys are configured (status Unknown).",
      EnvelopeNotInline: "The envelope is referenced (envelopeRef) and was not fetched (status Unknown).",
    },
  },
  { type: "Observed", meaning: "An agent sampled this BuildID executing; see status.observed." },
];

const section = obj(
  "Digests of one ELF section.",
  {
    name: str("Section name, e.g. .text.", 256, { minLength: 1 }),
    offset: int64("File offset in bytes.", { minimum: 0 }),
    size: int64("Size in bytes.", { minimum: 0 }),
    sha256: str("SHA-256 of the section contents, 64 lowercase hex digits.", 64, {
      pattern: HEX_SHA256_PATTERN,
    }),
    blake3: str("BLAKE3-256 of the section contents, 64 lowercase hex digits.", 64, {
      pattern: HEX_SHA256_PATTERN,
    }),
    skipped: str("Why the section was not hashed, e.g. it exceeds the size limit.", 1024),
  },
  {
    required: ["name", "offset", "size"],
    tsName: "FuncProofSection",
    "x-kubernetes-validations": [
      {
        rule: "has(self.sha256) || has(self.skipped)",
        message: "a section has a sha256 or says why it was skipped",
      },
    ],
  },
);

/**
 * FuncProof: what is inside one ELF file, keyed by its GNU BuildID.
 *
 * Cluster-scoped and named by the BuildID: a binary is the same evidence whichever namespace runs it, and a
 * name that is the BuildID makes the lookup from a symbolized stack frame a plain GET.
 *
 * The object carries the summary of `core/funcproof/summary.ts` (file, sections, function count and the
 * digest of the canonical body); the function table itself can be far larger than etcd allows, so it is
 * stored by `bodyRef` and checked against `bodyDigest`. The signed envelope is inline when it fits and
 * otherwise referenced by digest — never truncated.
 */
export const funcProof: KindDefinition = {
  kind: "FuncProof",
  plural: "funcproofs",
  singular: "funcproof",
  shortNames: ["fp"],
  categories: CATEGORIES,
  scope: "Cluster",
  description:
    "FuncProof is the signed per-section and per-function digest summary of one ELF binary, named by its GNU BuildID.",
  notes: [
    "Cluster-scoped and named by the BuildID: a binary is the same evidence in every namespace, and the name makes the lookup from a symbolized stack frame a plain GET. The spec is the summary of `core/funcproof/summary.ts`; the function table stays in the signed body (`bodyRef`, checked against `bodyDigest`).",
    "The signed envelope is inline when its payload has at most 1,400,000 base64 characters, which keeps the object under etcd's 1.5 MiB request limit; a larger one is stored elsewhere and referenced by digest (`envelopeRef`), never truncated. Apply large FuncProofs with `kubectl apply --server-side` or `kubectl create`: client-side `kubectl apply` copies the whole object into the `kubectl.kubernetes.io/last-applied-configuration` annotation, and annotations may not exceed 256 KiB.",
  ],
  conditions: CONDITIONS,
  printerColumns: [
    { name: "BuildID", type: "string", jsonPath: ".spec.buildId" },
    { name: "Arch", type: "string", jsonPath: ".spec.arch" },
    { name: "Functions", type: "integer", jsonPath: ".spec.functionCount" },
    { name: "Verified", type: "string", jsonPath: '.status.conditions[?(@.type=="Verified")].status' },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
  rootValidations: [
    {
      // Root-level rules may read metadata.name and metadata.generateName (apiextensions CEL docs).
      rule: "self.metadata.name == self.spec.buildId",
      message: "metadata.name must equal spec.buildId",
      fieldPath: ".spec.buildId",
    },
  ],
  spec: obj(
    "The binary and its signed summary.",
    {
      buildId: buildId("GNU BuildID, lowercase hex; equals metadata.name."),
      file: obj(
        "The ELF file the proof is about.",
        {
          name: str("Path of the file (in the image or on disk).", 4096, { minLength: 1 }),
          sha256: str("SHA-256 of the whole file, 64 lowercase hex digits.", 64, {
            pattern: HEX_SHA256_PATTERN,
          }),
          size: int64("File size in bytes.", { minimum: 0 }),
        },
        { required: ["name", "sha256", "size"], tsName: "FuncProofFile" },
      ),
      arch: str("Architecture as in the predicate, e.g. x86_64, aarch64, riscv64.", 32, {
        minLength: 1,
        pattern: "^[a-z0-9_-]+$",
      }),
      sections: mapList("Hashed sections, sorted by name.", section, ["name"], 64),
      functionCount: count("Number of entries in the body's function table."),
      bodyDigest: digest("sha256 of the RFC 8785 canonical JSON of the full FuncProof body."),
      bodyRef: str(
        "Where the full body is stored: an OCI reference (registry/repo@sha256:…) or a content-addressed store path.",
        2048,
        { minLength: 1 },
      ),
      envelope: {
        ...dsseEnvelope,
        description:
          "The signed DSSE envelope (an in-toto statement with a stellaops.funcproof.v1 predicate), inline.",
      },
      envelopeRef: {
        ...contentRef,
        description:
          "The signed DSSE envelope, stored elsewhere when it does not fit inline; digest is over its RFC 8785 canonical JSON.",
      },
    },
    {
      required: ["buildId", "file", "arch", "functionCount", "bodyDigest"],
      tsName: "FuncProofSpec",
      "x-kubernetes-validations": [
        {
          rule: "has(self.envelope) != has(self.envelopeRef)",
          message:
            "exactly one of envelope or envelopeRef must be set: a signed body too large to inline is referenced by digest, never truncated",
        },
      ],
    },
  ),
  status: obj(
    "What the operator verified and observed.",
    {
      observedGeneration: observedGeneration(),
      conditions: conditions(CONDITIONS),
      verifiedKeyIds: setList(
        "Key IDs of the trusted keys whose signatures verified.",
        str("A key ID.", 256, { minLength: 1 }),
        16,
      ),
      observed: obj(
        "Where the agents saw this BuildID execute.",
        {
          lastSeen: dateTime("Last time a sample resolved to this BuildID."),
          nodes: setList("Nodes that ran it (at most 256 are listed).", dnsSubdomain("A node name."), 256),
          pods: count("Number of pods that ran it."),
        },
        { tsName: "FuncProofObserved" },
      ),
    },
    { tsName: "FuncProofStatus" },
  ),
};
