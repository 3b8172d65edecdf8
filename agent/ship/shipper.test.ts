// The shipper against a real gRPC server over 127.0.0.1 sockets (the durable test ingest server, in-process or
// as a child process that gets SIGKILLed), with short backoffs so the file runs in well under a minute.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { isStellaError } from "../../core/errors.ts";
import { makeTestPki } from "../../core/testing/test-pki.ts";
import { encodedSize, ingestService } from "../../proto/evidence.ts";
import type { Ack, IngestHandlers, StackBatch__Output } from "../../proto/evidence.ts";
import { Shipper } from "./shipper.ts";
import type { ShipBody, ShipperLogger, ShipperOptions } from "./shipper.ts";
import { splitBody } from "./split.ts";
import { binary, body, sample } from "../../proto/testing/batches.ts";
import { DurableIngestServer, UNKNOWN_ACK_SEQ } from "./testing/durable-ingest-server.ts";
import type { IngestRecord } from "./testing/durable-ingest-server.ts";

const SERVER_SCRIPT = new URL("./testing/durable-ingest-server.ts", import.meta.url).pathname;
const FAST_BACKOFF = { initialMs: 20, maxMs: 200, multiplier: 2, jitter: 0.2 };

const tmp = mkdtempSync(join(tmpdir(), "stella-ship-"));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});

let fileCounter = 0;
const tmpFile = (name: string): string => join(tmp, `${++fileCounter}-${name}`);

function countOf(b: ShipBody): number {
  return b.samples.reduce((s, x) => s + Number(x.count), 0);
}

interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

function captureLogger(): { logger: ShipperLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

function shipper(port: number, extra: Partial<ShipperOptions> = {}): Shipper {
  return new Shipper({
    target: `127.0.0.1:${port}`,
    node: "node-a",
    tls: { insecure: true },
    backoff: FAST_BACKOFF,
    ...extra,
  });
}

/** Rejects if `p` takes longer than `ms` (so a regression fails a test instead of hanging the file). */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  const ac = new AbortController();
  try {
    return await Promise.race([
      p,
      sleep(ms, undefined, { signal: ac.signal }).then(() => {
        throw new Error(`timed out after ${ms} ms: ${what}`);
      }),
    ]);
  } finally {
    ac.abort();
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Starts the server script as a child process; resolves with its port once it prints "listening <port>". */
async function startChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [SERVER_SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const port = await within(
    10_000,
    new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => {
        reject(new Error(`server exited with ${code}: ${stderr}`));
      });
    }),
    "server start",
  );
  return { child, port };
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** Asserts each seq 1..n of `agentId` appears exactly once in the log; returns the records. */
function assertExactlyOnce(records: IngestRecord[], agentId: string, seqs: Iterable<number>): IngestRecord[] {
  const mine = records.filter((r) => r.agentId === agentId);
  const bySeq = new Map<number, number>();
  for (const r of mine) bySeq.set(r.seq, (bySeq.get(r.seq) ?? 0) + 1);
  const expected = [...seqs];
  for (const seq of expected) assert.equal(bySeq.get(seq), 1, `seq ${seq} should be logged exactly once`);
  assert.equal(mine.length, expected.length, "no extra records");
  return mine;
}

/** A port nothing listens on (bound and released). */
async function freePort(): Promise<number> {
  const s = new DurableIngestServer({ port: 0, logFile: tmpFile("probe.log") });
  const port = await s.start();
  await s.stop();
  return port;
}

describe("Shipper", () => {
  test("happy path: 200 batches all acked, each seq logged once, counts add up", async () => {
    const log = tmpFile("happy.log");
    const { child, port } = await startChild(["--port", "0", "--log", log]);
    const s = shipper(port);
    s.start();
    let total = 0;
    for (let i = 0; i < 200; i++) {
      const b = body([sample(i, i + 1), sample(i + 1000, 2)]);
      total += countOf(b);
      assert.deepEqual(s.enqueue(b), [i + 1]);
    }
    await within(15_000, s.waitIdle(), "all acked");
    await s.shutdown({ flushTimeoutMs: 1000 });
    await killChild(child);
    const st = s.stats;
    assert.equal(st.enqueued, 200);
    assert.equal(st.acked, 200);
    assert.equal(st.sent, 200);
    assert.equal(st.bufferBytes, 0);
    assert.equal(st.bufferBatches, 0);
    assert.equal(st.droppedBatches, 0);
    const mine = assertExactlyOnce(DurableIngestServer.readLog(log), s.agentId, range(1, 200));
    assert.equal(
      mine.reduce((sum, r) => sum + r.count, 0),
      total,
    );
    assert.ok(mine.every((r) => r.node === "node-a"));
    assert.throws(
      () => s.enqueue(body([])),
      (e) => isStellaError(e, "SHIPPER_CLOSED"),
    );
  });

  test("server SIGKILLed mid-stream and restarted on the same port: every seq exactly once", async () => {
    const log = tmpFile("kill.log");
    // Acks delayed so batches are in flight (written, unacked) when the server dies.
    let server = await startChild(["--port", "0", "--log", log, "--ack-delay-ms", "40"]);
    const port = server.port;
    const s = shipper(port);
    s.start();
    let total = 0;
    const t0 = Date.now();
    let killed = false;
    let restarted: Promise<void> | undefined;
    while (Date.now() - t0 < 3000) {
      const i = s.stats.enqueued;
      const b = body([sample(i, (i % 5) + 1), sample(i + 7, 1)]);
      total += countOf(b);
      s.enqueue(b);
      if (!killed && Date.now() - t0 > 700) {
        killed = true;
        assert.ok(s.stats.acked > 0, "some acks before the kill");
        await killChild(server.child);
        restarted = sleep(1300).then(async () => {
          server = await startChild(["--port", String(port), "--log", log]);
        });
      }
      await sleep(5);
    }
    await restarted;
    await within(20_000, s.waitIdle(), "all acked after restart");
    await s.shutdown({ flushTimeoutMs: 1000 });
    await killChild(server.child);
    const st = s.stats;
    assert.equal(st.droppedBatches, 0);
    assert.equal(st.acked, st.enqueued);
    assert.ok(st.reconnects >= 1, `reconnects ${st.reconnects}`);
    assert.ok(st.resent >= 1, `resent ${st.resent}`);
    assert.ok(st.streamErrors >= 1);
    const mine = assertExactlyOnce(DurableIngestServer.readLog(log), s.agentId, range(1, st.enqueued));
    assert.equal(
      mine.reduce((sum, r) => sum + r.count, 0),
      total,
    );
  });

  test("server gone: the buffer stays under maxBufferBytes, drops the oldest, acked + dropped = enqueued", async () => {
    const port = await freePort();
    const maxBufferBytes = 20_000;
    const s = shipper(port, { maxBufferBytes, maxMessageBytes: 4096 });
    s.start();
    let total = 0;
    for (let i = 0; i < 100; i++) {
      const b = body([sample(i, 3, 4), sample(i + 500, 1, 4)]);
      total += countOf(b);
      s.enqueue(b);
      assert.ok(s.stats.bufferBytes <= maxBufferBytes, `bufferBytes ${s.stats.bufferBytes}`);
      if (i % 10 === 0) await sleep(20);
    }
    const dropped = s.stats;
    assert.ok(dropped.droppedBatches > 0);
    assert.equal(dropped.acked, 0);
    assert.ok(dropped.streamErrors >= 1);
    assert.equal(dropped.enqueued, dropped.droppedBatches + dropped.bufferBatches);
    // The oldest went: what is left is the newest run of seqs.
    const log = tmpFile("gone.log");
    const { child } = await startChild(["--port", String(port), "--log", log]);
    await within(15_000, s.waitIdle(), "buffer drained");
    await s.shutdown();
    await killChild(child);
    const st = s.stats;
    assert.equal(st.acked + st.droppedBatches, st.enqueued);
    const mine = assertExactlyOnce(
      DurableIngestServer.readLog(log),
      s.agentId,
      range(st.droppedBatches + 1, st.enqueued),
    );
    assert.equal(mine.reduce((sum, r) => sum + r.count, 0) + st.droppedSamples, total);
  });

  test("splitting: a large body becomes several batches under maxMessageBytes, none lost; oversize sample dropped", async () => {
    const maxMessageBytes = 4096;
    const log = tmpFile("split.log");
    // The server's receive limit equals ours: any message over it would fail the stream.
    const server = new DurableIngestServer({ port: 0, logFile: log, maxReceiveBytes: maxMessageBytes });
    const port = await server.start();
    const s = shipper(port, { maxMessageBytes });
    s.start();
    const samples = Array.from({ length: 400 }, (_, i) => sample(i, i + 1));
    const giant = sample(9999, 77, 200); // 200 frames: alone far above 4 KiB
    const binaries = [binary(1), binary(2), binary(3)];
    const b = body([...samples.slice(0, 200), giant, ...samples.slice(200)], binaries);
    b.droppedSamples = 5;
    assert.ok(encodedSize({ ...b, node: "node-a", agentId: s.agentId, seq: 1 }) > maxMessageBytes);

    const pieces = splitBody("node-a", s.agentId, b, maxMessageBytes);
    assert.ok(pieces.pieces.length > 1);
    for (const [i, p] of pieces.pieces.entries()) {
      const size = encodedSize({
        node: "node-a",
        agentId: s.agentId,
        seq: Number.MAX_SAFE_INTEGER,
        window: b.window,
        samples: p.samples,
        binaries: p.binaries,
        hz: b.hz,
        droppedSamples: p.droppedSamples,
      });
      assert.ok(size <= maxMessageBytes, `piece ${i}: ${size} bytes`);
    }

    const seqs = s.enqueue(b);
    assert.equal(seqs.length, pieces.pieces.length);
    assert.deepEqual(seqs, range(1, seqs.length));
    await within(10_000, s.waitIdle(), "all pieces acked");
    await s.shutdown();
    await server.stop();
    const st = s.stats;
    assert.equal(st.oversizeSamples, 1);
    assert.equal(st.droppedSamples, 77);
    assert.equal(st.streamErrors, 0);
    assert.equal(st.acked, seqs.length);
    const mine = assertExactlyOnce(DurableIngestServer.readLog(log), s.agentId, seqs);
    assert.equal(
      mine.reduce((sum, r) => sum + r.samples, 0),
      400,
    );
    assert.equal(
      mine.reduce((sum, r) => sum + r.count, 0),
      countOf(body(samples)),
    );
    const first = mine.find((r) => r.seq === 1)!;
    assert.equal(first.binaries, 3, "binaries travel with the first piece");
    assert.equal(first.droppedSamples, 5 + 77, "the oversize sample is reported as dropped");
    assert.ok(mine.filter((r) => r.seq !== 1).every((r) => r.binaries === 0 && r.droppedSamples === 0));
  });

  describe("TLS", () => {
    const dir = join(tmp, "pki");
    const certs = (): void => {
      makeTestPki(dir);
    };

    test("TLS verifies the server; mTLS rejects a client without a certificate and accepts one with it", async () => {
      certs();
      const ca = join(dir, "ca.crt");
      {
        const log = tmpFile("tls.log");
        const server = new DurableIngestServer({ port: 0, logFile: log, tlsDir: dir });
        const port = await server.start();
        const s = shipper(port, { tls: { caFile: ca, serverNameOverride: "localhost" } });
        s.start();
        s.enqueue(body([sample(1, 5)]));
        await within(10_000, s.waitIdle(), "acked over TLS");
        await s.shutdown();
        await server.stop();
        assert.equal(s.stats.acked, 1);
        assertExactlyOnce(DurableIngestServer.readLog(log), s.agentId, [1]);
      }
      {
        const log = tmpFile("mtls.log");
        const server = new DurableIngestServer({
          port: 0,
          logFile: log,
          tlsDir: dir,
          requireClientCert: true,
        });
        const port = await server.start();
        const anonymous = shipper(port, { tls: { caFile: ca, serverNameOverride: "localhost" } });
        anonymous.start();
        anonymous.enqueue(body([sample(1, 5)]));
        await waitFor(() => anonymous.stats.streamErrors >= 2, 10_000, "rejected streams");
        assert.equal(anonymous.stats.acked, 0);
        assert.equal(anonymous.stats.connected, false);
        await anonymous.shutdown({ flushTimeoutMs: 0 });
        assert.equal(anonymous.stats.bufferBatches, 1, "kept until acked");

        const authed = shipper(port, {
          tls: {
            caFile: ca,
            certFile: join(dir, "client.crt"),
            keyFile: join(dir, "client.key"),
            serverNameOverride: "localhost",
          },
        });
        authed.start();
        authed.enqueue(body([sample(1, 5)]));
        await within(10_000, authed.waitIdle(), "acked over mTLS");
        await authed.shutdown();
        await server.stop();
        assert.equal(authed.stats.acked, 1);
        assert.equal(authed.stats.streamErrors, 0);
        const records = DurableIngestServer.readLog(log);
        assertExactlyOnce(records, authed.agentId, [1]);
        assert.equal(records.filter((r) => r.agentId === anonymous.agentId).length, 0);
      }
    });

    test("a missing CA file fails start() with SHIPPER_TLS", () => {
      const s = shipper(1, { tls: { caFile: join(tmp, "nope.crt") } });
      assert.throws(
        () => {
          s.start();
        },
        (e) => isStellaError(e, "SHIPPER_TLS"),
      );
    });
  });

  test("a batch the operator rejects (Ack.rejected) is dropped, counted and never resent", async () => {
    const seen: number[] = [];
    const server = new grpc.Server();
    server.addService(ingestService, {
      StreamStacks(call: grpc.ServerDuplexStream<StackBatch__Output, Ack>) {
        call.on("data", (b: StackBatch__Output) => {
          seen.push(b.seq);
          call.write({ seq: b.seq, rejected: b.seq === 2 ? "samples[0].frames: 300 frames, limit 256" : "" });
        });
        call.on("end", () => {
          call.end();
        });
      },
    } satisfies IngestHandlers);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
    const { logger, lines } = captureLogger();
    const s = shipper(port, { logger });
    s.start();
    for (let i = 0; i < 3; i++) s.enqueue(body([sample(i, 1)]));
    await within(5000, s.waitIdle(), "idle");
    await s.shutdown({ flushTimeoutMs: 1000 });
    server.forceShutdown();
    assert.deepEqual(seen, [1, 2, 3], "each batch sent once: the rejected one is not resent");
    assert.equal(s.stats.acked, 2);
    assert.equal(s.stats.rejected, 1);
    assert.equal(
      s.stats.enqueued,
      s.stats.acked + s.stats.rejected + s.stats.droppedBatches + s.stats.bufferBatches,
    );
    assert.ok(
      lines.some(
        (l) =>
          l.level === "warn" && /rejected/.test(l.msg ?? "") && JSON.stringify(l.obj).includes("limit 256"),
      ),
    );
  });

  test("unknown acks are ignored and counted; error statuses back off and retry", async () => {
    const log = tmpFile("errors.log");
    const server = new DurableIngestServer({
      port: 0,
      logFile: log,
      unknownAck: true,
      failStreams: 3,
      failCode: grpc.status.RESOURCE_EXHAUSTED,
    });
    const port = await server.start();
    const delays: number[] = [];
    const s = shipper(port, {
      backoff: { initialMs: 20, maxMs: 1000, multiplier: 2, jitter: 0 },
      delayFn: (ms, signal) => {
        delays.push(ms);
        return sleep(ms, undefined, { signal });
      },
    });
    s.start();
    for (let i = 0; i < 10; i++) s.enqueue(body([sample(i, 1)]));
    await within(10_000, s.waitIdle(), "acked after failures");
    await s.shutdown();
    await server.stop();
    const st = s.stats;
    assert.equal(st.acked, 10);
    assert.equal(st.streamErrors, 3);
    assert.equal(st.reconnects, 3);
    assert.equal(st.unknownAcks, 1);
    assert.deepEqual(delays, [20, 40, 80], "exponential backoff between failed streams");
    assert.equal(server.stats.failedStreams, 3);
    assertExactlyOnce(DurableIngestServer.readLog(log), s.agentId, range(1, 10));
    assert.ok(!DurableIngestServer.readLog(log).some((r) => r.seq === UNKNOWN_ACK_SEQ));
  });

  test("a message over the server's receive limit: clear error, counted, backoff (no hot loop)", async () => {
    const server = new DurableIngestServer({ port: 0, logFile: tmpFile("limit.log"), maxReceiveBytes: 2000 });
    const port = await server.start();
    const { logger, lines } = captureLogger();
    const delays: number[] = [];
    const s = shipper(port, {
      maxMessageBytes: 16_384,
      backoff: { initialMs: 50, maxMs: 400, multiplier: 2, jitter: 0 },
      logger,
      delayFn: (ms, signal) => {
        delays.push(ms);
        return sleep(ms, undefined, { signal });
      },
    });
    s.start();
    s.enqueue(body(Array.from({ length: 60 }, (_, i) => sample(i, 1))));
    await sleep(1500);
    const st = s.stats;
    await s.shutdown({ flushTimeoutMs: 0 });
    await server.stop();
    assert.equal(st.acked, 0);
    assert.ok(st.rejectedTooLarge >= 2, `rejectedTooLarge ${st.rejectedTooLarge}`);
    // 1.5 s with delays 50, 100, 200, 400, 400, … allows at most ~7 attempts.
    assert.ok(st.streamErrors <= 8, `streamErrors ${st.streamErrors}: hot loop?`);
    assert.deepEqual(delays.slice(0, 4), [50, 100, 200, 400]);
    const err = lines.find((l) => l.level === "error" && /max receive message length/.test(l.msg ?? ""));
    assert.ok(err, "an error log naming the limit");
    assert.equal((err.obj as { grpcCode?: string }).grpcCode, "RESOURCE_EXHAUSTED");
  });

  test("shutdown while reconnecting ends promptly; options are validated naming the field", async () => {
    const port = await freePort();
    const s = shipper(port, { backoff: { initialMs: 10_000, maxMs: 10_000 } });
    s.start();
    s.enqueue(body([sample(1, 1)]));
    await waitFor(() => s.stats.streamErrors >= 1, 5000, "first failure");
    const t0 = Date.now();
    await s.shutdown({ flushTimeoutMs: 100 });
    assert.ok(Date.now() - t0 < 2000, "did not wait out the 10 s backoff");
    await assert.rejects(s.waitIdle(), (e) => isStellaError(e, "SHIPPER_CLOSED"));

    const ac = new AbortController();
    const aborted = shipper(port, { signal: ac.signal });
    aborted.start();
    ac.abort();
    await aborted.shutdown();
    assert.throws(
      () => aborted.enqueue(body([])),
      (e) => isStellaError(e, "SHIPPER_CLOSED"),
    );

    assert.throws(() => shipper(port, { target: "nope" }), /target/);
    assert.throws(() => shipper(port, { maxMessageBytes: 10 }), /maxMessageBytes/);
    assert.throws(
      () => shipper(port, { maxBufferBytes: 4096, maxMessageBytes: 8192 }),
      (e) => isStellaError(e, "SHIPPER_CONFIG") && /maxMessageBytes/.test(e.message),
    );
    assert.throws(() => shipper(port, { tls: { caFile: "ca.crt", certFile: "c.crt" } }), /tls.certFile/);
    assert.match(shipper(port).agentId, /^node-a\/[0-9a-f]{12}$/);
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}
