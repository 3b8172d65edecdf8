// The operator's hot-symbol index: which functions ran, in which image, BuildID, pod and node, when.
//
// Layout. Time is cut into buckets (default 60 s) by each batch's window end; a bucket is "at" its start
// time b and belongs to a query window [since, until) iff since <= b < until (prune drops b < beforeMs).
//   - per key (imageDigest, buildId, symbol), per bucket: samples whose stack contains the symbol (once per
//     stack, however often it recurses), counts by pod ("namespace/name") and by node, and a top-stacks table
//     of at most `maxStacks` (64) stack strings, the smallest evicted when a new one arrives;
//   - per imageDigest, per bucket: all samples (the CPU-share base);
//   - per BuildID: samples, last seen, the most recent 64 pods and nodes;
//   - per BuildID: the executable sections the agent sent (to map file offsets to vaddrs for the namer).
//
// Memory bound. Distinct keys <= maxKeys (default 200,000), the least recently folded key evicted beyond
// it, and stats.approxBytes <= maxBytes (default 1 GiB) after every batch, least recently folded keys evicted
// until it holds (both counted in stats.evictedKeys; per-image totals and BuildID records stay). Each
// (key, bucket) cell holds at most maxStacks stacks and maxPodsPerCell pods and nodes; at most
// retentionMs / bucketMs buckets (1,500 at 25 h / 60 s); maxBuildIds (10,000) BuildID records and layouts.
// Strings (stacks, pods, nodes, symbols) are interned in a reference-counted pool, so a stack shared by 20
// symbols is held once. stats.approxBytes is maintained as data comes and goes: pooled string bytes plus
// fixed per-structure estimates of V8's Maps and objects (bench/hot-index.bench.ts compares it with the
// heap growth).
import { StellaError } from "../../core/errors.ts";
import type { Frame__Output, Section__Output, StackBatch__Output } from "../../proto/evidence.ts";
import type {
  BuildIdObservation,
  HotSymbolIndex,
  StackCount,
  SymbolNamer,
  SymbolObservation,
  SymbolQuery,
} from "./types.ts";

export type IndexErrorCode = "INDEX_BAD_BATCH" | "INDEX_BAD_OPTION";
export class IndexError extends StellaError<IndexErrorCode> {}

export interface HotSymbolIndexOptions {
  /** Names stripped native frames (no symbol, a BuildID) from FuncProof function tables. */
  namer?: SymbolNamer;
  /** Bucket width, ms. Default 60,000. */
  bucketMs?: number;
  /** Samples older than now - retentionMs are dropped and pruned. Default 25 h. */
  retentionMs?: number;
  /** Distinct (imageDigest, buildId, symbol) keys kept. Default 200,000. */
  maxKeys?: number;
  /**
   * Budget for stats.approxBytes: after each batch, least recently folded keys are evicted until the estimate
   * is within it (a batch may overshoot it until then). Default 1 GiB.
   */
  maxBytes?: number;
  /** Stack strings per key per bucket. Default 64. */
  maxStacks?: number;
  /** Pods (and, separately, nodes) counted per key per bucket; samples beyond still count. Default 256. */
  maxPodsPerCell?: number;
  /** BuildIDs with a record (and, separately, with a section layout). Default 10,000. */
  maxBuildIds?: number;
  /** Clock for retention. Default Date.now. */
  now?: () => number;
}

export interface HotSymbolIndexStats {
  symbols: number;
  buckets: number;
  approxBytes: number;
  foldedBatches: number;
  /** Σ sample.count folded. */
  foldedSamples: number;
  /** Keys evicted by the maxKeys bound. */
  evictedKeys: number;
  /** Stack strings evicted from full top-stacks tables. */
  evictedStacks: number;
  /** Samples dropped because their window ended before the retention. */
  expiredSamples: number;
  /** Native frames named through the namer, and those left as "[buildid+0xoff]". */
  namedFrames: number;
  unnamedFrames: number;
}

/** Top stacks reported by query(). */
export const MAX_TOP_STACKS = 16;
/** Pods and nodes kept per BuildID record. */
export const MAX_BUILD_ID_PLACES = 64;
export const UNKNOWN_FRAME = "[unknown]";

/** The key of a frame nothing names: "[buildid+0xoff]", the offset the file offset in hex. */
export function unnamedFrame(buildId: string, fileOffset: number): string {
  return `[${buildId}+0x${fileOffset.toString(16)}]`;
}

// Estimates of V8 heap sizes (64-bit, no pointer compression), calibrated against the bench's heap delta.
const MAP_BYTES = 180; // an empty-ish JSMap and its hash table
const MAP_ENTRY_BYTES = 40; // key, value, chain link plus hash-table slack
const CELL_BYTES = 64 + 3 * MAP_BYTES; // Cell object and its three maps
const KEY_BYTES = 120 + MAP_BYTES + 2 * MAP_ENTRY_BYTES; // Key object, its cells map, keys + byName entries
const STRING_BYTES = 24; // string header (one-byte strings: 1 byte per char)
const BUILD_ID_BYTES = 120 + 2 * MAP_BYTES + MAP_ENTRY_BYTES;

interface Cell {
  samples: number;
  firstSeenMs: number;
  lastSeenMs: number;
  pods: Map<string, number>;
  nodes: Map<string, number>;
  stacks: Map<string, number>;
}

interface Key {
  image: string;
  buildId: string;
  symbol: string;
  /** Bucket start → cell. */
  cells: Map<number, Cell>;
  /** The fold (batch number) that last touched it: LRU order is refreshed once per batch. */
  tick: number;
  /** The sample that last counted it: a symbol counts once per stack. */
  sample: number;
}

interface BuildIdRecord {
  samples: number;
  lastSeenMs: number;
  /** Place → stamp of its last sample; the oldest stamp goes beyond MAX_BUILD_ID_PLACES. */
  pods: Map<string, number>;
  nodes: Map<string, number>;
  sample: number;
}

interface Layout {
  sections: { fileOffset: number; end: number; address: number }[];
}

/** Reference-counted string pool: one copy of each string however many tables hold it. */
class StringPool {
  readonly #refs = new Map<string, { s: string; n: number }>();
  bytes = 0;

  acquire(s: string): string {
    const r = this.#refs.get(s);
    if (r) {
      r.n++;
      return r.s;
    }
    this.#refs.set(s, { s, n: 1 });
    this.bytes += STRING_BYTES + s.length + MAP_ENTRY_BYTES + 32;
    return s;
  }

  /** The pooled copy of `s` if any (no reference taken): later Map lookups then compare by identity. */
  canonical(s: string): string {
    return this.#refs.get(s)?.s ?? s;
  }

  release(s: string): void {
    const r = this.#refs.get(s);
    if (!r) return;
    if (--r.n === 0) {
      this.#refs.delete(s);
      this.bytes -= STRING_BYTES + s.length + MAP_ENTRY_BYTES + 32;
    }
  }

  clear(): void {
    this.#refs.clear();
    this.bytes = 0;
  }
}

/** Samples of one batch with the same image and stack. */
interface Group {
  names: FrameName[];
  count: number;
  /** "namespace/name" → samples (host processes left out). */
  pods: Map<string, number>;
}

/** One frame's name in a sample, and whether it is a key (symbol) of the index. */
interface FrameName {
  name: string;
  buildId: string;
  indexed: boolean;
}

export class HotSymbolIndexImpl implements HotSymbolIndex {
  readonly #namer: SymbolNamer | undefined;
  readonly #bucketMs: number;
  readonly #retentionMs: number;
  readonly #maxKeys: number;
  readonly #maxStacks: number;
  readonly #maxPods: number;
  readonly #maxBuildIds: number;
  readonly #maxBytes: number;
  readonly #now: () => number;

  /** imageDigest → buildId → symbol → key (nested: no per-frame key string to build and hash). */
  readonly #keys = new Map<string, Map<string, Map<string, Key>>>();
  /** Every key once; iteration order = least recently folded first. */
  readonly #lru = new Set<Key>();
  readonly #byName = new Map<string, Set<Key>>();
  /** Bucket start → imageDigest → samples, last window end. */
  readonly #totals = new Map<number, Map<string, { samples: number; lastSeenMs: number }>>();
  readonly #buildIds = new Map<string, BuildIdRecord>();
  readonly #layouts = new Map<string, Layout>();
  readonly #pool = new StringPool();
  #structBytes = 0;
  #tick = 0;
  #sample = 0;
  #lastAutoPrune = -Infinity;
  #counters = zeroCounters();

  constructor(opts: HotSymbolIndexOptions = {}) {
    this.#namer = opts.namer;
    this.#bucketMs = positive(opts.bucketMs ?? 60_000, "bucketMs");
    this.#retentionMs = positive(opts.retentionMs ?? 25 * 3600_000, "retentionMs");
    this.#maxKeys = positive(opts.maxKeys ?? 200_000, "maxKeys");
    this.#maxStacks = positive(opts.maxStacks ?? 64, "maxStacks");
    this.#maxPods = positive(opts.maxPodsPerCell ?? 256, "maxPodsPerCell");
    this.#maxBuildIds = positive(opts.maxBuildIds ?? 10_000, "maxBuildIds");
    this.#maxBytes = positive(opts.maxBytes ?? 1024 ** 3, "maxBytes");
    this.#now = opts.now ?? Date.now;
  }

  get stats(): HotSymbolIndexStats {
    return {
      symbols: this.#lru.size,
      buckets: this.#totals.size,
      approxBytes: this.#structBytes + this.#pool.bytes,
      ...this.#counters,
    };
  }

  fold(batch: StackBatch__Output): void {
    const end = batch.window?.endUnixMs;
    if (typeof end !== "number" || !Number.isFinite(end) || end <= 0) {
      throw new IndexError("INDEX_BAD_BATCH", `batch ${batch.agentId}#${batch.seq}: no window end`);
    }
    const now = this.#now();
    const cutoff = now - this.#retentionMs;
    if (now - this.#lastAutoPrune >= this.#bucketMs) {
      this.#lastAutoPrune = now;
      this.prune(cutoff);
    }
    this.#counters.foldedBatches++;
    const tick = ++this.#tick;
    for (const b of batch.binaries ?? []) this.#addLayout(b.buildId, b.sections ?? []);

    const bucket = Math.floor(end / this.#bucketMs) * this.#bucketMs;
    if (bucket < cutoff) {
      for (const s of batch.samples ?? []) this.#counters.expiredSamples += s.count;
      return;
    }
    const node = this.#pool.canonical(batch.node ?? "");
    let totals = this.#totals.get(bucket);
    if (!totals) {
      totals = new Map();
      this.#totals.set(bucket, totals);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }

    // Samples of one image with the same stack (other pods, containers) are grouped first: the per-frame
    // work (one key, cell, node and stack update per distinct symbol) is then done once per group.
    const groups = new Map<string, Map<string, Group>>();
    for (const sample of batch.samples ?? []) {
      const count = sample.count;
      if (!(count > 0)) continue;
      this.#counters.foldedSamples += count;
      const image = this.#pool.canonical(sample.imageDigest ?? "");
      let t = totals.get(image);
      if (!t) {
        t = { samples: 0, lastSeenMs: end };
        totals.set(this.#pool.acquire(image), t);
        this.#structBytes += MAP_ENTRY_BYTES + 48;
      }
      t.samples += count;
      if (end > t.lastSeenMs) t.lastSeenMs = end;

      const frames = sample.frames ?? [];
      if (frames.length === 0) continue;
      const names = frames.map((f) => this.#frameName(f));
      const stack = this.#pool.canonical(names.map((n) => n.name).join(";"));
      let byImage = groups.get(stack);
      if (!byImage) {
        byImage = new Map();
        groups.set(stack, byImage);
      }
      let g = byImage.get(image);
      if (!g) {
        g = { names, count: 0, pods: new Map() };
        byImage.set(image, g);
      }
      g.count += count;
      if (sample.pod) {
        const pod = this.#pool.canonical(`${sample.namespace ?? ""}/${sample.pod}`);
        g.pods.set(pod, (g.pods.get(pod) ?? 0) + count);
      }
    }

    for (const [stack, byImage] of groups) {
      for (const [image, g] of byImage) {
        const serial = ++this.#sample;
        for (const n of g.names) {
          if (n.buildId !== "") this.#touchBuildId(n.buildId, serial, g, end, node);
        }
        const byBuildId = this.#imageKeys(image);
        for (const n of g.names) {
          if (!n.indexed) continue;
          const key = this.#key(byBuildId, image, n.buildId, n.name, tick);
          if (key.sample === serial) continue; // recursion: once per stack
          key.sample = serial;
          this.#addToCell(key, bucket, end, g, node, stack);
        }
      }
    }
    // The byte budget, checked once no key of this batch is in use.
    while (this.#structBytes + this.#pool.bytes > this.#maxBytes) {
      const oldest = this.#lru.values().next().value;
      if (!oldest) break;
      this.#dropKey(oldest);
      this.#counters.evictedKeys++;
    }
  }

  query(q: SymbolQuery): SymbolObservation {
    const keys = this.#byName.get(q.name);
    const buildFilter = q.buildIds && q.buildIds.length > 0 ? new Set(q.buildIds) : undefined;
    let samples = 0;
    const buildIds = new Set<string>();
    const pods = new Set<string>();
    const nodes = new Set<string>();
    const stacks = new Map<string, number>();
    let first = Infinity;
    let last = -Infinity;
    for (const key of keys ?? []) {
      if (buildFilter && !buildFilter.has(key.buildId)) continue;
      if (q.imageDigest !== undefined && key.image !== q.imageDigest) continue;
      let hit = false;
      for (const [b, cell] of key.cells) {
        if (b < q.sinceMs || b >= q.untilMs) continue;
        hit = true;
        samples += cell.samples;
        if (cell.firstSeenMs < first) first = cell.firstSeenMs;
        if (cell.lastSeenMs > last) last = cell.lastSeenMs;
        for (const p of cell.pods.keys()) if (p !== "") pods.add(p);
        for (const n of cell.nodes.keys()) if (n !== "") nodes.add(n);
        for (const [s, c] of cell.stacks) stacks.set(s, (stacks.get(s) ?? 0) + c);
      }
      if (hit && key.buildId !== "") buildIds.add(key.buildId);
    }
    const out: SymbolObservation = {
      samples,
      productSamples: this.productSamples(q.imageDigest, q.sinceMs, q.untilMs).samples,
      buildIds: [...buildIds].sort(),
      pods: [...pods].sort(),
      nodes: [...nodes].sort(),
      topStacks: topStacks(stacks, MAX_TOP_STACKS),
    };
    if (samples > 0) {
      out.firstSeenMs = first;
      out.lastSeenMs = last;
    }
    return out;
  }

  productSamples(
    imageDigest: string | undefined,
    sinceMs: number,
    untilMs: number,
  ): { samples: number; lastSeenMs?: number } {
    let samples = 0;
    let last = -Infinity;
    for (const [b, totals] of this.#totals) {
      if (b < sinceMs || b >= untilMs) continue;
      for (const [image, t] of totals) {
        if (imageDigest !== undefined && image !== imageDigest) continue;
        samples += t.samples;
        if (t.lastSeenMs > last) last = t.lastSeenMs;
      }
    }
    return samples > 0 ? { samples, lastSeenMs: last } : { samples };
  }

  buildId(buildId: string): BuildIdObservation | undefined {
    const r = this.#buildIds.get(buildId);
    if (!r) return undefined;
    return {
      buildId,
      samples: r.samples,
      lastSeenMs: r.lastSeenMs,
      pods: [...r.pods.keys()].filter((p) => p !== "").sort(),
      nodes: [...r.nodes.keys()].filter((n) => n !== "").sort(),
    };
  }

  prune(beforeMs: number): void {
    // Every cell's bucket has a totals entry (both are made by the same fold), so the doomed buckets are
    // found there and each key is probed only for them: O(keys x doomed buckets), ~O(keys) per minute.
    const doomed: number[] = [];
    for (const [b, totals] of this.#totals) {
      if (b >= beforeMs) continue;
      doomed.push(b);
      for (const image of totals.keys()) this.#pool.release(image);
      this.#structBytes -= MAP_BYTES + MAP_ENTRY_BYTES + totals.size * (MAP_ENTRY_BYTES + 48);
      this.#totals.delete(b);
    }
    if (doomed.length > 0) {
      for (const key of this.#lru) {
        for (const b of doomed) {
          const cell = key.cells.get(b);
          if (cell) this.#dropCell(key, b, cell);
        }
        if (key.cells.size === 0) this.#dropKey(key);
      }
    }
    for (const [id, r] of this.#buildIds) {
      if (r.lastSeenMs < beforeMs) this.#dropBuildId(id, r);
    }
  }

  clear(): void {
    this.#keys.clear();
    this.#lru.clear();
    this.#byName.clear();
    this.#totals.clear();
    this.#buildIds.clear();
    this.#layouts.clear();
    this.#pool.clear();
    this.#structBytes = 0;
    this.#counters = zeroCounters();
  }

  /** Whether the agent described `buildId`'s sections (file offsets can be mapped to vaddrs). */
  hasLayout(buildId: string): boolean {
    return this.#layouts.has(buildId);
  }

  #frameName(f: Frame__Output): FrameName {
    switch (f.kind) {
      case "KIND_NATIVE": {
        const buildId = f.buildId ?? "";
        if (f.symbol !== undefined && f.symbol !== "") return { name: f.symbol, buildId, indexed: true };
        if (buildId === "") return { name: UNKNOWN_FRAME, buildId, indexed: false };
        const named = this.#name(buildId, f.fileOffset);
        if (named !== undefined) {
          this.#counters.namedFrames++;
          return { name: named, buildId, indexed: true };
        }
        this.#counters.unnamedFrames++;
        return { name: unnamedFrame(buildId, f.fileOffset), buildId, indexed: true };
      }
      case "KIND_JIT":
      case "KIND_KERNEL":
        if (f.symbol !== undefined && f.symbol !== "") return { name: f.symbol, buildId: "", indexed: true };
        return { name: UNKNOWN_FRAME, buildId: "", indexed: false };
      default:
        return { name: UNKNOWN_FRAME, buildId: "", indexed: false };
    }
  }

  #name(buildId: string, fileOffset: number): string | undefined {
    if (!this.#namer) return undefined;
    const layout = this.#layouts.get(buildId);
    if (!layout) return undefined;
    for (const s of layout.sections) {
      if (fileOffset >= s.fileOffset && fileOffset < s.end) {
        return this.#namer.nameAt(buildId, fileOffset - s.fileOffset + s.address)?.symbol;
      }
    }
    return undefined;
  }

  #addLayout(buildId: string, sections: readonly Section__Output[]): void {
    if (!buildId || sections.length === 0) return;
    const old = this.#layouts.get(buildId);
    if (old) {
      this.#layouts.delete(buildId);
      this.#structBytes -= layoutBytes(buildId, old);
    } else if (this.#layouts.size >= this.#maxBuildIds) {
      const [oldestId, oldest] = this.#layouts.entries().next().value ?? [];
      if (oldestId !== undefined && oldest !== undefined) {
        this.#layouts.delete(oldestId);
        this.#structBytes -= layoutBytes(oldestId, oldest);
      }
    }
    const layout: Layout = {
      sections: sections
        .filter((s) => s.size > 0)
        .map((s) => ({ fileOffset: s.fileOffset, end: s.fileOffset + s.size, address: s.address })),
    };
    this.#layouts.set(buildId, layout);
    this.#structBytes += layoutBytes(buildId, layout);
  }

  #touchBuildId(buildId: string, serial: number, g: Group, end: number, node: string): void {
    let r = this.#buildIds.get(buildId);
    if (r?.sample === serial) return; // once per stack
    if (!r) {
      if (this.#buildIds.size >= this.#maxBuildIds) {
        // Evict the least recently seen (by window end; ties: first inserted).
        let victim: [string, BuildIdRecord] | undefined;
        for (const e of this.#buildIds) if (!victim || e[1].lastSeenMs < victim[1].lastSeenMs) victim = e;
        if (victim) this.#dropBuildId(victim[0], victim[1]);
      }
      r = { samples: 0, lastSeenMs: end, pods: new Map(), nodes: new Map(), sample: serial };
      this.#buildIds.set(this.#pool.acquire(buildId), r);
      this.#structBytes += BUILD_ID_BYTES;
    }
    r.sample = serial;
    r.samples += g.count;
    if (end > r.lastSeenMs) r.lastSeenMs = end;
    for (const pod of g.pods.keys()) this.#recent(r.pods, pod, end);
    this.#recent(r.nodes, node, end);
  }

  /** The MAX_BUILD_ID_PLACES most recently seen places (by window end; ties: the greatest name goes). */
  #recent(m: Map<string, number>, s: string, end: number): void {
    if (s === "") return;
    const last = m.get(s);
    if (last !== undefined) {
      if (end > last) m.set(s, end);
      return;
    }
    if (m.size >= MAX_BUILD_ID_PLACES) {
      let victim: string | undefined;
      let min = Infinity;
      for (const [p, t] of m) {
        if (t < min || (t === min && victim !== undefined && p > victim)) {
          min = t;
          victim = p;
        }
      }
      if (victim === undefined || min > end || (min === end && victim < s)) return; // s is the oldest
      m.delete(victim);
      this.#pool.release(victim);
      this.#structBytes -= MAP_ENTRY_BYTES;
    }
    m.set(this.#pool.acquire(s), end);
    this.#structBytes += MAP_ENTRY_BYTES;
  }

  #dropBuildId(id: string, r: BuildIdRecord): void {
    for (const p of r.pods.keys()) this.#pool.release(p);
    for (const n of r.nodes.keys()) this.#pool.release(n);
    this.#structBytes -= BUILD_ID_BYTES + (r.pods.size + r.nodes.size) * MAP_ENTRY_BYTES;
    this.#buildIds.delete(id);
    this.#pool.release(id);
  }

  #imageKeys(image: string): Map<string, Map<string, Key>> {
    let m = this.#keys.get(image);
    if (!m) {
      m = new Map();
      this.#keys.set(this.#pool.acquire(image), m);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }
    return m;
  }

  #key(
    byBuildId: Map<string, Map<string, Key>>,
    image: string,
    buildId: string,
    symbol: string,
    tick: number,
  ): Key {
    let bySymbol = byBuildId.get(buildId);
    let key = bySymbol?.get(symbol);
    if (key) {
      if (key.tick !== tick) {
        // Refresh the LRU position once per batch.
        this.#lru.delete(key);
        this.#lru.add(key);
        key.tick = tick;
      }
      return key;
    }
    while (this.#lru.size >= this.#maxKeys) {
      const oldest = this.#lru.values().next().value;
      if (!oldest) break;
      this.#dropKey(oldest);
      this.#counters.evictedKeys++;
    }
    if (!bySymbol || byBuildId.get(buildId) !== bySymbol) {
      // (Re)create: the eviction above may have removed an emptied map.
      bySymbol = byBuildId.get(buildId);
      if (!bySymbol) {
        bySymbol = new Map();
        byBuildId.set(this.#pool.acquire(buildId), bySymbol);
        this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
      }
      if (!this.#keys.has(image)) {
        this.#keys.set(this.#pool.acquire(image), byBuildId);
        this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
      }
    }
    key = {
      image: this.#pool.acquire(image),
      buildId: this.#pool.acquire(buildId),
      symbol: this.#pool.acquire(symbol),
      cells: new Map(),
      tick,
      sample: 0,
    };
    bySymbol.set(key.symbol, key);
    this.#lru.add(key);
    let set = this.#byName.get(key.symbol);
    if (!set) {
      set = new Set();
      this.#byName.set(key.symbol, set);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }
    set.add(key);
    this.#structBytes += KEY_BYTES;
    return key;
  }

  #dropKey(key: Key): void {
    for (const [b, cell] of key.cells) this.#dropCell(key, b, cell);
    this.#lru.delete(key);
    const byBuildId = this.#keys.get(key.image);
    const bySymbol = byBuildId?.get(key.buildId);
    if (byBuildId && bySymbol) {
      bySymbol.delete(key.symbol);
      if (bySymbol.size === 0) {
        byBuildId.delete(key.buildId);
        this.#pool.release(key.buildId);
        this.#structBytes -= MAP_BYTES + MAP_ENTRY_BYTES;
        if (byBuildId.size === 0) {
          this.#keys.delete(key.image);
          this.#pool.release(key.image);
          this.#structBytes -= MAP_BYTES + MAP_ENTRY_BYTES;
        }
      }
    }
    const set = this.#byName.get(key.symbol);
    if (set) {
      set.delete(key);
      if (set.size === 0) {
        this.#byName.delete(key.symbol);
        this.#structBytes -= MAP_BYTES + MAP_ENTRY_BYTES;
      }
    }
    this.#pool.release(key.image);
    this.#pool.release(key.buildId);
    this.#pool.release(key.symbol);
    this.#structBytes -= KEY_BYTES;
  }

  #dropCell(key: Key, bucket: number, cell: Cell): void {
    for (const m of [cell.pods, cell.nodes, cell.stacks]) {
      for (const s of m.keys()) this.#pool.release(s);
      this.#structBytes -= m.size * MAP_ENTRY_BYTES;
    }
    this.#structBytes -= CELL_BYTES + MAP_ENTRY_BYTES;
    key.cells.delete(bucket);
  }

  #addToCell(key: Key, bucket: number, end: number, g: Group, node: string, stack: string): void {
    const count = g.count;
    let cell = key.cells.get(bucket);
    if (!cell) {
      cell = {
        samples: 0,
        firstSeenMs: end,
        lastSeenMs: end,
        pods: new Map(),
        nodes: new Map(),
        stacks: new Map(),
      };
      key.cells.set(bucket, cell);
      this.#structBytes += CELL_BYTES + MAP_ENTRY_BYTES;
    }
    cell.samples += count;
    if (end < cell.firstSeenMs) cell.firstSeenMs = end;
    if (end > cell.lastSeenMs) cell.lastSeenMs = end;
    for (const [pod, n] of g.pods) this.#countIn(cell.pods, pod, n, this.#maxPods);
    if (node !== "") this.#countIn(cell.nodes, node, count, this.#maxPods);
    const c = cell.stacks.get(stack);
    if (c !== undefined) {
      cell.stacks.set(stack, c + count);
      return;
    }
    if (cell.stacks.size >= this.#maxStacks) {
      // Evict the smallest (ties: the greatest string, so the choice does not depend on arrival order).
      // forEach: no entry arrays to collect on this hot path.
      let victim: string | undefined;
      let min = Infinity;
      cell.stacks.forEach((n, s) => {
        if (n < min || (n === min && victim !== undefined && s > victim)) {
          min = n;
          victim = s;
        }
      });
      if (victim !== undefined) {
        cell.stacks.delete(victim);
        this.#pool.release(victim);
        this.#structBytes -= MAP_ENTRY_BYTES;
        this.#counters.evictedStacks++;
      }
    }
    cell.stacks.set(this.#pool.acquire(stack), count);
    this.#structBytes += MAP_ENTRY_BYTES;
  }

  #countIn(m: Map<string, number>, s: string, count: number, max: number): void {
    const c = m.get(s);
    if (c !== undefined) m.set(s, c + count);
    else if (m.size < max) {
      m.set(this.#pool.acquire(s), count);
      this.#structBytes += MAP_ENTRY_BYTES;
    }
  }
}

/** A hot-symbol index with the given options (see HotSymbolIndexOptions for the defaults). */
export function createHotSymbolIndex(opts: HotSymbolIndexOptions = {}): HotSymbolIndexImpl {
  return new HotSymbolIndexImpl(opts);
}

function zeroCounters(): Omit<HotSymbolIndexStats, "symbols" | "buckets" | "approxBytes"> {
  return {
    foldedBatches: 0,
    foldedSamples: 0,
    evictedKeys: 0,
    evictedStacks: 0,
    expiredSamples: 0,
    namedFrames: 0,
    unnamedFrames: 0,
  };
}

function topStacks(stacks: Map<string, number>, n: number): StackCount[] {
  return [...stacks]
    .map(([stack, count]) => ({ stack, count }))
    .sort((a, b) => b.count - a.count || (a.stack < b.stack ? -1 : a.stack > b.stack ? 1 : 0))
    .slice(0, n);
}

function layoutBytes(buildId: string, l: Layout): number {
  return 64 + STRING_BYTES + buildId.length + MAP_ENTRY_BYTES + l.sections.length * 56;
}

function positive(v: number, name: string): number {
  if (!Number.isFinite(v) || v <= 0)
    throw new IndexError("INDEX_BAD_OPTION", `${name}: expected > 0, got ${v}`);
  return v;
}
