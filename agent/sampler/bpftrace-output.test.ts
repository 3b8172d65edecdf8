// The JSON line parser against lines captured from bpftrace 0.17 (Debian bookworm) and against garbage.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BpftraceOutputParser, parseStackKey, type ParseEvent, type StackSample } from "./bpftrace-output.ts";

// Verbatim from `BPFTRACE_NO_USER_SYMBOLS=1 bpftrace -f json ebpf/profile.bt 99 0 PID 1000` (bpftrace v0.17.0).
const ATTACHED = `{"type": "attached_probes", "data": {"probes": 2}}`;
const MAP = String.raw`{"type": "map", "data": {"@stacks": {"20680,a,b\n\tc\"d,\n\t5642e3d9f1b1 0x5642e3d9f1b1 ([unknown])\n\t5642e3d9f1c9 0x5642e3d9f1c9 ([unknown])\n\t5642e3d9f085 0x5642e3d9f085 ([unknown])\n\t7faa96e5f24a 0x7faa96e5f24a ([unknown])\n": 2, "20135,w,\n\t55fe1071815f 0x55fe1071815f ([unknown])\n\t55fe1071804d 0x55fe1071804d ([unknown])\n": 80, "0,swapper/0,": 40, "21805,x\u0001y\uffffffffz,\n\t55d2026ce1b1 0x55d2026ce1b1 ([unknown])\n": 3}}}`;

function batches(events: ParseEvent[]): StackSample[][] {
  return events.flatMap((e) => (e.kind === "batch" ? [e.samples] : []));
}

describe("parseStackKey", () => {
  it("splits pid, comm and frames, comm may hold commas and newlines", () => {
    const k = parseStackKey("7,a,\n\tb,\n\t10 0x10 ([unknown])\n\tff x (y)\n");
    assert.deepEqual(k, { pid: 7, comm: "a,\n\tb", frames: [0x10n, 0xffn] });
  });
  it("a comm that imitates a frame does not become one", () => {
    const k = parseStackKey("7,x,\n\tab 0x1 (y),\n\t10 0x10 ([unknown])\n");
    assert.deepEqual(k, { pid: 7, comm: "x,\n\tab 0x1 (y)", frames: [0x10n] });
  });
  it("empty stack", () => {
    assert.deepEqual(parseStackKey("0,swapper/0,"), { pid: 0, comm: "swapper/0", frames: [] });
  });
  it("rejects malformed keys", () => {
    for (const k of [
      "",
      "x,y,",
      "1",
      "1,a,\n\tzz q\n",
      "1,a,\n\t10 0x10",
      "99999999999,a,",
      "1,a,\n\t10000000000000000 x\n",
    ]) {
      assert.equal(parseStackKey(k), undefined, JSON.stringify(k));
    }
  });
});

describe("BpftraceOutputParser", () => {
  it("parses the real 0.17 shapes", () => {
    const p = new BpftraceOutputParser();
    const ev = p.push(`${ATTACHED}\n${MAP}\n\n\n{"type": "lost_events", "data": {"events": 5}}\n`);
    assert.deepEqual(ev[0], { kind: "attached", probes: 2 });
    const [b] = batches(ev);
    assert.ok(b);
    assert.equal(b.length, 3);
    const byPid = new Map(b.map((s) => [s.pid, s]));
    assert.deepEqual(byPid.get(20680), {
      pid: 20680,
      comm: 'a,b\n\tc"d',
      frames: [0x5642e3d9f1b1n, 0x5642e3d9f1c9n, 0x5642e3d9f085n, 0x7faa96e5f24an],
      count: 2,
    });
    assert.deepEqual(byPid.get(20135)?.frames, [0x55fe1071815fn, 0x55fe1071804dn]);
    // bpftrace 0.17 prints byte 0xff as "\uffffffff": repaired to the byte (invalid UTF-8 -> U+FFFD).
    assert.equal(byPid.get(21805)?.comm, "x\u0001y\ufffdz");
    assert.equal(p.stats.emptyStacks, 1);
    assert.equal(p.stats.lostEvents, 5);
    assert.equal(p.stats.badLines, 0);
    assert.equal(p.stats.samples, 3);
  });

  it("repairs bpftrace's escaping of UTF-8 comms", () => {
    const p = new BpftraceOutputParser();
    const line = String.raw`{"type": "map", "data": {"@stacks": {"1,caf\uffffffc3\uffffffa9,\n\t10 0x10 ([unknown])\n": 1}}}`;
    const [b] = batches(p.push(`${line}\n`));
    assert.equal(b?.[0]?.comm, "café");
  });

  it("reassembles lines split across chunks at any byte", () => {
    const text = Buffer.from(`${ATTACHED}\n${MAP}\n`);
    for (let cut = 0; cut <= text.length; cut += 7) {
      const p = new BpftraceOutputParser();
      const ev = [...p.push(text.subarray(0, cut)), ...p.push(text.subarray(cut)), ...p.end()];
      assert.equal(batches(ev)[0]?.length, 3);
      assert.equal(p.stats.badLines + p.stats.truncatedLines, 0);
    }
  });

  it("counts garbage, truncated and oversize lines, never throws", () => {
    const p = new BpftraceOutputParser({ maxLineBytes: 1024 });
    const huge = `{"type": "map", "data": {"@stacks": {"1,a,\\n\\t10 x\\n": ${"9".repeat(5000)}}}}`;
    const garbage = [
      "garbage",
      "{",
      "[1,2]",
      "null",
      '{"type": 3}',
      '{"type": "map", "data": 5}',
      '{"type": "map", "data": {"@stacks": [1]}}',
      '{"type": "attached_probes", "data": {}}',
      '{"type": "lost_events", "data": {"events": -1}}',
      MAP.slice(0, 100),
      "\u0000\u0001\uffff",
    ];
    const ev = p.push(`${garbage.join("\n")}\n${huge}\n${MAP}\n${MAP.slice(0, 50)}`);
    assert.equal(p.stats.badLines, garbage.length);
    assert.equal(p.stats.oversizeLines, 1);
    assert.equal(batches(ev).length, 1);
    assert.deepEqual(p.end(), []);
    assert.equal(p.stats.truncatedLines, 1);
    assert.equal(p.stats.badLines, garbage.length + 1);
  });

  it("an oversize line streamed in small chunks is dropped, the next line parses", () => {
    const p = new BpftraceOutputParser({ maxLineBytes: 64 });
    let events: ParseEvent[] = [];
    for (let i = 0; i < 1000; i++) events = events.concat(p.push("x".repeat(100)));
    events = events.concat(p.push(`\n${ATTACHED}\n`));
    assert.equal(p.stats.oversizeLines, 1);
    assert.deepEqual(events, [{ kind: "attached", probes: 2 }]);
  });

  it("bad values and keys inside a map are counted", () => {
    const p = new BpftraceOutputParser();
    const line = String.raw`{"type": "map", "data": {"@stacks": {"1,a,\n\t10 x\n": "3", "1,a,\n\t11 x\n": -1, "nope": 1, "__proto__": 1, "2,b,\n\t12 x\n": 4}}}`;
    const [b] = batches(p.push(`${line}\n`));
    assert.deepEqual(b, [{ pid: 2, comm: "b", frames: [0x12n], count: 4 }]);
    assert.equal(p.stats.badKeys, 4);
  });

  it("random bytes never throw", () => {
    const p = new BpftraceOutputParser({ maxLineBytes: 256 });
    let seed = 1;
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.alloc(64);
      for (let j = 0; j < buf.length; j++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        buf[j] = seed >>> 24;
      }
      p.push(buf);
    }
    p.end();
    assert.ok(p.stats.lines > 0);
  });
});
