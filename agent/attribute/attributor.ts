/**
 * pid → Attribution {container, pod, namespace, containerName, imageDigest}: what each sampled stack is charged to.
 *
 * - The container comes from `${procRoot}/PID/cgroup` (see cgroup.ts for the path forms); no container → "host".
 *   procRoot is `/proc` by default; an agent with the host's /proc mounted elsewhere passes that path.
 * - The pod comes from a `PodLookup` (PodIndex in a cluster): by container id, else by the pod UID the cgroup path
 *   names (a container whose id is not yet in the pod's status: pod/namespace known, containerName ""). Without a
 *   lookup (standalone) only the container id is filled in. The pod part is looked up on every call, never cached,
 *   so a status update that arrives after the first sample is picked up at once.
 * - PIDs are reused. The cgroup result is cached per pid together with the process start time (field 22 of
 *   /proc/PID/stat, in clock ticks since boot, proc(5)); a different start time means a different process and the
 *   entry is replaced. On a miss the start time is read again after the cgroup file, so a pid that was reused in
 *   between is not charged to the new process's cgroup.
 * - A process that has exited (ENOENT/ESRCH under /proc) → `undefined` and the `exited` counter.
 * - The cache is bounded (maxPids, least recently used evicted, counted); `forget(pid)` drops one entry (call it on
 *   process exit events).
 * Reads are synchronous: procfs files are generated in memory by the kernel, a few microseconds each, and a
 * synchronous API keeps the per-sample path simple. Contents are treated as untrusted (a process controls its comm,
 * which is inside stat, and can move itself between cgroups it may write to).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { StellaError } from "../../core/errors.ts";
import { containerFromCgroupInfo, parseCgroupFile, type CgroupContainer } from "./cgroup.ts";

export const HOST_CONTAINER = "host";
export const DEFAULT_PROC_ROOT = "/proc";
export const DEFAULT_MAX_PIDS = 65_536;

export interface Attribution {
  /** "host", or the 64-hex container id. */
  readonly container: string;
  readonly pod: string;
  readonly namespace: string;
  readonly containerName: string;
  /** `sha256:<64hex>` or "". */
  readonly imageDigest: string;
}

export interface PodMeta {
  readonly pod: string;
  readonly namespace: string;
  readonly podUid: string;
}

export interface ContainerMeta extends PodMeta {
  readonly containerName: string;
  readonly imageDigest: string;
}

/** What the attributor needs from the cluster (PodIndex implements it; tests pass a Map). */
export interface PodLookup {
  byContainerId(containerId: string): ContainerMeta | undefined;
  byPodUid(podUid: string): PodMeta | undefined;
}

export interface AttributorOptions {
  /** Default "/proc". */
  procRoot?: string;
  /** Absent: standalone, container ids only. */
  podLookup?: PodLookup;
  /** Cache bound, in processes. Default 65536. */
  maxPids?: number;
}

export interface AttributorStats {
  /** attribute() calls answered from the cache (start time matched). */
  hits: number;
  /** attribute() calls that read the cgroup file (new pid, reused pid, or evicted). */
  misses: number;
  /** attribute() calls for a process that no longer exists (or whose /proc entry cannot be read). */
  exited: number;
  /** Results by kind. */
  host: number;
  container: number;
  /** Container results with a PodLookup: pod found (by container id or pod UID) / not found. */
  podResolved: number;
  podUnknown: number;
  /** Of `exited`: /proc reads that failed for another reason than ENOENT/ESRCH/EACCES/EPERM. */
  readErrors: number;
  /** Cache entries dropped to stay within maxPids. */
  evictions: number;
  /** Current cache size. */
  cachedPids: number;
}

interface Entry {
  startTime: string;
  container: CgroupContainer | undefined;
}

/** A process outside any container. */
export const HOST_ATTRIBUTION: Attribution = Object.freeze({
  container: HOST_CONTAINER,
  pod: "",
  namespace: "",
  containerName: "",
  imageDigest: "",
});

export class Attributor {
  readonly #procRoot: string;
  readonly #lookup: PodLookup | undefined;
  readonly #maxPids: number;
  /** Insertion order = recency (re-inserted on hit). */
  readonly #cache = new Map<number, Entry>();
  readonly #stats: AttributorStats = {
    hits: 0,
    misses: 0,
    exited: 0,
    host: 0,
    container: 0,
    podResolved: 0,
    podUnknown: 0,
    evictions: 0,
    readErrors: 0,
    cachedPids: 0,
  };

  constructor(options: AttributorOptions = {}) {
    const maxPids = options.maxPids ?? DEFAULT_MAX_PIDS;
    if (!Number.isInteger(maxPids) || maxPids < 1) {
      throw new StellaError(
        "ATTRIBUTOR_CONFIG",
        `maxPids must be a positive integer, got ${String(maxPids)}`,
      );
    }
    this.#procRoot = options.procRoot ?? DEFAULT_PROC_ROOT;
    this.#lookup = options.podLookup;
    this.#maxPids = maxPids;
  }

  /** The attribution of `pid`, or undefined if the process has exited (or the pid is not a valid pid). */
  attribute(pid: number): Attribution | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      this.#stats.exited++;
      return undefined;
    }
    const entry = this.#entry(pid);
    if (entry === undefined) {
      this.#stats.exited++;
      return undefined;
    }
    const c = entry.container;
    if (c === undefined) {
      this.#stats.host++;
      return HOST_ATTRIBUTION;
    }
    this.#stats.container++;
    return this.#resolve(c);
  }

  /** Drops the cache entry of `pid` (e.g. on a process exit event). */
  forget(pid: number): void {
    this.#cache.delete(pid);
  }

  /** A snapshot of the counters (plain numbers). */
  stats(): AttributorStats {
    return { ...this.#stats, cachedPids: this.#cache.size };
  }

  #entry(pid: number): Entry | undefined {
    const startTime = this.#startTime(pid);
    if (startTime === undefined) {
      this.#cache.delete(pid);
      return undefined;
    }
    const cached = this.#cache.get(pid);
    if (cached !== undefined && cached.startTime === startTime) {
      this.#stats.hits++;
      this.#cache.delete(pid);
      this.#cache.set(pid, cached);
      return cached;
    }
    this.#stats.misses++;
    const text = this.#read(pid, "cgroup");
    // Same process still? A pid reused between the two stat reads would otherwise get the old one's cgroup.
    if (text === undefined || this.#startTime(pid) !== startTime) {
      this.#cache.delete(pid);
      return undefined;
    }
    const entry: Entry = { startTime, container: containerFromCgroupInfo(parseCgroupFile(text)) };
    this.#cache.delete(pid);
    this.#cache.set(pid, entry);
    while (this.#cache.size > this.#maxPids) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
      this.#stats.evictions++;
    }
    return entry;
  }

  #resolve(c: CgroupContainer): Attribution {
    const lookup = this.#lookup;
    if (lookup === undefined) {
      return { container: c.containerId, pod: "", namespace: "", containerName: "", imageDigest: "" };
    }
    const meta = lookup.byContainerId(c.containerId);
    if (meta !== undefined) {
      this.#stats.podResolved++;
      return {
        container: c.containerId,
        pod: meta.pod,
        namespace: meta.namespace,
        containerName: meta.containerName,
        imageDigest: meta.imageDigest,
      };
    }
    const pod = c.podUid === undefined ? undefined : lookup.byPodUid(c.podUid);
    if (pod !== undefined) {
      this.#stats.podResolved++;
      return {
        container: c.containerId,
        pod: pod.pod,
        namespace: pod.namespace,
        containerName: "",
        imageDigest: "",
      };
    }
    this.#stats.podUnknown++;
    return { container: c.containerId, pod: "", namespace: "", containerName: "", imageDigest: "" };
  }

  /** Field 22 (starttime) of /proc/PID/stat, as text (it can exceed 2^53 only after ~2.8 million years). */
  #startTime(pid: number): string | undefined {
    const stat = this.#read(pid, "stat");
    if (stat === undefined) return undefined;
    // Field 2 (comm) is in parentheses and may itself contain spaces and ')': split after the LAST ')'.
    const close = stat.lastIndexOf(")");
    if (close < 0) return undefined;
    const fields = stat
      .slice(close + 1)
      .trim()
      .split(/\s+/);
    // fields[0] is field 3 (state), so field 22 is fields[19].
    const st = fields[19];
    return st !== undefined && /^\d+$/.test(st) ? st : undefined;
  }

  #read(pid: number, file: string): string | undefined {
    try {
      return readFileSync(join(this.#procRoot, String(pid), file), "utf8");
    } catch (err: unknown) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: gone (or never existed); ESRCH: exited while reading; EACCES/EPERM: not ours to read (no hostPID
      // privileges) — all "cannot attribute", which the caller counts under exited.
      // Anything else (EIO, EMFILE, …) is counted apart but still never thrown into the sampling path.
      if (code !== "ENOENT" && code !== "ESRCH" && code !== "EACCES" && code !== "EPERM")
        this.#stats.readErrors++;
      return undefined;
    }
  }
}
