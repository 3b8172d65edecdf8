/**
 * In-memory Lease storage for tests, with the apiserver's optimistic concurrency: every write bumps the
 * resourceVersion, a replace with a stale one fails 409 Conflict, a create of an existing lease fails
 * 409 AlreadyExists. Several `FakeLeaseClient`s share one `FakeLeaseStore` like replicas share the API;
 * each client can be partitioned (every call fails) to simulate a leader that stops renewing.
 */
import { ApiException } from "@kubernetes/client-node";
import type { Lease, LeaseClient, LeaseRecord } from "./leader-election.ts";

export class FakeLeaseStore {
  lease: Lease | undefined;
  #rv = 0;
  writes = 0;

  nextResourceVersion(): string {
    this.#rv++;
    return String(this.#rv);
  }

  /** A write by some other actor (e.g. `kubectl edit`), bumping the resourceVersion. */
  externalWrite(record: LeaseRecord): void {
    this.lease = { record: { ...record }, resourceVersion: this.nextResourceVersion() };
    this.writes++;
  }
}

function status(code: number, reason: string): ApiException<unknown> {
  return new ApiException(code, reason, { kind: "Status", code, reason }, {});
}

export class FakeLeaseClient implements LeaseClient {
  readonly store: FakeLeaseStore;
  /** When true every call fails as if the apiserver were unreachable. */
  partitioned = false;
  /** Runs before each write is applied (after the caller read): lets a test interleave a rival write. */
  beforeWrite: (() => void) | undefined;
  readonly calls: string[] = [];

  constructor(store: FakeLeaseStore) {
    this.store = store;
  }

  describe(): string {
    return "fake/lease";
  }

  async get(_signal: AbortSignal): Promise<Lease | undefined> {
    await this.#io("get");
    const l = this.store.lease;
    return l === undefined ? undefined : { record: { ...l.record }, resourceVersion: l.resourceVersion };
  }

  async create(record: LeaseRecord, _signal: AbortSignal): Promise<Lease> {
    await this.#io("create");
    this.beforeWrite?.();
    if (this.store.lease !== undefined) throw status(409, "AlreadyExists");
    this.store.externalWrite(record);
    return this.#copy();
  }

  async replace(current: Lease, record: LeaseRecord, _signal: AbortSignal): Promise<Lease> {
    await this.#io("replace");
    this.beforeWrite?.();
    const stored = this.store.lease;
    if (stored === undefined) throw status(404, "NotFound");
    if (stored.resourceVersion !== current.resourceVersion) throw status(409, "Conflict");
    this.store.externalWrite(record);
    return this.#copy();
  }

  async #io(op: string): Promise<void> {
    this.calls.push(op);
    await Promise.resolve();
    if (this.partitioned) throw new Error("connect ECONNREFUSED (partitioned)");
  }

  #copy(): Lease {
    const l = this.store.lease;
    if (l === undefined) throw new Error("unreachable");
    return { record: { ...l.record }, resourceVersion: l.resourceVersion };
  }
}
