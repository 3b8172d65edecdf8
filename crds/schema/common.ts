/**
 * The one schema source of the evidence.stella-ops.org CRDs: a typed subset of apiextensions.k8s.io/v1
 * JSONSchemaProps, small builders that make every string and list bounded by construction, and the shared
 * pieces (conditions, DSSE envelope, digests, secret references, label selectors).
 *
 * `crds/gen.ts` turns each kind's definition into both the CRD YAML and the TypeScript types of
 * `operator/api/generated/`, so the two cannot drift (Conventions 7; kubebuilder's `zz_generated.*`).
 *
 * Bounds matter twice: structural schemas with maxLength/maxItems keep objects small in etcd, and the CEL
 * cost estimator needs them, or a rule over an unbounded list is rejected when the CRD is created
 * (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#resource-use-by-validation-functions).
 */

export const GROUP = "evidence.stella-ops.org";
export const VERSION = "v1alpha1";
/** Every kind is listed by `kubectl get stella` and `kubectl get evidence`. */
export const CATEGORIES = ["stella", "evidence"] as const;

/** One `x-kubernetes-validations` rule (CEL, https://kubernetes.io/docs/reference/using-api/cel/). */
export interface Validation {
  rule: string;
  message: string;
  /** Reported field, relative to the schema node the rule sits on (e.g. `.targetDigest`). */
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
  /** For transition rules: also evaluate on updates where the old value did not set the field. */
  optionalOldSelf?: boolean;
}

/**
 * The subset of JSONSchemaProps this project uses. `number` is deliberately missing: the API conventions
 * want integers (shares as permille or basis points, durations as `…Seconds`).
 */
export interface Schema {
  type?: "object" | "array" | "string" | "integer" | "boolean";
  format?: "int32" | "int64" | "date-time" | "byte";
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema;
  maxProperties?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  enum?: string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  default?: unknown;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-validations"?: Validation[];
  /**
   * Generator-only, never written to the CRD: the TypeScript name of the type this node generates. Names
   * in {@link SHARED_TYPES} go to `operator/api/generated/common.ts` and are imported from there.
   */
  tsName?: string;
}

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  /** 0 shows in `kubectl get`, 1 only with `-o wide`. */
  priority?: number;
}

/** A condition type a controller sets, for the generated docs and constants. */
export interface ConditionDoc {
  type: string;
  /** What status True means. */
  meaning: string;
  /** Reasons the controller uses, with what each says; documentation only, the schema allows any CamelCase. */
  reasons?: Record<string, string>;
}

/** Everything the generator needs to emit one kind's CRD and its types. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  categories: readonly string[];
  scope: "Cluster" | "Namespaced";
  /** Root description (`kubectl explain <kind>`) and the doc comment of the generated type. */
  description: string;
  /** Paragraphs for docs/crds.md: why the kind is shaped this way, how to use it. */
  notes?: string[];
  /** The condition types the controller sets (the schema keeps `type` an open string, as metav1.Condition). */
  conditions: ConditionDoc[];
  printerColumns: PrinterColumn[];
  spec: Schema;
  status: Schema;
  /** CEL rules on the root object: they may read `self.metadata.name` and `self.spec`. */
  rootValidations?: Validation[];
}

// ---- bounds ------------------------------------------------------------------------------------------------------

/** DNS-1123 label (namespaces). */
export const DNS_LABEL_MAX = 63;
/** DNS-1123 subdomain (most object names, node names). */
export const DNS_SUBDOMAIN_MAX = 253;
/** Free-text messages, as metav1.Condition.message. */
export const MESSAGE_MAX = 32768;
/** `sha256:` + 64 hex digits. */
export const DIGEST_LENGTH = 71;
/**
 * etcd rejects requests over 1.5 MiB (`--max-request-bytes`, 1572864). An inline DSSE payload of at most
 * 1,400,000 base64 characters leaves room for the rest of the object; larger bodies go by reference
 * (`envelopeRef`), never truncated.
 */
export const INLINE_PAYLOAD_MAX = 1_400_000;
/** RFC 3339 timestamps are about 20–35 characters; the bound only exists for the CEL cost estimator. */
const DATE_TIME_MAX = 64;

export const DIGEST_PATTERN = "^sha256:[0-9a-f]{64}$";
export const HEX_SHA256_PATTERN = "^[0-9a-f]{64}$";
/** ELF GNU BuildIDs are 8–20 bytes in practice (SHA-1: 20); 2–128 hex digits leaves room for others. */
export const BUILD_ID_PATTERN = "^[0-9a-f]{2,128}$";
const DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS_SUBDOMAIN_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/** metav1.Condition.reason: CamelCase, as `reason` is meant for machines. */
export const REASON_PATTERN = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
/** metav1.Condition.type: a CamelCase name, optionally prefixed by a DNS subdomain. */
const CONDITION_TYPE_PATTERN =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

// ---- builders ----------------------------------------------------------------------------------------------------

type Extra = Omit<Schema, "type" | "description">;

/** A string: the bound is required by the signature, so no unbounded string can be written down. */
export function str(description: string, maxLength: number, extra: Extra = {}): Schema {
  return { type: "string", description, maxLength, ...extra };
}

export function enumOf(description: string, values: string[], extra: Extra = {}): Schema {
  return { type: "string", description, enum: values, ...extra };
}

export function dateTime(description: string): Schema {
  return { type: "string", format: "date-time", description, maxLength: DATE_TIME_MAX };
}

/** `sha256:<64 hex>`, the OCI digest form. */
export function digest(description: string): Schema {
  return str(description, DIGEST_LENGTH, { pattern: DIGEST_PATTERN });
}

export function buildId(description: string): Schema {
  return str(description, 128, { pattern: BUILD_ID_PATTERN });
}

/** Base64 (`format: byte`, which the API server checks). */
export function base64(description: string, maxLength: number): Schema {
  return str(description, maxLength, { format: "byte" });
}

export function dnsLabel(description: string): Schema {
  return str(description, DNS_LABEL_MAX, { pattern: DNS_LABEL_PATTERN });
}

export function dnsSubdomain(description: string): Schema {
  return str(description, DNS_SUBDOMAIN_MAX, { pattern: DNS_SUBDOMAIN_PATTERN });
}

export function int64(description: string, extra: Extra = {}): Schema {
  return { type: "integer", format: "int64", description, ...extra };
}

export function int32(description: string, extra: Extra = {}): Schema {
  return { type: "integer", format: "int32", description, ...extra };
}

/** A count: int64, never negative. */
export function count(description: string): Schema {
  return int64(description, { minimum: 0 });
}

/** Permille (0–1000): shares and scores as integers, never floats. */
export function permille(description: string, extra: Extra = {}): Schema {
  return int32(description, { minimum: 0, maximum: 1000, ...extra });
}

/** A duration as whole seconds (`…Seconds`, API conventions), at least `minimum`. */
export function seconds(description: string, minimum: number, extra: Extra = {}): Schema {
  return int32(description, { minimum, ...extra });
}

export function bool(description: string, extra: Extra = {}): Schema {
  return { type: "boolean", description, ...extra };
}

export function obj(
  description: string,
  properties: Record<string, Schema>,
  extra: Omit<Extra, "properties"> = {},
): Schema {
  return { type: "object", description, properties, ...extra };
}

/** A list: the bound is required by the signature. Lists default to atomic unless a map or set is asked for. */
export function list(description: string, items: Schema, maxItems: number, extra: Extra = {}): Schema {
  return { type: "array", description, items, maxItems, ...extra };
}

/** A list of objects merged by key (`x-kubernetes-list-type: map`); the key fields must be required. */
export function mapList(
  description: string,
  items: Schema,
  keys: string[],
  maxItems: number,
  extra: Extra = {},
): Schema {
  return list(description, items, maxItems, {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": keys,
    ...extra,
  });
}

/** A list of unique scalars (`x-kubernetes-list-type: set`). */
export function setList(description: string, items: Schema, maxItems: number, extra: Extra = {}): Schema {
  return list(description, items, maxItems, { "x-kubernetes-list-type": "set", ...extra });
}

/** The field may be set once and never changed (CEL transition rule). */
export function immutable(schema: Schema, what: string): Schema {
  return {
    ...schema,
    "x-kubernetes-validations": [
      ...(schema["x-kubernetes-validations"] ?? []),
      { rule: "self == oldSelf", message: `${what} is immutable` },
    ],
  };
}

// ---- shared types ------------------------------------------------------------------------------------------------

/**
 * metav1.Condition, field for field (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties),
 * with the bounds and patterns controller-gen emits for it.
 */
export const condition: Schema = obj(
  "One aspect of the object's current state.",
  {
    type: str("Condition type in CamelCase, e.g. Verified.", 316, { pattern: CONDITION_TYPE_PATTERN }),
    status: enumOf("Whether the condition holds.", ["True", "False", "Unknown"]),
    observedGeneration: int64(
      "The metadata.generation the condition was set for: older than the object's, it is stale.",
      { minimum: 0 },
    ),
    lastTransitionTime: dateTime("When status last changed."),
    reason: str("Machine-readable CamelCase reason for the last transition.", 1024, {
      minLength: 1,
      pattern: REASON_PATTERN,
    }),
    message: str("Human-readable details; may be empty.", MESSAGE_MAX),
  },
  { required: ["type", "status", "lastTransitionTime", "reason", "message"], tsName: "Condition" },
);

/** `status.conditions`: a list-type map keyed by `type`, so server-side apply merges per condition. */
export function conditions(docs: readonly ConditionDoc[]): Schema {
  return mapList(
    `Current state of the object. Condition types set by the operator: ${docs.map((d) => d.type).join(", ")}.`,
    condition,
    ["type"],
    16,
  );
}

export function observedGeneration(): Schema {
  return int64("The metadata.generation the operator last reconciled.", { minimum: 0 });
}

export const dsseSignature: Schema = obj(
  "One signature over PAE(payloadType, payload).",
  {
    keyid: str("Unauthenticated hint naming the key; may be empty.", 256),
    sig: base64("Base64 signature (ECDSA signatures are DER-encoded).", 8192),
  },
  { required: ["sig"], tsName: "DsseSignature" },
);

/** DSSE JSON envelope (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md). */
export const dsseEnvelope: Schema = obj(
  "DSSE envelope, as signed: payload and signatures are kept byte-for-byte.",
  {
    payloadType: str("Payload media type, application/vnd.in-toto+json for in-toto statements.", 256, {
      minLength: 1,
    }),
    payload: base64(
      "Base64 of the serialized payload. At most 1,400,000 characters so the object stays under etcd's 1.5 MiB limit; larger payloads are stored elsewhere and referenced.",
      INLINE_PAYLOAD_MAX,
    ),
    signatures: list("Signatures; at least one.", dsseSignature, 16, { minItems: 1 }),
  },
  { required: ["payloadType", "payload", "signatures"], tsName: "DsseEnvelope" },
);

/** Where a body or envelope too big for the object lives, pinned by digest. */
export const contentRef: Schema = obj(
  "A document stored outside the object, pinned by its digest.",
  {
    digest: digest(
      "sha256 of the stored document (of its RFC 8785 canonical form for JSON such as a DSSE envelope); readers must check it.",
    ),
    location: str(
      "Where the bytes are: an OCI reference (registry/repo@sha256:…) or a content-addressed store path.",
      2048,
      { minLength: 1 },
    ),
  },
  { required: ["digest", "location"], tsName: "ContentRef" },
);

/** A key in a Secret (like corev1.SecretKeySelector, plus the namespace a cluster-scoped object needs). */
export const secretKeyRef: Schema = obj(
  "A key of a Secret.",
  {
    namespace: dnsLabel("Namespace of the Secret."),
    name: dnsSubdomain("Name of the Secret."),
    key: str("Key in the Secret's data; when unset, the Secret must hold exactly one key.", 253, {
      pattern: "^[-._a-zA-Z0-9]+$",
    }),
  },
  { required: ["namespace", "name"], tsName: "SecretKeyRef" },
);

/** metav1.LabelSelectorRequirement. */
export const labelSelectorRequirement: Schema = obj(
  "A label key, an operator and values.",
  {
    key: str("Label key.", 317, { minLength: 1 }),
    operator: enumOf("How the key relates to the values.", ["In", "NotIn", "Exists", "DoesNotExist"]),
    values: list(
      "Label values: non-empty for In and NotIn, empty for Exists and DoesNotExist.",
      str("A label value.", 63),
      64,
    ),
  },
  {
    required: ["key", "operator"],
    tsName: "LabelSelectorRequirement",
    "x-kubernetes-validations": [
      {
        // metav1.LabelSelectorRequirement's documented rule, which apimachinery checks in Go for built-ins.
        rule: "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
        message: "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
        fieldPath: ".values",
      },
    ],
  },
);

/** metav1.LabelSelector; an empty selector matches everything. */
export const labelSelector: Schema = obj(
  "A label query (metav1.LabelSelector): the requirements are ANDed; empty matches everything.",
  {
    matchLabels: {
      type: "object",
      description: "Label key/value pairs, each equivalent to an In requirement with one value.",
      additionalProperties: str("A label value.", 63),
      maxProperties: 64,
    },
    matchExpressions: list("Label requirements.", labelSelectorRequirement, 32),
  },
  { tsName: "LabelSelector", "x-kubernetes-map-type": "atomic" },
);

/** Types generated once into `operator/api/generated/common.ts` and imported by every kind. */
export const SHARED_TYPES: readonly Schema[] = [
  condition,
  dsseSignature,
  dsseEnvelope,
  contentRef,
  secretKeyRef,
  labelSelectorRequirement,
  labelSelector,
];
