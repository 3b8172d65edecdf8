// The operator SIGKILLed mid-stream and restarted on the same port and WAL directory: no acknowledged batch is
// lost, none is folded twice, and the counts folded after the restart's replay add up to what was enqueued.
// The IngestServer runs in a child process (testing/ingest-process.ts); the client is the agent's Shipper.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { Ack__Output } from "../../proto/evidence.ts";
import { Shipper } from "../../agent/ship/shipper.ts";
import { WriteAheadLog } from "./wal.ts";
import type { FoldRecord } from "./testing/ingest-process.ts";
import { body, sample } from "../../proto/testing/batches.ts";

const SCRIPT = new URL("./testing/ingest-process.ts", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "stella-ingest-crash-"));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});

async function startChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      reject(new Error(`ingest child did not start: ${stderr}`));
    }, 15_000);
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`ingest child exited with ${code}: ${stderr}`));
    });
  });
  return { child, port };
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
}

function readFolds(file: string): FoldRecord[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as FoldRecord);
}

test("SIGKILL mid-stream, restart on the same WAL: every acked seq is stored exactly once", async () => {
  const walDir = join(tmp, "wal");
  const folds1 = join(tmp, "folds-1.jsonl");
  const folds2 = join(tmp, "folds-2.jsonl");
  const first = await startChild(["--wal", walDir, "--folds", folds1]);
  const port = first.port;

  // Every ack the shipper receives, seen by a client interceptor.
  const acked = new Set<number>();
  const interceptor: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        next(metadata, {
          onReceiveMessage(message: Ack__Output, nextMsg: (m: Ack__Output) => void) {
            if (message.rejected === "") acked.add(message.seq);
            nextMsg(message);
          },
        });
      },
    });
  const shipper = new Shipper({
    target: `127.0.0.1:${port}`,
    node: "node-a",
    tls: { insecure: true },
    backoff: { initialMs: 20, maxMs: 200, multiplier: 2, jitter: 0.2 },
    channelOptions: { interceptors: [interceptor] },
    closeGraceMs: 200,
  });
  shipper.start();

  const TOTAL = 400;
  let enqueuedCount = 0;
  let ackedBeforeKill = new Set<number>();
  let restart: Promise<{ child: ChildProcess; port: number }> | undefined;
  for (let i = 0; i < TOTAL; i++) {
    const samples = [sample(i, 1 + (i % 5), 8), sample(i + 1, 1 + ((i * 7) % 5), 8)];
    for (const s of samples) enqueuedCount += Number(s.count);
    shipper.enqueue(body(samples));
    if (i % 4 === 3) await sleep(2);
    if (restart === undefined && acked.size >= 100) {
      await stopChild(first.child, "SIGKILL");
      ackedBeforeKill = new Set(acked);
      restart = startChild(["--wal", walDir, "--folds", folds2, "--port", String(port)]);
    }
  }
  assert.ok(restart !== undefined, "the operator was killed mid-stream");
  assert.ok(ackedBeforeKill.size < TOTAL, "killed before everything was acked");
  const second = await restart;
  const ac = new AbortController();
  await Promise.race([
    shipper.waitIdle(),
    sleep(20_000, undefined, { signal: ac.signal }).then(() => {
      throw new Error(`not idle after 20 s: ${JSON.stringify(shipper.stats)}`);
    }),
  ]).finally(() => {
    ac.abort();
  });
  assert.equal(shipper.stats.acked, TOTAL);
  await shipper.shutdown();
  await stopChild(second.child, "SIGTERM");

  // None folded twice, in either life; after the restart's replay the counts add up.
  for (const file of [folds1, folds2]) {
    const folds = readFolds(file);
    assert.equal(new Set(folds.map((r) => r.seq)).size, folds.length, `${file}: a batch folded twice`);
  }
  const after = readFolds(folds2);
  assert.equal(after.length, TOTAL);
  assert.equal(
    after.reduce((a, r) => a + r.count, 0),
    enqueuedCount,
  );

  // Every acked seq (before the kill too) is in the WAL exactly once.
  const wal = new WriteAheadLog({ dir: walDir });
  const inWal = new Map<number, number>();
  await wal.replay((b) => inWal.set(b.seq, (inWal.get(b.seq) ?? 0) + 1));
  await wal.close();
  for (const seq of ackedBeforeKill) assert.equal(inWal.get(seq), 1, `acked seq ${seq} in the WAL once`);
  for (let seq = 1; seq <= TOTAL; seq++) assert.equal(inWal.get(seq), 1, `seq ${seq} in the WAL once`);
  assert.equal(inWal.size, TOTAL);
});
