// Agent overhead on a CPU-bound workload, system-wide, against no sampling and against
// `perf record -F 49 -g -a`, all in the same run (root; bpftrace and perf installed).
//
//   node bench/agent-overhead.bench.ts [--reps 3] [--seconds 5]
//
// The workload runs one busy thread per CPU for a fixed amount of work with frame pointers and a
// 6-deep call chain; its wall time is the measure (the machine is saturated, so every CPU cycle the
// sampler takes is a cycle the workload waits for). Modes are interleaved rep by rep so drift
// (thermal, noisy neighbours) spreads over all of them; medians are reported. The agent is the real
// `stella agent record --all` (bpftrace + the TypeScript pipeline: symbolisation, collapse);
// bpftrace's start-up (LLVM compile, ~1-2 s of CPU) happens before the workload starts.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { processCpuSeconds } from "../agent/metrics.ts";
import { FRAME_POINTER_FLAGS } from "../agent/testing/workload.ts";
import { median } from "./timing.ts";

const CLI = fileURLToPath(new URL("../cli/stella.ts", import.meta.url));
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const REPS = arg("--reps", 3);
const TARGET_SECONDS = arg("--seconds", 5);
const CPUS = availableParallelism();

const WORKLOAD = String.raw`
#include <pthread.h>
#include <stdlib.h>
volatile unsigned long sink;
__attribute__((noinline)) unsigned long f5(unsigned long x) { for (int i = 0; i < 1000; i++) x = x * 6364136223846793005UL + 1442695040888963407UL; return x; }
__attribute__((noinline)) unsigned long f4(unsigned long x) { return f5(x) ^ 1; }
__attribute__((noinline)) unsigned long f3(unsigned long x) { return f4(x) ^ 2; }
__attribute__((noinline)) unsigned long f2(unsigned long x) { return f3(x) ^ 3; }
__attribute__((noinline)) unsigned long f1(unsigned long x) { return f2(x) ^ 4; }
static long iters;
static void *worker(void *arg) { unsigned long x = (unsigned long)arg; for (long i = 0; i < iters; i++) x = f1(x); sink = x; return 0; }
int main(int argc, char **argv) {
  int n = atoi(argv[1]); iters = atol(argv[2]);
  pthread_t t[256];
  for (int i = 0; i < n; i++) pthread_create(&t[i], 0, worker, (void *)(long)i);
  for (int i = 0; i < n; i++) pthread_join(t[i], 0);
  return 0;
}
`;

function cpuSeconds(pid: number): number {
  return processCpuSeconds(pid) ?? 0;
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  const kids = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
    .stdout.split("\n")
    .filter(Boolean)
    .map(Number);
  for (const k of kids) out.push(k, ...descendants(k));
  return out;
}

function pidOf(c: ChildProcess): number {
  if (c.pid === undefined) throw new Error("child did not start");
  return c.pid;
}

function runWorkload(exe: string, iters: number): number {
  const t0 = process.hrtime.bigint();
  execFileSync(exe, [String(CPUS), String(iters)]);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface Sampler {
  child: ChildProcess;
  /** CPU seconds of the sampler's process tree so far. */
  cpu(): number;
  stop(): Promise<void>;
}

async function startAgent(hz: number): Promise<Sampler> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "agent",
      "record",
      "--all",
      "--hz",
      String(hz),
      "--duration",
      "3600",
      "--interval-ms",
      "1000",
      "--out",
      "/dev/null",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  child.stderr?.on("data", (b: Buffer) => (err += b.toString()));
  // Wait until bpftrace runs and has compiled and attached (its CPU stops climbing).
  for (let i = 0; i < 100; i++) {
    await sleep(200);
    if (child.exitCode !== null) throw new Error(`agent exited: ${err}`);
    if (descendants(pidOf(child)).length > 0 && i > 10) break;
  }
  await sleep(1500);
  const tree = (): number[] => [pidOf(child), ...descendants(pidOf(child))];
  const base = tree().reduce((n, p) => n + cpuSeconds(p), 0);
  return {
    child,
    cpu: () => tree().reduce((n, p) => n + cpuSeconds(p), 0) - base,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("close", r));
    },
  };
}

async function startPerf(dir: string): Promise<Sampler> {
  const child = spawn("perf", ["record", "-F", "49", "-g", "-a", "-q", "-o", join(dir, "perf.data")], {
    stdio: "ignore",
  });
  await sleep(2000);
  const base = cpuSeconds(pidOf(child));
  return {
    child,
    cpu: () => cpuSeconds(pidOf(child)) - base,
    stop: async () => {
      child.kill("SIGINT");
      await new Promise((r) => child.once("close", r));
    },
  };
}

async function main(): Promise<void> {
  if (process.geteuid?.() !== 0) throw new Error("needs root (bpftrace, perf -a)");
  const dir = mkdtempSync(join(tmpdir(), "stella-overhead-"));
  try {
    writeFileSync(join(dir, "w.c"), WORKLOAD);
    const exe = join(dir, "w");
    execFileSync("gcc", [...FRAME_POINTER_FLAGS, "-pthread", "-o", exe, join(dir, "w.c")]);
    // Calibrate iterations to about TARGET_SECONDS of wall time.
    const probe = 50_000;
    runWorkload(exe, probe); // warm-up: page cache, CPU frequency
    const t = runWorkload(exe, probe);
    const iters = Math.max(probe, Math.round((probe * TARGET_SECONDS) / t));
    const perfOk = spawnSync("perf", ["--version"]).status === 0;
    const modes = ["none", "agent-49Hz", "agent-99Hz", ...(perfOk ? ["perf-49Hz"] : [])];
    const times = new Map<string, number[]>(modes.map((m) => [m, []]));
    const cpu = new Map<string, number[]>(modes.map((m) => [m, []]));
    console.log(
      `workload: ${CPUS} threads x ${iters} iterations (~${TARGET_SECONDS} s), ${REPS} reps, modes interleaved`,
    );
    for (let rep = 0; rep < REPS; rep++) {
      for (const mode of modes) {
        const s =
          mode === "none"
            ? undefined
            : mode === "perf-49Hz"
              ? await startPerf(dir)
              : await startAgent(mode === "agent-49Hz" ? 49 : 99);
        const secs = runWorkload(exe, iters);
        const used = s?.cpu() ?? 0;
        await s?.stop();
        times.get(mode)?.push(secs);
        cpu.get(mode)?.push(used);
        console.log(
          `  rep ${rep + 1} ${mode.padEnd(11)} ${secs.toFixed(3)} s   sampler CPU ${used.toFixed(2)} s`,
        );
      }
    }
    const base = median(times.get("none") ?? []);
    console.log("\nmode         median wall   overhead vs none   sampler CPU (% of one CPU)");
    for (const m of modes) {
      const w = median(times.get(m) ?? []);
      const c = median(cpu.get(m) ?? []);
      console.log(
        `${m.padEnd(12)} ${w.toFixed(3).padStart(8)} s   ${((w / base - 1) * 100).toFixed(2).padStart(7)} %          ${((c / w) * 100).toFixed(2)} %`,
      );
    }
    console.log(
      `\ngoal: agent at 49 Hz <= 1 % overhead (ratio ${(median(times.get("agent-49Hz") ?? []) / base).toFixed(4)})`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
