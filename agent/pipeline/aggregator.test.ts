import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";

import type { BinaryInfo } from "../symbolize/elf-cache.ts";
import { Symbolizer, type Frame } from "../symbolize/symbolizer.ts";
import { StackAggregator, type FrameResolver } from "./aggregator.ts";
import { HOST_ATTRIBUTION, hostOnly, type Attribution } from "./attribution.ts";
import { toFolded, foldedFrameName } from "./folded.ts";

/** A resolver over a fixed address table: [start, end) → symbol in "libx" (build id "bb"). */
function tableResolver(table: [number, number, string][], calls: bigint[] = []): FrameResolver {
  const info = {
    path: "/usr/lib/libx.so",
    sections: [{ name: ".text", fileOffset: 0x1000, size: 0x9000, address: 0x1000 }],
  };
  return {
    resolve(_pid: number, addr: bigint): Frame {
      calls.push(addr);
      const a = Number(addr);
      for (const [s, e, name] of table)
        if (a >= s && a < e)
          return {
            status: "resolved",
            kind: "native",
            buildId: "bb",
            path: "/usr/lib/libx.so",
            fileOffset: a,
            symbol: name,
            offset: a - s,
          };
      if (a >= 0x9000 && a < 0xa000)
        return { status: "resolved", kind: "native", buildId: "bb", path: "/usr/lib/libx.so", fileOffset: a };
      return { status: "unresolved", reason: "no-mapping" };
    },
    cache: { getByBuildId: (id) => (id === "bb" ? (info as unknown as BinaryInfo) : undefined) },
  };
}

const TABLE: [number, number, string][] = [
  [0x1000, 0x1100, "main"],
  [0x1100, 0x1200, "mid"],
  [0x1200, 0x1300, "hot"],
];

describe("StackAggregator", () => {
  it("resolves the leaf at its address and callers at return address - 1", () => {
    const calls: bigint[] = [];
    const agg = new StackAggregator({ resolver: tableResolver(TABLE, calls), attribution: hostOnly });
    // A return address exactly at the end of `mid` (a call as mid's last instruction) belongs to mid.
    agg.add([{ pid: 1, comm: "x", frames: [0x1250n, 0x1200n, 0x1010n], count: 3 }]);
    assert.deepEqual(calls, [0x1250n, 0x11ffn, 0x100fn]);
    const body = agg.flush({ startUnixMs: 0, endUnixMs: 1 }, 99);
    assert.deepEqual(
      body.samples[0]?.frames.map((f) => f.symbol),
      ["hot", "mid", "main"],
    );
  });

  it("collapses equal stacks of one container across processes and keeps containers apart", () => {
    const who = new Map<number, Attribution>([
      [1, { ...HOST_ATTRIBUTION, container: "a".repeat(64), pod: "p", namespace: "n" }],
      [2, { ...HOST_ATTRIBUTION, container: "a".repeat(64), pod: "p", namespace: "n" }],
      [3, { ...HOST_ATTRIBUTION, container: "c".repeat(64), pod: "q", namespace: "n" }],
    ]);
    const agg = new StackAggregator({
      resolver: tableResolver(TABLE),
      attribution: { attribute: (pid) => who.get(pid) },
    });
    const frames = [0x1250n, 0x1180n + 1n];
    agg.add([
      { pid: 1, comm: "w", frames, count: 2 },
      { pid: 2, comm: "w", frames, count: 5 },
      { pid: 3, comm: "w", frames, count: 1 },
      { pid: 4, comm: "gone", frames, count: 7 },
    ]);
    const body = agg.flush({ startUnixMs: 10, endUnixMs: 20 }, 19);
    assert.deepEqual(
      body.samples.map((s) => [s.pod, s.count]),
      [
        ["p", 7],
        ["q", 1],
      ],
    );
    assert.equal(body.droppedSamples, 7, "the exited process's samples are counted, not shipped");
    assert.equal(agg.stats.droppedExited, 7);
    assert.equal(body.samples[0]?.pid, undefined, "no pid or comm leaves the node");
    assert.equal(body.samples[0]?.comm, undefined);
    assert.equal(body.hz, 19);
    assert.deepEqual(body.window, { startUnixMs: 10, endUnixMs: 20 });
  });

  it("drops stacks with no resolved frame, counting them; keeps stripped frames as buildId + offset", () => {
    const agg = new StackAggregator({ resolver: tableResolver(TABLE), attribution: hostOnly });
    agg.add([
      { pid: 1, comm: "x", frames: [0x50n, 0x60n], count: 4 },
      { pid: 1, comm: "x", frames: [0x9abcn, 0x1010n], count: 1 },
    ]);
    const body = agg.flush({ startUnixMs: 0, endUnixMs: 1 }, 99);
    assert.equal(body.droppedSamples, 4);
    assert.equal(body.samples.length, 1);
    const leaf = body.samples[0]?.frames[0];
    assert.deepEqual(leaf, { kind: "KIND_NATIVE", buildId: "bb", fileOffset: 0x9abc, unresolvedReason: "" });
    assert.equal(foldedFrameName(leaf), "[bb+0x9abc]");
  });

  it("describes each binary once per run (sections for the operator), and again when asked", () => {
    const once = new StackAggregator({ resolver: tableResolver(TABLE), attribution: hostOnly });
    const every = new StackAggregator({
      resolver: tableResolver(TABLE),
      attribution: hostOnly,
      binariesOnce: false,
    });
    for (const agg of [once, every]) agg.add([{ pid: 1, comm: "x", frames: [0x1250n], count: 1 }]);
    const first = once.flush({ startUnixMs: 0, endUnixMs: 1 }, 99);
    assert.deepEqual(first.binaries, [
      {
        buildId: "bb",
        path: "/usr/lib/libx.so",
        sections: [{ name: ".text", fileOffset: 0x1000, size: 0x9000, address: 0x1000 }],
      },
    ]);
    once.add([{ pid: 1, comm: "x", frames: [0x1250n], count: 1 }]);
    assert.deepEqual(once.flush({ startUnixMs: 1, endUnixMs: 2 }, 99).binaries, []);
    // After a dropped batch the agent asks for every binary again.
    once.redescribeBinaries();
    once.add([{ pid: 1, comm: "x", frames: [0x1250n], count: 1 }]);
    assert.equal(once.flush({ startUnixMs: 2, endUnixMs: 3 }, 99).binaries.length, 1);
    every.flush({ startUnixMs: 0, endUnixMs: 1 }, 99);
    every.add([{ pid: 1, comm: "x", frames: [0x1250n], count: 1 }]);
    assert.equal(every.flush({ startUnixMs: 1, endUnixMs: 2 }, 99).binaries.length, 1);
  });

  it("is deterministic: the same stacks in any order give byte-identical bodies", () => {
    const stacks = Array.from({ length: 50 }, (_, i) => ({
      pid: 1 + (i % 3),
      comm: "w",
      frames: [BigInt(0x1200 + (i % 7)), BigInt(0x1101 + (i % 5)), 0x1001n],
      count: 1 + (i % 4),
    }));
    const run = (order: typeof stacks): string => {
      const agg = new StackAggregator({
        resolver: tableResolver(TABLE),
        attribution: hostOnly,
        byProcess: true,
      });
      agg.add(order);
      return JSON.stringify(agg.flush({ startUnixMs: 0, endUnixMs: 1 }, 99));
    };
    assert.equal(run(stacks), run([...stacks].reverse()));
  });

  it("a process that exits between sample and resolution: no crash, counted (real Symbolizer)", () => {
    const r = spawnSync("true");
    assert.equal(r.status, 0);
    const gone = r.pid;
    const sym = new Symbolizer({ kernel: false });
    const agg = new StackAggregator({ resolver: sym, attribution: hostOnly });
    agg.add([{ pid: gone, comm: "true", frames: [0x401000n, 0x401100n], count: 3 }]);
    const body = agg.flush({ startUnixMs: 0, endUnixMs: 1 }, 99);
    assert.equal(body.samples.length, 0);
    assert.equal(body.droppedSamples, 3);
    assert.equal(sym.stats.unresolvedBy["process-exited"], 2);
  });
});

describe("folded output", () => {
  it("root first, process or pod as the root frame, merged and sorted, names cleaned", () => {
    const f = (symbol: string) =>
      ({
        kind: "KIND_NATIVE",
        buildId: "bb",
        fileOffset: 1,
        symbol,
        offset: 0,
        unresolvedReason: "",
      }) as const;
    const text = toFolded([
      { ...HOST_ATTRIBUTION, pid: 1, comm: "app", frames: [f("leaf"), f("main")], count: 2 },
      { ...HOST_ATTRIBUTION, pid: 2, comm: "app", frames: [f("leaf"), f("main")], count: 3 },
      {
        ...HOST_ATTRIBUTION,
        container: "d".repeat(64),
        pod: "web-1",
        namespace: "shop",
        containerName: "nginx",
        frames: [
          f("op;erator<a>"),
          {
            kind: "KIND_KERNEL",
            buildId: "",
            fileOffset: 0,
            symbol: "do_syscall_64",
            offset: 4,
            unresolvedReason: "",
          },
        ],
        count: 1,
      },
      {
        ...HOST_ATTRIBUTION,
        container: "e".repeat(64),
        frames: [{ kind: "KIND_UNRESOLVED", buildId: "", fileOffset: 0, unresolvedReason: "no-mapping" }],
        count: 1,
      },
    ]);
    assert.equal(
      text,
      "app;main;leaf 5\n" +
        `container:${"e".repeat(12)};[unknown] 1\n` +
        "shop/web-1/nginx;do_syscall_64_[k];op_erator<a> 1\n",
    );
  });
});
