// IngestServer over real gRPC on 127.0.0.1, with the agent's real Shipper as the client where it fits.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeTestPki } from "../../core/testing/test-pki.ts";
import { after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { createRegistry } from "../../core/service/metrics.ts";
import { IngestClient } from "../../proto/evidence.ts";
import type { Ack__Output, StackBatch } from "../../proto/evidence.ts";
import { Shipper } from "../../agent/ship/shipper.ts";
import type { ShipperOptions } from "../../agent/ship/shipper.ts";
import { IngestServer } from "./server.ts";
import type { IngestServerOptions } from "./server.ts";
import { RecordingIndex } from "./testing/ingest-process.ts";
import { body, sample } from "../../proto/testing/batches.ts";

const FAST_BACKOFF = { initialMs: 20, maxMs: 200, multiplier: 2, jitter: 0.2 };
const tmp = mkdtempSync(join(tmpdir(), "stella-ingest-"));
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;
const newDir = (name: string): string => join(tmp, `${++n}-${name}`);

async function startServer(
  walDir: string,
  extra: Partial<IngestServerOptions> = {},
): Promise<{ server: IngestServer; index: RecordingIndex }> {
  const index = new RecordingIndex();
  const server = new IngestServer({
    address: "127.0.0.1:0",
    tls: { insecure: true },
    walDir,
    index,
    ...extra,
  });
  await server.start();
  return { server, index };
}

function shipper(port: number, extra: Partial<ShipperOptions> = {}): Shipper {
  const s = new Shipper({
    target: `127.0.0.1:${port}`,
    node: "node-a",
    tls: { insecure: true },
    backoff: FAST_BACKOFF,
    closeGraceMs: 200,
    ...extra,
  });
  s.start();
  return s;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

const keysOf = (index: RecordingIndex): string[] => index.folded.map((r) => `${r.agentId}#${r.seq}`).sort();

describe("Shipper → IngestServer", () => {
  test("500 batches are acked, folded exactly once, and replay into a fresh server identically", async () => {
    const walDir = newDir("wal");
    const registry = createRegistry({ defaultMetrics: false });
    const { server, index } = await startServer(walDir, { registry, walSegmentBytes: 64 * 1024 });
    assert.equal(server.ready, true);
    const s = shipper(server.port);
    let enqueuedCount = 0;
    for (let i = 0; i < 500; i++) {
      const samples = [sample(i, 1 + (i % 5)), sample(i + 1, 2)];
      enqueuedCount += samples.reduce((a, x) => a + Number(x.count), 0);
      s.enqueue(body(samples));
    }
    await s.waitIdle();
    assert.equal(s.stats.acked, 500);
    await s.shutdown();
    assert.equal(index.folded.length, 500);
    assert.equal(new Set(keysOf(index)).size, 500, "each batch folded once");
    assert.equal(
      index.folded.reduce((a, r) => a + r.count, 0),
      enqueuedCount,
    );
    assert.equal(server.stats.stored, 500);
    assert.ok(server.stats.wal.segments > 1, "the WAL rotated");
    const text = await registry.metrics();
    assert.match(text, /stella_operator_ingest_batches_total\{result="stored"\} 500/);
    assert.match(text, new RegExp(`stella_operator_ingest_samples_total ${enqueuedCount}`));
    assert.match(text, /stella_operator_ingest_wal_bytes [1-9]/);
    assert.match(text, /stella_operator_ingest_wal_fsync_seconds_count [1-9]/);
    assert.match(text, /stella_operator_ingest_streams 0/);
    await server.shutdown();
    assert.equal(server.ready, false);

    const registry2 = createRegistry({ defaultMetrics: false });
    const again = await startServer(walDir, { registry: registry2 });
    assert.deepEqual(keysOf(again.index), keysOf(index));
    assert.equal(again.server.stats.replayed, 500);
    assert.match(await registry2.metrics(), /stella_operator_ingest_replayed_batches_total 500/);
    await again.server.shutdown();
  });

  test("rebuildIndex refolds the whole log once, also while batches keep arriving", async () => {
    const { server, index } = await startServer(newDir("wal"), { walSegmentBytes: 16 * 1024 });
    const s = shipper(server.port);
    for (let i = 0; i < 200; i++) s.enqueue(body([sample(i, 1)]));
    await s.waitIdle();
    // More batches race with the rebuild: each must still be folded exactly once.
    for (let i = 200; i < 400; i++) s.enqueue(body([sample(i, 1)]));
    const reread = await server.rebuildIndex();
    await s.waitIdle();
    await s.shutdown();
    assert.ok(reread >= 200, `reread ${reread}`);
    assert.equal(index.folded.length, 400);
    assert.equal(new Set(keysOf(index)).size, 400, "each batch folded once after the rebuild");
    assert.equal(server.stats.rebuilds, 1);
    await server.shutdown();
  });

  test("a torn WAL tail is cut at start; earlier batches survive and the server serves", async () => {
    const walDir = newDir("wal");
    const { server } = await startServer(walDir);
    const s = shipper(server.port);
    for (let i = 0; i < 20; i++) s.enqueue(body([sample(i, 1)]));
    await s.waitIdle();
    await s.shutdown();
    await server.shutdown();
    const segs = readdirSync(walDir)
      .filter((f) => f.endsWith(".log"))
      .sort();
    const last = join(walDir, segs.at(-1)!);
    truncateSync(last, statSync(last).size - 3);
    const again = await startServer(walDir);
    assert.equal(again.server.ready, true);
    assert.equal(again.server.stats.wal.tornRecords, 1);
    assert.equal(again.index.folded.length, 19);
    // The lost batch (seq 20 of that agent) would be resent and stored; a new agent works as usual.
    const s2 = shipper(again.server.port);
    s2.enqueue(body([sample(1, 1)]));
    await s2.waitIdle();
    await s2.shutdown();
    assert.equal(again.index.folded.length, 20);
    await again.server.shutdown();
  });

  test("malformed batches are rejected naming the field; others on the stream are stored", async () => {
    const { server, index } = await startServer(newDir("wal"));
    const s = shipper(server.port);
    s.enqueue(body([sample(1, 1)]));
    s.enqueue(body([sample(2, 1, 300)]));
    s.enqueue(body([sample(3, 1)]));
    await s.waitIdle();
    assert.equal(s.stats.rejected, 1);
    assert.equal(s.stats.acked, 2);
    assert.deepEqual(
      index.folded.map((r) => r.seq),
      [1, 3],
    );
    assert.equal(server.stats.rejected, 1);
    await s.shutdown();
    await server.shutdown();
  });

  test("the rejection reason names the field and the limit", async () => {
    const { server } = await startServer(newDir("wal"));
    const client = new IngestClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const call = client.streamStacks();
    const acks: Ack__Output[] = [];
    call.on("data", (a: Ack__Output) => acks.push(a));
    call.on("error", () => undefined);
    call.write({ ...batchOf(1), samples: [sample(0, 1), sample(1, 1), sample(2, 1), sample(3, 1, 300)] });
    await waitFor(() => acks.length === 1, 5000, "ack");
    assert.equal(acks[0]?.rejected, "samples[3].frames: 300 frames, limit 256");
    call.end();
    client.close();
    await server.shutdown();
  });

  test("a message over maxReceiveMessageBytes fails the stream with RESOURCE_EXHAUSTED; nothing else is lost", async () => {
    const { server, index } = await startServer(newDir("wal"), { maxReceiveMessageBytes: 64 * 1024 });
    const s = shipper(server.port, { maxMessageBytes: 1024 * 1024 });
    for (let i = 0; i < 3; i++) s.enqueue(body([sample(i, 1)]));
    await s.waitIdle();
    const big = sample(9, 1, 200);
    for (const f of big.frames ?? []) f.symbol = "x".repeat(1000);
    s.enqueue(body([big]));
    await waitFor(() => s.stats.rejectedTooLarge >= 1, 5000, "rejectedTooLarge");
    await s.shutdown({ flushTimeoutMs: 0 });
    assert.equal(server.stats.stored, 3);
    assert.equal(index.folded.length, 3);
    // The server still serves.
    const s2 = shipper(server.port);
    s2.enqueue(body([sample(1, 1)]));
    await s2.waitIdle();
    await s2.shutdown();
    assert.equal(index.folded.length, 4);
    await server.shutdown();
  });

  test("duplicate seqs are acked again and folded once (same stream and concurrent streams)", async () => {
    const { server, index } = await startServer(newDir("wal"));
    const client = new IngestClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const open = (): { call: ReturnType<typeof client.streamStacks>; acks: Ack__Output[] } => {
      const call = client.streamStacks();
      const acks: Ack__Output[] = [];
      call.on("data", (a: Ack__Output) => acks.push(a));
      call.on("error", () => undefined);
      return { call, acks };
    };
    const a = open();
    a.call.write(batchOf(1));
    a.call.write(batchOf(1));
    a.call.write(batchOf(2));
    await waitFor(() => a.acks.length === 3, 5000, "3 acks");
    assert.deepEqual(
      a.acks.map((x) => [x.seq, x.rejected]),
      [
        [1, ""],
        [1, ""],
        [2, ""],
      ],
    );
    // The same new seq on two streams at once (a reconnect overtaking an in-flight append).
    const b = open();
    a.call.write(batchOf(3));
    b.call.write(batchOf(3));
    await waitFor(() => a.acks.length === 4 && b.acks.length === 1, 5000, "acks on both streams");
    assert.deepEqual(
      index.folded.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal(server.stats.duplicates, 2);
    a.call.end();
    b.call.end();
    client.close();
    await server.shutdown();
  });

  test("shutdown ends open streams; unacked batches are resent to the restarted server", async () => {
    const walDir = newDir("wal");
    const first = await startServer(walDir);
    const port = first.server.port;
    const s = shipper(port);
    for (let i = 0; i < 50; i++) s.enqueue(body([sample(i, 1)]));
    await s.waitIdle();
    await first.server.shutdown();
    for (let i = 50; i < 60; i++) s.enqueue(body([sample(i, 1)]));
    const second = await startServer(walDir, { address: `127.0.0.1:${port}` });
    await s.waitIdle();
    await s.shutdown();
    assert.equal(second.index.folded.length, 60);
    assert.equal(new Set(keysOf(second.index)).size, 60);
    await second.server.shutdown();
  });
});

function batchOf(seq: number): StackBatch {
  return {
    node: "node-a",
    agentId: "node-a/raw",
    seq,
    window: { startUnixMs: 1000, endUnixMs: 2000 },
    samples: [sample(seq, 2)],
    binaries: [],
    hz: 99,
    droppedSamples: 0,
  };
}

describe("TLS", () => {
  const dir = newDir("tls");
  const setup = (): void => {
    makeTestPki(dir);
  };
  const f = (name: string): string => join(dir, name);

  test("TLS: the agent verifies the operator against its CA", async () => {
    setup();
    const { server, index } = await startServer(newDir("wal"), {
      tls: { certFile: f("server.crt"), keyFile: f("server.key") },
    });
    const s = shipper(server.port, { tls: { caFile: f("ca.crt") } });
    s.enqueue(body([sample(1, 1)]));
    await s.waitIdle();
    await s.shutdown();
    assert.equal(index.folded.length, 1);
    await server.shutdown();
  });

  test("mTLS: a client without a certificate is refused; with one it is served", async () => {
    const { server, index } = await startServer(newDir("wal"), {
      tls: { certFile: f("server.crt"), keyFile: f("server.key"), clientCaFile: f("ca.crt") },
    });
    const anon = shipper(server.port, { tls: { caFile: f("ca.crt") } });
    anon.enqueue(body([sample(1, 1)]));
    await waitFor(() => anon.stats.streamErrors >= 1, 5000, "a failed stream");
    assert.equal(anon.stats.acked, 0);
    await anon.shutdown({ flushTimeoutMs: 0 });
    assert.equal(index.folded.length, 0);
    const s = shipper(server.port, {
      tls: { caFile: f("ca.crt"), certFile: f("client.crt"), keyFile: f("client.key") },
    });
    s.enqueue(body([sample(1, 1)]));
    await s.waitIdle();
    await s.shutdown();
    assert.equal(index.folded.length, 1);
    await server.shutdown();
  });
});
