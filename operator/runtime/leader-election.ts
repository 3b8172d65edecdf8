/**
 * Leader election on a coordination.k8s.io/v1 Lease, a port of client-go `tools/leaderelection`
 * (leaderelection.go, resourcelock/leaselock.go). client-node ships none.
 *
 * - Defaults are client-go's: lease 15 s, renew deadline 10 s, retry period 2 s (jittered ×1.2 while
 *   acquiring). Identity `hostname_uuid`.
 * - A candidate takes the lease when it is absent, released (empty holder), or expired. Expiry is judged
 *   on this candidate's own clock, as client-go does: the lease counts as held until `leaseDurationSeconds`
 *   after the moment this candidate last saw the record change. The holder's `renewTime` (written with
 *   another node's clock) is never compared with ours, so clock skew cannot produce two leaders.
 * - Every write is a replace carrying the resourceVersion that was read: the apiserver rejects it with
 *   409 Conflict if anyone wrote in between, so of two candidates racing for an expired lease exactly one
 *   wins the round.
 * - The leader renews every retry period. If it cannot renew for `renewDeadline` it stops leading and
 *   `onStoppedLeading("lost")` fires; the manager then exits (client-go and controller-runtime "exit on
 *   loss"). Because renewDeadline < leaseDuration, it stops before any other candidate can take over.
 * - `shutdown()` releases a held lease (empty holder, 1 s duration) so a standby takes over on its next
 *   retry instead of waiting out the lease (client-go ReleaseOnCancel).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Registry } from "prom-client";
import type { Logger } from "../../core/service/log.ts";
import { silentLogger } from "../../core/service/log.ts";
import { StellaError } from "../../core/errors.ts";
import type { Clock } from "./clock.ts";
import { raceAbort, sleep, systemClock, timeoutSignal } from "./clock.ts";
import { gauge } from "../../core/service/metrics.ts";

/** The leader-election fields of a Lease spec (client-go `LeaderElectionRecord`). */
export interface LeaseRecord {
  /** Empty when nobody holds the lease (released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTimeMs?: number;
  renewTimeMs?: number;
  leaseTransitions: number;
}

export interface Lease {
  record: LeaseRecord;
  /** Opaque optimistic-concurrency token of the stored object. */
  resourceVersion: string;
}

/**
 * Storage of one named Lease. Implementations must make `replace` fail with a 409 (`isConflict`) when
 * `current.resourceVersion` is stale and `create` fail with a 409 when the lease already exists.
 */
export interface LeaseClient {
  /** The lease, or undefined if it does not exist (404). */
  get(signal: AbortSignal): Promise<Lease | undefined>;
  create(record: LeaseRecord, signal: AbortSignal): Promise<Lease>;
  /** Replaces the lease's record, conditional on `current.resourceVersion`. */
  replace(current: Lease, record: LeaseRecord, signal: AbortSignal): Promise<Lease>;
  /** For logs, e.g. "stella-system/stella-operator". */
  describe(): string;
}

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/** client-go `JitterFactor`: acquire retries wait retryPeriod × (1 + 1.2·rand). */
export const JITTER_FACTOR = 1.2;

export type StoppedReason = "lost" | "shutdown";

export interface LeaderElectorOptions {
  client: LeaseClient;
  /** Lease name; the `name` label of `leader_election_master_status`. */
  name: string;
  /** Unique per process; default `defaultIdentity()`. */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Called once when this candidate becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called once when leadership ends: "lost" (renewal failed) or "shutdown" (released). */
  onStoppedLeading: (reason: StoppedReason) => void;
  /** Called whenever a different holder is observed (including this candidate). */
  onNewLeader?: (identity: string) => void;
  /** Release the lease on shutdown (default true). */
  releaseOnShutdown?: boolean;
  clock?: Clock;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  logger?: Logger;
  registry?: Registry;
}

export class LeaderElectionConfigError extends StellaError<"LEADER_ELECTION_CONFIG"> {
  constructor(message: string) {
    super("LEADER_ELECTION_CONFIG", message);
  }
}

/** `hostname_uuid`, client-go's recommended identity: unique even if two pods share a hostname. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomUUID()}`;
}

export class LeaderElector {
  readonly identity: string;
  readonly name: string;
  readonly #client: LeaseClient;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #options: LeaderElectorOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #log: Logger;
  readonly #status: ((v: 0 | 1) => void) | undefined;

  #observed: Lease | undefined;
  #observedRaw = "";
  /** Our clock when `#observed` last changed: the basis of expiry. */
  #observedTimeMs = 0;
  #reportedLeader: string | undefined;
  #leading = false;
  #leadingAbort: AbortController | undefined;
  readonly #stop = new AbortController();
  #run: Promise<void> | undefined;
  #shutdown: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    this.#options = options;
    this.#client = options.client;
    this.name = options.name;
    this.identity = options.identity ?? defaultIdentity();
    this.#leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.#retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    validateTimings(this.#leaseDurationMs, this.#renewDeadlineMs, this.#retryPeriodMs);
    if (this.identity === "") throw new LeaderElectionConfigError("identity must not be empty");
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#log = (options.logger ?? silentLogger()).child({
      component: "leader-election",
      lease: options.client.describe(),
      identity: this.identity,
    });
    if (options.registry !== undefined) {
      const g = gauge(options.registry, {
        name: "leader_election_master_status",
        help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
        labelNames: ["name"],
      });
      this.#status = (v) => {
        g.set({ name: this.name }, v);
      };
      this.#status(0);
    }
  }

  /** Starts competing for the lease in the background. Idempotent. */
  start(): void {
    if (this.#run !== undefined || this.#stop.signal.aborted) return;
    this.#run = this.#loop();
  }

  /** True between `onStartedLeading` and `onStoppedLeading`. */
  isLeader(): boolean {
    return this.#leading;
  }

  /** The holder this candidate last observed ("" if none). */
  get observedLeader(): string {
    return this.#observed?.record.holderIdentity ?? "";
  }

  /**
   * Stops competing. A leader stops leading first (its signal aborts), then releases the lease, then
   * `onStoppedLeading("shutdown")` fires. An in-flight lease request is allowed to finish (bounded by the
   * renew deadline) so the release carries the current resourceVersion.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#doShutdown();
    return this.#shutdown;
  }

  async #doShutdown(): Promise<void> {
    this.#stop.abort();
    await this.#run;
    if (!this.#leading) return;
    this.#endLeading();
    if (this.#options.releaseOnShutdown ?? true) await this.#release();
    this.#notifyStopped("shutdown");
  }

  async #loop(): Promise<void> {
    try {
      this.#log.info("attempting to acquire leader lease");
      if (!(await this.#acquire())) return;
      this.#log.info("successfully acquired lease");
      this.#leading = true;
      this.#leadingAbort = new AbortController();
      this.#status?.(1);
      try {
        this.#options.onStartedLeading(this.#leadingAbort.signal);
      } catch (err: unknown) {
        this.#log.error({ err }, "onStartedLeading failed");
      }
      if (await this.#renewLoop()) return; // stopped: shutdown() finishes the job
      this.#log.error("failed to renew lease within the renew deadline; leadership lost");
    } catch (err: unknown) {
      // Only our own bugs get here; treat them as a loss so a leader never runs unrenewed.
      this.#log.error({ err }, "leader election loop failed");
    }
    if (this.#leading) {
      this.#endLeading();
      this.#notifyStopped("lost");
    }
  }

  /** Retries until the lease is ours (true) or shutdown (false). */
  async #acquire(): Promise<boolean> {
    while (!this.#stop.signal.aborted) {
      const ok = await this.#attempt(this.#renewDeadlineMs);
      this.#maybeReportTransition();
      if (ok) return true;
      const delay = this.#retryPeriodMs * (1 + this.#random() * JITTER_FACTOR);
      await sleep(this.#clock, delay, this.#stop.signal);
    }
    return false;
  }

  /** Renews every retry period. Resolves true when stopped by shutdown, false when the lease was lost. */
  async #renewLoop(): Promise<boolean> {
    while (!this.#stop.signal.aborted) {
      const deadline = this.#clock.now() + this.#renewDeadlineMs;
      let renewed = false;
      // client-go: PollImmediateUntil(retryPeriod, tryAcquireOrRenew, renewDeadline timeout).
      for (;;) {
        const remaining = deadline - this.#clock.now();
        if (remaining <= 0) break;
        renewed = await this.#attempt(remaining);
        if (renewed || this.#stop.signal.aborted) break;
        const wait = Math.min(this.#retryPeriodMs, deadline - this.#clock.now());
        if (wait <= 0) break;
        await sleep(this.#clock, wait, this.#stop.signal);
        if (this.#stop.signal.aborted) break;
      }
      this.#maybeReportTransition();
      if (this.#stop.signal.aborted) return true;
      if (!renewed) return false;
      await sleep(this.#clock, this.#retryPeriodMs, this.#stop.signal);
    }
    return true;
  }

  async #attempt(timeoutMs: number): Promise<boolean> {
    // Deliberately not tied to #stop: an in-flight write completes so a release sees its resourceVersion.
    const { signal, dispose } = timeoutSignal(this.#clock, timeoutMs);
    try {
      return await this.#tryAcquireOrRenew(signal);
    } finally {
      dispose();
    }
  }

  /** client-go `tryAcquireOrRenew`, step for step. */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = this.#clock.now();
    const desired: LeaseRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.#leaseDurationMs / 1000,
      acquireTimeMs: now,
      renewTimeMs: now,
      leaseTransitions: 0,
    };

    // 1. Fast path: the leader updates optimistically against the record it wrote last.
    const mine = this.#observed;
    if (mine !== undefined && this.#holds() && this.#leaseValid(now)) {
      desired.acquireTimeMs = mine.record.acquireTimeMs;
      desired.leaseTransitions = mine.record.leaseTransitions;
      try {
        this.#setObserved(await raceAbort(this.#client.replace(mine, desired, signal), signal));
        return true;
      } catch (err: unknown) {
        this.#log.warn({ err }, "failed to update lease optimistically, falling back to slow path");
      }
    }

    // 2. Read the lease, creating it if absent.
    let current: Lease | undefined;
    try {
      current = await raceAbort(this.#client.get(signal), signal);
    } catch (err: unknown) {
      this.#log.warn({ err }, "error retrieving lease");
      return false;
    }
    if (current === undefined) {
      try {
        this.#setObserved(
          await raceAbort(this.#client.create({ ...desired, leaseTransitions: 0 }, signal), signal),
        );
        return true;
      } catch (err: unknown) {
        this.#log.warn({ err }, "error initially creating lease");
        return false;
      }
    }

    // 3. Held by someone else and not expired (on our clock)? Then wait.
    if (rawRecord(current.record) !== this.#observedRaw) this.#setObserved(current);
    else this.#observed = current;
    if (current.record.holderIdentity !== "" && this.#leaseValid(now) && !this.#holds()) {
      this.#log.debug({ holder: current.record.holderIdentity }, "lease is held by another candidate");
      return false;
    }

    // 4. Take or renew it, conditional on the resourceVersion just read.
    if (this.#holds()) {
      desired.acquireTimeMs = current.record.acquireTimeMs;
      desired.leaseTransitions = current.record.leaseTransitions;
    } else {
      desired.leaseTransitions = current.record.leaseTransitions + 1;
    }
    try {
      this.#setObserved(await raceAbort(this.#client.replace(current, desired, signal), signal));
      return true;
    } catch (err: unknown) {
      this.#log.warn({ err }, "failed to update lease");
      return false;
    }
  }

  async #release(): Promise<void> {
    const mine = this.#observed;
    if (mine === undefined || !this.#holds()) return;
    const now = this.#clock.now();
    const released: LeaseRecord = {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTimeMs: now,
      renewTimeMs: now,
      leaseTransitions: mine.record.leaseTransitions,
    };
    const { signal, dispose } = timeoutSignal(this.#clock, this.#renewDeadlineMs);
    try {
      this.#setObserved(await raceAbort(this.#client.replace(mine, released, signal), signal));
      this.#log.info("released lease");
    } catch (err: unknown) {
      this.#log.warn({ err }, "failed to release lease; it will expire instead");
    } finally {
      dispose();
    }
  }

  #holds(): boolean {
    return this.#observed !== undefined && this.#observed.record.holderIdentity === this.identity;
  }

  #leaseValid(nowMs: number): boolean {
    const o = this.#observed;
    return o !== undefined && this.#observedTimeMs + o.record.leaseDurationSeconds * 1000 > nowMs;
  }

  #setObserved(lease: Lease): void {
    this.#observed = lease;
    this.#observedRaw = rawRecord(lease.record);
    this.#observedTimeMs = this.#clock.now();
  }

  #endLeading(): void {
    this.#leading = false;
    this.#leadingAbort?.abort(new Error("leadership ended"));
    this.#status?.(0);
  }

  #notifyStopped(reason: StoppedReason): void {
    try {
      this.#options.onStoppedLeading(reason);
    } catch (err: unknown) {
      this.#log.error({ err }, "onStoppedLeading failed");
    }
  }

  #maybeReportTransition(): void {
    const holder = this.#observed?.record.holderIdentity;
    if (holder === undefined || holder === this.#reportedLeader) return;
    this.#reportedLeader = holder;
    if (holder === "") return;
    this.#log.info({ leader: holder }, "new leader observed");
    try {
      this.#options.onNewLeader?.(holder);
    } catch (err: unknown) {
      this.#log.error({ err }, "onNewLeader failed");
    }
  }
}

/** The record as compared between observations (client-go compares the serialized record). */
function rawRecord(r: LeaseRecord): string {
  return JSON.stringify([
    r.holderIdentity,
    r.leaseDurationSeconds,
    r.acquireTimeMs,
    r.renewTimeMs,
    r.leaseTransitions,
  ]);
}

function validateTimings(leaseMs: number, renewMs: number, retryMs: number): void {
  if (!Number.isInteger(leaseMs / 1000) || leaseMs < 1000) {
    throw new LeaderElectionConfigError("leaseDuration must be a whole number of seconds, at least 1 s");
  }
  if (!(leaseMs > renewMs))
    throw new LeaderElectionConfigError("leaseDuration must be greater than renewDeadline");
  if (!(retryMs > 0)) throw new LeaderElectionConfigError("retryPeriod must be positive");
  if (!(renewMs > JITTER_FACTOR * retryMs)) {
    throw new LeaderElectionConfigError(`renewDeadline must be greater than retryPeriod*${JITTER_FACTOR}`);
  }
}
