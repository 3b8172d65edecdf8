// `stella agent record` end to end with real bpftrace (root): symbols against nm/readelf, stripped
// code as BuildID + file offset, JIT names from a perf map, cgroup filters on real cgroups, a binary
// replaced under its path, malformed bpftrace output, and SIGTERM leaving no bpftrace behind.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { EventEmitter } from "node:events";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { Agent } from "./agent.ts";
import type { LocalSample } from "./pipeline/aggregator.ts";
import { hostOnly } from "./pipeline/attribution.ts";
import { cgroup2Mounts } from "./pipeline/cgroup-filter.ts";
import { toFolded } from "./pipeline/folded.ts";
import { record } from "./record.ts";
import { standaloneAttribution } from "./standalone.ts";
import type { ProcessRunner, RunnerChild } from "./sampler/sampler.ts";
import { Symbolizer } from "./symbolize/symbolizer.ts";
import { bpftraceChildrenOf, pgrepBpftrace } from "./testing/processes.ts";
import { buildWorkload, loadSegments, nmFunctions, readelfBuildId } from "./testing/workload.ts";

const CLI = fileURLToPath(new URL("../cli/stella.ts", import.meta.url));

function total(samples: readonly LocalSample[]): number {
  return samples.reduce((n, s) => n + s.count, 0);
}

/** file offset → vaddr with readelf's PT_LOAD table (what the operator does with a FuncProof). */
function vaddrOf(file: string, fileOffset: number): number {
  for (const l of loadSegments(file))
    if (fileOffset >= l.offset && fileOffset < l.offset + l.filesz) return fileOffset - l.offset + l.vaddr;
  return -1;
}

describe("stella agent record (real bpftrace, root)", () => {
  let dir = "";
  let exe = "";
  let stripped = "";
  const children: ChildProcess[] = [];
  const cgroups: string[] = [];

  const start = async (file: string, args: string[] = []): Promise<ChildProcess> => {
    const c = spawn(file, args, { stdio: "ignore" });
    children.push(c);
    await sleep(150);
    assert.ok(c.pid !== undefined && c.exitCode === null, `${file} is running`);
    return c;
  };

  before(() => {
    assert.equal(process.geteuid?.(), 0, "these tests need root (bpftrace)");
    dir = mkdtempSync(join(tmpdir(), "stella-record-"));
    ({ exe, stripped } = buildWorkload(dir));
  });

  after(() => {
    for (const c of children) c.kill("SIGKILL");
    for (const cg of cgroups.reverse()) {
      try {
        rmdirSync(cg);
      } catch {
        // still populated for a moment after SIGKILL; the kernel frees it once empty
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("--pid: the hot function with its full caller chain, named like nm, BuildID like readelf", async (t) => {
    const w = await start(exe);
    const rec = await record({ target: { pid: w.pid! }, durationMs: 2500, hz: 99, attribution: hostOnly });
    const n = total(rec.samples);
    assert.ok(n >= 50, `expected >= 50 samples at 99 Hz over 2.5 s, got ${n}`);
    assert.ok(rec.samples.every((s) => s.pid === w.pid && s.comm === "workload"));
    const chain = rec.samples.filter(
      (s) =>
        s.frames
          .slice(0, 3)
          .map((f) => f.symbol)
          .join(",") === "stella_hot,stella_mid,main",
    );
    t.diagnostic(`${n} samples, ${total(chain)} with stella_hot <- stella_mid <- main`);
    assert.ok(total(chain) / n >= 0.8, `full chain in ${total(chain)}/${n} samples`);
    const folded = toFolded(rec.samples);
    assert.match(folded, /^workload;(?:[^;\n]+;)*main;stella_mid;stella_hot \d+$/m);
    // Every named workload frame agrees with nm: vaddr of fileOffset inside the function, offset from its start.
    const nm = nmFunctions(exe);
    const id = readelfBuildId(exe);
    let checked = 0;
    for (const s of rec.samples)
      for (const f of s.frames) {
        if (f.kind !== "KIND_NATIVE" || f.buildId !== id) continue;
        if (f.symbol === undefined) {
          // A sample can land outside every function (a PLT stub on the way into libc): unnamed, as nm agrees.
          const v = vaddrOf(exe, f.fileOffset);
          const inside = [...nm.entries()].find(([, r]) => v >= r.start && v < r.end);
          assert.equal(
            inside,
            undefined,
            `unnamed frame at 0x${v.toString(16)} is inside nm's ${inside?.[0] ?? ""}`,
          );
          continue;
        }
        const fn = nm.get(f.symbol);
        assert.ok(fn, `nm knows ${f.symbol}`);
        const v = vaddrOf(exe, f.fileOffset);
        assert.ok(v >= fn.start && v < fn.end, `${f.symbol}: vaddr 0x${v.toString(16)} inside nm's range`);
        assert.equal(f.offset, v - fn.start);
        checked++;
      }
    assert.ok(checked >= 3);
    assert.equal(rec.agent.badLines + rec.agent.badKeys, 0);
  });

  it("a stripped binary gives [buildid+0xoff] frames inside the unstripped symbol table's ranges", async () => {
    const w = await start(stripped);
    const rec = await record({ target: { pid: w.pid! }, durationMs: 2000, hz: 99, attribution: hostOnly });
    const id = readelfBuildId(stripped);
    assert.equal(id, readelfBuildId(exe), "strip keeps the build id");
    const nm = nmFunctions(exe);
    const hot = nm.get("stella_hot")!;
    const leaves = rec.samples.filter((s) => s.frames[0]?.buildId === id);
    assert.ok(total(leaves) / total(rec.samples) >= 0.8, "most leaves are in the workload");
    let inHot = 0;
    for (const s of leaves) {
      const f = s.frames[0]!;
      assert.equal(f.symbol, undefined, "no symbol for stripped code");
      const v = vaddrOf(exe, f.fileOffset);
      if (v >= hot.start && v < hot.end) inHot += s.count;
    }
    assert.ok(inHot / total(leaves) >= 0.8, `leaf offsets inside stella_hot for ${inHot}/${total(leaves)}`);
    const folded = toFolded(rec.samples);
    assert.match(folded, new RegExp(`\\[${id}\\+0x[0-9a-f]+\\] \\d+$`, "m"));
  });

  it("a Node process with --perf-basic-prof: JS function names appear", async (t) => {
    const js = join(dir, "hot.js");
    writeFileSync(
      js,
      "function stellaJsHot(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0; return x; }\n" +
        "function stellaJsOuter() { let s = 0; for (;;) { s += stellaJsHot(5e6); } }\n" +
        "stellaJsOuter();\n",
    );
    const w = await start(process.execPath, ["--perf-basic-prof", "--interpreted-frames-native-stack", js]);
    await sleep(500); // let the JIT compile and write /tmp/perf-PID.map
    const rec = await record({ target: { pid: w.pid! }, durationMs: 2500, hz: 99, attribution: hostOnly });
    const jit = rec.samples.filter((s) =>
      s.frames.some((f) => f.kind === "KIND_JIT" && /stellaJsHot/.test(f.symbol ?? "")),
    );
    t.diagnostic(`${total(jit)}/${total(rec.samples)} samples name stellaJsHot`);
    assert.ok(total(jit) / total(rec.samples) >= 0.5);
    assert.match(toFolded(rec.samples), /stellaJsOuter[^;\n]*;[^\n]*stellaJsHot/);
  });

  it("--cgroup: a leaf is filtered in the kernel, a subtree in userspace; nothing else shows", async () => {
    const root = cgroup2Mounts(readFileSync("/proc/self/mountinfo", "utf8"))[0];
    assert.ok(root, "a cgroup v2 mount");
    const parent = join(root, `stella-record-${process.pid}`);
    const leaf = join(parent, "cri-containerd-" + "ab".repeat(32) + ".scope");
    mkdirSync(parent);
    cgroups.push(parent);
    mkdirSync(leaf);
    cgroups.push(leaf);
    const inside = await start(exe);
    const outside = await start(stripped); // same code, another binary: must not appear
    writeFileSync(join(leaf, "cgroup.procs"), String(inside.pid));
    for (const target of [leaf, parent]) {
      const rec = await record({
        target: { cgroup: target },
        durationMs: 2000,
        hz: 99,
        attribution: standaloneAttribution(),
      });
      assert.ok(total(rec.samples) >= 30, `${target}: samples`);
      assert.deepEqual(
        [...new Set(rec.samples.map((s) => s.container))],
        ["ab".repeat(32)],
        "attributed to the container id in the cgroup path",
      );
      assert.match(toFolded(rec.samples), new RegExp(`^container:${"ab".repeat(6)};`, "m"));
      assert.deepEqual(
        [...new Set(rec.samples.map((s) => s.pid))],
        [inside.pid],
        `${target}: only the process inside`,
      );
      if (target === parent)
        assert.ok(rec.agent.aggregator.filtered > 0, "userspace filter dropped the others");
      else assert.equal(rec.agent.aggregator.filtered, 0, "kernel filter: nothing else reached userspace");
    }
    assert.ok(outside.pid);
    await assert.rejects(
      record({
        target: { cgroup: join(root, "no-such-cgroup") },
        durationMs: 100,
        hz: 99,
        attribution: hostOnly,
      }),
      /CGROUP_NOT_FOUND|not a cgroup directory/,
    );
  });

  it("a binary replaced under the same path still resolves to the running (old) code", async () => {
    const path = join(dir, "replaced");
    copyFileSync(exe, path);
    const w = await start(path);
    // Replace it the way package managers do: a new file renamed over the old path.
    const other = join(dir, "other.c");
    writeFileSync(other, "int main(void) { return 0; }\n");
    execFileSync("gcc", ["-O2", "-o", `${path}.new`, other]);
    renameSync(`${path}.new`, path);
    const rec = await record({ target: { pid: w.pid! }, durationMs: 1500, hz: 99, attribution: hostOnly });
    const hot = rec.samples.filter((s) => s.frames[0]?.symbol === "stella_hot");
    assert.ok(total(hot) / total(rec.samples) >= 0.8, "still named from the mapped (deleted) file");
    assert.equal(hot[0]?.frames[0]?.buildId, readelfBuildId(exe));
  });

  it("SIGTERM to `stella agent record` prints what it has and leaves no bpftrace", async () => {
    const w = await start(exe);
    // Our bpftrace is the CLI's child (other test files may run their own at the same time).
    const cli = spawn(
      process.execPath,
      [CLI, "agent", "record", "--pid", String(w.pid), "--duration", "60"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    cli.stdout.on("data", (b: Buffer) => (out += b.toString()));
    let ours: number[] = [];
    for (let i = 0; i < 100 && ours.length === 0; i++) {
      await sleep(200);
      ours = bpftraceChildrenOf(cli.pid ?? 0);
    }
    assert.equal(ours.length, 1, "one bpftrace while recording");
    await sleep(2500);
    cli.kill("SIGTERM");
    const code = await new Promise<number | null>((r) => cli.once("close", r));
    assert.equal(code, 0);
    assert.match(out, /main;stella_mid;stella_hot \d+/);
    assert.ok(!pgrepBpftrace().includes(ours[0] ?? 0), "bpftrace gone");
  });
});

/** A bpftrace stand-in for faults real bpftrace cannot be made to produce (garbage, huge lines). */
class ScriptedChild extends EventEmitter implements RunnerChild {
  readonly pid = 999_999_999;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
}

describe("Agent on malformed bpftrace output", () => {
  it("garbage, truncated and huge lines are counted; the good intervals around them still ship", async () => {
    const self = process.pid;
    const maps = readFileSync(`/proc/${self}/maps`, "utf8");
    // A real address of this process (node's text) so the good lines resolve.
    const text = maps.split("\n").find((l) => / r-xp /.test(l) && l.includes("/node"))!;
    const addr = BigInt(`0x${text.split("-")[0]}`) + 0x1000n;
    const key = (n: number): string =>
      JSON.stringify({
        type: "map",
        data: {
          "@stacks": { [`${self},node,\n\t${addr.toString(16)} 0x${addr.toString(16)} ([unknown])\n`]: n },
        },
      });
    let child: ScriptedChild | undefined;
    const runner: ProcessRunner = {
      spawn(_cmd, args) {
        const c = new ScriptedChild();
        if (args[0] === "--version") {
          setImmediate(() => {
            c.stdout.end("bpftrace v0.17.0\n");
            c.emit("close", 0, null);
          });
          return c;
        }
        child = c;
        setImmediate(() => {
          c.stdout.write('{"type": "attached_probes", "data": {"probes": 2}}\n');
          c.stdout.write(`${key(3)}\n`);
          c.stdout.write("this is not json\n");
          c.stdout.write(`{"type": "map", "data": {"@stacks": {"12,x,\\n\\tzz": 1}}}\n`);
          c.stdout.write(`${"x".repeat(5 * 1024 * 1024)}\n`);
          c.stdout.write(`${key(4)}\n`);
        });
        return c;
      },
      killGroup() {
        if (!child) return;
        const c = child;
        child = undefined;
        c.stdout.end('{"type": "map", "data": {"@stac'); // truncated at exit
        setImmediate(() => c.emit("close", null, "SIGTERM"));
      },
    };
    const bodies: LocalSample[][] = [];
    const agent = new Agent({
      hz: 99,
      intervalMs: 1000,
      filter: { all: true, excludePid: 1 },
      symbolizer: new Symbolizer({ kernel: false }),
      attribution: hostOnly,
      sink: { enqueue: (b) => bodies.push(b.samples) },
      sampler: { runner, allowNonRoot: true, maxLineBytes: 1024 * 1024 },
    });
    await agent.start();
    await sleep(200);
    await agent.shutdown();
    const counts = bodies.map((b) => total(b));
    assert.deepEqual(
      counts.filter((c) => c > 0),
      [3, 4],
    );
    const st = agent.stats;
    assert.equal(st.badLines, 2, "the non-JSON line and the line truncated at exit");
    assert.equal(st.badKeys, 1, "the key with a bad frame");
    assert.equal(st.oversizeLines, 1, "the 5 MiB line");
    assert.equal(st.samplerCrashes, 0);
  });
});
