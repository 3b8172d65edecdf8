import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resolveConfig } from "../config.ts";
import { silentLogger } from "../../core/service/log.ts";
import { Controller } from "./controller.ts";
import { FakeEventRecorder } from "./events.ts";
import { FakeClock, settle } from "./fake-clock.ts";
import { FakeLeaseClient, FakeLeaseStore } from "./fake-lease-client.ts";
import { Manager, ManagerError, installSignalHandlers } from "./manager.ts";
import type { CacheRunnable } from "./manager.ts";
import { createRegistry } from "../../core/service/metrics.ts";

class FakeInformer implements CacheRunnable {
  readonly name = "funcproofs";
  synced = false;
  readonly log: string[];
  #waiters: ((v: boolean) => void)[] = [];

  constructor(log: string[]) {
    this.log = log;
  }

  start(): Promise<void> {
    this.log.push("informer:start");
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.log.push("informer:shutdown");
    return Promise.resolve();
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      signal?.addEventListener("abort", () => {
        resolve(false);
      });
    });
  }

  markSynced(): void {
    this.synced = true;
    for (const w of this.#waiters) w(true);
  }
}

function setup(leaderElect = true) {
  const clock = new FakeClock();
  const store = new FakeLeaseStore();
  const leaseClient = new FakeLeaseClient(store);
  const registry = createRegistry({ defaultMetrics: false });
  const log: string[] = [];
  const manager = new Manager({
    config: resolveConfig({ healthAddr: "127.0.0.1:0", metricsAddr: "0", leaderElect }),
    logger: silentLogger(),
    clock,
    registry,
    leaseClient,
    eventRecorder: new FakeEventRecorder(),
    identity: "op-1",
    cacheSyncTimeoutMs: 60_000,
  });
  const reconciled: string[] = [];
  const controller = new Controller({
    name: "funcproof",
    clock,
    registry,
    reconcile: (key) => {
      reconciled.push(key);
      return Promise.resolve();
    },
  });
  const informer = new FakeInformer(log);
  manager.addInformer(informer);
  manager.addController(controller);
  return { clock, store, leaseClient, registry, log, manager, controller, informer, reconciled };
}

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

describe("Manager", { timeout: 20_000 }, () => {
  test("starts probes and caches, waits for sync, leads, then stops in order and releases the lease", async () => {
    const { clock, store, registry, log, manager, controller, informer, reconciled } = setup();
    manager.add({
      name: "order-probe",
      start: () => undefined,
      shutdown: () => {
        log.push(`leader-runnable:shutdown holder=${store.lease?.record.holderIdentity ?? "-"}`);
        return Promise.resolve();
      },
    });
    const starting = manager.start();
    await settle();
    const base = manager.healthServer.url();
    assert.equal(await status(`${base}/healthz`), 200);
    assert.equal(await status(`${base}/readyz`), 503, "not ready until caches sync");
    controller.enqueue("apps/libc");
    await clock.advance(1_000);
    assert.equal(controller.started, false, "no controller before sync");

    informer.markSynced();
    await starting;
    assert.equal(await status(`${base}/readyz`), 200);
    await clock.advance(0);
    assert.equal(manager.isLeader(), true);
    assert.equal(store.lease?.record.holderIdentity, "op-1");
    assert.equal(controller.started, true);
    assert.deepEqual(reconciled, ["apps/libc"]);
    assert.match(await registry.metrics(), /leader_election_master_status\{name="stella-operator"\} 1/);

    await manager.shutdown(5_000);
    assert.equal(await manager.done, undefined);
    assert.deepEqual(log, ["informer:start", "leader-runnable:shutdown holder=op-1", "informer:shutdown"]);
    assert.equal(store.lease?.record.holderIdentity, "", "lease released after controllers stopped");
    assert.equal(controller.queue.shuttingDown, true);
    await assert.rejects(fetch(`${base}/healthz`), "probe server closed");
  });

  test("a standby is ready but runs no controllers; losing the lease is fatal (exit 1)", async () => {
    const { clock, store, leaseClient, manager, controller, informer } = setup();
    try {
      store.externalWrite({ holderIdentity: "other", leaseDurationSeconds: 15, leaseTransitions: 0 });
      informer.markSynced();
      await manager.start();
      await clock.advance(5_000);
      assert.equal(manager.isLeader(), false);
      assert.equal(controller.started, false);
      assert.equal(await status(`${manager.healthServer.url()}/readyz`), 200, "a standby replica is ready");

      // "other" never renewed: expired on our clock after 15 s (+ a jittered retry). Step the fake
      // clock so a loaded machine's slower promise chains cannot make the test flaky.
      for (let i = 0; i < 40 && !manager.isLeader(); i++) await clock.advance(1_000);
      assert.equal(manager.isLeader(), true);
      const exits: number[] = [];
      const uninstall = installSignalHandlers(manager, silentLogger(), {
        exit: (c) => exits.push(c),
        signals: [],
      });
      leaseClient.partitioned = true;
      let done: Error | undefined | null = null;
      void manager.done.then((e) => (done = e));
      for (let i = 0; i < 60 && done === null; i++) await clock.advance(1_000);
      const err = await manager.done;
      assert.ok(err instanceof ManagerError);
      assert.equal(err.code, "LEADER_ELECTION_LOST");
      assert.equal(controller.queue.shuttingDown, true);
      await settle();
      assert.deepEqual(exits, [1]);
      uninstall();
    } finally {
      // A failed assertion must not leave the health server listening (the test process would hang).
      await manager.shutdown(100).catch(() => undefined);
    }
  });

  test("without leader election controllers start after sync; SIGTERM shuts down and exits 0", async () => {
    const { manager, controller, informer, leaseClient } = setup(false);
    informer.markSynced();
    await manager.start();
    await settle();
    assert.equal(controller.started, true);
    assert.equal(manager.isLeader(), true);
    assert.deepEqual(leaseClient.calls, [], "no Lease traffic");
    const exits: number[] = [];
    const uninstall = installSignalHandlers(manager, silentLogger(), {
      exit: (c) => exits.push(c),
      signals: ["SIGHUP"],
      deadlineMs: 1_000,
    });
    process.emit("SIGHUP", "SIGHUP");
    assert.equal(await manager.done, undefined);
    await settle();
    assert.deepEqual(exits, [0]);
    uninstall();
  });

  test("start rejects when caches do not sync in time", async () => {
    const { clock, manager } = setup();
    const starting = manager.start();
    const assertion = assert.rejects(
      starting,
      (err: unknown) => err instanceof ManagerError && err.code === "CACHE_SYNC_TIMEOUT",
    );
    await clock.advance(60_000);
    await assertion;
    await manager.shutdown(0);
  });
});
