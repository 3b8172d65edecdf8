// Defensive parser for `bpftrace -f json` output of ebpf/profile.bt (bpftrace 0.17 shapes, seen for real):
//
//   {"type": "attached_probes", "data": {"probes": 2}}
//   {"type": "map", "data": {"@stacks": {"4242,comm,\n\t55fe10718169 0x55fe10718169 ([unknown])\n\t7f41830c424a 0x7f41830c424a ([unknown])\n": 80}}}
//   {"type": "lost_events", "data": {"events": 12}}
//   (blank lines between prints)
//
// A map key is "PID,COMM,STACK": STACK is "" for a task without a user stack (kernel threads) or
// one "\t<hex addr> <symbol> (<module>)\n" line per frame, leaf first. COMM is the task's name and
// may hold anything (commas, "\n\t", quotes): the stack starts after the LAST ",\n" of the key,
// because a frame line never holds ",\n". bpftrace 0.17 escapes bytes >= 0x80 of a string as
// "\uffffffXX" (sign-extended char); the line is repaired before JSON.parse.
//
// Nothing here throws on input: garbage, truncated and oversize lines are counted in `stats`.

/** One distinct user stack of one task, seen `count` times in one interval. */
export interface StackSample {
  pid: number;
  comm: string;
  /** Raw user addresses, leaf first. */
  frames: bigint[];
  count: number;
}

export interface ParserStats {
  /** Complete lines seen (blank ones included). */
  lines: number;
  /** Map prints that yielded a batch. */
  maps: number;
  /** Stack samples yielded (distinct keys). */
  samples: number;
  /** Lines that are not JSON objects of a known shape. */
  badLines: number;
  /** Lines longer than maxLineBytes (dropped without being buffered whole). */
  oversizeLines: number;
  /** Map keys or values that could not be parsed. */
  badKeys: number;
  /** Samples without a user stack (kernel threads), dropped. */
  emptyStacks: number;
  /** Sum of bpftrace's lost_events. */
  lostEvents: number;
  /** attached_probes lines seen. */
  attached: number;
  /** Valid JSON with a type we do not use (printf, time, …). */
  otherTypes: number;
  /** A final line without newline at end of stream. */
  truncatedLines: number;
}

export interface ParserOptions {
  /** Line cap in bytes; default 16 MiB. */
  maxLineBytes?: number;
  /** The map to read; default "@stacks". */
  mapName?: string;
}

export type ParseEvent =
  | { kind: "batch"; samples: StackSample[] }
  | { kind: "attached"; probes: number }
  | { kind: "lost"; events: number };

const NL = 0x0a;
const FRAME = /^\t([0-9a-fA-F]{1,16})(?: [^\n]*)?$/;
const PID = /^(\d{1,10}),/;
const BAD_HIGH_BYTE = /\\uffffff([89a-fA-F][0-9a-fA-F])/g;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function newStats(): ParserStats {
  return {
    lines: 0,
    maps: 0,
    samples: 0,
    badLines: 0,
    oversizeLines: 0,
    badKeys: 0,
    emptyStacks: 0,
    lostEvents: 0,
    attached: 0,
    otherTypes: 0,
    truncatedLines: 0,
  };
}

/** Bytes that bpftrace escaped as "\u00XX" after repair (all < 0x100) back to UTF-8 text. */
function fixComm(comm: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\u0080-\u00ff]/.test(comm) || /[^\u0000-\u00ff]/.test(comm)) return comm;
  return Buffer.from(comm, "latin1").toString("utf8");
}

/** Parse one map key; undefined when malformed. frames may be empty. */
export function parseStackKey(key: string): { pid: number; comm: string; frames: bigint[] } | undefined {
  const m = PID.exec(key);
  if (!m || m[1] === undefined) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid > 0xffffffff) return undefined;
  const rest = key.slice(m[0].length);
  const cut = rest.lastIndexOf(",\n");
  if (cut < 0) {
    // No user stack: "PID,COMM,".
    if (!rest.endsWith(",")) return undefined;
    return { pid, comm: fixComm(rest.slice(0, -1)), frames: [] };
  }
  const comm = rest.slice(0, cut);
  const stack = rest.slice(cut + 1);
  if (!stack.endsWith("\n")) return undefined;
  const lines = stack.slice(1, -1).split("\n");
  const frames: bigint[] = [];
  for (const line of lines) {
    const f = FRAME.exec(line);
    if (!f || f[1] === undefined) return undefined;
    frames.push(BigInt(`0x${f[1]}`));
  }
  return { pid, comm: fixComm(comm), frames };
}

/**
 * Incremental parser: feed stdout chunks with push(), get events back. Lines are split on bytes so
 * a line over the cap is discarded as it streams in, never held whole.
 */
export class BpftraceOutputParser {
  readonly stats: ParserStats = newStats();
  readonly #maxLineBytes: number;
  readonly #mapName: string;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #skipping = false;

  constructor(options: ParserOptions = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? 16 * 1024 * 1024;
    this.#mapName = options.mapName ?? "@stacks";
  }

  /** Feed a chunk of stdout; returns the events of every line it completed. */
  push(chunk: Buffer | string): ParseEvent[] {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    const out: ParseEvent[] = [];
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(NL, start);
      const end = nl < 0 ? buf.length : nl;
      if (!this.#skipping) {
        const piece = buf.subarray(start, end);
        if (this.#pendingBytes + piece.length > this.#maxLineBytes) {
          this.#skipping = true;
          this.#pending = [];
          this.#pendingBytes = 0;
        } else if (piece.length > 0) {
          // Copy: the caller may reuse the chunk.
          this.#pending.push(Buffer.from(piece));
          this.#pendingBytes += piece.length;
        }
      }
      if (nl < 0) break;
      this.#finishLine(out);
      start = nl + 1;
    }
    return out;
  }

  /** End of stream: a last line without newline is truncated output, counted (and parsed if whole). */
  end(): ParseEvent[] {
    const out: ParseEvent[] = [];
    if (this.#skipping || this.#pendingBytes > 0) {
      this.stats.truncatedLines++;
      this.#finishLine(out);
    }
    return out;
  }

  #finishLine(out: ParseEvent[]): void {
    this.stats.lines++;
    if (this.#skipping) {
      this.stats.oversizeLines++;
      this.#skipping = false;
      return;
    }
    const line = Buffer.concat(this.#pending, this.#pendingBytes).toString("utf8");
    this.#pending = [];
    this.#pendingBytes = 0;
    const ev = this.parseLine(line);
    if (ev) out.push(ev);
  }

  /** Parse one complete line (without its newline). */
  parseLine(line: string): ParseEvent | undefined {
    if (line.trim() === "") return undefined;
    let doc: unknown;
    try {
      doc = JSON.parse(line.replace(BAD_HIGH_BYTE, "\\u00$1"));
    } catch {
      this.stats.badLines++;
      return undefined;
    }
    if (!isRecord(doc) || typeof doc.type !== "string") {
      this.stats.badLines++;
      return undefined;
    }
    const data = doc.data;
    switch (doc.type) {
      case "map": {
        if (!isRecord(data)) break;
        const map = data[this.#mapName];
        if (map === undefined) {
          this.stats.otherTypes++;
          return undefined;
        }
        if (!isRecord(map)) break;
        return { kind: "batch", samples: this.#samples(map) };
      }
      case "attached_probes": {
        if (!isRecord(data) || typeof data.probes !== "number") break;
        this.stats.attached++;
        return { kind: "attached", probes: data.probes };
      }
      case "lost_events": {
        if (!isRecord(data) || typeof data.events !== "number" || !(data.events >= 0)) break;
        this.stats.lostEvents += data.events;
        return { kind: "lost", events: data.events };
      }
      default:
        this.stats.otherTypes++;
        return undefined;
    }
    this.stats.badLines++;
    return undefined;
  }

  #samples(map: Record<string, unknown>): StackSample[] {
    const samples: StackSample[] = [];
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
        this.stats.badKeys++;
        continue;
      }
      const k = parseStackKey(key);
      if (!k) {
        this.stats.badKeys++;
        continue;
      }
      if (k.frames.length === 0) {
        this.stats.emptyStacks++;
        continue;
      }
      samples.push({ pid: k.pid, comm: k.comm, frames: k.frames, count: value });
    }
    this.stats.maps++;
    this.stats.samples += samples.length;
    return samples;
  }
}
