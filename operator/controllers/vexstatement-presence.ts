/**
 * FunctionPresence: which verified FuncProofs contain a symbol. The VexStatement controller asks it
 * whether a vulnerable function is in the product at all (vulnerable_code_not_present) and where it is
 * (the precondition for vulnerable_code_not_in_execute_path). The real implementation is fed by the
 * FuncProof controller from verified function tables; InMemoryFunctionPresence is the simple one.
 */

export interface FunctionPresence {
  /** BuildIDs whose verified FuncProof function table contains `symbol`, sorted; only among `buildIds` when given. */
  lookup(symbol: string, buildIds?: readonly string[]): string[];
  /** Of `buildIds`, those with a verified FuncProof (a known function table), sorted. */
  verified(buildIds: readonly string[]): string[];
  /** The BuildIDs that make up an image, when known; undefined = unknown (rules out NotPresent). */
  imageBuildIds?(imageDigest: string): string[] | undefined;
  /** Registers a handler called after presence changes (statements are then re-decided). */
  onChange?(handler: () => void): void;
}

/** In memory: `add(buildId, functionNames)` as FuncProofs verify, `remove` when they stop verifying. */
export class InMemoryFunctionPresence implements FunctionPresence {
  readonly #functions = new Map<string, ReadonlySet<string>>();
  readonly #images = new Map<string, readonly string[]>();
  readonly #handlers: (() => void)[] = [];

  add(buildId: string, functionNames: Iterable<string>): void {
    this.#functions.set(buildId, new Set(functionNames));
    this.#changed();
  }

  remove(buildId: string): void {
    if (this.#functions.delete(buildId)) this.#changed();
  }

  /** Records the BuildIDs of an image's ELF files (e.g. from `stella funcproof IMAGE`). */
  setImage(imageDigest: string, buildIds: readonly string[]): void {
    this.#images.set(imageDigest, [...new Set(buildIds)].sort());
    this.#changed();
  }

  lookup(symbol: string, buildIds?: readonly string[]): string[] {
    const scope = buildIds === undefined || buildIds.length === 0 ? [...this.#functions.keys()] : buildIds;
    return [...new Set(scope)].filter((id) => this.#functions.get(id)?.has(symbol) === true).sort();
  }

  verified(buildIds: readonly string[]): string[] {
    return [...new Set(buildIds)].filter((id) => this.#functions.has(id)).sort();
  }

  imageBuildIds(imageDigest: string): string[] | undefined {
    const ids = this.#images.get(imageDigest);
    return ids === undefined ? undefined : [...ids];
  }

  onChange(handler: () => void): void {
    this.#handlers.push(handler);
  }

  #changed(): void {
    for (const h of this.#handlers) h();
  }
}
