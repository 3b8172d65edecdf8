// (pid, address) → {buildId, fileOffset, symbol?, offset?}: the agent's symboliser.
// Never throws for a process or file that went away: such frames come back "unresolved" and counted.
import { readFileSync, statSync } from "node:fs";

import { ElfCache, candidatePaths, type CacheEntry, type ElfCacheOptions } from "./elf-cache.ts";
import { MapIndex, type Mapping } from "./maps.ts";
import { parseKallsyms, parsePerfMap, type AddressTable } from "./perf-map.ts";

export type UnresolvedReason =
  | "process-exited"
  | "no-mapping"
  | "no-file"
  | "not-elf"
  | "special-mapping"
  | "no-jit-symbol"
  | "kernel-unavailable";

export type Frame =
  | {
      status: "resolved";
      kind: "native";
      buildId: string | undefined;
      /** Path as the process sees it (from /proc/PID/maps). */
      path: string;
      fileOffset: number;
      symbol?: string;
      /** Bytes from the function's start. */
      offset?: number;
    }
  | { status: "resolved"; kind: "jit" | "kernel"; symbol: string; offset: number }
  | { status: "unresolved"; reason: UnresolvedReason };

export interface SymbolizerStats {
  frames: number;
  resolved: number;
  native: number;
  /** Native frames with no function (stripped code): still {buildId, fileOffset}. */
  nativeNoSymbol: number;
  jit: number;
  kernel: number;
  unresolved: number;
  unresolvedBy: Record<UnresolvedReason, number>;
  mapsReads: number;
  mapsRereads: number;
  mapsRereadsSuppressed: number;
  badMapsLines: number;
  perfMapLoads: number;
  pids: number;
}

export interface SymbolizerOptions extends ElfCacheOptions {
  /** Minimum milliseconds between two re-reads of one process's maps (default 20). */
  mapsRereadIntervalMs?: number;
  /** Minimum milliseconds between two size checks of one process's perf map (default 20). */
  perfMapRecheckMs?: number;
  /** Resolve kernel addresses through /proc/kallsyms (default true). */
  kernel?: boolean;
  /** Where /proc is (default "/proc"). */
  procRoot?: string;
  /** Processes whose maps are held at once (default 4096); the least recently read is dropped first. */
  maxPids?: number;
}

interface PerfMapState {
  table: AddressTable | undefined;
  path: string | undefined;
  size: number;
  checkedAt: number;
}

interface PidState {
  maps: MapIndex;
  /** Per mapping: the cache entry and the cache generation it was taken at. */
  memo: (CacheEntry | undefined)[];
  memoGen: number;
  readAt: number;
  perf: PerfMapState | undefined;
}

const KERNEL_START = 0x8000_0000_0000_0000n;

function emptyReasons(): Record<UnresolvedReason, number> {
  return {
    "process-exited": 0,
    "no-mapping": 0,
    "no-file": 0,
    "not-elf": 0,
    "special-mapping": 0,
    "no-jit-symbol": 0,
    "kernel-unavailable": 0,
  };
}

export class Symbolizer {
  readonly cache: ElfCache;
  readonly stats: SymbolizerStats = {
    frames: 0,
    resolved: 0,
    native: 0,
    nativeNoSymbol: 0,
    jit: 0,
    kernel: 0,
    unresolved: 0,
    unresolvedBy: emptyReasons(),
    mapsReads: 0,
    mapsRereads: 0,
    mapsRereadsSuppressed: 0,
    badMapsLines: 0,
    perfMapLoads: 0,
    pids: 0,
  };
  private readonly pids = new Map<number, PidState>();
  private readonly rereadMs: number;
  private readonly perfRecheckMs: number;
  private readonly kernelEnabled: boolean;
  private readonly proc: string;
  private readonly maxPids: number;
  private kallsyms: AddressTable | undefined | null = undefined;

  constructor(opts: SymbolizerOptions = {}) {
    this.cache = new ElfCache(opts);
    this.rereadMs = opts.mapsRereadIntervalMs ?? 20;
    this.perfRecheckMs = opts.perfMapRecheckMs ?? 20;
    this.kernelEnabled = opts.kernel ?? true;
    this.proc = opts.procRoot ?? "/proc";
    this.maxPids = opts.maxPids ?? 4096;
  }

  /** Drop what is held for a process (call when it exits). */
  forget(pid: number): void {
    this.pids.delete(pid);
    this.stats.pids = this.pids.size;
  }

  resolve(pid: number, addr: bigint): Frame {
    this.stats.frames++;
    if (addr >= KERNEL_START) return this.resolveKernel(addr);
    let st = this.pids.get(pid);
    if (!st) {
      st = this.readMaps(pid, undefined);
      if (!st) return this.unresolved("process-exited");
    }
    const a = Number(addr);
    let i = st.maps.indexOf(a);
    if (i < 0) {
      const now = performance.now();
      if (now - st.readAt >= this.rereadMs) {
        this.stats.mapsRereads++;
        const fresh = this.readMaps(pid, st);
        if (fresh) {
          st = fresh;
          i = st.maps.indexOf(a);
        }
      } else {
        this.stats.mapsRereadsSuppressed++;
      }
    }
    const m = i < 0 ? undefined : st.maps.mappings[i];
    if (!m || m.kind !== "file") {
      if (m && m.kind === "special" && m.path !== "[anon]" && !m.path.startsWith("[anon:"))
        return this.unresolved("special-mapping");
      return this.resolveJit(pid, st, addr);
    }
    const entry = this.binaryOf(pid, st, i, m);
    if (!entry.ok)
      return this.unresolved(
        entry.error === "ENOENT"
          ? "process-exited"
          : entry.error === "ELF" || entry.error.startsWith("ELF_")
            ? "not-elf"
            : "no-file",
      );
    const info = entry.info;
    const fileOffset = a - m.start + m.offset;
    this.stats.resolved++;
    this.stats.native++;
    const vaddr = info.vaddrOf(fileOffset);
    const f = vaddr < 0 ? -1 : info.functionAt(vaddr);
    if (f < 0) {
      this.stats.nativeNoSymbol++;
      return { status: "resolved", kind: "native", buildId: info.buildId, path: m.path, fileOffset };
    }
    return {
      status: "resolved",
      kind: "native",
      buildId: info.buildId,
      path: m.path,
      fileOffset,
      symbol: info.names[f] as string,
      offset: vaddr - (info.starts[f] as number),
    };
  }

  private unresolved(reason: UnresolvedReason): Frame {
    this.stats.unresolved++;
    this.stats.unresolvedBy[reason]++;
    return { status: "unresolved", reason };
  }

  private readMaps(pid: number, prev: PidState | undefined): PidState | undefined {
    let text: string;
    try {
      text = readFileSync(`${this.proc}/${pid}/maps`, "latin1");
    } catch {
      return undefined;
    }
    this.stats.mapsReads++;
    const maps = MapIndex.parse(text);
    this.stats.badMapsLines += maps.badLines;
    const st: PidState = {
      maps,
      memo: new Array<CacheEntry | undefined>(maps.mappings.length),
      memoGen: this.cache.generation,
      readAt: performance.now(),
      perf: prev?.perf,
    };
    this.pids.delete(pid);
    this.pids.set(pid, st);
    if (this.pids.size > this.maxPids) {
      const oldest = this.pids.keys().next();
      if (!oldest.done) this.pids.delete(oldest.value);
    }
    this.stats.pids = this.pids.size;
    return st;
  }

  private binaryOf(pid: number, st: PidState, i: number, m: Mapping): CacheEntry {
    if (st.memoGen !== this.cache.generation) {
      st.memo.fill(undefined);
      st.memoGen = this.cache.generation;
    }
    const memo = st.memo[i];
    if (memo) {
      this.cache.touch(memo);
      return memo;
    }
    const entry = this.cache.get(m.dev, m.inode, candidatePaths(pid, m.rawRange, m.path), m.path);
    // The load may have evicted others (generation moved): only this entry is known-good now.
    if (st.memoGen !== this.cache.generation) {
      st.memo.fill(undefined);
      st.memoGen = this.cache.generation;
    }
    if (entry.ok || entry.error !== "ENOENT") st.memo[i] = entry;
    return entry;
  }

  private resolveJit(pid: number, st: PidState, addr: bigint): Frame {
    const now = performance.now();
    let perf = st.perf;
    if (!perf) {
      perf = { table: undefined, path: undefined, size: -1, checkedAt: -Infinity };
      st.perf = perf;
    }
    let i = perf.table ? perf.table.indexOf(addr) : -1;
    if (i < 0 && now - perf.checkedAt >= this.perfRecheckMs) {
      perf.checkedAt = now;
      this.reloadPerfMap(pid, perf);
      i = perf.table ? perf.table.indexOf(addr) : -1;
    }
    if (i < 0 || !perf.table) return this.unresolved(perf.table ? "no-jit-symbol" : "no-mapping");
    this.stats.resolved++;
    this.stats.jit++;
    return {
      status: "resolved",
      kind: "jit",
      symbol: perf.table.names[i] as string,
      offset: Number(addr - (perf.table.starts[i] as bigint)),
    };
  }

  /** Load the perf map when it appeared or grew. The file lives in the process's /tmp, named by its own pid. */
  private reloadPerfMap(pid: number, perf: PerfMapState): void {
    const paths = perf.path ? [perf.path] : this.perfMapPaths(pid);
    for (const p of paths) {
      let size: number;
      try {
        size = statSync(p).size;
      } catch {
        continue;
      }
      perf.path = p;
      if (size === perf.size) return;
      try {
        const text = readFileSync(p, "latin1");
        perf.table = parsePerfMap(text);
        perf.size = size;
        this.stats.perfMapLoads++;
      } catch {
        // Gone between stat and read: keep what we had.
      }
      return;
    }
  }

  private perfMapPaths(pid: number): string[] {
    let nsPid = pid;
    try {
      const status = readFileSync(`${this.proc}/${pid}/status`, "latin1");
      const line = /^NSpid:\s*(.+)$/m.exec(status)?.[1];
      const last = line?.trim().split(/\s+/).pop();
      if (last && /^\d+$/.test(last)) nsPid = Number(last);
    } catch {
      // No status: use the host pid.
    }
    return [`${this.proc}/${pid}/root/tmp/perf-${nsPid}.map`, `/tmp/perf-${pid}.map`];
  }

  private resolveKernel(addr: bigint): Frame {
    if (!this.kernelEnabled) return this.unresolved("kernel-unavailable");
    if (this.kallsyms === undefined) {
      try {
        const t = parseKallsyms(readFileSync(`${this.proc}/kallsyms`, "latin1"));
        this.kallsyms = t.size > 0 ? t : null;
      } catch {
        this.kallsyms = null;
      }
    }
    const t = this.kallsyms;
    if (!t) return this.unresolved("kernel-unavailable");
    const i = t.indexOf(addr);
    if (i < 0) return this.unresolved("no-mapping");
    this.stats.resolved++;
    this.stats.kernel++;
    return {
      status: "resolved",
      kind: "kernel",
      symbol: t.names[i] as string,
      offset: Number(addr - (t.starts[i] as bigint)),
    };
  }
}
