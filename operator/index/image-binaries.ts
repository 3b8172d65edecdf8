// Which binaries make up a running image, as the agents see them: image digest → the BuildIDs of native
// frames sampled in its containers. The VexStatement controller needs it to say "not present": only a
// product whose every binary has a verified FuncProof can be said not to contain a symbol.
import type { Frame__Output, StackBatch__Output } from "../../proto/evidence.ts";
import type { HotSymbolIndex } from "./types.ts";

/** Bounds: images tracked, and BuildIDs per image (a container maps few dozen binaries). */
const MAX_IMAGES = 10_000;
const MAX_BUILD_IDS_PER_IMAGE = 1_024;

export class ImageBinaries implements FoldObserver {
  readonly #byImage = new Map<string, Set<string>>();
  /** Frames arrays (the decoder shares one per distinct stack) already added, by image: skipped next time. */
  #seen = new WeakMap<readonly Frame__Output[], { last: string; images: Set<string> }>();

  observe(batch: StackBatch__Output): void {
    for (const s of batch.samples) {
      if (s.imageDigest === "") continue;
      let seen = this.#seen.get(s.frames);
      if (seen !== undefined && (seen.last === s.imageDigest || seen.images.has(s.imageDigest))) {
        seen.last = s.imageDigest;
        continue;
      }
      let set = this.#byImage.get(s.imageDigest);
      if (!set) {
        if (this.#byImage.size >= MAX_IMAGES) {
          const oldest = this.#byImage.keys().next().value;
          if (oldest !== undefined) this.#byImage.delete(oldest);
          this.#seen = new WeakMap(); // it may hold the evicted image
          seen = undefined;
        }
        set = new Set();
        this.#byImage.set(s.imageDigest, set);
      }
      for (const f of s.frames)
        if (f.kind === "KIND_NATIVE" && f.buildId !== "" && set.size < MAX_BUILD_IDS_PER_IMAGE)
          set.add(f.buildId);
      if (Object.isFrozen(s.frames)) {
        if (!seen) {
          seen = { last: s.imageDigest, images: new Set() };
          this.#seen.set(s.frames, seen);
        }
        seen.images.add(s.imageDigest);
        seen.last = s.imageDigest;
      }
    }
  }

  buildIds(imageDigest: string): string[] | undefined {
    const set = this.#byImage.get(imageDigest);
    return set ? [...set].sort() : undefined;
  }

  clear(): void {
    this.#byImage.clear();
    this.#seen = new WeakMap();
  }
}

/** Something that follows every folded batch (and forgets what it learned when the index is cleared). */
export interface FoldObserver {
  observe(batch: StackBatch__Output): void;
  clear?(): void;
}

/** The index, telling each observer about every batch it folds and about every clear. */
export function withFoldObservers(index: HotSymbolIndex, observers: readonly FoldObserver[]): HotSymbolIndex {
  return {
    fold: (b) => {
      index.fold(b);
      for (const o of observers) o.observe(b);
    },
    query: (q) => index.query(q),
    productSamples: (d, s, u) => index.productSamples(d, s, u),
    buildId: (id) => index.buildId(id),
    prune: (before) => {
      index.prune(before);
    },
    clear: () => {
      index.clear();
      for (const o of observers) o.clear?.();
    },
    get stats() {
      return index.stats;
    },
  };
}
