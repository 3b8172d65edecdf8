// The sampler with fake children (restart, backoff, errors) and with REAL bpftrace (root) sampling a
// compiled C workload: addresses are checked against nm + /proc/PID/maps.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { isStellaError } from "../../core/errors.ts";
import type { StackSample } from "./bpftrace-output.ts";
import { Sampler, parseBpftraceVersion, type ProcessRunner, type RunnerChild } from "./sampler.ts";

// ---------------------------------------------------------------- fakes

class FakeChild extends EventEmitter implements RunnerChild {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  closed = false;
  readonly pid: number;
  constructor(pid: number) {
    super();
    this.pid = pid;
  }
  close(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.closed) return;
    this.closed = true;
    this.stdout.end();
    this.stderr.end();
    setImmediate(() => this.emit("close", code, signal));
  }
}

interface FakeScript {
  version?: string;
  /** What a sampling child does once spawned. */
  run: (child: FakeChild, n: number) => void;
}

function fakeRunner(
  script: FakeScript,
): ProcessRunner & { children: FakeChild[]; kills: [number, string][] } {
  const children: FakeChild[] = [];
  const kills: [number, string][] = [];
  let nextPid = 1000;
  return {
    children,
    kills,
    spawn(_cmd, args) {
      const child = new FakeChild(nextPid++);
      if (args[0] === "--version") {
        setImmediate(() => {
          child.stdout.write(`${script.version ?? "bpftrace v0.17.0"}\n`);
          child.close(0, null);
        });
      } else {
        children.push(child);
        const n = children.length;
        setImmediate(() => {
          script.run(child, n);
        });
      }
      return child;
    },
    killGroup(pgid, signal) {
      kills.push([pgid, signal]);
      children.find((c) => c.pid === pgid)?.close(null, signal);
    },
  };
}

const ATTACHED = `{"type": "attached_probes", "data": {"probes": 2}}\n`;

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await sleep(5);
  }
}

describe("Sampler (fake runner)", () => {
  it("parses versions", () => {
    assert.deepEqual(parseBpftraceVersion("bpftrace v0.17.0\n"), [0, 17, 0]);
    assert.deepEqual(parseBpftraceVersion("bpftrace v0.21.2-dirty"), [0, 21, 2]);
    assert.equal(parseBpftraceVersion("nope"), undefined);
  });

  it("emits batches and restarts a crashed child with exponential backoff", async () => {
    const runner = fakeRunner({
      run(child, n) {
        child.stdout.write(ATTACHED);
        if (n === 1) {
          child.stdout.write(
            `{"type": "map", "data": {"@stacks": {"42,w,\\n\\t10 0x10 ([unknown])\\n": 7}}}\n`,
          );
        }
        child.stderr.write("boom\n");
        setTimeout(() => {
          child.close(1, null);
        }, 2);
      },
    });
    const got: StackSample[][] = [];
    const s = new Sampler({
      runner,
      allowNonRoot: true,
      filter: { pid: 42 },
      backoff: { initialMs: 5, maxMs: 20 },
      onInterval: (b) => got.push(b),
    });
    await s.start();
    await until(() => s.stats.restarts >= 5, 5000);
    await s.shutdown();
    assert.deepEqual(got, [[{ pid: 42, comm: "w", frames: [0x10n], count: 7 }]]);
    assert.ok(s.stats.crashes >= 5);
    assert.deepEqual(s.stats.backoffDelaysMs.slice(0, 5), [5, 10, 20, 20, 20]);
    // No child left running; the last one was killed as a group.
    assert.ok(runner.children.every((c) => c.closed));
  });

  it("rejects an old bpftrace with BPFTRACE_TOO_OLD", async () => {
    const runner = fakeRunner({ version: "bpftrace v0.15.1", run: () => {} });
    const s = new Sampler({ runner, allowNonRoot: true, onInterval: () => {} });
    await assert.rejects(s.start(), (e) => isStellaError(e, "BPFTRACE_TOO_OLD"));
    assert.equal(runner.children.length, 0);
  });

  it("reports EPERM as BPFTRACE_NOT_PERMITTED, without restarting", async () => {
    const runner = fakeRunner({
      run(child) {
        child.stderr.write("ERROR: failed to attach: Operation not permitted\n");
        child.close(1, null);
      },
    });
    const s = new Sampler({ runner, allowNonRoot: true, onInterval: () => {} });
    await assert.rejects(s.start(), (e) => isStellaError(e, "BPFTRACE_NOT_PERMITTED"));
    assert.equal(runner.children.length, 1);
    assert.equal(s.stats.restarts, 0);
  });

  it("a child that dies before attaching fails start() with its stderr", async () => {
    const runner = fakeRunner({
      run(child) {
        child.stderr.write("profile.bt:1: syntax error\n");
        child.close(1, null);
      },
    });
    const s = new Sampler({ runner, allowNonRoot: true, onInterval: () => {} });
    await assert.rejects(
      s.start(),
      (e) => isStellaError(e, "BPFTRACE_START_FAILED") && /syntax error/.test((e as Error).message),
    );
  });

  it("keeps only a bounded tail of stderr", async () => {
    const runner = fakeRunner({
      run(child) {
        child.stdout.write(ATTACHED);
        for (let i = 0; i < 100; i++) child.stderr.write(`${"e".repeat(1000)}\n`);
        child.stderr.write("LAST\n");
      },
    });
    const s = new Sampler({ runner, allowNonRoot: true, maxStderrBytes: 4096, onInterval: () => {} });
    await s.start();
    await sleep(20);
    assert.ok(s.stderr.length <= 4096);
    assert.ok(s.stderr.endsWith("LAST\n"));
    await s.shutdown();
    assert.deepEqual(runner.kills.slice(0, 1), [[1001, "SIGTERM"]]);
  });

  it("an AbortSignal shuts the sampler down", async () => {
    const runner = fakeRunner({
      run(child) {
        child.stdout.write(ATTACHED);
      },
    });
    const ac = new AbortController();
    const s = new Sampler({ runner, allowNonRoot: true, signal: ac.signal, onInterval: () => {} });
    await s.start();
    ac.abort();
    await until(() => runner.children.every((c) => c.closed), 2000);
  });

  it("a runner whose spawn throws fails start() with BPFTRACE_START_FAILED", async () => {
    const base = fakeRunner({ run: () => {} });
    const runner: ProcessRunner = {
      spawn(cmd, args, options) {
        if (args[0] !== "--version") throw new Error("EMFILE");
        return base.spawn(cmd, args, options);
      },
      killGroup: (pgid, signal) => {
        base.killGroup(pgid, signal);
      },
    };
    const s = new Sampler({ runner, allowNonRoot: true, onInterval: () => {} });
    await assert.rejects(s.start(), (e) => isStellaError(e, "BPFTRACE_START_FAILED"));
  });

  it("a missing binary is BPFTRACE_MISSING (real spawn)", async () => {
    const s = new Sampler({
      bpftracePath: "/nonexistent/stella/bpftrace",
      allowNonRoot: true,
      onInterval: () => {},
    });
    await assert.rejects(s.start(), (e) => isStellaError(e, "BPFTRACE_MISSING"));
  });
});

// ---------------------------------------------------------------- real bpftrace

const WORKLOAD_C = String.raw`
#include <unistd.h>
volatile unsigned long sink;
/* Not a leaf (usleep) and no sibling calls, so it keeps a frame: GCC 12 drops the frame pointer
   of leaf functions that need no stack even with -fno-omit-frame-pointer. */
__attribute__((noinline)) void stella_hot(void) {
  for (unsigned i = 0; i < 2000000; i++) sink = sink * 6364136223846793005UL + 1442695040888963407UL;
  usleep(300); /* leave a little CPU to the CI run */
}
__attribute__((noinline)) void stella_mid(void) { stella_hot(); sink++; }
int main(void) { for (;;) stella_mid(); }
`;

interface Range {
  start: bigint;
  end: bigint;
}

function pgrepBpftrace(): number[] {
  const r = spawnSync("pgrep", ["-x", "bpftrace"], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
}

function pgrepGroup(pgid: number): number[] {
  const r = spawnSync("pgrep", ["-g", String(pgid)], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map(Number);
}

describe("Sampler (real bpftrace, root)", () => {
  let dir = "";
  let exe = "";
  let work: ChildProcess | undefined;
  let pid = 0;
  const ranges = new Map<string, Range>();

  before(async () => {
    assert.equal(process.geteuid?.(), 0, "these tests need root (bpftrace)");
    dir = mkdtempSync(join(tmpdir(), "stella-sampler-"));
    exe = join(dir, "workload");
    writeFileSync(join(dir, "workload.c"), WORKLOAD_C);
    execFileSync("gcc", [
      "-O2",
      "-fno-omit-frame-pointer",
      "-fno-inline",
      "-fno-optimize-sibling-calls",
      "-fno-shrink-wrap",
      "-o",
      exe,
      join(dir, "workload.c"),
    ]);
    work = spawn(exe, [], { stdio: "ignore" });
    pid = work.pid ?? 0;
    assert.ok(pid > 0);
    await sleep(100);
    // Load base of the PIE: the lowest mapping of the file, minus its file offset (first PT_LOAD vaddr is 0).
    const maps = readFileSync(`/proc/${pid}/maps`, "utf8").split("\n");
    let base: bigint | undefined;
    for (const line of maps) {
      const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+ +(.*)$/.exec(line);
      if (!m || m[3] !== exe || m[1] === undefined || m[2] === undefined) continue;
      const b = BigInt(`0x${m[1]}`) - BigInt(`0x${m[2]}`);
      if (base === undefined || b < base) base = b;
    }
    assert.ok(base !== undefined, "workload mapping not found");
    for (const line of execFileSync("nm", ["-S", "--defined-only", exe], { encoding: "utf8" }).split("\n")) {
      const [value, size, , name] = line.split(" ");
      if (name === undefined || value === undefined || size === undefined) continue;
      if (["stella_hot", "stella_mid", "main"].includes(name)) {
        const start = base + BigInt(`0x${value}`);
        ranges.set(name, { start, end: start + BigInt(`0x${size}`) });
      }
    }
    assert.equal(ranges.size, 3, "nm did not list stella_hot, stella_mid and main");
  });

  after(() => {
    work?.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inside = (name: string, a: bigint): boolean => {
    const r = ranges.get(name);
    return r !== undefined && a >= r.start && a < r.end;
  };

  it("samples the workload by pid: leaf in stella_hot, callers stella_mid and main; shutdown leaves no bpftrace", async (t) => {
    const batches: StackSample[][] = [];
    const s = new Sampler({ hz: 99, intervalMs: 500, filter: { pid }, onInterval: (b) => batches.push(b) });
    await s.start();
    const child = s.childPid;
    assert.ok(child !== undefined);
    assert.ok(pgrepBpftrace().includes(child), "bpftrace child is running");
    await sleep(2500);
    await s.shutdown();
    assert.ok(!pgrepBpftrace().includes(child), "bpftrace child is gone after shutdown");
    assert.deepEqual(pgrepGroup(child), [], "nothing left in the child's process group");

    const samples = batches.flat();
    assert.ok(batches.length >= 3, `expected >= 3 interval batches, got ${batches.length}`);
    assert.ok(
      samples.every((x) => x.pid === pid),
      "only the filtered pid",
    );
    const total = samples.reduce((n, x) => n + x.count, 0);
    assert.ok(total >= 50, `expected >= 50 samples at 99 Hz over 2.5 s, got ${total}`);
    const hot = samples.filter((x) => x.frames[0] !== undefined && inside("stella_hot", x.frames[0]));
    const hotCount = hot.reduce((n, x) => n + x.count, 0);
    assert.ok(hotCount / total >= 0.8, `leaf in stella_hot in ${hotCount}/${total} samples`);
    const chained = hot.filter(
      (x) =>
        x.frames[1] !== undefined &&
        inside("stella_mid", x.frames[1]) &&
        x.frames.some((f) => inside("main", f)),
    );
    const chainedCount = chained.reduce((n, x) => n + x.count, 0);
    t.diagnostic(
      `samples ${total}, leaf in stella_hot ${hotCount}, hot->mid->main ${chainedCount}, batches ${batches.length}`,
    );
    assert.ok(chainedCount / hotCount >= 0.9, `hot -> mid -> main in ${chainedCount}/${hotCount} samples`);
    assert.equal(s.stats.parser.badLines, 0);
    assert.equal(s.stats.crashes, 0);
  });

  it("'all except the agent' mode sees the workload and never the agent", async () => {
    const batches: StackSample[][] = [];
    const s = new Sampler({
      hz: 49,
      intervalMs: 500,
      filter: { all: true, excludePid: process.pid },
      onInterval: (b) => batches.push(b),
    });
    await s.start();
    await sleep(1500);
    await s.shutdown();
    const samples = batches.flat();
    assert.ok(samples.some((x) => x.pid === pid));
    assert.ok(!samples.some((x) => x.pid === process.pid));
    assert.ok(samples.every((x) => x.frames.length > 0));
  });

  it("SIGTERM to the agent kills bpftrace and its group", async () => {
    const agent = join(dir, "agent.mjs");
    const samplerUrl = new URL("./sampler.ts", import.meta.url).href;
    writeFileSync(
      agent,
      `import { Sampler } from ${JSON.stringify(samplerUrl)};
const s = new Sampler({ hz: 49, intervalMs: 500, filter: { pid: ${pid} }, handleSignals: true, onInterval: () => {} });
await s.start();
process.stdout.write(String(s.childPid) + "\\n");
// No other handle: once the sampler's SIGTERM handler has shut bpftrace down, node exits by itself.
`,
    );
    const node = spawn(process.execPath, [agent], { stdio: ["ignore", "pipe", "inherit"] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      node.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("\n")) resolve(out.trim());
      });
      node.once("exit", () => {
        reject(new Error(`agent exited early: ${out}`));
      });
    });
    const child = Number(line);
    assert.ok(pgrepBpftrace().includes(child));
    const exited = new Promise((r) => node.once("exit", r));
    node.kill("SIGTERM");
    await exited;
    assert.ok(!pgrepBpftrace().includes(child), "bpftrace child is gone after SIGTERM to the agent");
    assert.deepEqual(pgrepGroup(child), []);
  });
});
