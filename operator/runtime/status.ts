/**
 * Status helpers for our CRDs, following the Kubernetes API conventions
 * (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties):
 * `status.conditions[]` of metav1.Condition, maintained with apimachinery `meta.SetStatusCondition`
 * semantics, and status written through the `/status` subresource.
 */
import type { CustomObjectsApi } from "@kubernetes/client-node";
import { StellaError } from "../../core/errors.ts";
import { isConflict } from "./errors.ts";
import { mergePatchOptions, requestOptions } from "./request-options.ts";

export type ConditionStatus = "True" | "False" | "Unknown";

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase machine-readable reason. */
  reason: string;
  message: string;
  /** RFC 3339, second precision (metav1.Time). */
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
  observedGeneration?: number;
  /** Only used when the status changes; default `now`. */
  lastTransitionTime?: string;
}

export class ConditionError extends StellaError<"INVALID_CONDITION"> {
  constructor(message: string) {
    super("INVALID_CONDITION", message);
  }
}

// Validation from metav1.Condition's OpenAPI schema, so a bad condition fails here, not at the apiserver.
const TYPE_RE =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const REASON_RE = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const MAX_TYPE_LENGTH = 316;
const MAX_REASON_LENGTH = 1024;
export const MAX_CONDITION_MESSAGE_LENGTH = 32_768;

/** metav1.Time's wire form: RFC 3339 in UTC with whole seconds. */
export function formatTime(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Returns `conditions` with `input` applied, as apimachinery `meta.SetStatusCondition` does:
 * a new type is appended with lastTransitionTime = now; for an existing type, lastTransitionTime changes
 * only when `status` changes, while reason, message and observedGeneration are always updated.
 * `changed` says whether anything differs (skip the status write when it is false).
 * Messages longer than the schema's 32 768 characters are truncated.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date = new Date(),
): { conditions: Condition[]; changed: boolean } {
  validate(input);
  const message = truncate(input.message ?? "", MAX_CONDITION_MESSAGE_LENGTH);
  const list = (conditions ?? []).map((c) => ({ ...c }));
  const existing = list.find((c) => c.type === input.type);
  if (existing === undefined) {
    const added: Condition = {
      type: input.type,
      status: input.status,
      reason: input.reason,
      message,
      lastTransitionTime: input.lastTransitionTime ?? formatTime(now),
    };
    if (input.observedGeneration !== undefined) added.observedGeneration = input.observedGeneration;
    list.push(added);
    return { conditions: list, changed: true };
  }
  let changed = false;
  if (existing.status !== input.status) {
    existing.status = input.status;
    existing.lastTransitionTime = input.lastTransitionTime ?? formatTime(now);
    changed = true;
  }
  if (existing.reason !== input.reason) {
    existing.reason = input.reason;
    changed = true;
  }
  if (existing.message !== message) {
    existing.message = message;
    changed = true;
  }
  if (existing.observedGeneration !== input.observedGeneration) {
    if (input.observedGeneration === undefined) delete existing.observedGeneration;
    else existing.observedGeneration = input.observedGeneration;
    changed = true;
  }
  return { conditions: list, changed };
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

export function removeCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): { conditions: Condition[]; changed: boolean } {
  const list = (conditions ?? []).filter((c) => c.type !== type);
  return { conditions: list, changed: list.length !== (conditions?.length ?? 0) };
}

function validate(input: ConditionInput): void {
  if (input.type.length > MAX_TYPE_LENGTH || !TYPE_RE.test(input.type)) {
    throw new ConditionError(`condition type ${JSON.stringify(input.type)} is not a qualified name`);
  }
  if (input.reason.length > MAX_REASON_LENGTH || !REASON_RE.test(input.reason)) {
    throw new ConditionError(
      `condition reason ${JSON.stringify(input.reason)} must be CamelCase ([A-Za-z][A-Za-z0-9_,:]*)`,
    );
  }
  if (!["True", "False", "Unknown"].includes(input.status)) {
    throw new ConditionError(`condition status must be True, False or Unknown`);
  }
  const g = input.observedGeneration;
  if (g !== undefined && (!Number.isSafeInteger(g) || g < 0)) {
    throw new ConditionError("observedGeneration must be a non-negative integer");
  }
}

function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  // Do not split a surrogate pair.
  let end = max;
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return s.slice(0, end);
}

/** Identifies one custom object. `namespace` absent = cluster-scoped. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace?: string | undefined;
  name: string;
}

export type StatusApi = Pick<
  CustomObjectsApi,
  | "patchNamespacedCustomObjectStatus"
  | "patchClusterCustomObjectStatus"
  | "getNamespacedCustomObjectStatus"
  | "getClusterCustomObjectStatus"
>;

/** The parts of an object that status computation reads. */
export interface StatusObject {
  metadata?: { resourceVersion?: string; generation?: number; [k: string]: unknown };
  status?: unknown;
  [k: string]: unknown;
}

export interface PatchStatusOptions {
  /**
   * Precondition: the patch applies only if the object still has this resourceVersion (else 409, which
   * is retried after a fresh read). Without it the merge patch is unconditional and cannot conflict.
   */
  resourceVersion?: string | undefined;
  /** Attempts in total, including the first (default 5, client-go `retry.DefaultRetry`). */
  maxAttempts?: number;
  signal?: AbortSignal;
  /** Shown in managedFields (default "stella-operator"). */
  fieldManager?: string;
}

export const DEFAULT_STATUS_ATTEMPTS = 5;

/**
 * Writes `status` through the status subresource as a JSON merge patch (RFC 7386:
 * `{"status": …, "metadata": {"resourceVersion": …}}`, Content-Type `application/merge-patch+json`).
 * Merge-patch replaces arrays wholesale, so pass the full `conditions` list.
 *
 * `status` may be a function of the current object: it is then computed from a fresh read on every
 * attempt (and returning undefined skips the write), which is the safe form when the status depends on
 * the spec. On 409 Conflict the object is re-read and the patch retried with the new resourceVersion, up
 * to `maxAttempts`; the last conflict is rethrown. Returns the object the apiserver returned.
 */
export async function patchStatus(
  api: StatusApi,
  ref: ResourceRef,
  status: unknown,
  options: PatchStatusOptions = {},
): Promise<StatusObject> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_STATUS_ATTEMPTS;
  const compute = typeof status === "function" ? (status as (current: StatusObject) => unknown) : undefined;
  let resourceVersion = options.resourceVersion;
  let current: StatusObject | undefined;
  for (let attempt = 1; ; attempt++) {
    let next = status;
    if (compute !== undefined) {
      current ??= await readStatus(api, ref, options.signal);
      next = compute(current);
      if (next === undefined) return current;
      resourceVersion = current.metadata?.resourceVersion;
    }
    const body: Record<string, unknown> = { status: next };
    if (resourceVersion !== undefined) body.metadata = { resourceVersion };
    try {
      return await writeStatus(api, ref, body, options);
    } catch (err: unknown) {
      if (!isConflict(err) || attempt >= maxAttempts) throw err;
      current = await readStatus(api, ref, options.signal);
      resourceVersion = current.metadata?.resourceVersion;
    }
  }
}

async function writeStatus(
  api: StatusApi,
  ref: ResourceRef,
  body: Record<string, unknown>,
  options: PatchStatusOptions,
): Promise<StatusObject> {
  const common = {
    group: ref.group,
    version: ref.version,
    plural: ref.plural,
    name: ref.name,
    body,
    fieldManager: options.fieldManager ?? "stella-operator",
  };
  const opts = mergePatchOptions(options.signal);
  const out: unknown =
    ref.namespace === undefined
      ? await api.patchClusterCustomObjectStatus(common, opts)
      : await api.patchNamespacedCustomObjectStatus({ ...common, namespace: ref.namespace }, opts);
  return out as StatusObject;
}

async function readStatus(api: StatusApi, ref: ResourceRef, signal?: AbortSignal): Promise<StatusObject> {
  const common = { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name };
  const opts = requestOptions({ signal });
  const out: unknown =
    ref.namespace === undefined
      ? await api.getClusterCustomObjectStatus(common, opts)
      : await api.getNamespacedCustomObjectStatus({ ...common, namespace: ref.namespace }, opts);
  return out as StatusObject;
}
