// One interval of raw bpftrace stacks → attributed, symbolised, collapsed samples (a BatchBody).
//
// Per raw stack: attribute the pid (container, pod, image), resolve each address to a canonical frame,
// and add its count to the (attribution, frames) bucket. Frames after the leaf are return addresses:
// they are resolved at addr - 1, the last byte of the call instruction, so a call that ends a function
// (a noreturn callee) is still attributed to the caller (what perf, Parca and eu-addr2line's -i do).
// A stack none of whose frames resolve, or whose process is gone before it could be attributed, is not
// shipped: it is counted in droppedSamples (and the reason in stats).
import type { StackSample } from "../sampler/bpftrace-output.ts";
import type { Frame } from "../symbolize/symbolizer.ts";
import type { BinaryInfo } from "../symbolize/elf-cache.ts";
import type { Attribution, AttributionSource } from "./attribution.ts";
import type { BatchBody, WireBinary, WireFrame, WireSample, WireWindow } from "./wire.ts";

/** What the aggregator needs of the symboliser (agent/symbolize/symbolizer.ts fits). */
export interface FrameResolver {
  resolve(pid: number, addr: bigint): Frame;
  readonly cache: { getByBuildId(buildId: string): BinaryInfo | undefined };
}

export interface AggregatorOptions {
  resolver: FrameResolver;
  attribution: AttributionSource;
  /** Keep pid and comm in the bucket key (local `stella agent record`; never on the wire). */
  byProcess?: boolean;
  /** Accept only these pids (userspace half of the cgroup filter); default all. */
  accept?: (pid: number) => boolean;
  /** Send each binary's sections once per agent run (default true); false sends them in every batch. */
  binariesOnce?: boolean;
}

export interface AggregatorStats {
  /** Raw stacks and samples seen (bpftrace keys and the sum of their counts). */
  stacksIn: number;
  samplesIn: number;
  /** Distinct buckets produced. */
  stacksOut: number;
  samplesOut: number;
  framesResolved: number;
  framesUnresolved: number;
  /** Samples dropped because the process exited before attribution. */
  droppedExited: number;
  /** Samples dropped because no frame of the stack resolved. */
  droppedUnresolved: number;
  /** Samples the cgroup filter rejected. */
  filtered: number;
}

/** A bucket as `stella agent record` shows it. */
export interface LocalSample extends WireSample {
  pid?: number;
  comm?: string;
}

interface Bucket {
  sample: LocalSample;
  /** The attribution (and, byProcess, the process) this stack belongs to, as a small id. */
  owner: number;
  entries: FrameEntry[];
}

const RETURN_ADDRESS_ADJUST = 1n;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** Canonical wire frame for a symbolizer result. */
export function toWireFrame(f: Frame): WireFrame {
  if (f.status === "unresolved")
    return { kind: "KIND_UNRESOLVED", buildId: "", fileOffset: 0, unresolvedReason: f.reason };
  if (f.kind === "native") {
    const w: WireFrame = {
      kind: "KIND_NATIVE",
      buildId: f.buildId ?? "",
      fileOffset: f.fileOffset,
      unresolvedReason: "",
    };
    if (f.symbol !== undefined) {
      w.symbol = f.symbol;
      w.offset = f.offset ?? 0;
    }
    return w;
  }
  return {
    kind: f.kind === "jit" ? "KIND_JIT" : "KIND_KERNEL",
    buildId: "",
    fileOffset: 0,
    symbol: f.symbol,
    offset: f.offset,
    unresolvedReason: "",
  };
}

function frameKey(w: WireFrame): string {
  switch (w.kind) {
    case "KIND_NATIVE":
      return `n${w.buildId}:${w.fileOffset}`;
    case "KIND_UNRESOLVED":
      return `u${w.unresolvedReason}`;
    default:
      return `${w.kind === "KIND_JIT" ? "j" : "k"}${w.symbol ?? ""}+${w.offset ?? 0}`;
  }
}

function attributionKey(a: Attribution): string {
  return `${a.container}\u0000${a.pod}\u0000${a.namespace}\u0000${a.containerName}\u0000${a.imageDigest}`;
}

/** One canonical frame of the current interval, shared by every sample that contains it. */
interface FrameEntry {
  id: number;
  wire: WireFrame;
  key: string;
  resolved: boolean;
}

export class StackAggregator {
  readonly stats: AggregatorStats = {
    stacksIn: 0,
    samplesIn: 0,
    stacksOut: 0,
    samplesOut: 0,
    framesResolved: 0,
    framesUnresolved: 0,
    droppedExited: 0,
    droppedUnresolved: 0,
    filtered: 0,
  };
  readonly #opts: AggregatorOptions;
  /** Buckets by stack hash (collisions chained). */
  #buckets = new Map<number, Bucket[]>();
  #size = 0;
  /** (attribution, pid, comm) → owner id, when byProcess. */
  #owners = new Map<string, number>();
  /** pid → attribution (undefined: exited), per interval. */
  #who = new Map<number, Attribution | undefined>();
  #dropped = 0;
  /**
   * Per interval: (pid, address) → frame, and canonical frame key → frame. Stacks of one process share
   * most frames (main, the runtime's loop, libc), so each address is symbolised once per interval and
   * each canonical frame object exists once, however many samples hold it.
   */
  #byAddress = new Map<number, Map<number | string, FrameEntry>>();
  #byKey = new Map<string, FrameEntry>();
  #attrIds = new Map<string, number>();
  /** BuildIDs already described to the receiver (binariesOnce). */
  readonly #sentBinaries = new Set<string>();
  #pendingBinaries = new Map<string, WireBinary>();

  constructor(opts: AggregatorOptions) {
    this.#opts = opts;
  }

  #frame(pid: number, addr: bigint): FrameEntry {
    let perPid = this.#byAddress.get(pid);
    if (!perPid) {
      perPid = new Map();
      this.#byAddress.set(pid, perPid);
    }
    // Number keys hash far faster than BigInt ones; user addresses (< 2^47) are exact as numbers.
    const ak = addr < MAX_EXACT ? Number(addr) : addr.toString(16);
    const hit = perPid.get(ak);
    if (hit) return hit;
    const f = this.#opts.resolver.resolve(pid, addr);
    const wire = toWireFrame(f);
    const key = frameKey(wire);
    let e = this.#byKey.get(key);
    if (!e) {
      e = { id: this.#byKey.size, wire, key, resolved: f.status === "resolved" };
      this.#byKey.set(key, e);
      if (wire.kind === "KIND_NATIVE" && wire.buildId !== "") this.#noteBinary(wire.buildId);
    }
    perPid.set(ak, e);
    return e;
  }

  /** Folds one interval's raw stacks in. */
  add(stacks: readonly StackSample[]): void {
    const { attribution, accept } = this.#opts;
    for (const s of stacks) {
      this.stats.stacksIn++;
      this.stats.samplesIn += s.count;
      if (accept && !accept(s.pid)) {
        this.stats.filtered += s.count;
        continue;
      }
      // Once per pid per interval: the Attributor validates its cache with a /proc read on each call.
      let who = this.#who.get(s.pid);
      if (who === undefined && !this.#who.has(s.pid)) {
        who = attribution.attribute(s.pid);
        this.#who.set(s.pid, who);
      }
      if (!who) {
        this.stats.droppedExited += s.count;
        this.#dropped += s.count;
        continue;
      }
      const ak = attributionKey(who);
      let aid = this.#attrIds.get(ak);
      if (aid === undefined) {
        aid = this.#attrIds.size;
        this.#attrIds.set(ak, aid);
      }
      let owner = aid;
      if (this.#opts.byProcess) {
        const pk = `${aid}\u0000${s.pid}\u0000${s.comm}`;
        owner = this.#owners.get(pk) ?? this.#owners.size;
        this.#owners.set(pk, owner);
      }
      const entries: FrameEntry[] = new Array<FrameEntry>(s.frames.length);
      let resolved = 0;
      // FNV-1a over (owner, frame ids): a number key instead of a string per stack; equal hashes are
      // told apart by comparing the frame entries themselves.
      let h = Math.imul(0x811c9dc5 ^ owner, 0x01000193);
      for (let i = 0; i < s.frames.length; i++) {
        const raw = s.frames[i] as bigint;
        const e = this.#frame(s.pid, i === 0 || raw === 0n ? raw : raw - RETURN_ADDRESS_ADJUST);
        if (e.resolved) resolved++;
        entries[i] = e;
        h = Math.imul(h ^ e.id, 0x01000193);
      }
      this.stats.framesResolved += resolved;
      this.stats.framesUnresolved += entries.length - resolved;
      if (resolved === 0) {
        this.stats.droppedUnresolved += s.count;
        this.#dropped += s.count;
        continue;
      }
      let chain = this.#buckets.get(h);
      if (!chain) {
        chain = [];
        this.#buckets.set(h, chain);
      }
      const b = chain.find((x) => x.owner === owner && sameFrames(x.entries, entries));
      if (b) b.sample.count += s.count;
      else {
        const sample: LocalSample = { ...who, frames: entries.map((e) => e.wire), count: s.count };
        if (this.#opts.byProcess) {
          sample.pid = s.pid;
          sample.comm = s.comm;
        }
        chain.push({ sample, owner, entries });
        this.#size++;
      }
    }
  }

  /** Forget which binaries were described: each is described again when next seen. */
  redescribeBinaries(): void {
    this.#sentBinaries.clear();
  }

  /** Distinct buckets held now (the memory that grows with stack diversity). */
  get size(): number {
    return this.#size;
  }

  /** Everything folded in since the last flush, as one body; resets. Samples sorted for determinism. */
  flush(window: WireWindow, hz: number): BatchBody & { samples: LocalSample[] } {
    // Heaviest first, then a total order on content (not on arrival), so equal inputs give
    // byte-identical output.
    const all: Bucket[] = [];
    for (const chain of this.#buckets.values()) for (const b of chain) all.push(b);
    all.sort(compareBuckets);
    const samples = all.map((b) => b.sample);
    this.stats.stacksOut += samples.length;
    for (const s of samples) this.stats.samplesOut += s.count;
    const binaries = [...this.#pendingBinaries.values()].sort((a, b) =>
      a.buildId < b.buildId ? -1 : a.buildId > b.buildId ? 1 : 0,
    );
    const body = { window, samples, binaries, hz, droppedSamples: this.#dropped };
    this.#buckets = new Map();
    this.#size = 0;
    this.#owners = new Map();
    this.#who = new Map();
    this.#pendingBinaries = new Map();
    this.#byAddress = new Map();
    this.#byKey = new Map();
    this.#attrIds = new Map();
    this.#dropped = 0;
    return body;
  }

  #noteBinary(buildId: string): void {
    if (this.#pendingBinaries.has(buildId)) return;
    const once = this.#opts.binariesOnce ?? true;
    if (once && this.#sentBinaries.has(buildId)) return;
    const info = this.#opts.resolver.cache.getByBuildId(buildId);
    if (!info) return;
    if (once) this.#sentBinaries.add(buildId);
    this.#pendingBinaries.set(buildId, {
      buildId,
      path: info.path,
      sections: info.sections.map((s) => ({ ...s })),
    });
  }
}

function sameFrames(a: readonly FrameEntry[], b: readonly FrameEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** count descending, then attribution, process, and frames by canonical key: a total order on content. */
function compareBuckets(x: Bucket, y: Bucket): number {
  const a = x.sample;
  const b = y.sample;
  if (a.count !== b.count) return b.count - a.count;
  const c =
    cmp(a.container, b.container) ||
    cmp(a.pod, b.pod) ||
    cmp(a.namespace, b.namespace) ||
    cmp(a.containerName, b.containerName) ||
    cmp(a.imageDigest, b.imageDigest) ||
    (a.pid ?? 0) - (b.pid ?? 0) ||
    cmp(a.comm ?? "", b.comm ?? "");
  if (c !== 0) return c;
  const n = Math.min(x.entries.length, y.entries.length);
  for (let i = 0; i < n; i++) {
    const d = cmp((x.entries[i] as FrameEntry).key, (y.entries[i] as FrameEntry).key);
    if (d !== 0) return d;
  }
  return x.entries.length - y.entries.length;
}
