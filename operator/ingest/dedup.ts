// Which (agentId, seq) pairs are already stored, so a resend (after a lost ack or a reconnect) is acknowledged
// again without being logged or folded twice (docs/wire.md "Exactly-once effect").
//
// Per agent: a watermark W (every seq 1..W is stored) plus a bounded sparse set of stored seqs above it. Agents
// send in seq order, so the sparse set only holds seqs above a gap: a batch the agent dropped or the operator
// rejected (never stored), or one still in flight. When the set would exceed `maxSparse`, the watermark jumps to
// its smallest member: the oldest gaps are given up (a batch arriving later with such a seq is treated as a
// duplicate; counted in `forcedAdvances`). At most `maxAgents` agent ids are tracked, least recently used
// evicted (`evictedAgents`): agent ids are per process start, so an evicted one is almost always gone.
//
// The state is rebuilt from the write-ahead log on start (mark every replayed batch), so it is exactly as
// durable as the data it protects.

export interface DedupOptions {
  /** Agent ids tracked; default 10,000. */
  maxAgents?: number;
  /** Stored seqs above the watermark, per agent; default 4,096. */
  maxSparse?: number;
}

export const DEDUP_DEFAULTS = { maxAgents: 10_000, maxSparse: 4_096 } as const;

export interface DedupStats {
  agents: number;
  evictedAgents: number;
  forcedAdvances: number;
}

interface AgentSeqs {
  watermark: number;
  sparse: Set<number>;
}

export class SeqDedup {
  readonly #maxAgents: number;
  readonly #maxSparse: number;
  /** Map order = recency (least recently used first). */
  readonly #agents = new Map<string, AgentSeqs>();
  #evicted = 0;
  #forced = 0;

  constructor(options: DedupOptions = {}) {
    this.#maxAgents = options.maxAgents ?? DEDUP_DEFAULTS.maxAgents;
    this.#maxSparse = options.maxSparse ?? DEDUP_DEFAULTS.maxSparse;
  }

  get stats(): DedupStats {
    return { agents: this.#agents.size, evictedAgents: this.#evicted, forcedAdvances: this.#forced };
  }

  /** True if (agentId, seq) is stored (or given up as a gap below a forced watermark). */
  has(agentId: string, seq: number): boolean {
    const a = this.#touch(agentId);
    if (a === undefined) return false;
    return seq <= a.watermark || a.sparse.has(seq);
  }

  /** Records (agentId, seq) as stored. */
  mark(agentId: string, seq: number): void {
    let a = this.#touch(agentId);
    if (a === undefined) {
      a = { watermark: 0, sparse: new Set() };
      this.#agents.set(agentId, a);
      while (this.#agents.size > this.#maxAgents) {
        const oldest = this.#agents.keys().next();
        if (oldest.done) break;
        this.#agents.delete(oldest.value);
        this.#evicted++;
      }
    }
    if (seq <= a.watermark) return;
    if (seq === a.watermark + 1) {
      a.watermark = seq;
      absorb(a);
      return;
    }
    a.sparse.add(seq);
    if (a.sparse.size > this.#maxSparse) {
      let min = Infinity;
      for (const s of a.sparse) if (s < min) min = s;
      a.sparse.delete(min);
      a.watermark = min;
      this.#forced++;
      absorb(a);
    }
  }

  /** The watermark of an agent (0 when unknown): for tests and debugging. */
  watermark(agentId: string): number {
    return this.#agents.get(agentId)?.watermark ?? 0;
  }

  #touch(agentId: string): AgentSeqs | undefined {
    const a = this.#agents.get(agentId);
    if (a !== undefined) {
      this.#agents.delete(agentId);
      this.#agents.set(agentId, a);
    }
    return a;
  }
}

/** Moves contiguous seqs from the sparse set into the watermark. */
function absorb(a: AgentSeqs): void {
  while (a.sparse.delete(a.watermark + 1)) a.watermark++;
}
