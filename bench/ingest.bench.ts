// Ingest throughput: the operator's IngestServer (this process, one event loop) fed over real gRPC on loopback
// by a client in a child process sending pre-encoded batches with the agents' batch shapes (bench/stack-model.ts:
// 2,000 sample records per batch, 20 frames each, 10 agents; "steady" stacks recur, "churn" stacks are all new),
// folded into the real hot-symbol index (with the operator's image-binaries observer) before each ack, the WAL
// fsync'd (the real setting). References in the same run: the same batches with fsync off, and with an index
// that only counts (transport + decode + validate + WAL alone).
// Goal: ≥ 100,000 samples/s on one core, samples = sample records (distinct stacks per batch; Σ count is ~2×).
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
import { tabulate } from "../proto/frame-table.ts";
import { RecordingIndex } from "../operator/ingest/testing/ingest-process.ts";
import { createHotSymbolIndex } from "../operator/index/hot-symbols.ts";
import { ImageBinaries, withFoldObservers } from "../operator/index/image-binaries.ts";
import type { HotSymbolIndex } from "../operator/index/types.ts";
import { makeBatch, SAMPLES_PER_BATCH, windowEnd, type Shape } from "./stack-model.ts";

const GOAL = 100_000;

const { values } = parseArgs({
  options: {
    client: { type: "string" },
    shape: { type: "string", default: "steady" },
    batches: { type: "string", default: "200" },
  },
});
const BATCHES = Number(values.batches);

/**
 * The client: every batch encoded up front (as the agent's shipper holds them), then written on one stream with
 * gRPC flow control, so the measurement is the operator's, not the client's encoding.
 */
async function client(port: number): Promise<void> {
  const shape = values.shape as Shape;
  const payloads = Array.from({ length: BATCHES }, (_, b) => {
    const batch = makeBatch(b, shape);
    // As the agent's shipper sends it: frames in the batch's frame table.
    const t = tabulate(batch.samples ?? []);
    return encodeBatch({ ...batch, samples: t.samples, frames: t.frames });
  });
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

/** Counts what is folded, and when the last fold ended; folds into `inner` when given. */
class CountingIndex extends RecordingIndex {
  samples = 0;
  counts = 0;
  last = 0;
  readonly #inner: HotSymbolIndex | undefined;
  constructor(inner?: HotSymbolIndex) {
    super();
    this.#inner = inner;
  }
  override fold(batch: StackBatch__Output): void {
    this.#inner?.fold(batch);
    this.samples += batch.samples.length;
    for (const s of batch.samples) this.counts += s.count;
    this.last = performance.now();
  }
}

interface Run {
  shape: Shape;
  fsync: boolean;
  realIndex: boolean;
}

async function run(
  r: Run,
): Promise<{ samplesPerCpuS: number; samplesPerS: number; countsPerS: number; cpu: number }> {
  const dir = mkdtempSync(join(tmpdir(), "stella-ingest-bench-"));
  try {
    const lastEnd = windowEnd(BATCHES - 1);
    const index = new CountingIndex(
      r.realIndex
        ? withFoldObservers(createHotSymbolIndex({ now: () => lastEnd }), [new ImageBinaries()])
        : undefined,
    );
    const server = new IngestServer({
      address: "127.0.0.1:0",
      tls: { insecure: true },
      walDir: dir,
      walFsync: r.fsync,
      index,
    });
    const port = await server.start();
    let first = 0;
    let cpu0 = process.cpuUsage();
    const child = spawn(
      process.execPath,
      [
        new URL(import.meta.url).pathname,
        ...["--client", String(port), "--batches", String(BATCHES), "--shape", r.shape],
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
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
    if (shipped.acked !== BATCHES || index.samples !== BATCHES * SAMPLES_PER_BATCH) {
      throw new Error(`incomplete run: acked ${shipped.acked}, folded samples ${index.samples}`);
    }
    const label = `${r.shape.padEnd(6)} fsync ${r.fsync ? "on " : "off"} ${r.realIndex ? "index   " : "counting"}`;
    console.log(
      `${label}: ${index.samples} samples in ${seconds.toFixed(2)} s: ` +
        `${Math.round(index.samples / seconds)} samples/s (${Math.round(index.counts / seconds)} Σcount/s), ` +
        `${Math.round(index.samples / ((cpu.user + cpu.system) / 1e6))} samples per CPU second; ` +
        `WAL ${(stats.wal.bytes / 1e6).toFixed(0)} MB in ${stats.wal.commits} group commits; ` +
        `server CPU ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)} % of one core`,
    );
    return {
      samplesPerCpuS: index.samples / ((cpu.user + cpu.system) / 1e6),
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
  const size = encodedSize(makeBatch(0, "steady"));
  console.log(
    `ingest bench: ${BATCHES} batches of ${SAMPLES_PER_BATCH} samples × 20 frames from 10 agents, ` +
      `${(size / 1e6).toFixed(2)} MB encoded each`,
  );
  const results: string[] = [];
  for (const shape of ["steady", "churn"] as const) {
    const real = await run({ shape, fsync: true, realIndex: true });
    const noFsync = await run({ shape, fsync: false, realIndex: true });
    const counting = await run({ shape, fsync: true, realIndex: false });
    results.push(
      `${shape}: ${Math.round(real.samplesPerS)} samples/s = ${(real.samplesPerS / GOAL).toFixed(2)}× the goal of ` +
        `${GOAL}/s (references: fsync off ${(noFsync.samplesPerS / GOAL).toFixed(2)}×, ` +
        `counting index ${(counting.samplesPerS / GOAL).toFixed(2)}×)`,
    );
  }
  for (const line of results) console.log(line);
}
