// `stella agent run` end to end: real bpftrace on a workload, the real pipeline, and a real gRPC ingest
// server on 127.0.0.1 receiving StackBatch messages and acknowledging them; metrics and probes scraped
// over HTTP; SIGTERM-like shutdown leaves no bpftrace.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { Agent } from "./agent.ts";
import { runAgent } from "./main.ts";
import { hostOnly } from "./pipeline/attribution.ts";
import { Symbolizer } from "./symbolize/symbolizer.ts";
import { startCollectingIngest } from "./testing/ingest.ts";
import { bpftraceChildrenOf, pgrepBpftrace } from "./testing/processes.ts";
import { buildWorkload, readelfBuildId } from "./testing/workload.ts";

/** readelf -SW: the .text section's file offset, size and address. */
function readelfText(file: string): { fileOffset: number; size: number; address: number } {
  const line = execFileSync("readelf", ["-SW", file], { encoding: "utf8" })
    .split("\n")
    .find((l) => /\s\.text\s/.test(l));
  const f = (line ?? "").replace(/^.*\]\s*/, "").split(/\s+/);
  // Name Type Address Off Size ...
  return {
    address: parseInt(f[2] ?? "", 16),
    fileOffset: parseInt(f[3] ?? "", 16),
    size: parseInt(f[4] ?? "", 16),
  };
}

describe("stella agent run (real bpftrace, real gRPC)", () => {
  let dir = "";
  let exe = "";
  let work: ChildProcess | undefined;

  before(async () => {
    assert.equal(process.geteuid?.(), 0, "these tests need root (bpftrace)");
    dir = mkdtempSync(join(tmpdir(), "stella-agent-run-"));
    ({ exe } = buildWorkload(dir));
    work = spawn(exe, [], { stdio: "ignore" });
    await sleep(150);
  });

  after(() => {
    work?.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("ships attributed, symbolised stacks with binaries, serves metrics and probes, stops cleanly", async (t) => {
    const ingest = await startCollectingIngest();
    const ac = new AbortController();
    let urls: { metricsUrl?: string; healthUrl?: string; agentId?: string } = {};
    const done = runAgent({
      fileText: [
        "node: test-node",
        "sampling:",
        "  frequencyHz: 99",
        "  intervalSeconds: 1",
        `  target: {pid: ${work?.pid}}`,
        "attribution: {kubernetes: off}",
        `operator: {address: "127.0.0.1:${ingest.port}", tls: {insecure: true}}`,
        'metricsAddr: "127.0.0.1:0"',
        'healthAddr: "127.0.0.1:0"',
        "logLevel: silent",
        "shutdownTimeoutSeconds: 5",
      ].join("\n"),
      fileName: "agent.yaml",
      env: {},
      signal: ac.signal,
      onStarted: (u) => (urls = u),
    });
    await sleep(3500);
    assert.ok(urls.metricsUrl && urls.healthUrl, "servers bound");
    const ready = await fetch(`${urls.healthUrl}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    const metrics = await (await fetch(`${urls.metricsUrl}/metrics`)).text();
    const ours = bpftraceChildrenOf(process.pid);
    assert.equal(ours.length, 1, "one bpftrace, started by the agent");
    ac.abort();
    assert.equal(await done, 0);
    assert.ok(!pgrepBpftrace().includes(ours[0] ?? 0), "bpftrace gone after shutdown");
    await ingest.stop();

    const b = ingest.batches;
    t.diagnostic(`${b.length} batches, ${b.reduce((n, x) => n + x.samples.length, 0)} samples`);
    assert.ok(b.length >= 3, `>= 3 one-second batches, got ${b.length}`);
    assert.deepEqual(
      b.map((x) => x.seq),
      b.map((_, i) => i + 1),
      "seq 1, 2, 3, … each once",
    );
    assert.ok(b.every((x) => x.agentId === urls.agentId && x.node === "test-node" && x.hz === 99));
    for (let i = 1; i < b.length; i++)
      assert.equal(b[i]?.window?.startUnixMs, b[i - 1]?.window?.endUnixMs, "windows are contiguous");
    const id = readelfBuildId(exe);
    const chain = b
      .flatMap((x) => x.samples)
      .filter(
        (s) =>
          s.frames
            .slice(0, 3)
            .map((f) => f.symbol)
            .join(",") === "stella_hot,stella_mid,main",
      );
    assert.ok(chain.length > 0, "stella_hot <- stella_mid <- main arrived");
    assert.ok(chain.every((s) => s.frames[0]?.buildId === id && s.frames[0]?.kind === "KIND_NATIVE"));
    assert.ok(chain.every((s) => s.container === "host" && s.pod === ""));
    // The workload's binary is described once, with its executable sections as readelf sees them.
    const described = b.flatMap((x) => x.binaries).filter((x) => x.buildId === id);
    assert.equal(described.length, 1, "each binary described once");
    const text = described[0]?.sections.find((s) => s.name === ".text");
    assert.deepEqual(
      text && { fileOffset: text.fileOffset, size: text.size, address: text.address },
      readelfText(exe),
    );
    // Privacy: nothing but canonical frames and counts: no process name, no pid.
    const wire = JSON.stringify(b.map((x) => x.samples));
    assert.ok(!wire.includes('"comm"') && !wire.includes('"pid"'));
    assert.doesNotMatch(wire, /"workload"/);

    for (const name of [
      "stella_agent_samples_total",
      "stella_agent_batches_acked_total",
      "stella_agent_frames_total",
      "stella_agent_unresolved_frames_ratio",
      "stella_agent_buffer_bytes",
      "stella_agent_bpftrace_cpu_seconds_total",
      "process_cpu_seconds_total",
    ])
      assert.match(metrics, new RegExp(`^${name}(\\{[^}]*\\})? `, "m"), `${name} exported`);
    const samples = Number(/^stella_agent_samples_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(samples > 0, "samples counted");
  });

  it("a duty cycle stops bpftrace between on-phases and starts it again", async () => {
    const windows: [number, number][] = [];
    const agent = new Agent({
      hz: 99,
      intervalMs: 300,
      filter: { pid: work?.pid ?? 0 },
      dutyCycle: { onMs: 1500, periodMs: 4000 },
      symbolizer: new Symbolizer({ kernel: false }),
      attribution: hostOnly,
      sink: {
        enqueue: (body) => {
          if (body.samples.length > 0) windows.push([body.window.startUnixMs, body.window.endUnixMs]);
        },
      },
    });
    await agent.start();
    const first = agent.bpftracePid;
    await sleep(2500);
    assert.equal(agent.sampling, false, "off-phase");
    assert.ok(first !== undefined && !pgrepBpftrace().includes(first), "bpftrace stopped in the off-phase");
    await sleep(2500);
    assert.equal(agent.sampling, true, "second on-phase");
    await agent.shutdown();
    assert.equal(agent.stats.samplerStarts, 2);
    const gap = windows.some(([s], i) => i > 0 && s - (windows[i - 1]?.[1] ?? s) >= 1500);
    assert.ok(gap, `a gap of >= 1.5 s between windows: ${JSON.stringify(windows)}`);
  });
});
