// The operator's hot-symbol index: which functions ran, in which image, BuildID, pod and node, when.
//
// Layout. Time is cut into buckets (default 60 s) by each batch's window end; a bucket is "at" its start
// time b and belongs to a query window [since, until) iff since <= b < until (prune drops b < beforeMs).
//   - per bucket, per (stack, image): an entry with the stack's samples, counts by pod ("namespace/name") and
//     by node, and the cells of the stack's symbols (each symbol once, however often it recurses);
//   - per key (imageDigest, buildId, symbol), per bucket: a cell listing the entries of the stacks through the
//     symbol: its samples, first/last seen, top stacks, pods and nodes are theirs, summed at query time;
//   - per bucket, per imageDigest: all samples (the CPU-share base);
//   - per BuildID: samples, last seen, the most recent 64 pods and nodes, and the executable sections the
//     agent sent (to map file offsets to vaddrs for the namer).
// Why this shape: a stack recurs in every batch of every agent, so once its entry exists in a bucket, folding
// one more sample touches that entry only (not its ~20 cells, scattered in memory), with no per-frame lookups.
// A stack's frames are resolved to names once (cached by the decoder's shared, frozen frames array, see
// decode.ts).
//
// Memory bound. stats.approxBytes <= maxBytes (default 1 GiB) after every batch: the oldest buckets are dropped
// first (the retention shortens under pressure; stats.evictedBuckets); when only the bucket being folded is left
// over the budget, it takes no new stacks or symbols (stats.unindexedSamples), so the estimate overshoots by at
// most one batch's worth. Each bucket holds at most
// maxStacksPerBucket (default 50,000) (stack, image) entries; samples of further stacks still count for every
// symbol in them (samples, pods, nodes), they are only missing from top stacks (stats.overflowSamples).
// At most retentionMs / bucketMs buckets (1,500 at 25 h / 60 s); maxBuildIds (10,000) BuildID records and
// layouts; maxPodsPerCell pods and nodes per entry. Strings (stacks, pods, nodes, symbols) are interned in a
// reference-counted pool, so a stack seen in 1,500 buckets is held once. stats.approxBytes is maintained as
// data comes and goes: pooled string bytes plus fixed per-structure estimates of V8's objects
// (bench/hot-index.bench.ts compares it with the heap growth).
import { StellaError } from "../../core/errors.ts";
import type {
  Frame__Output,
  Sample__Output,
  Section__Output,
  StackBatch__Output,
} from "../../proto/evidence.ts";
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
  /**
   * Budget for stats.approxBytes: after each batch, the oldest buckets are dropped until the estimate is
   * within it (the newest bucket stays; a batch may overshoot until then). Default 1 GiB.
   */
  maxBytes?: number;
  /** (stack, image) entries per bucket; later stacks count without a top-stacks entry. Default 50,000. */
  maxStacksPerBucket?: number;
  /** Pods (and, separately, nodes) counted per entry; samples beyond still count. Default 256. */
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
  /** Buckets dropped by the maxBytes bound (before their retention ran out). */
  evictedBuckets: number;
  /** Samples of stacks beyond maxStacksPerBucket: counted for their symbols, not in top stacks. */
  overflowSamples: number;
  /**
   * Symbol samples not counted at all: a symbol first seen in a bucket already over the byte budget with
   * nothing older to drop (only under extreme or hostile load).
   */
  unindexedSamples: number;
  /** Samples dropped because their window ended before the retention. */
  expiredSamples: number;
  /** Native frames of distinct stacks named through the namer, and those left as "[buildid+0xoff]". */
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

// Estimates of V8 heap sizes (64-bit), calibrated against the bench's heap delta.
const MAP_BYTES = 180; // an empty-ish JSMap and its hash table
const MAP_ENTRY_BYTES = 40; // key, value, chain link plus hash-table slack
const ENTRY_BYTES = 120 + 2 * MAP_BYTES + 32; // Entry object, pods and nodes maps, cells array header
const CELL_BYTES = 96 + 32 + MAP_ENTRY_BYTES; // Cell object, entries array header, slot in key.cells
const POINTER_BYTES = 16; // one slot in entry.cells and one in cell.entries (arrays grow by half)
const KEY_BYTES = 120 + MAP_BYTES + 2 * MAP_ENTRY_BYTES; // Key object, its cells map, bySymbol + byName entries
const BUCKET_BYTES = 96 + 2 * MAP_BYTES + MAP_ENTRY_BYTES;
const STRING_BYTES = 24; // string header (one-byte strings: 1 byte per char)
const BUILD_ID_BYTES = 120 + 2 * MAP_BYTES + MAP_ENTRY_BYTES;

/** One stack of one image in one bucket. */
interface Entry {
  readonly stack: string;
  readonly image: string;
  count: number;
  firstSeenMs: number;
  lastSeenMs: number;
  /** "namespace/name" of pods it ran in (host processes left out), and nodes. */
  readonly pods: Set<string>;
  readonly nodes: Set<string>;
  /** The last pod and node added: runs of one pod (the agent's order) skip the set lookup. */
  lastPod: string;
  lastNode: string;
  /** The cells of the stack's symbols in this bucket (each once). */
  readonly cells: Cell[];
}

/** One key (symbol) in one bucket. */
interface Cell {
  readonly key: Key;
  /** Stacks through the symbol: its samples, first and last seen, top stacks, pods and nodes are theirs. */
  readonly entries: Entry[];
  /** Samples of overflow stacks (beyond maxStacksPerBucket), not in `entries`, and when. */
  samples: number;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Pods and nodes of overflow stacks, made when first needed. */
  pods: Set<string> | undefined;
  nodes: Set<string> | undefined;
}

interface Key {
  readonly image: string;
  readonly buildId: string;
  readonly symbol: string;
  /** Bucket start → cell. */
  readonly cells: Map<number, Cell>;
}

interface Bucket {
  readonly start: number;
  /** Stack identity → its entries, one per image (few: a stack is usually seen in one image). */
  readonly entries: Map<string, Entry[]>;
  entryCount: number;
  /** Over the byte budget with nothing older to drop: no new entries, keys or cells (see fold). */
  full: boolean;
  /** Every cell made in this bucket (prune drops them with it). */
  readonly cells: Cell[];
  /** imageDigest → samples, last window end. */
  readonly totals: Map<string, { samples: number; lastSeenMs: number }>;
}

/** A stack's frames resolved to names: once per distinct frames array (see #resolve). */
interface Resolved {
  readonly stack: string;
  /**
   * The stack and which binary each of its symbols is in: two stacks of equal names in other binaries are
   * other keys, so they are other entries.
   */
  readonly identity: string;
  /** Indexed (buildId, name) pairs, each once, leaf first. */
  readonly keys: readonly { buildId: string; name: string }[];
  /** Distinct non-empty BuildIDs. */
  readonly buildIds: readonly string[];
  /** Layout epoch it was named in, when some native frame stayed unnamed (a later layout may name it). */
  readonly epoch: number | undefined;
  /** The BuildID records of buildIds, valid while recordsEpoch is the index's. */
  records: BuildIdRecord[] | undefined;
  recordsEpoch: number;
  /** The entries of this stack in `bucket` (a cache of bucket.entries.get(stack)). */
  bucket: Bucket | undefined;
  entries: Entry[] | undefined;
}

/** One frame's name, and whether it is a key (symbol) of the index. */
interface FrameName {
  readonly name: string;
  readonly buildId: string;
  readonly indexed: boolean;
  /** false: a native frame left "[buildid+0xoff]" in layout epoch `epoch` (a later layout may name it). */
  readonly named?: boolean;
  readonly epoch?: number;
}

interface BuildIdRecord {
  samples: number;
  lastSeenMs: number;
  /** Place → stamp of its last sample; the oldest stamp goes beyond MAX_BUILD_ID_PLACES. */
  pods: Map<string, number>;
  nodes: Map<string, number>;
  /** The last pod and node stamped, and with which window end: a repeat needs no map lookup. */
  lastPod: string;
  lastPodEnd: number;
  lastNode: string;
  lastNodeEnd: number;
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

export class HotSymbolIndexImpl implements HotSymbolIndex {
  readonly #namer: SymbolNamer | undefined;
  readonly #bucketMs: number;
  readonly #retentionMs: number;
  readonly #maxStacks: number;
  readonly #maxPods: number;
  readonly #maxBuildIds: number;
  readonly #maxBytes: number;
  readonly #now: () => number;

  /** imageDigest → buildId → symbol → key (nested: no per-frame key string to build and hash). */
  readonly #keys = new Map<string, Map<string, Map<string, Key>>>();
  readonly #byName = new Map<string, Set<Key>>();
  #keyCount = 0;
  /** Bucket start → bucket, in creation order (not necessarily time order: batches arrive late). */
  readonly #buckets = new Map<number, Bucket>();
  readonly #buildIds = new Map<string, BuildIdRecord>();
  readonly #layouts = new Map<string, Layout>();
  /** Bumped when a BuildID record is dropped: Resolved.records made before then may hold it. */
  #recordsEpoch = 0;
  /** Bumped when a layout arrives or changes: stacks with unnamed frames are named again. */
  #layoutEpoch = 0;
  /** Frozen frames arrays (shared by the decoder across samples and batches) → their resolution. */
  #resolved = new WeakMap<readonly Frame__Output[], Resolved>();
  /** Frozen frames (the decoder's, one per distinct frame) → their names. */
  #frameNames = new WeakMap<Frame__Output, FrameName>();
  /** "namespace" → "pod" → "namespace/pod", so the per-sample pod key is not concatenated again. */
  readonly #podKeys = new Map<string, Map<string, string>>();
  readonly #pool = new StringPool();
  #structBytes = 0;
  #lastAutoPrune = -Infinity;
  #counters = zeroCounters();

  constructor(opts: HotSymbolIndexOptions = {}) {
    this.#namer = opts.namer;
    this.#bucketMs = positive(opts.bucketMs ?? 60_000, "bucketMs");
    this.#retentionMs = positive(opts.retentionMs ?? 25 * 3600_000, "retentionMs");
    this.#maxStacks = positive(opts.maxStacksPerBucket ?? 50_000, "maxStacksPerBucket");
    this.#maxPods = positive(opts.maxPodsPerCell ?? 256, "maxPodsPerCell");
    this.#maxBuildIds = positive(opts.maxBuildIds ?? 10_000, "maxBuildIds");
    this.#maxBytes = positive(opts.maxBytes ?? 1024 ** 3, "maxBytes");
    this.#now = opts.now ?? Date.now;
  }

  get stats(): HotSymbolIndexStats {
    return {
      symbols: this.#keyCount,
      buckets: this.#buckets.size,
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
    for (const b of batch.binaries) this.#addLayout(b.buildId, b.sections);

    const start = Math.floor(end / this.#bucketMs) * this.#bucketMs;
    if (start < cutoff) {
      for (const s of batch.samples) this.#counters.expiredSamples += s.count;
      return;
    }
    const bucket = this.#bucket(start);
    const node = batch.node;
    let lastImage: string | undefined;
    let totals: { samples: number; lastSeenMs: number } | undefined;
    for (const sample of batch.samples) {
      const count = sample.count;
      if (!(count > 0)) continue;
      this.#counters.foldedSamples += count;
      const image = sample.imageDigest;
      if (image !== lastImage || !totals) {
        totals = this.#totals(bucket, image, end);
        lastImage = image;
      }
      totals.samples += count;
      if (end > totals.lastSeenMs) totals.lastSeenMs = end;
      if (sample.frames.length === 0) continue;

      const r = this.#resolve(sample.frames);
      const pod = sample.pod === "" ? "" : this.#podKey(sample);
      if (r.records === undefined || r.recordsEpoch !== this.#recordsEpoch) {
        r.records = r.buildIds.map((id) => this.#buildIdRecord(id, end));
        r.recordsEpoch = this.#recordsEpoch;
      }
      for (const rec of r.records) {
        rec.samples += count;
        if (end > rec.lastSeenMs) rec.lastSeenMs = end;
        // Samples come sorted by count, then container (the agent's order): runs of one pod skip the lookup.
        if (pod !== "" && (pod !== rec.lastPod || end !== rec.lastPodEnd)) {
          this.#recent(rec.pods, pod, end);
          rec.lastPod = pod;
          rec.lastPodEnd = end;
        }
        if (node !== "" && (node !== rec.lastNode || end !== rec.lastNodeEnd)) {
          this.#recent(rec.nodes, node, end);
          rec.lastNode = node;
          rec.lastNodeEnd = end;
        }
      }
      if (r.bucket !== bucket) {
        r.bucket = bucket;
        r.entries = bucket.entries.get(r.identity);
      }
      let entry: Entry | undefined;
      if (r.entries) for (const e of r.entries) if (e.image === image) entry = e;
      entry ??= this.#newEntry(bucket, r, image, end);
      if (!entry) {
        this.#countOverflow(bucket, r, image, count, end, pod, node);
        continue;
      }
      // Only the entry: a symbol's samples are the sum of its stacks' (query adds them up), so the ~20 cells
      // of the stack (scattered in memory: a cache miss each) are not touched per sample.
      entry.count += count;
      if (end > entry.lastSeenMs) entry.lastSeenMs = end;
      else if (end < entry.firstSeenMs) entry.firstSeenMs = end;
      if (pod !== entry.lastPod && pod !== "") {
        this.#addPlace(entry.pods, pod);
        entry.lastPod = pod;
      }
      if (node !== entry.lastNode && node !== "") {
        this.#addPlace(entry.nodes, node);
        entry.lastNode = node;
      }
    }
    // The byte budget: the oldest buckets go first, never the one just folded into.
    while (this.#structBytes + this.#pool.bytes > this.#maxBytes) {
      let oldest: Bucket | undefined;
      for (const b of this.#buckets.values())
        if (b !== bucket && (!oldest || b.start < oldest.start)) oldest = b;
      if (!oldest) {
        bucket.full = true; // nothing older left to drop: this bucket takes no new stacks or symbols
        break;
      }
      this.#dropBucket(oldest);
      this.#counters.evictedBuckets++;
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
        if (cell.samples > 0) {
          samples += cell.samples;
          if (cell.firstSeenMs < first) first = cell.firstSeenMs;
          if (cell.lastSeenMs > last) last = cell.lastSeenMs;
        }
        for (const e of cell.entries) {
          samples += e.count;
          if (e.firstSeenMs < first) first = e.firstSeenMs;
          if (e.lastSeenMs > last) last = e.lastSeenMs;
          for (const p of e.pods.keys()) pods.add(p);
          for (const n of e.nodes.keys()) nodes.add(n);
          stacks.set(e.stack, (stacks.get(e.stack) ?? 0) + e.count);
        }
        if (cell.pods) for (const p of cell.pods.keys()) pods.add(p);
        if (cell.nodes) for (const n of cell.nodes.keys()) nodes.add(n);
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
    for (const [b, bucket] of this.#buckets) {
      if (b < sinceMs || b >= untilMs) continue;
      for (const [image, t] of bucket.totals) {
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
      pods: [...r.pods.keys()].sort(),
      nodes: [...r.nodes.keys()].sort(),
    };
  }

  prune(beforeMs: number): void {
    for (const bucket of [...this.#buckets.values()]) if (bucket.start < beforeMs) this.#dropBucket(bucket);
    for (const [id, r] of this.#buildIds) {
      if (r.lastSeenMs < beforeMs) this.#dropBuildId(id, r);
    }
  }

  clear(): void {
    this.#keys.clear();
    this.#byName.clear();
    this.#keyCount = 0;
    this.#buckets.clear();
    this.#buildIds.clear();
    this.#recordsEpoch++;
    this.#layouts.clear();
    this.#resolved = new WeakMap();
    this.#frameNames = new WeakMap();
    this.#podKeys.clear();
    this.#pool.clear();
    this.#structBytes = 0;
    this.#counters = zeroCounters();
  }

  /** Whether the agent described `buildId`'s sections (file offsets can be mapped to vaddrs). */
  hasLayout(buildId: string): boolean {
    return this.#layouts.has(buildId);
  }

  #bucket(start: number): Bucket {
    let bucket = this.#buckets.get(start);
    if (!bucket) {
      bucket = { start, entries: new Map(), entryCount: 0, full: false, cells: [], totals: new Map() };
      this.#buckets.set(start, bucket);
      this.#structBytes += BUCKET_BYTES;
    }
    return bucket;
  }

  #totals(bucket: Bucket, image: string, end: number): { samples: number; lastSeenMs: number } {
    let t = bucket.totals.get(image);
    if (!t) {
      t = { samples: 0, lastSeenMs: end };
      bucket.totals.set(this.#pool.acquire(image), t);
      this.#structBytes += MAP_ENTRY_BYTES + 48;
    }
    return t;
  }

  #podKey(sample: Sample__Output): string {
    let byPod = this.#podKeys.get(sample.namespace);
    if (!byPod) {
      if (this.#podKeys.size >= 4096) this.#podKeys.clear(); // a cache, not state: bounded crudely
      byPod = new Map();
      this.#podKeys.set(sample.namespace, byPod);
    }
    let key = byPod.get(sample.pod);
    if (key === undefined) {
      if (byPod.size >= 4096) byPod.clear();
      key = `${sample.namespace}/${sample.pod}`;
      byPod.set(sample.pod, key);
    }
    return key;
  }

  /**
   * The names of a stack's frames. Frozen arrays are the decoder's shared ones (one per distinct stack), so
   * their resolution is kept; others (tests, proto-loader) are resolved each time.
   */
  #resolve(frames: readonly Frame__Output[]): Resolved {
    const frozen = Object.isFrozen(frames);
    if (frozen) {
      const r = this.#resolved.get(frames);
      if (r && (r.epoch === undefined || r.epoch === this.#layoutEpoch)) return r;
    }
    const names: string[] = [];
    const keys: { buildId: string; name: string }[] = [];
    const buildIds: string[] = [];
    let unnamed = false;
    for (const f of frames) {
      let fn = this.#frameNames.get(f);
      if (!fn || (fn.named === false && fn.epoch !== this.#layoutEpoch)) {
        fn = this.#frameName(f);
        if (Object.isFrozen(f)) this.#frameNames.set(f, fn);
      }
      const { name, buildId, indexed, named } = fn;
      if (named === false) unnamed = true;
      names.push(name);
      if (buildId !== "" && !buildIds.includes(buildId)) buildIds.push(buildId);
      if (indexed && !keys.some((k) => k.name === name && k.buildId === buildId))
        keys.push({ buildId, name });
    }
    const stack = names.join(";");
    const r: Resolved = {
      stack,
      identity: `${stack}\n${buildIds.join(",")}\n${keys.map((k) => buildIds.indexOf(k.buildId)).join(",")}`,
      keys,
      buildIds,
      epoch: unnamed ? this.#layoutEpoch : undefined,
      records: undefined,
      recordsEpoch: 0,
      bucket: undefined,
      entries: undefined,
    };
    if (frozen) this.#resolved.set(frames, r);
    return r;
  }

  #frameName(f: Frame__Output): FrameName {
    switch (f.kind) {
      case "KIND_NATIVE": {
        const buildId = f.buildId;
        if (f.symbol !== undefined && f.symbol !== "") return { name: f.symbol, buildId, indexed: true };
        if (buildId === "") return { name: UNKNOWN_FRAME, buildId, indexed: false };
        const named = this.#name(buildId, f.fileOffset);
        if (named !== undefined) {
          this.#counters.namedFrames++;
          return { name: named, buildId, indexed: true, named: true };
        }
        this.#counters.unnamedFrames++;
        return {
          name: unnamedFrame(buildId, f.fileOffset),
          buildId,
          indexed: true,
          named: false,
          epoch: this.#layoutEpoch,
        };
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
    const layout: Layout = {
      sections: sections
        .filter((s) => s.size > 0)
        .map((s) => ({ fileOffset: s.fileOffset, end: s.fileOffset + s.size, address: s.address })),
    };
    const old = this.#layouts.get(buildId);
    if (old) {
      if (sameLayout(old, layout)) return; // agents describe binaries again after a reconnect
      this.#layouts.delete(buildId);
      this.#structBytes -= layoutBytes(buildId, old);
    } else if (this.#layouts.size >= this.#maxBuildIds) {
      const [oldestId, oldest] = this.#layouts.entries().next().value ?? [];
      if (oldestId !== undefined && oldest !== undefined) {
        this.#layouts.delete(oldestId);
        this.#structBytes -= layoutBytes(oldestId, oldest);
      }
    }
    this.#layouts.set(buildId, layout);
    this.#structBytes += layoutBytes(buildId, layout);
    this.#layoutEpoch++;
  }

  /** A new (stack, image) entry in `bucket`, linked to its symbols' cells; undefined when the bucket is full. */
  #newEntry(bucket: Bucket, r: Resolved, image: string, end: number): Entry | undefined {
    if (bucket.full || bucket.entryCount >= this.#maxStacks) return undefined;
    const entry: Entry = {
      stack: this.#pool.acquire(r.stack),
      image: this.#pool.acquire(image),
      count: 0,
      firstSeenMs: end,
      lastSeenMs: end,
      pods: new Set(),
      nodes: new Set(),
      lastPod: "",
      lastNode: "",
      cells: [],
    };
    for (const k of r.keys) {
      const cell = this.#cell(bucket, image, k.buildId, k.name);
      cell.entries.push(entry);
      entry.cells.push(cell);
    }
    if (r.entries) r.entries.push(entry);
    else {
      r.entries = [entry];
      bucket.entries.set(this.#pool.acquire(r.identity), r.entries);
      this.#structBytes += MAP_ENTRY_BYTES + 32;
    }
    bucket.entryCount++;
    this.#structBytes += ENTRY_BYTES + entry.cells.length * POINTER_BYTES;
    return entry;
  }

  /** A stack beyond maxStacksPerBucket: its samples go straight to its symbols' cells. */
  #countOverflow(
    bucket: Bucket,
    r: Resolved,
    image: string,
    count: number,
    end: number,
    pod: string,
    node: string,
  ): void {
    this.#counters.overflowSamples += count;
    for (const k of r.keys) {
      const cell = bucket.full
        ? this.#keys.get(image)?.get(k.buildId)?.get(k.name)?.cells.get(bucket.start)
        : this.#cell(bucket, image, k.buildId, k.name);
      if (!cell) {
        this.#counters.unindexedSamples += count;
        continue;
      }
      if (cell.samples === 0) {
        cell.firstSeenMs = end;
        cell.lastSeenMs = end;
      } else if (end > cell.lastSeenMs) cell.lastSeenMs = end;
      else if (end < cell.firstSeenMs) cell.firstSeenMs = end;
      cell.samples += count;
      if (pod !== "") {
        if (!cell.pods) {
          cell.pods = new Set();
          this.#structBytes += MAP_BYTES;
        }
        this.#addPlace(cell.pods, pod);
      }
      if (node !== "") {
        if (!cell.nodes) {
          cell.nodes = new Set();
          this.#structBytes += MAP_BYTES;
        }
        this.#addPlace(cell.nodes, node);
      }
    }
  }

  #cell(bucket: Bucket, image: string, buildId: string, symbol: string): Cell {
    const key = this.#key(image, buildId, symbol);
    let cell = key.cells.get(bucket.start);
    if (!cell) {
      cell = {
        key,
        entries: [],
        samples: 0,
        firstSeenMs: 0,
        lastSeenMs: 0,
        pods: undefined,
        nodes: undefined,
      };
      key.cells.set(bucket.start, cell);
      bucket.cells.push(cell);
      this.#structBytes += CELL_BYTES + POINTER_BYTES;
    }
    return cell;
  }

  #key(image: string, buildId: string, symbol: string): Key {
    let byBuildId = this.#keys.get(image);
    if (!byBuildId) {
      byBuildId = new Map();
      this.#keys.set(this.#pool.acquire(image), byBuildId);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }
    let bySymbol = byBuildId.get(buildId);
    if (!bySymbol) {
      bySymbol = new Map();
      byBuildId.set(this.#pool.acquire(buildId), bySymbol);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }
    let key = bySymbol.get(symbol);
    if (key) return key;
    key = {
      image: this.#pool.acquire(image),
      buildId: this.#pool.acquire(buildId),
      symbol: this.#pool.acquire(symbol),
      cells: new Map(),
    };
    bySymbol.set(key.symbol, key);
    let set = this.#byName.get(key.symbol);
    if (!set) {
      set = new Set();
      this.#byName.set(key.symbol, set);
      this.#structBytes += MAP_BYTES + MAP_ENTRY_BYTES;
    }
    set.add(key);
    this.#keyCount++;
    this.#structBytes += KEY_BYTES;
    return key;
  }

  #dropBucket(bucket: Bucket): void {
    for (const [identity, entries] of bucket.entries) {
      this.#pool.release(identity);
      for (const e of entries) {
        for (const m of [e.pods, e.nodes]) for (const s of m.keys()) this.#pool.release(s);
        this.#structBytes -=
          ENTRY_BYTES + e.cells.length * POINTER_BYTES + (e.pods.size + e.nodes.size) * MAP_ENTRY_BYTES;
        this.#pool.release(e.stack);
        this.#pool.release(e.image);
      }
      this.#structBytes -= MAP_ENTRY_BYTES + 32;
    }
    for (const cell of bucket.cells) {
      for (const m of [cell.pods, cell.nodes]) {
        if (!m) continue;
        for (const s of m.keys()) this.#pool.release(s);
        this.#structBytes -= MAP_BYTES + m.size * MAP_ENTRY_BYTES;
      }
      this.#structBytes -= CELL_BYTES + POINTER_BYTES;
      const key = cell.key;
      key.cells.delete(bucket.start);
      if (key.cells.size === 0) this.#dropKey(key);
    }
    for (const image of bucket.totals.keys()) this.#pool.release(image);
    this.#structBytes -= BUCKET_BYTES + bucket.totals.size * (MAP_ENTRY_BYTES + 48);
    this.#buckets.delete(bucket.start);
  }

  #dropKey(key: Key): void {
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
    this.#keyCount--;
    this.#structBytes -= KEY_BYTES;
  }

  /** The record of `buildId`, made when missing (evicting the least recently seen beyond maxBuildIds). */
  #buildIdRecord(buildId: string, end: number): BuildIdRecord {
    let r = this.#buildIds.get(buildId);
    if (!r) {
      if (this.#buildIds.size >= this.#maxBuildIds) {
        // Evict the least recently seen (by window end; ties: first inserted).
        let victim: [string, BuildIdRecord] | undefined;
        for (const e of this.#buildIds) if (!victim || e[1].lastSeenMs < victim[1].lastSeenMs) victim = e;
        if (victim) this.#dropBuildId(victim[0], victim[1]);
      }
      r = {
        samples: 0,
        lastSeenMs: end,
        pods: new Map(),
        nodes: new Map(),
        lastPod: "",
        lastPodEnd: 0,
        lastNode: "",
        lastNodeEnd: 0,
      };
      this.#buildIds.set(this.#pool.acquire(buildId), r);
      this.#structBytes += BUILD_ID_BYTES;
    }
    return r;
  }

  /** The MAX_BUILD_ID_PLACES most recently seen places (by window end; ties: the greatest name goes). */
  #recent(m: Map<string, number>, s: string, end: number): void {
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
    this.#recordsEpoch++; // stacks holding this record look theirs up again
    for (const p of r.pods.keys()) this.#pool.release(p);
    for (const n of r.nodes.keys()) this.#pool.release(n);
    this.#structBytes -= BUILD_ID_BYTES + (r.pods.size + r.nodes.size) * MAP_ENTRY_BYTES;
    this.#buildIds.delete(id);
    this.#pool.release(id);
  }

  /** Adds a pod or node to a bounded set (maxPodsPerCell; samples beyond still count elsewhere). */
  #addPlace(set: Set<string>, s: string): void {
    if (set.has(s) || set.size >= this.#maxPods) return;
    set.add(this.#pool.acquire(s));
    this.#structBytes += MAP_ENTRY_BYTES;
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
    evictedBuckets: 0,
    overflowSamples: 0,
    unindexedSamples: 0,
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

function sameLayout(a: Layout, b: Layout): boolean {
  return (
    a.sections.length === b.sections.length &&
    a.sections.every((s, i) => {
      const t = b.sections[i];
      return t !== undefined && s.fileOffset === t.fileOffset && s.end === t.end && s.address === t.address;
    })
  );
}

function layoutBytes(buildId: string, l: Layout): number {
  return 64 + STRING_BYTES + buildId.length + MAP_ENTRY_BYTES + l.sections.length * 56;
}

function positive(v: number, name: string): number {
  if (!Number.isFinite(v) || v <= 0)
    throw new IndexError("INDEX_BAD_OPTION", `${name}: expected > 0, got ${v}`);
  return v;
}
