import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FakeClock } from "./fake-clock.ts";
import { FakeLeaseClient, FakeLeaseStore } from "./fake-lease-client.ts";
import { LeaderElectionConfigError, LeaderElector, defaultIdentity } from "./leader-election.ts";
import type { StoppedReason } from "./leader-election.ts";
import { createRegistry } from "../../core/service/metrics.ts";

interface Candidate {
  elector: LeaderElector;
  client: FakeLeaseClient;
  startedAt: number[];
  stopped: { at: number; reason: StoppedReason }[];
  signal: AbortSignal | undefined;
}

function candidate(
  id: string,
  store: FakeLeaseStore,
  clock: FakeClock,
  registry = createRegistry({ defaultMetrics: false }),
): Candidate {
  const client = new FakeLeaseClient(store);
  const c: Candidate = { client, startedAt: [], stopped: [], signal: undefined } as unknown as Candidate;
  c.elector = new LeaderElector({
    client,
    name: "stella-operator",
    identity: id,
    clock,
    random: () => 0,
    registry,
    onStartedLeading: (signal) => {
      c.startedAt.push(clock.now());
      c.signal = signal;
    },
    onStoppedLeading: (reason) => {
      c.stopped.push({ at: clock.now(), reason });
    },
  });
  return c;
}

/** Advances in 100 ms steps, asserting at every step that at most one candidate leads. */
async function run(clock: FakeClock, ms: number, candidates: Candidate[]): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    await clock.advance(100);
    const leaders = candidates.filter((c) => c.elector.isLeader());
    assert.ok(leaders.length <= 1, `two leaders at t=${clock.now()}`);
  }
}

describe("LeaderElector", { timeout: 20_000 }, () => {
  test("two candidates: exactly one leads, and keeps leading while it renews", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate("a", store, clock);
    const b = candidate("b", store, clock);
    a.elector.start();
    b.elector.start();
    await run(clock, 60_000, [a, b]);
    const leaders = [a, b].filter((c) => c.elector.isLeader());
    assert.equal(leaders.length, 1);
    const [leader] = leaders;
    const standby = leader === a ? b : a;
    assert.equal(leader!.startedAt.length, 1);
    assert.equal(standby.startedAt.length, 0, "the standby never led");
    assert.equal(store.lease?.record.holderIdentity, leader!.elector.identity);
    assert.equal(standby.elector.observedLeader, leader!.elector.identity);
    assert.equal(store.lease?.record.leaseDurationSeconds, 15);
    assert.ok((store.lease?.record.renewTimeMs ?? 0) >= clock.now() - 2_000, "renewed every retry period");
    await a.elector.shutdown();
    await b.elector.shutdown();
  });

  test("a leader that stops renewing loses first; the standby takes over after the lease duration", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const a = candidate("a", store, clock);
    const b = candidate("b", store, clock);
    a.elector.start();
    await clock.advance(0);
    assert.equal(a.elector.isLeader(), true);
    b.elector.start();
    await run(clock, 10_000, [a, b]);

    a.client.partitioned = true; // the apiserver is unreachable from a
    const lastRenew = store.lease!.record.renewTimeMs!;
    await run(clock, 30_000, [a, b]);

    assert.deepEqual(
      a.stopped.map((s) => s.reason),
      ["lost"],
    );
    const lostAfter = a.stopped[0]!.at - lastRenew;
    assert.ok(lostAfter <= 10_000 + 2_000, `a gave up ${lostAfter} ms after its last renewal`);
    assert.equal(a.signal?.aborted, true, "the leading signal aborts on loss");
    assert.equal(b.startedAt.length, 1);
    const takeover = b.startedAt[0]! - lastRenew;
    assert.ok(takeover >= 15_000, `b took over after ${takeover} ms, before the lease expired`);
    assert.ok(takeover <= 15_000 + 2 * 2_000, `b took over ${takeover} ms after the last renewal`);
    assert.ok(a.stopped[0]!.at < b.startedAt[0]!, "old leader stops before the new one starts");
    assert.equal(store.lease?.record.holderIdentity, "b");
    assert.equal(store.lease?.record.leaseTransitions, 1);
    await b.elector.shutdown();
    await a.elector.shutdown();
    assert.equal(a.stopped.length, 1, "no second stop callback");
  });

  test("a candidate whose replace conflicts does not become leader", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.externalWrite({ holderIdentity: "old", leaseDurationSeconds: 15, leaseTransitions: 3 });
    const a = candidate("a", store, clock);
    a.elector.start();
    await run(clock, 14_000, [a]);
    assert.equal(a.elector.isLeader(), false, "old holder's lease is still valid on a's clock");
    assert.deepEqual(
      a.client.calls.filter((c) => c !== "get"),
      [],
      "no write while the lease is held",
    );

    // A rival writes between a's read and a's replace: a's resourceVersion is stale → 409.
    let rivalWrites = 0;
    a.client.beforeWrite = () => {
      if (rivalWrites++ === 0) {
        store.externalWrite({
          holderIdentity: "rival",
          leaseDurationSeconds: 15,
          renewTimeMs: clock.now(),
          leaseTransitions: 4,
        });
      }
    };
    await run(clock, 4_000, [a]);
    assert.ok(a.client.calls.includes("replace"), "a tried to take the expired lease");
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.startedAt.length, 0);
    assert.equal(store.lease?.record.holderIdentity, "rival");
    assert.equal(a.elector.observedLeader, "rival");
    await run(clock, 10_000, [a]);
    assert.equal(a.elector.isLeader(), false, "the rival's fresh record is valid again on a's clock");
    await a.elector.shutdown();
  });

  test("two candidates racing for an expired lease: one replace wins, the other gets 409", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.externalWrite({ holderIdentity: "crashed", leaseDurationSeconds: 15, leaseTransitions: 0 });
    const a = candidate("a", store, clock);
    const b = candidate("b", store, clock);
    a.elector.start();
    b.elector.start();
    await run(clock, 20_000, [a, b]);
    assert.equal([a, b].filter((c) => c.elector.isLeader()).length, 1);
    assert.equal(store.lease?.record.leaseTransitions, 1);
    await a.elector.shutdown();
    await b.elector.shutdown();
  });

  test("shutdown releases the lease so the standby takes over within one retry period", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const registry = createRegistry({ defaultMetrics: false });
    const a = candidate("a", store, clock, registry);
    const b = candidate("b", store, clock);
    a.elector.start();
    await clock.advance(0);
    b.elector.start();
    await run(clock, 5_000, [a, b]);
    assert.match(await registry.metrics(), /leader_election_master_status\{name="stella-operator"\} 1/);

    const releasedAt = clock.now();
    await a.elector.shutdown();
    assert.equal(store.lease?.record.holderIdentity, "");
    assert.equal(store.lease?.record.leaseDurationSeconds, 1);
    assert.deepEqual(
      a.stopped.map((s) => s.reason),
      ["shutdown"],
    );
    assert.equal(a.signal?.aborted, true);
    assert.match(await registry.metrics(), /leader_election_master_status\{name="stella-operator"\} 0/);

    await run(clock, 2_500, [a, b]);
    assert.equal(b.elector.isLeader(), true);
    assert.ok(b.startedAt[0]! - releasedAt <= 2_100, "took over on its next retry, not after 15 s");
    assert.equal(a.elector.isLeader(), false);
    await b.elector.shutdown();
  });

  test("validates timings like client-go and builds hostname_uuid identities", () => {
    const client = new FakeLeaseClient(new FakeLeaseStore());
    const base = { client, name: "l", onStartedLeading: () => undefined, onStoppedLeading: () => undefined };
    assert.throws(
      () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
      LeaderElectionConfigError,
    );
    assert.throws(
      () => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
      /renewDeadline must be greater than retryPeriod\*1.2/,
    );
    assert.throws(() => new LeaderElector({ ...base, leaseDurationMs: 15_500 }), /whole number of seconds/);
    assert.match(defaultIdentity(), /^.+_[0-9a-f-]{36}$/);
  });
});
