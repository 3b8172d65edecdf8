// The symboliser against real processes and independent oracles: nm, readelf, eu-addr2line (elfutils).
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { MapIndex, parseMaps } from "./maps.ts";
import { parsePerfMap } from "./perf-map.ts";
import { Symbolizer, type Frame } from "./symbolizer.ts";
import { loadSegments } from "../testing/workload.ts";

const WORKLOAD_C = String.raw`
#include <unistd.h>
volatile unsigned long sink;
__attribute__((noinline)) unsigned long stella_alpha(unsigned long x) {
  for (int i = 0; i < 64; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
  return x;
}
__attribute__((noinline)) unsigned long stella_beta(unsigned long x) {
  for (int i = 0; i < 64; i++) { x ^= x >> 7; x ^= x << 9; }
  return x;
}
__attribute__((noinline)) unsigned long stella_gamma(unsigned long x) {
  return stella_alpha(x) + stella_beta(x ^ 0x55);
}
__attribute__((noinline)) void stella_hot(void) {
  for (unsigned long n = 0;; n++) {
    sink = stella_gamma(sink + n);
    if ((n & 0xffff) == 0) usleep(2000); /* busy, but leave the CPU to the CI run */
  }
}
int main(void) { stella_hot(); return 0; }
`;
const WORKLOAD_FUNCS = ["stella_alpha", "stella_beta", "stella_gamma", "stella_hot", "main"];

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: "utf8", input, maxBuffer: 256 << 20 });
}

interface Segment {
  offset: number;
  vaddr: number;
  filesz: number;
}

function vaddrToFileOffset(segs: Segment[], vaddr: number): number {
  const s = segs.find((g) => vaddr >= g.vaddr && vaddr < g.vaddr + g.filesz);
  assert.ok(s, `vaddr 0x${vaddr.toString(16)} in no PT_LOAD`);
  return vaddr - s.vaddr + s.offset;
}

interface RawMap {
  start: number;
  end: number;
  offset: number;
  path: string;
}

/** The test's own reading of /proc/PID/maps (independent of maps.ts). */
function rawMaps(pid: number): RawMap[] {
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const f = l.split(/\s+/);
      const [s = "", e = ""] = (f[0] ?? "").split("-");
      return {
        start: parseInt(s, 16),
        end: parseInt(e, 16),
        offset: parseInt(f[2] ?? "", 16),
        path: f.slice(5).join(" "),
      };
    });
}

/** The runtime address of a file offset of `path` in the process. */
function runtimeAddress(maps: RawMap[], path: string, fileOffset: number): bigint {
  const m = maps.find(
    (x) => x.path === path && fileOffset >= x.offset && fileOffset < x.offset + (x.end - x.start),
  );
  assert.ok(m, `file offset 0x${fileOffset.toString(16)} of ${path} is not mapped`);
  return BigInt(m.start + fileOffset - m.offset);
}

interface NmSym {
  name: string;
  addr: number;
  size: number;
}

/** Function symbols with a size, from nm (`-D` for the dynamic table). */
function nmFunctions(file: string, dynamic: boolean): NmSym[] {
  const args = ["-S", "--defined-only", ...(dynamic ? ["-D"] : []), file];
  const out: NmSym[] = [];
  for (const line of run("nm", args).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 4 || !/^[TtWi]$/.test(f[2] ?? "")) continue;
    out.push({
      addr: parseInt(f[0] ?? "", 16),
      size: parseInt(f[1] ?? "", 16),
      name: (f[3] ?? "").replace(/@.*$/, ""),
    });
  }
  return out;
}

/** All names (with addresses) of a file's symbol tables, to recognise aliases. */
function nameStarts(files: string[]): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const file of files) {
    for (const dyn of [false, true]) {
      const r = spawnSync("nm", ["--defined-only", ...(dyn ? ["-D"] : []), file], {
        encoding: "utf8",
        maxBuffer: 256 << 20,
      });
      for (const line of (r.stdout ?? "").split("\n")) {
        const f = line.trim().split(/\s+/);
        if (f.length !== 3) continue;
        const name = (f[2] ?? "").replace(/@.*$/, "");
        let set = out.get(name);
        if (!set) out.set(name, (set = new Set()));
        set.add(parseInt(f[0] ?? "", 16));
      }
    }
  }
  return out;
}

/** eu-addr2line -f for many addresses at once: the function name of each (outermost when inlined). */
function addr2lineNames(file: string, vaddrs: number[]): string[] {
  const out = run(
    "eu-addr2line",
    ["-f", "-e", file],
    vaddrs.map((v) => `0x${v.toString(16)}`).join("\n") + "\n",
  );
  const lines = out.split("\n");
  const names: string[] = [];
  for (let i = 0; i < vaddrs.length; i++) {
    let n = lines[2 * i] ?? "??";
    const inl = n.lastIndexOf(" in ");
    if (n.includes(" inlined at ") && inl >= 0) n = n.slice(inl + 4);
    names.push(n.replace(/@.*$/, ""));
  }
  return names;
}

function buildIdOf(file: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(run("readelf", ["-n", file]));
  assert.ok(m?.[1], `${file} has no build ID`);
  return m[1];
}

function native(f: Frame): Extract<Frame, { kind: "native" }> {
  assert.equal(f.status, "resolved", JSON.stringify(f));
  assert.ok(f.status === "resolved" && f.kind === "native", JSON.stringify(f));
  return f;
}

async function waitFor(cond: () => boolean, what: string, ms = 15000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function mapsMention(pid: number, path: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/maps`, "utf8").includes(path);
  } catch {
    return false;
  }
}

describe("symbolizer on real processes", () => {
  let dir = "";
  let bin = "";
  let stripped = "";
  const children: ChildProcess[] = [];
  let proc: ChildProcess;
  let strippedProc: ChildProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "stella-sym-"));
    writeFileSync(join(dir, "workload.c"), WORKLOAD_C);
    bin = join(dir, "workload");
    stripped = join(dir, "workload-stripped");
    run("gcc", [
      "-O2",
      "-fno-omit-frame-pointer",
      "-fno-inline",
      "-Wl,--build-id",
      "-o",
      bin,
      join(dir, "workload.c"),
    ]);
    run("strip", ["-o", stripped, bin]);
    proc = spawn(bin, [], { stdio: "ignore" });
    strippedProc = spawn(stripped, [], { stdio: "ignore" });
    children.push(proc, strippedProc);
    await waitFor(
      () => mapsMention(proc.pid ?? 0, bin) && mapsMention(strippedProc.pid ?? 0, stripped),
      "workloads",
    );
  });

  after(() => {
    for (const c of children) c.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("names every workload function like eu-addr2line", () => {
    const sym = new Symbolizer();
    const pid = proc.pid ?? 0;
    const maps = rawMaps(pid);
    const segs = loadSegments(bin);
    const funcs = nmFunctions(bin, false).filter((f) => WORKLOAD_FUNCS.includes(f.name));
    assert.equal(funcs.length, WORKLOAD_FUNCS.length, "nm lists every workload function");
    const probes: { f: NmSym; vaddr: number }[] = [];
    for (const f of funcs)
      for (const k of [0, Math.floor(f.size / 2), f.size - 1]) probes.push({ f, vaddr: f.addr + k });
    const oracle = addr2lineNames(
      bin,
      probes.map((p) => p.vaddr),
    );
    probes.forEach((p, i) => {
      const fo = vaddrToFileOffset(segs, p.vaddr);
      const got = native(sym.resolve(pid, runtimeAddress(maps, bin, fo)));
      assert.equal(oracle[i], p.f.name, "oracle agrees with nm");
      assert.equal(got.symbol, oracle[i]);
      assert.equal(got.offset, p.vaddr - p.f.addr);
      assert.equal(got.fileOffset, fo);
      assert.equal(got.buildId, buildIdOf(bin));
    });
    console.log(`# workload: ${probes.length} addresses agree with eu-addr2line`);
    assert.equal(sym.stats.native, probes.length);
  });

  it("names ~200 libc addresses like eu-addr2line (modulo aliases)", () => {
    const sym = new Symbolizer();
    const pid = proc.pid ?? 0;
    const maps = rawMaps(pid);
    const libc = maps.find((m) => /\/libc\.so\.6$/.test(m.path))?.path;
    assert.ok(libc, "libc is mapped");
    const segs = loadSegments(libc);
    const seen = new Set<number>();
    const funcs = nmFunctions(libc, true).filter((f) => f.size > 0 && !seen.has(f.addr) && seen.add(f.addr));
    assert.ok(funcs.length > 500);
    // Deterministic sample: every k-th function, an address at a pseudo-random point inside it.
    const step = Math.floor(funcs.length / 200);
    const probes: { f: NmSym; vaddr: number }[] = [];
    let x = 12345;
    for (let i = 0; i < funcs.length && probes.length < 200; i += step) {
      const f = funcs[i] as NmSym;
      x = (x * 1103515245 + 12345) % 2 ** 31;
      probes.push({ f, vaddr: f.addr + (x % f.size) });
    }
    const oracle = addr2lineNames(
      libc,
      probes.map((p) => p.vaddr),
    );
    const debug = `/usr/lib/debug/.build-id/${buildIdOf(libc).slice(0, 2)}/${buildIdOf(libc).slice(2)}.debug`;
    const aliases = nameStarts(existsSync(debug) ? [libc, debug] : [libc]);
    let exact = 0;
    let alias = 0;
    const bad: string[] = [];
    probes.forEach((p, i) => {
      const got = native(sym.resolve(pid, runtimeAddress(maps, libc, vaddrToFileOffset(segs, p.vaddr))));
      const want = oracle[i] ?? "??";
      assert.ok(
        got.symbol !== undefined && got.offset !== undefined,
        `0x${p.vaddr.toString(16)} has a symbol`,
      );
      const ourStart = p.vaddr - got.offset;
      if (got.symbol === want) exact++;
      else if (aliases.get(want)?.has(ourStart) && aliases.get(got.symbol)?.has(ourStart)) alias++;
      else
        bad.push(
          `0x${p.vaddr.toString(16)}: ours ${got.symbol}+0x${got.offset.toString(16)}, eu-addr2line ${want}`,
        );
    });
    console.log(
      `# libc: ${probes.length} addresses: ${exact} same name, ${alias} aliases of the same start, ${bad.length} mismatches`,
    );
    assert.deepEqual(bad, []);
    assert.equal(probes.length, 200);
  });

  it("keeps BuildID and file offset for stripped code, with no symbol", () => {
    const sym = new Symbolizer();
    const pid = strippedProc.pid ?? 0;
    const segs = loadSegments(bin);
    const hot = nmFunctions(bin, false).find((f) => f.name === "stella_hot");
    assert.ok(hot);
    const lo = vaddrToFileOffset(segs, hot.addr);
    const maps = rawMaps(pid);
    for (const k of [0, Math.floor(hot.size / 2), hot.size - 1]) {
      const got = native(sym.resolve(pid, runtimeAddress(maps, stripped, lo + k)));
      assert.equal(got.buildId, buildIdOf(stripped));
      assert.equal(got.buildId, buildIdOf(bin));
      assert.ok(got.fileOffset >= lo && got.fileOffset < lo + hot.size);
      assert.equal(got.symbol, undefined);
      assert.equal(got.offset, undefined);
    }
    assert.equal(sym.stats.nativeNoSymbol, 3);
  });

  it("resolves JIT code through /tmp/perf-PID.map", async () => {
    const code =
      "function stellaJitSpin(n){let s=0;for(let i=0;i<n;i++)s=(s+i*i)%1000003;return s}" +
      "setInterval(()=>{for(let k=0;k<50;k++)stellaJitSpin(20000)},5)";
    const node = spawn(process.execPath, ["--perf-basic-prof", "-e", code], { stdio: "ignore" });
    children.push(node);
    const pid = node.pid ?? 0;
    const mapFile = `/tmp/perf-${pid}.map`;
    try {
      const sym = new Symbolizer();
      // Resolve once before the function is compiled: the map must be reloaded when it grows.
      const before = sym.resolve(pid, 0x10n);
      assert.equal(before.status, "unresolved");
      await waitFor(
        () => existsSync(mapFile) && readFileSync(mapFile, "utf8").includes("stellaJitSpin"),
        "perf map",
      );
      await new Promise((r) => setTimeout(r, 30));
      const line = readFileSync(mapFile, "utf8")
        .split("\n")
        .find((l) => l.includes("stellaJitSpin"));
      assert.ok(line);
      const [s = "", z = ""] = line.split(" ");
      const addr = BigInt(`0x${s.replace(/^0x/, "")}`) + BigInt(`0x${z.replace(/^0x/, "")}`) / 2n;
      const got = sym.resolve(pid, addr);
      assert.ok(got.status === "resolved" && got.kind === "jit", JSON.stringify(got));
      assert.match(got.symbol, /stellaJitSpin/);
      assert.ok(sym.stats.perfMapLoads >= 1);
      console.log(`# jit: ${got.symbol}+${got.offset}`);
    } finally {
      node.kill("SIGKILL");
      rmSync(mapFile, { force: true });
    }
  });

  it("re-reads maps (bounded) when an address falls outside the known mappings", async () => {
    const py = spawn(
      "python3",
      [
        "-c",
        "import ctypes,sys\nsys.stdin.readline()\nctypes.CDLL('libcrypto.so.3')\nprint('ok', flush=True)\nsys.stdin.readline()",
      ],
      { stdio: ["pipe", "pipe", "ignore"] },
    );
    children.push(py);
    const pid = py.pid ?? 0;
    try {
      await waitFor(() => mapsMention(pid, "libpython") || mapsMention(pid, "python3"), "python");
      const sym = new Symbolizer({ mapsRereadIntervalMs: 0 });
      const first = sym.resolve(pid, 0x10n); // outside every mapping: one re-read, then unresolved
      assert.equal(first.status, "unresolved");
      assert.equal(sym.stats.mapsReads, 2);
      assert.equal(sym.stats.mapsRereads, 1);
      const ok = new Promise((r) => py.stdout?.once("data", r));
      py.stdin?.write("\n");
      await ok;
      const maps = rawMaps(pid);
      const crypto = maps.find((m) => /\/libcrypto\.so\.3$/.test(m.path))?.path;
      assert.ok(crypto);
      const fn = nmFunctions(crypto, true).find((f) => f.name === "EVP_DigestInit_ex");
      assert.ok(fn);
      const addr = runtimeAddress(maps, crypto, vaddrToFileOffset(loadSegments(crypto), fn.addr + 2));
      const got = native(sym.resolve(pid, addr));
      assert.equal(got.symbol, "EVP_DigestInit_ex");
      assert.equal(sym.stats.mapsRereads, 2);
      // With a long interval, further misses do not re-read.
      const slow = new Symbolizer({ mapsRereadIntervalMs: 60_000 });
      for (let i = 0; i < 5; i++) slow.resolve(pid, 0x10n);
      assert.equal(slow.stats.mapsReads, 1);
      assert.equal(slow.stats.mapsRereadsSuppressed, 5);
    } finally {
      py.kill("SIGKILL");
    }
  });

  it("resolves a deleted binary through map_files, sharing the table by BuildID", async () => {
    const copy = join(dir, "workload-copy");
    copyFileSync(bin, copy);
    chmodSync(copy, 0o755);
    const c = spawn(copy, [], { stdio: "ignore" });
    children.push(c);
    const pid = c.pid ?? 0;
    try {
      await waitFor(() => mapsMention(pid, copy), "copy");
      unlinkSync(copy);
      await waitFor(() => mapsMention(pid, `${copy} (deleted)`), "deleted mapping");
      const maps = rawMaps(pid).map((m) => ({ ...m, path: m.path.replace(/ \(deleted\)$/, "") }));
      const beta = nmFunctions(bin, false).find((f) => f.name === "stella_beta");
      assert.ok(beta);
      const fo = vaddrToFileOffset(loadSegments(bin), beta.addr + 3);
      const sym = new Symbolizer();
      // First the original (loads the table), then the deleted copy (same BuildID, another inode).
      native(sym.resolve(proc.pid ?? 0, runtimeAddress(rawMaps(proc.pid ?? 0), bin, fo)));
      const bytesAfterFirst = sym.cache.stats.bytes;
      const got = native(sym.resolve(pid, runtimeAddress(maps, copy, fo)));
      assert.equal(got.symbol, "stella_beta");
      assert.equal(got.offset, 3);
      assert.equal(got.path, copy);
      assert.equal(sym.cache.stats.misses, 2);
      assert.ok(sym.cache.stats.bytes - bytesAfterFirst < 1024, "shared table counted once");
      assert.equal(sym.cache.getByBuildId(buildIdOf(bin))?.names.includes("stella_beta"), true);
    } finally {
      c.kill("SIGKILL");
    }
  });

  it("counts a process that exited as unresolved, without throwing", () => {
    const r = spawnSync("true");
    assert.equal(r.status, 0);
    const sym = new Symbolizer();
    const got = sym.resolve(r.pid, 0x401000n);
    assert.deepEqual(got, { status: "unresolved", reason: "process-exited" });
    assert.equal(sym.stats.unresolved, 1);
    assert.equal(sym.stats.unresolvedBy["process-exited"], 1);
  });

  it("resolves kernel addresses through /proc/kallsyms", () => {
    const line = readFileSync("/proc/kallsyms", "utf8")
      .split("\n")
      .find((l) => / [Tt] schedule$/.test(l));
    const sym = new Symbolizer();
    if (!line || /^0+ /.test(line)) return; // addresses hidden (kptr_restrict)
    const got = sym.resolve(0, BigInt(`0x${line.split(" ")[0] ?? ""}`) + 4n);
    assert.ok(got.status === "resolved" && got.kind === "kernel");
    assert.equal(got.offset, 4);
  });

  it("stays correct under a tiny memory bound, evicting", () => {
    const sym = new Symbolizer({ maxBytes: 1 });
    const pid = proc.pid ?? 0;
    const maps = rawMaps(pid);
    const libc = maps.find((m) => /\/libc\.so\.6$/.test(m.path))?.path ?? "";
    const segs = loadSegments(bin);
    const lsegs = loadSegments(libc);
    const alpha = nmFunctions(bin, false).find((f) => f.name === "stella_alpha");
    const mallocFn = nmFunctions(libc, true).find((f) => f.name === "malloc");
    assert.ok(alpha && mallocFn);
    for (let round = 0; round < 3; round++) {
      const a = native(sym.resolve(pid, runtimeAddress(maps, bin, vaddrToFileOffset(segs, alpha.addr + 1))));
      assert.equal(a.symbol, "stella_alpha");
      const b = native(
        sym.resolve(pid, runtimeAddress(maps, libc, vaddrToFileOffset(lsegs, mallocFn.addr + 1))),
      );
      assert.equal(b.offset, 1);
    }
    assert.ok(sym.cache.stats.evictions >= 4, JSON.stringify(sym.cache.stats));
    assert.ok(sym.cache.stats.entries <= 1);
  });
});

describe("maps parsing", () => {
  it("parses special, deleted and anonymous mappings and counts garbage lines", () => {
    const text = [
      "55a902ad5000-55a902ad7000 r--p 00000000 fe:00 247278                     /usr/bin/head",
      "55a902ad7000-55a902add000 r-xp 00002000 fe:00 247278                     /usr/bin/head",
      "7f0000000000-7f0000001000 r-xp 00001000 08:01 99                         /tmp/a b (deleted)",
      "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ",
      "7f0000003000-7f0000004000 rw-p 00000000 00:00 0",
      "7ffd1000000-7ffd1002000 r-xp 00000000 00:00 0                          [vdso]",
      "55a903000000-55a903100000 rw-p 00000000 00:00 0                          [heap]",
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
      "garbage",
      "zzzz-1000 r-xp 00000000 00:00 0",
      "2000-1000 r-xp 00000000 00:00 0 /backwards",
      "7f0000000800-7f0000000900 r-xp 00000000 08:01 5 /overlaps",
      "1000-2000 rwxq 00000000 00:00 0",
      "\u0000\u0001binary",
      "",
    ].join("\n");
    const p = parseMaps(text);
    assert.equal(p.badLines, 6);
    assert.equal(p.mappings.length, 8);
    const idx = new MapIndex(p);
    const del = idx.find(0x7f0000000010);
    assert.equal(del?.path, "/tmp/a b");
    assert.equal(del?.deleted, true);
    assert.equal(del?.kind, "file");
    assert.equal(idx.find(0x7f0000002010)?.kind, "anon");
    assert.equal(idx.find(0x7ffd1000010)?.path, "[vdso]");
    assert.equal(idx.find(0x7ffd1000010)?.kind, "special");
    assert.equal(idx.find(0x55a903000001)?.path, "[heap]");
    assert.equal(idx.find(0x55a902ad7000)?.offset, 0x2000);
    assert.equal(idx.find(0x55a902add000), undefined);
    assert.equal(idx.find(0), undefined);
  });

  it("never throws on random text", () => {
    let seed = 7;
    const alphabet = "0123456789abcdef-: rwxp/[]()\n\tdeleted";
    for (let n = 0; n < 2000; n++) {
      let s = "";
      for (let i = 0; i < 80; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        s += alphabet.charAt(seed % alphabet.length);
      }
      const p = parseMaps(s);
      new MapIndex(p).find(0x1234);
    }
  });

  it("parses perf maps, counting bad lines", () => {
    const t = parsePerfMap("1000 10 foo\n0x2000 0x20 bar baz\nnonsense\n3000 0 empty\n1000 10 foo2\n");
    assert.equal(t.badLines, 2);
    assert.equal(t.names[t.indexOf(0x1005n)], "foo2");
    assert.equal(t.names[t.indexOf(0x201fn)], "bar baz");
    assert.equal(t.indexOf(0x2020n), -1);
  });
});
