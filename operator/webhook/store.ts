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

export class DeltaStore implements DeltaLookup {
  readonly #policy: RiskPolicy;
  #hotness: HotnessLookup | undefined;
  readonly #byName = new Map<string, Entry>();
  readonly #forward = new Map<string, string>();
  readonly #rollback = new Map<string, string>();

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
    (rollback ? this.#rollback : this.#forward).set(pairKey(known.baseDigest, known.targetDigest), known.ref);
  }

  delete(name: string): void {
    const e = this.#byName.get(name);
    if (!e) return;
    this.#byName.delete(name);
    const key = pairKey(e.known.baseDigest, e.known.targetDigest);
    if (this.#forward.get(key) === name) this.#forward.delete(key);
    if (this.#rollback.get(key) === name) this.#rollback.delete(key);
  }

  get(name: string): KnownDelta | undefined {
    return this.#byName.get(name)?.known;
  }

  forward(baseDigest: string, targetDigest: string): KnownDelta | undefined {
    const name = this.#forward.get(pairKey(baseDigest, targetDigest));
    return name === undefined ? undefined : this.#byName.get(name)?.known;
  }

  rollback(fromDigest: string, toDigest: string): KnownDelta | undefined {
    const name = this.#rollback.get(pairKey(fromDigest, toDigest));
    return name === undefined ? undefined : this.#byName.get(name)?.known;
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
