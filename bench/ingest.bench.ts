// Ingest throughput: the operator's IngestServer (this process, one event loop) fed over real gRPC on loopback
// by a client in a child process sending pre-encoded batches, with the agent's realistic batch shapes: 2,000 samples per batch,
// 20 frames each, counts 1–5, 50 binaries. WAL fsync on (the real setting), and off as a reference.
// Goal: ≥ 100,000 samples/s (Sample entries, i.e. distinct stacks; counts are ~3× that).
// Run: node bench/ingest.bench.ts [--batches N]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { encodedSize, STREAM_STACKS_PATH } from "../proto/evidence.ts";
import type { StackBatch__Output } from "../proto/evidence.ts";
import { IngestServer } from "../operator/ingest/server.ts";
import { encodeBatch } from "../operator/ingest/wal.ts";
import { RecordingIndex } from "../operator/ingest/testing/ingest-process.ts";
import { binary, body, sample } from "../proto/testing/batches.ts";

const GOAL = 100_000;
const SAMPLES = 2000;
const FRAMES = 20;
const BINARIES = 50;

const { values } = parseArgs({
  options: {
    client: { type: "string" },
    batches: { type: "string", default: "100" },
  },
});
const BATCHES = Number(values.batches);

function makeBody(b: number) {
  const samples = Array.from({ length: SAMPLES }, (_, i) =>
    sample(b * SAMPLES + i, 1 + ((b + i) % 5), FRAMES),
  );
  return body(
    samples,
    Array.from({ length: BINARIES }, (_, i) => binary(i)),
  );
}

/**
 * The client: every batch encoded up front (as the agent's shipper holds them), then written on one stream with
 * gRPC flow control, so the measurement is the operator's, not the client's encoding.
 */
async function client(port: number): Promise<void> {
  const payloads = Array.from({ length: BATCHES }, (_, b) =>
    encodeBatch({ node: "bench-node", agentId: "bench-node/0", seq: b + 1, ...makeBody(b) }),
  );
  const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = c.makeBidiStreamRequest(
    STREAM_STACKS_PATH,
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  let acks = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", () => {
      if (++acks === BATCHES) resolve();
    });
    call.on("error", reject);
  });
  for (const p of payloads) {
    if (!call.write(p)) await new Promise((resolve) => call.once("drain", resolve));
  }
  await done;
  call.end();
  c.close();
  process.stdout.write(JSON.stringify({ acked: acks }) + "\n");
}

/** Counts what is folded (the real index's cost is not part of this measurement). */
class CountingIndex extends RecordingIndex {
  samples = 0;
  counts = 0;
  last = 0;
  override fold(batch: StackBatch__Output): void {
    this.samples += batch.samples.length;
    for (const s of batch.samples) this.counts += s.count;
    this.last = performance.now();
  }
}

async function run(fsync: boolean): Promise<{ samplesPerS: number; countsPerS: number; cpu: number }> {
  const dir = mkdtempSync(join(tmpdir(), "stella-ingest-bench-"));
  try {
    const index = new CountingIndex();
    const server = new IngestServer({
      address: "127.0.0.1:0",
      tls: { insecure: true },
      walDir: dir,
      walFsync: fsync,
      index,
    });
    const port = await server.start();
    let first = 0;
    let cpu0 = process.cpuUsage();
    const child = spawn(
      process.execPath,
      [new URL(import.meta.url).pathname, "--client", String(port), "--batches", String(BATCHES)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    // The clock starts at the first batch received, so the client's batch building is not counted.
    const started = setInterval(() => {
      if (first === 0 && server.stats.streams > 0) {
        first = performance.now();
        cpu0 = process.cpuUsage();
      }
    }, 1);
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => child.on("exit", resolve));
    clearInterval(started);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (index.last - first) / 1000;
    const stats = server.stats;
    await server.shutdown();
    const shipped = JSON.parse(out) as { acked: number };
    if (shipped.acked !== BATCHES || index.samples !== BATCHES * SAMPLES) {
      throw new Error(`incomplete run: acked ${shipped.acked}, folded samples ${index.samples}`);
    }
    console.log(
      `fsync ${fsync ? "on " : "off"}: ${BATCHES} batches, ${index.samples} samples in ${seconds.toFixed(2)} s: ` +
        `${Math.round(index.samples / seconds)} samples/s, ${Math.round(index.counts / seconds)} counts/s; ` +
        `WAL ${(stats.wal.bytes / 1e6).toFixed(0)} MB in ${stats.wal.commits} group commits; ` +
        `server CPU ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)} % of one core`,
    );
    return {
      samplesPerS: index.samples / seconds,
      countsPerS: index.counts / seconds,
      cpu: (cpu.user + cpu.system) / 1e6 / seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.client !== undefined) {
  await client(Number(values.client));
} else {
  const size = encodedSize({ node: "bench-node", agentId: "bench-node/0", seq: 1, ...makeBody(0) });
  console.log(
    `ingest bench: batches of ${SAMPLES} samples × ${FRAMES} frames, ${BINARIES} binaries, ` +
      `${(size / 1e6).toFixed(2)} MB encoded`,
  );
  const on = await run(true);
  const off = await run(false);
  console.log(
    `fsync on: ${Math.round(on.samplesPerS)} samples/s = ${(on.samplesPerS / GOAL).toFixed(2)}× the goal of ${GOAL}/s` +
      ` (fsync off reference: ${(off.samplesPerS / GOAL).toFixed(2)}×)`,
  );
}
