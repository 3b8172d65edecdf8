// Names stripped frames from FuncProof function tables: per BuildID, a sorted table of [start, end) vaddr
// ranges and names, built from the (already verified) FuncProof body. The hot-symbol index maps a frame's
// file offset to a vaddr with the binary's sections and asks nameAt().
import { envelopeFromObject, parseEnvelope, payloadBytes, type Envelope } from "../../core/dsse/envelope.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement } from "../../core/dsse/statement.ts";
import { StellaError } from "../../core/errors.ts";
import { FUNCPROOF_PREDICATE_TYPE } from "../../core/funcproof/funcproof.ts";
import type { SymbolNamer } from "./types.ts";

export type NamerErrorCode = "NAMER_MALFORMED" | "NAMER_PREDICATE_TYPE" | "NAMER_NO_BUILD_ID";
export class NamerError extends StellaError<NamerErrorCode> {}

/** One function of a FuncProof (`functions[]`): start/end as hex strings ("0x401120") or numbers. */
export interface FunctionRange {
  sym: string;
  start: string | number | bigint;
  end: string | number | bigint;
}

export interface FuncProofNamerOptions {
  /** Function tables kept (one per BuildID); the oldest added is dropped beyond it. Default 4,096. */
  maxBinaries?: number;
}

/** How far back the lookup walks for an enclosing function when the nearest start does not cover. */
const MAX_WALK_BACK = 16;
/** Per function: two Float64 slots, the names array slot and the name string's header. */
const BYTES_PER_FUNCTION = 8 + 8 + 8 + 16;
const BUILD_ID_RE = /^[0-9a-f]{2,128}$/;

interface Table {
  starts: Float64Array;
  ends: Float64Array;
  names: string[];
  bytes: number;
}

export class FuncProofNamer implements SymbolNamer {
  readonly #maxBinaries: number;
  /** Insertion order = age: the first entry is dropped when the cap is reached. */
  readonly #tables = new Map<string, Table>();
  #bytes = 0;

  constructor(opts: FuncProofNamerOptions = {}) {
    this.#maxBinaries = Math.max(1, opts.maxBinaries ?? 4096);
  }

  /** BuildIDs with a function table. */
  get size(): number {
    return this.#tables.size;
  }

  /** Estimated bytes held by the tables. */
  get approxBytes(): number {
    return this.#bytes;
  }

  has(buildId: string): boolean {
    return this.#tables.has(buildId);
  }

  delete(buildId: string): boolean {
    const t = this.#tables.get(buildId);
    if (!t) return false;
    this.#bytes -= t.bytes;
    return this.#tables.delete(buildId);
  }

  /**
   * Replaces the table of `buildId` with `functions` (any order; aliases sharing a start keep the widest
   * range, then the first name given). Zero-length ranges are skipped. Returns the number of entries kept.
   */
  addFunctions(buildId: string, functions: readonly FunctionRange[]): number {
    const id = buildId.toLowerCase();
    if (!BUILD_ID_RE.test(id)) {
      throw new NamerError(
        "NAMER_NO_BUILD_ID",
        `buildId: ${JSON.stringify(buildId)} is not a hex GNU build id`,
      );
    }
    const parsed: { start: number; end: number; name: string; i: number }[] = [];
    functions.forEach((f, i) => {
      if (typeof f !== "object" || f === null || typeof f.sym !== "string" || f.sym === "") {
        throw new NamerError("NAMER_MALFORMED", `functions[${i}].sym: expected a non-empty string`);
      }
      const start = address(f.start, `functions[${i}].start`);
      const end = address(f.end, `functions[${i}].end`);
      if (end < start) throw new NamerError("NAMER_MALFORMED", `functions[${i}]: end before start`);
      if (end > start) parsed.push({ start, end, name: f.sym, i });
    });
    parsed.sort((a, b) => a.start - b.start || b.end - a.end || a.i - b.i);
    const starts: number[] = [];
    const ends: number[] = [];
    const names: string[] = [];
    let bytes = 200 + id.length;
    for (const f of parsed) {
      if (starts.length > 0 && starts[starts.length - 1] === f.start) continue;
      starts.push(f.start);
      ends.push(f.end);
      names.push(f.name);
      bytes += BYTES_PER_FUNCTION + f.name.length;
    }
    this.delete(id);
    while (this.#tables.size >= this.#maxBinaries) {
      const oldest = this.#tables.keys().next().value;
      if (oldest === undefined) break;
      this.delete(oldest);
    }
    this.#tables.set(id, { starts: Float64Array.from(starts), ends: Float64Array.from(ends), names, bytes });
    this.#bytes += bytes;
    return names.length;
  }

  /** Adds a FuncProof body (the predicate): its buildId and functions[]. Returns the BuildID. */
  addFuncProof(proof: unknown): string {
    if (typeof proof !== "object" || proof === null || Array.isArray(proof)) {
      throw new NamerError("NAMER_MALFORMED", "FuncProof: expected an object");
    }
    const { buildId, functions } = proof as { buildId?: unknown; functions?: unknown };
    if (typeof buildId !== "string" || buildId === "") {
      throw new NamerError("NAMER_NO_BUILD_ID", "FuncProof: no buildId: its frames cannot be matched");
    }
    if (!Array.isArray(functions)) {
      throw new NamerError("NAMER_MALFORMED", "FuncProof.functions: expected an array");
    }
    this.addFunctions(buildId, functions as FunctionRange[]);
    return buildId.toLowerCase();
  }

  /**
   * Adds the FuncProof inside a DSSE envelope (object or JSON text): payload → in-toto statement →
   * predicate. The signature is NOT verified here: callers pass envelopes they verified. Returns the BuildID.
   */
  addFromEnvelope(envelope: Envelope | string, name = "envelope"): string {
    const env =
      typeof envelope === "string" ? parseEnvelope(envelope, name) : envelopeFromObject(envelope, name);
    if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
      throw new NamerError(
        "NAMER_PREDICATE_TYPE",
        `${name}: payloadType ${JSON.stringify(env.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`,
      );
    }
    const stmt = parseStatement(payloadBytes(env, name), name);
    if (stmt.predicateType !== FUNCPROOF_PREDICATE_TYPE) {
      throw new NamerError(
        "NAMER_PREDICATE_TYPE",
        `${name}: predicateType ${JSON.stringify(stmt.predicateType)}, expected ${FUNCPROOF_PREDICATE_TYPE}`,
      );
    }
    return this.addFuncProof(stmt.predicate);
  }

  nameAt(buildId: string, vaddr: number): { symbol: string; offset: number } | undefined {
    const t = this.#tables.get(buildId);
    if (!t) return undefined;
    const { starts, ends, names } = t;
    // Last start <= vaddr.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] ?? 0) <= vaddr) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo - 1; i >= 0 && i >= lo - MAX_WALK_BACK; i--) {
      const start = starts[i] ?? 0;
      if (vaddr < (ends[i] ?? 0)) return { symbol: names[i] ?? "", offset: vaddr - start };
    }
    return undefined;
  }
}

function address(v: unknown, where: string): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "bigint") n = Number(v);
  else if (typeof v === "string" && /^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(v)) n = Number(BigInt(v));
  else throw new NamerError("NAMER_MALFORMED", `${where}: expected a hex string or a number`);
  if (!Number.isFinite(n) || n < 0) throw new NamerError("NAMER_MALFORMED", `${where}: not an address`);
  return n;
}
