/**
 * `LeaseClient` on the real API: coordination.k8s.io/v1 Leases through client-node's CoordinationV1Api
 * (`readNamespacedLease`, `createNamespacedLease`, `replaceNamespacedLease`), like client-go's LeaseLock.
 *
 * client-node types `spec.renewTime`/`acquireTime` as `V1MicroTime` but its deserializer leaves them as
 * strings (V1MicroTime is not in its type map), so reads accept both; writes send `V1MicroTime`, whose
 * JSON is the RFC 3339 microsecond form the apiserver's MicroTime parser requires.
 */
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-misused-spread --
   client-node's model classes are plain data: its ObjectSerializer reads their fields and never their
   prototype, and its own examples pass object literals. */
import { V1MicroTime } from "@kubernetes/client-node";
import type { CoordinationV1Api, V1Lease, V1LeaseSpec } from "@kubernetes/client-node";
import { isNotFound } from "./errors.ts";
import type { Lease, LeaseClient, LeaseRecord } from "./leader-election.ts";
import { requestOptions } from "./request-options.ts";

export type LeaseApi = Pick<
  CoordinationV1Api,
  "readNamespacedLease" | "createNamespacedLease" | "replaceNamespacedLease"
>;

export class KubernetesLeaseClient implements LeaseClient {
  readonly #api: LeaseApi;
  readonly #namespace: string;
  readonly #name: string;
  /** The last object read or written: a replace sends it back whole (labels, annotations, owner refs). */
  #last: V1Lease | undefined;

  constructor(api: LeaseApi, namespace: string, name: string) {
    this.#api = api;
    this.#namespace = namespace;
    this.#name = name;
  }

  describe(): string {
    return `${this.#namespace}/${this.#name}`;
  }

  async get(signal: AbortSignal): Promise<Lease | undefined> {
    try {
      const lease = await this.#api.readNamespacedLease(
        { name: this.#name, namespace: this.#namespace },
        requestOptions({ signal }),
      );
      return this.#remember(lease);
    } catch (err: unknown) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async create(record: LeaseRecord, signal: AbortSignal): Promise<Lease> {
    const lease = await this.#api.createNamespacedLease(
      {
        namespace: this.#namespace,
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.#name, namespace: this.#namespace },
          spec: toSpec(record),
        },
      },
      requestOptions({ signal }),
    );
    return this.#remember(lease);
  }

  async replace(current: Lease, record: LeaseRecord, signal: AbortSignal): Promise<Lease> {
    const base = this.#last?.metadata?.resourceVersion === current.resourceVersion ? this.#last : undefined;
    const body: V1Lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...(base?.metadata ?? { name: this.#name, namespace: this.#namespace }),
        // The precondition: the apiserver answers 409 Conflict if the lease changed since this version.
        resourceVersion: current.resourceVersion,
      },
      spec: { ...base?.spec, ...toSpec(record) },
    };
    const lease = await this.#api.replaceNamespacedLease(
      { name: this.#name, namespace: this.#namespace, body },
      requestOptions({ signal }),
    );
    return this.#remember(lease);
  }

  #remember(lease: V1Lease): Lease {
    this.#last = lease;
    return fromV1Lease(lease);
  }
}

export function fromV1Lease(lease: V1Lease): Lease {
  const spec = lease.spec ?? {};
  const record: LeaseRecord = {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
  const acquire = timeMs(spec.acquireTime);
  const renew = timeMs(spec.renewTime);
  if (acquire !== undefined) record.acquireTimeMs = acquire;
  if (renew !== undefined) record.renewTimeMs = renew;
  return { record, resourceVersion: lease.metadata?.resourceVersion ?? "" };
}

export function toSpec(record: LeaseRecord): V1LeaseSpec {
  const spec: V1LeaseSpec = {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    leaseTransitions: record.leaseTransitions,
  };
  if (record.acquireTimeMs !== undefined) spec.acquireTime = new V1MicroTime(record.acquireTimeMs);
  if (record.renewTimeMs !== undefined) spec.renewTime = new V1MicroTime(record.renewTimeMs);
  return spec;
}

function timeMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}
