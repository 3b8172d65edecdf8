/**
 * The Manager wires the runtime together, after controller-runtime's `manager.Manager`:
 *
 * start():  probe/metrics servers → informers (caches) → wait for every cache to sync → runnables that
 *           do not need leadership → leader election → (when leading) controllers and other leader-only
 *           runnables. Without leader election, controllers start right after the sync.
 * shutdown(deadlineMs): controllers (drain in-flight reconciles until the deadline, then abort them) →
 *           event recorder flush → leader election (release the Lease) → other runnables → informers →
 *           probe/metrics servers.
 *
 * Losing the lease is fatal, as in client-go/controller-runtime ("exit on loss"): another replica may
 * already be reconciling, so controllers are stopped with no grace period and `done` resolves with a
 * LEADER_ELECTION_LOST error; `installSignalHandlers` turns that into exit code 1 and the Deployment
 * restarts the pod as a fresh standby.
 */
import { CoordinationV1Api, EventsV1Api, KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { StellaError } from "../../core/errors.ts";
import type { OperatorConfig } from "../config.ts";
import type { Logger } from "../../core/service/log.ts";
import type { Clock } from "./clock.ts";
import { systemClock, timeoutSignal } from "./clock.ts";
import type { Controller } from "./controller.ts";
import type { EventRecorder } from "./events.ts";
import { KubernetesEventRecorder } from "./events.ts";
import { HealthServer } from "../../core/service/health.ts";
import type { LeaseClient } from "./leader-election.ts";
import { LeaderElector, defaultIdentity } from "./leader-election.ts";
import { KubernetesLeaseClient } from "./lease-client.ts";
import { createRegistry } from "../../core/service/metrics.ts";

/** Anything with a lifecycle the manager runs (gRPC ingest, webhook server, …). */
export interface Runnable {
  readonly name: string;
  start(): Promise<void> | void;
  shutdown(deadlineMs: number): Promise<void>;
}

/** An informer: started before everything else; readiness and controllers wait for `waitForSync`. */
export interface CacheRunnable extends Runnable {
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<boolean>;
}

export type ManagerErrorCode = "CACHE_SYNC_TIMEOUT" | "LEADER_ELECTION_LOST" | "RUNNABLE_FAILED";

export class ManagerError extends StellaError<ManagerErrorCode> {}

export interface ManagerOptions {
  config: OperatorConfig;
  logger: Logger;
  /** Default: loaded lazily with `loadFromDefault()` (in-cluster or $KUBECONFIG), only if needed. */
  kubeConfig?: KubeConfig;
  registry?: Registry;
  clock?: Clock;
  /** Leader-election identity and events' reportingInstance; default `hostname_uuid`. */
  identity?: string;
  /** Default: a Lease `config.leaseName` in `config.namespace` through CoordinationV1Api. */
  leaseClient?: LeaseClient;
  /** Default: an events.k8s.io/v1 recorder through EventsV1Api. */
  eventRecorder?: EventRecorder;
  /** How long start() waits for caches (controller-runtime CacheSyncTimeout); default 120 s. */
  cacheSyncTimeoutMs?: number;
}

interface Entry {
  runnable: Runnable;
  leaderOnly: boolean;
}

export class Manager {
  readonly config: OperatorConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  readonly identity: string;
  /** Resolves once the manager stopped: undefined after a graceful shutdown, the cause after a fatal one. */
  readonly done: Promise<Error | undefined>;

  readonly #options: ManagerOptions;
  readonly #log: Logger;
  readonly #informers: CacheRunnable[] = [];
  readonly #runnables: Entry[] = [];
  readonly #servers: HealthServer[] = [];
  readonly #stop = new AbortController();
  #kubeConfig: KubeConfig | undefined;
  #recorder: EventRecorder | undefined;
  #ownedRecorder: KubernetesEventRecorder | undefined;
  #elector: LeaderElector | undefined;
  #leaderStarted = false;
  #start: Promise<void> | undefined;
  #shutdown: Promise<void> | undefined;
  #fatal: Error | undefined;
  #resolveDone: (err: Error | undefined) => void = () => undefined;

  constructor(options: ManagerOptions) {
    this.#options = options;
    this.config = options.config;
    this.logger = options.logger;
    this.#log = options.logger.child({ component: "manager" });
    this.registry = options.registry ?? createRegistry();
    this.clock = options.clock ?? systemClock;
    this.identity = options.identity ?? defaultIdentity();
    this.#kubeConfig = options.kubeConfig;
    this.#recorder = options.eventRecorder;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    const { healthAddr, metricsAddr } = this.config;
    const health = new HealthServer({
      address: healthAddr,
      registry: this.registry,
      logger: this.logger,
      metrics: metricsAddr === healthAddr,
    });
    health.addReadinessCheck("informers", () => {
      const unsynced = this.#informers.filter((i) => !i.hasSynced()).map((i) => i.name);
      if (unsynced.length > 0) throw new Error(`caches not synced: ${unsynced.join(", ")}`);
    });
    this.#servers.push(health);
    if (metricsAddr !== "0" && metricsAddr !== healthAddr) {
      this.#servers.push(
        new HealthServer({
          address: metricsAddr,
          registry: this.registry,
          logger: this.logger,
          probes: false,
        }),
      );
    }
  }

  get kubeConfig(): KubeConfig {
    if (this.#kubeConfig === undefined) {
      const kc = new KubeConfig();
      kc.loadFromDefault();
      this.#kubeConfig = kc;
    }
    return this.#kubeConfig;
  }

  /** The recorder controllers should use; `reportingInstance` is this replica's identity. */
  get eventRecorder(): EventRecorder {
    if (this.#recorder === undefined) {
      this.#ownedRecorder = new KubernetesEventRecorder({
        api: this.kubeConfig.makeApiClient(EventsV1Api),
        reportingInstance: this.identity,
        clock: this.clock,
        logger: this.logger,
        registry: this.registry,
      });
      this.#recorder = this.#ownedRecorder;
    }
    return this.#recorder;
  }

  /** The probe server (its address once started; tests bind port 0). */
  get healthServer(): HealthServer {
    return this.#servers[0] as HealthServer;
  }

  addInformer(informer: CacheRunnable): void {
    this.#informers.push(informer);
  }

  addController(controller: Controller): void {
    this.add(controller, { needLeaderElection: true });
  }

  /** Adds a runnable; by default it runs only on the leader (like controllers). */
  add(runnable: Runnable, options: { needLeaderElection?: boolean } = {}): void {
    this.#runnables.push({ runnable, leaderOnly: options.needLeaderElection ?? true });
  }

  isLeader(): boolean {
    return this.#elector?.isLeader() ?? (this.#leaderStarted && !this.config.leaderElect);
  }

  /**
   * Starts everything up to leader election and resolves; leader-only runnables start in the background
   * once the lease is acquired. Rejects if a server cannot bind or caches do not sync in time.
   */
  start(): Promise<void> {
    this.#start ??= this.#doStart();
    return this.#start;
  }

  async #doStart(): Promise<void> {
    for (const server of this.#servers) await server.start();
    await Promise.all(
      this.#informers.map(async (i) => {
        await i.start();
      }),
    );
    const sync = timeoutSignal(this.clock, this.#options.cacheSyncTimeoutMs ?? 120_000, this.#stop.signal);
    try {
      const results = await Promise.all(this.#informers.map((i) => i.waitForSync(sync.signal)));
      if (this.#stop.signal.aborted) return;
      const unsynced = this.#informers.filter((_, i) => results[i] !== true).map((i) => i.name);
      if (unsynced.length > 0) {
        throw new ManagerError("CACHE_SYNC_TIMEOUT", `caches did not sync in time: ${unsynced.join(", ")}`);
      }
    } finally {
      sync.dispose();
    }
    this.#log.info({ informers: this.#informers.map((i) => i.name) }, "caches synced");
    for (const { runnable } of this.#runnables.filter((e) => !e.leaderOnly)) {
      await runnable.start();
    }
    if (!this.config.leaderElect) {
      this.#log.info("leader election disabled; starting controllers");
      this.#startLeaderRunnables();
      return;
    }
    const { namespace, leaseName } = this.config;
    this.#elector = new LeaderElector({
      client:
        this.#options.leaseClient ??
        new KubernetesLeaseClient(this.kubeConfig.makeApiClient(CoordinationV1Api), namespace, leaseName),
      name: leaseName,
      identity: this.identity,
      leaseDurationMs: this.config.leaseDurationSeconds * 1000,
      renewDeadlineMs: this.config.renewDeadlineSeconds * 1000,
      retryPeriodMs: this.config.retryPeriodSeconds * 1000,
      clock: this.clock,
      logger: this.logger,
      registry: this.registry,
      onStartedLeading: () => {
        this.#startLeaderRunnables();
      },
      onStoppedLeading: (reason) => {
        if (reason === "lost") {
          this.#fail(new ManagerError("LEADER_ELECTION_LOST", `lost leader lease ${namespace}/${leaseName}`));
        }
      },
    });
    this.#elector.start();
  }

  #startLeaderRunnables(): void {
    if (this.#leaderStarted || this.#stop.signal.aborted) return;
    this.#leaderStarted = true;
    for (const { runnable } of this.#runnables.filter((e) => e.leaderOnly)) {
      Promise.resolve()
        .then(() => runnable.start())
        .catch((err: unknown) => {
          this.#fail(new ManagerError("RUNNABLE_FAILED", `${runnable.name} failed to start`, { cause: err }));
        });
    }
  }

  /** A fatal condition: stop at once (no drain) and report it through `done`. */
  #fail(err: Error): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = err;
    this.#log.error({ err }, "fatal; stopping");
    void this.shutdown(0);
  }

  /** Stops everything in order within `deadlineMs` (default `config.shutdownTimeoutSeconds`). Idempotent. */
  shutdown(deadlineMs = this.config.shutdownTimeoutSeconds * 1000): Promise<void> {
    this.#shutdown ??= this.#doShutdown(deadlineMs);
    return this.#shutdown;
  }

  async #doShutdown(deadlineMs: number): Promise<void> {
    this.#stop.abort();
    const deadline = this.clock.now() + deadlineMs;
    const remaining = (): number => Math.max(0, deadline - this.clock.now());
    this.#log.info({ deadlineMs }, "shutting down");
    const stop = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err: unknown) {
        this.#log.error({ err, component: what }, "error during shutdown");
      }
    };
    const leaderOnly = this.#runnables.filter((e) => e.leaderOnly).map((e) => e.runnable);
    const others = this.#runnables.filter((e) => !e.leaderOnly).map((e) => e.runnable);

    await Promise.all(leaderOnly.map((r) => stop(r.name, () => r.shutdown(remaining()))));
    const recorder = this.#ownedRecorder;
    if (recorder !== undefined) await stop("events", () => recorder.shutdown(Math.min(remaining(), 5_000)));
    const elector = this.#elector;
    if (elector !== undefined) await stop("leader-election", () => elector.shutdown());
    await Promise.all(others.map((r) => stop(r.name, () => r.shutdown(remaining()))));
    await Promise.all(this.#informers.map((i) => stop(i.name, () => i.shutdown(remaining()))));
    await Promise.all(
      this.#servers.map((s) => stop("health", () => s.shutdown(Math.min(remaining(), 1_000)))),
    );
    this.#log.info("stopped");
    this.#resolveDone(this.#fatal);
  }
}

export interface SignalHandlerOptions {
  /** Grace period for `manager.shutdown`; default the manager's configured timeout. */
  deadlineMs?: number;
  /** Default `process.exit`; injectable for tests. */
  exit?: (code: number) => void;
  signals?: readonly NodeJS.Signals[];
}

/**
 * SIGTERM/SIGINT → graceful `manager.shutdown`; a second signal exits at once with code 1
 * (controller-runtime `SetupSignalHandler`). When the manager is done the process exits: 0 after a
 * graceful shutdown, 1 after a fatal error such as a lost lease. Returns a function that uninstalls.
 */
export function installSignalHandlers(
  manager: Manager,
  logger: Logger,
  options: SignalHandlerOptions = {},
): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  let received = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (received) {
      logger.warn({ signal }, "second signal; exiting immediately");
      exit(1);
      return;
    }
    received = true;
    logger.info({ signal }, "signal received; shutting down gracefully");
    void manager.shutdown(options.deadlineMs);
  };
  for (const s of signals) process.on(s, handler);
  let active = true;
  void manager.done.then((err) => {
    if (active) exit(err === undefined ? 0 : 1);
  });
  return () => {
    active = false;
    for (const s of signals) process.off(s, handler);
  };
}
