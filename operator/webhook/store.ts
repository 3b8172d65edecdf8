// What the webhook's request path reads (issue 7): the checked DeltaAttestations, found by (base, target) digest,
// and each forward delta's delta_risk with its changed functions weighted by how hot they run in the base image.
// Scores are computed when an attestation arrives and again only when the hotness of its functions changes
// (refreshHotness, off the request path), so a decision costs a few map lookups even for a delta that changed
// 20,000 functions (scoring those takes tens of milliseconds).
import type { RiskPolicy } from "../../core/risk/policy.ts";
import { deltaRisk, withHotness, type RiskResult } from "../../core/risk/score.ts";
import type { DeltaLookup, KnownDelta } from "./decide.ts";

/**
 * Share of CPU (0..1) a symbol took in an image over the hotness window, or undefined when the agents have no
 * samples of that image at all (then the attestation's own hotness, usually none, is kept).
 */
export type HotnessLookup = (imageDigest: string, symbol: string) => number | undefined;

interface Entry {
  known: KnownDelta;
  /** Hotness per changed function, in the order of scoreInputs.functions.changed (undefined = unknown). */
  hotness: (number | undefined)[];
  risk?: RiskResult;
}

const pairKey = (base: string, target: string): string => `${base}>${target}`;

function better(a: KnownDelta, b: KnownDelta): boolean {
  if ((a.invalid === undefined) !== (b.invalid === undefined)) return a.invalid === undefined;
  if (a.verifiedKeyids.length !== b.verifiedKeyids.length) {
    return a.verifiedKeyids.length > b.verifiedKeyids.length;
  }
  return a.ref < b.ref;
}

export class DeltaStore implements DeltaLookup {
  readonly #policy: RiskPolicy;
  #hotness: HotnessLookup | undefined;
  readonly #byName = new Map<string, Entry>();
  /** Names per (base, target): two resources may claim the same pair (e.g. an old and a re-signed one). */
  readonly #forward = new Map<string, Set<string>>();
  readonly #rollback = new Map<string, Set<string>>();

  constructor(opts: { policy: RiskPolicy; hotness?: HotnessLookup }) {
    this.#policy = opts.policy;
    this.#hotness = opts.hotness;
  }

  get size(): number {
    return this.#byName.size;
  }

  /** Adds or replaces the attestation `known.ref`; `rollback` says whether it is a rollback attestation. */
  set(known: KnownDelta, rollback: boolean): void {
    this.delete(known.ref);
    const entry: Entry = { known, hotness: this.#hotnessOf(known) };
    entry.risk = this.#score(entry);
    this.#byName.set(known.ref, entry);
    const pairs = rollback ? this.#rollback : this.#forward;
    const key = pairKey(known.baseDigest, known.targetDigest);
    const names = pairs.get(key) ?? new Set<string>();
    names.add(known.ref);
    pairs.set(key, names);
  }

  delete(name: string): void {
    const e = this.#byName.get(name);
    if (!e) return;
    this.#byName.delete(name);
    const key = pairKey(e.known.baseDigest, e.known.targetDigest);
    for (const pairs of [this.#forward, this.#rollback]) {
      const names = pairs.get(key);
      names?.delete(name);
      if (names?.size === 0) pairs.delete(key);
    }
  }

  get(name: string): KnownDelta | undefined {
    return this.#byName.get(name)?.known;
  }

  forward(baseDigest: string, targetDigest: string): KnownDelta | undefined {
    return this.#best(this.#forward.get(pairKey(baseDigest, targetDigest)));
  }

  rollback(fromDigest: string, toDigest: string): KnownDelta | undefined {
    return this.#best(this.#rollback.get(pairKey(fromDigest, toDigest)));
  }

  /** Of several resources for one pair: a usable one, then the one more keys verified, then by name. */
  #best(names: ReadonlySet<string> | undefined): KnownDelta | undefined {
    let best: KnownDelta | undefined;
    for (const name of names ?? []) {
      const k = this.#byName.get(name)?.known;
      if (k !== undefined && (best === undefined || better(k, best))) best = k;
    }
    return best;
  }

  risk(delta: KnownDelta): RiskResult | undefined {
    const e = this.#byName.get(delta.ref);
    if (e?.known === delta) return e.risk;
    return delta.scoreInputs && deltaRisk(delta.scoreInputs, this.#policy); // not from this store
  }

  /**
   * Re-reads every forward delta's functions' hotness (optionally from a new lookup) and re-scores the deltas
   * whose hotness changed. Returns their names (so their status can be updated).
   */
  refreshHotness(lookup?: HotnessLookup): string[] {
    if (lookup) this.#hotness = lookup;
    const changed: string[] = [];
    for (const [name, e] of this.#byName) {
      const next = this.#hotnessOf(e.known);
      if (next.length === e.hotness.length && next.every((h, i) => h === e.hotness[i])) continue;
      e.hotness = next;
      const before = e.risk?.score;
      e.risk = this.#score(e);
      if (e.risk?.score !== before) changed.push(name);
    }
    return changed.sort();
  }

  #hotnessOf(known: KnownDelta): (number | undefined)[] {
    const lookup = this.#hotness;
    const fns = known.scoreInputs?.functions.changed ?? [];
    if (!lookup) return [];
    return fns.map((fn) => lookup(known.baseDigest, fn.symbol));
  }

  #score(e: Entry): RiskResult | undefined {
    const inputs = e.known.scoreInputs;
    if (!inputs) return undefined;
    if (e.hotness.length === 0) return deltaRisk(inputs, this.#policy);
    const byFn = new Map(inputs.functions.changed.map((fn, i) => [fn, e.hotness[i]]));
    return deltaRisk(
      withHotness(inputs, (fn) => byFn.get(fn)),
      this.#policy,
    );
  }
}
