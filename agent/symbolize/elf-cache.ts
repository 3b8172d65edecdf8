// ELF data the symboliser needs per binary, cached by (dev, inode) and by BuildID under a memory
// bound (bytes of function tables held), with LRU eviction.
import { statSync } from "node:fs";

import { PT_LOAD_FLAGS_X, loadBinaryInfo, type BinaryInfo } from "./binary.ts";

export { PT_LOAD_FLAGS_X };
export type { BinaryInfo };

export interface ElfCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Files that could not be opened or parsed (also cached, negatively, to avoid retrying each frame). */
  failures: number;
  /** Bytes of function tables currently held. */
  bytes: number;
  entries: number;
}

export interface ElfCacheOptions {
  /** Upper bound on bytes of function tables held (default 256 MiB). */
  maxBytes?: number;
}

/** Where to open a file of a process: paths tried in order (map_files first, then the root view). */
export function candidatePaths(pid: number, rawRange: string, path: string): string[] {
  const out = [`/proc/${pid}/map_files/${rawRange}`];
  if (path.startsWith("/")) out.push(`/proc/${pid}/root${path}`);
  return out;
}

/** A cached load result: the binary, or why it could not be loaded. */
export type CacheEntry = (
  { ok: true; info: BinaryInfo; bytes: number } | { ok: false; error: string; bytes: number }
) & {
  /** Set on each use; eviction gives a used entry a second chance (CLOCK approximation of LRU). */
  used: boolean;
};

export class ElfCache {
  readonly maxBytes: number;
  readonly stats: ElfCacheStats = { hits: 0, misses: 0, evictions: 0, failures: 0, bytes: 0, entries: 0 };
  /** Keyed by "dev:inode"; Map iteration order is the LRU order (oldest first). */
  private readonly byFile = new Map<string, CacheEntry>();
  private readonly byBuildId = new Map<string, BinaryInfo>();

  constructor(opts: ElfCacheOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  }

  /**
   * The binary for (dev, inode), loading it from the first openable path when absent.
   * `dev` is the "maj:min" of /proc/PID/maps. Never throws: failures come back as `ok: false`.
   */
  get(dev: string, inode: number, paths: readonly string[], label: string): CacheEntry {
    const key = `${dev}:${inode}`;
    const hit = this.byFile.get(key);
    if (hit) {
      this.stats.hits++;
      hit.used = true;
      return hit;
    }
    this.stats.misses++;
    const entry = this.load(paths, label);
    if (!entry.ok) {
      this.stats.failures++;
      // A failure because the process is gone says nothing about the file: do not cache it.
      if (entry.error === "ENOENT") return entry;
    }
    this.insert(key, entry);
    return entry;
  }

  /**
   * Bumped on every eviction: callers that memoise entries (per mapping) revalidate when it moves,
   * so nothing evicted stays reachable through a memo.
   */
  generation = 0;

  /** Record a use of an entry obtained earlier (a memo hit). */
  touch(entry: CacheEntry): void {
    this.stats.hits++;
    entry.used = true;
  }

  /** A binary already loaded, by its BuildID (undefined when absent or evicted). */
  getByBuildId(buildId: string): BinaryInfo | undefined {
    return this.byBuildId.get(buildId);
  }

  private load(paths: readonly string[], label: string): CacheEntry {
    let lastError = "ENOENT";
    for (const p of paths) {
      try {
        statSync(p);
      } catch (err) {
        lastError = (err as NodeJS.ErrnoException).code ?? "IO";
        continue;
      }
      // The BuildID index may already hold the same file under another (dev, inode): share it.
      try {
        let shared = false;
        const info = loadBinaryInfo(p, label, (id) => {
          const known = this.byBuildId.get(id);
          shared = known !== undefined;
          return known;
        });
        // A table shared with another file key is counted once.
        return { ok: true, info, bytes: shared ? 64 : info.bytes, used: false };
      } catch (err) {
        return { ok: false, error: (err as { code?: string }).code ?? "ELF", bytes: 64, used: false };
      }
    }
    return { ok: false, error: lastError, bytes: 64, used: false };
  }

  private insert(key: string, entry: CacheEntry): void {
    const bytes = entry.bytes;
    this.byFile.set(key, entry);
    if (entry.ok && entry.info.buildId !== undefined) this.byBuildId.set(entry.info.buildId, entry.info);
    this.stats.bytes += bytes;
    this.stats.entries = this.byFile.size;
    this.evict(key);
  }

  private evict(keep: string): void {
    // Each entry gets at most one second chance per pass, so this ends within 2n steps.
    let budget = 2 * this.byFile.size;
    while (this.stats.bytes > this.maxBytes && budget-- > 0) {
      const first = this.byFile.entries().next();
      if (first.done) break;
      const [k, e] = first.value;
      this.byFile.delete(k);
      if (k === keep || e.used) {
        e.used = false;
        this.byFile.set(k, e);
        continue;
      }
      this.generation++;
      this.stats.evictions++;
      this.stats.bytes -= e.bytes;
      if (e.ok && e.info.buildId !== undefined && this.byBuildId.get(e.info.buildId) === e.info) {
        // Drop the BuildID index entry only when no other file key still shares this table.
        let shared = false;
        for (const other of this.byFile.values()) if (other.ok && other.info === e.info) shared = true;
        if (!shared) this.byBuildId.delete(e.info.buildId);
      }
    }
    this.stats.entries = this.byFile.size;
  }
}
