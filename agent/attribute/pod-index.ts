/**
 * The pods of this node, indexed by container id and by pod UID: the cluster half of attribution.
 *
 * - One list+watch of `/api/v1/pods` with `fieldSelector=spec.nodeName=<node>` (what kubelet itself watches), so an
 *   agent holds only its node's pods and the API server filters. RBAC needed: pods get/list/watch, cluster-wide
 *   (the chart's agent ClusterRole).
 * - client-node's `ListWatch` lists, watches from the list's resourceVersion, reconnects a closed watch by itself
 *   and re-lists on 410 Gone (client-go reflector behaviour). Any other failure (list error, HTTP error, reset
 *   connection) makes it emit `error` and stop; we restart it with backoff (1 s doubling to 30 s, reset after 2 min
 *   without failure), resuming from the last resourceVersion. Its own abort on shutdown also surfaces as an error
 *   and is ignored. (Same policy as operator/runtime/informer.ts, which the agent may not import.)
 * - Container ids come from status.{containerStatuses,initContainerStatuses,ephemeralContainerStatuses}[].containerID,
 *   `<runtime>://<64hex>` (`containerd://`, `cri-o://`, `docker://`), stripped to the id. The image digest is the
 *   `sha256:<64hex>` that ends status…imageID, whose forms are `docker-pullable://repo@sha256:…` (dockershim),
 *   `repo@sha256:…` (containerd, CRI-O) and a bare `sha256:…` (an image without a repo digest: then it is the config
 *   digest); "" when absent. Both are written by kubelet from the runtime and parsed defensively.
 * - By pod UID too, so a container whose id is not in the status yet (just started) still gets pod and namespace.
 *   Static pods are indexed under their mirror pod's `kubernetes.io/config.mirror` annotation as well, because the
 *   cgroup path carries the static pod's UID (kubelet's config hash), not the mirror pod's metadata.uid.
 * - A pod being deleted stays indexed until the DELETE event: its containers run through their grace period.
 */
import { ADD, CoreV1Api, DELETE, ERROR, ListWatch, UPDATE, Watch } from "@kubernetes/client-node";
import type { KubeConfig, KubernetesListObject, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";

import { StellaError } from "../../core/errors.ts";
import type { Logger } from "../../core/service/log.ts";
import { silentLogger } from "../../core/service/log.ts";
import type { ContainerMeta, PodLookup, PodMeta } from "./attributor.ts";

export const POD_INDEX_INITIAL_BACKOFF_MS = 1_000;
export const POD_INDEX_MAX_BACKOFF_MS = 30_000;
/** Failures this far apart restart with the initial backoff again (client-go reflector: 2 min). */
export const POD_INDEX_BACKOFF_RESET_MS = 120_000;
export const MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror";
const PODS_PATH = "/api/v1/pods";

export interface PodIndexOptions {
  kubeConfig: KubeConfig;
  /** This node's name (the downward API's spec.nodeName). */
  nodeName: string;
  /** Aborting it shuts the index down. */
  signal?: AbortSignal;
  logger?: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Tests: a Watch that replays events, a list function. Default: from kubeConfig. */
  watch?: Watch;
  list?: () => Promise<KubernetesListObject<V1Pod>>;
}

export interface PodIndexStats {
  pods: number;
  containers: number;
  /** list/watch restarts after a failure. */
  restarts: number;
}

/** What one pod contributes to the index. */
export interface PodEntries {
  readonly meta: PodMeta;
  /** metadata.uid, plus the static pod UID for a mirror pod. */
  readonly uids: readonly string[];
  readonly containers: readonly (readonly [containerId: string, meta: ContainerMeta])[];
}

const CONTAINER_ID = /^(?:containerd|cri-o|docker):\/\/([0-9a-f]{64})$/;
const IMAGE_DIGEST = /(?:^|@|\/\/)(sha256:[0-9a-f]{64})$/;

/** `containerd://<64hex>` → `<64hex>`; undefined for anything else (including an empty, not yet known id). */
export function containerIdFromStatus(containerID: string | undefined): string | undefined {
  if (containerID === undefined) return undefined;
  return CONTAINER_ID.exec(containerID.toLowerCase())?.[1];
}

/** The `sha256:<64hex>` an imageID ends with, or "". */
export function imageDigestFromImageId(imageID: string | undefined): string {
  if (imageID === undefined || imageID.length > 4096) return "";
  return IMAGE_DIGEST.exec(imageID)?.[1] ?? "";
}

export function podEntries(pod: V1Pod): PodEntries | undefined {
  const name = pod.metadata?.name;
  const namespace = pod.metadata?.namespace;
  const uid = pod.metadata?.uid;
  if (name === undefined || namespace === undefined || uid === undefined) return undefined;
  const meta: PodMeta = { pod: name, namespace, podUid: uid };
  const uids = [uid];
  const mirror = pod.metadata?.annotations?.[MIRROR_POD_ANNOTATION];
  if (mirror !== undefined && mirror !== "" && mirror !== uid) uids.push(mirror);
  const containers: [string, ContainerMeta][] = [];
  const statuses: readonly V1ContainerStatus[] = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  for (const s of statuses) {
    const id = containerIdFromStatus(s.containerID);
    if (id === undefined) continue;
    containers.push([id, { ...meta, containerName: s.name, imageDigest: imageDigestFromImageId(s.imageID) }]);
  }
  return { meta, uids, containers };
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
}

export class PodIndex implements PodLookup {
  readonly nodeName: string;
  /** Resolves true once the first list is indexed; false if shut down first. */
  readonly synced: Promise<boolean>;
  readonly #lw: ListWatch<V1Pod>;
  readonly #log: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #byPod = new Map<string, PodEntries>();
  readonly #byContainer = new Map<string, ContainerMeta & { key: string }>();
  readonly #byUid = new Map<string, PodMeta & { key: string }>();
  #resolveSynced: (v: boolean) => void = () => undefined;
  #hasSynced = false;
  #started = false;
  #stopped = false;
  #listedOk = false;
  #backoffMs: number;
  #lastErrorMs = Number.NEGATIVE_INFINITY;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  readonly #onAbort = (): void => {
    void this.shutdown();
  };

  constructor(options: PodIndexOptions) {
    if (typeof options.nodeName !== "string" || options.nodeName === "") {
      throw new StellaError("POD_INDEX_CONFIG", "nodeName is required (set NODE_NAME from spec.nodeName)");
    }
    this.nodeName = options.nodeName;
    this.#log = (options.logger ?? silentLogger()).child({ component: "pod-index" });
    this.#signal = options.signal;
    this.#initialBackoffMs = options.initialBackoffMs ?? POD_INDEX_INITIAL_BACKOFF_MS;
    this.#maxBackoffMs = options.maxBackoffMs ?? POD_INDEX_MAX_BACKOFF_MS;
    this.#backoffMs = this.#initialBackoffMs;
    this.synced = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });
    const fieldSelector = `spec.nodeName=${options.nodeName}`;
    const api = options.list === undefined ? options.kubeConfig.makeApiClient(CoreV1Api) : undefined;
    const listFn = options.list ?? (() => (api as CoreV1Api).listPodForAllNamespaces({ fieldSelector }));
    const list = async (): Promise<KubernetesListObject<V1Pod>> => {
      const result = await listFn();
      this.#listedOk = true;
      return result;
    };
    this.#lw = new ListWatch<V1Pod>(
      PODS_PATH,
      new GuardedWatch(options.watch ?? new Watch(options.kubeConfig), () => this.#stopped),
      list,
      false,
      undefined,
      fieldSelector,
      {
        delayFn: (ms) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(resolve, ms);
            t.unref();
          }),
      },
    );
    this.#lw.on(ADD, (pod) => {
      this.#guard(() => {
        this.#upsert(pod);
      });
    });
    this.#lw.on(UPDATE, (pod) => {
      this.#guard(() => {
        this.#upsert(pod);
      });
    });
    this.#lw.on(DELETE, (pod) => {
      this.#guard(() => {
        this.#remove(podKey(pod));
      });
    });
    this.#lw.on(ERROR, (err?: unknown) => {
      this.#onError(err);
    });
  }

  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  byContainerId(containerId: string): ContainerMeta | undefined {
    const m = this.#byContainer.get(containerId);
    return m === undefined ? undefined : strip(m);
  }

  byPodUid(podUid: string): PodMeta | undefined {
    const m = this.#byUid.get(podUid);
    return m === undefined ? undefined : { pod: m.pod, namespace: m.namespace, podUid: m.podUid };
  }

  stats(): PodIndexStats {
    return { pods: this.#byPod.size, containers: this.#byContainer.size, restarts: this.#restarts };
  }

  /** Starts list+watch; resolves after the first attempt. Await `synced` for the cache. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (this.#signal?.aborted === true) {
      await this.shutdown();
      return;
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    await this.#run();
  }

  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#lw.stop();
    this.#resolveSynced(this.#hasSynced);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    this.#listedOk = false;
    try {
      await this.#lw.start();
    } catch (err: unknown) {
      this.#onError(err);
      return;
    }
    if (this.#stopped) return;
    if (this.#listedOk && !this.#hasSynced) {
      this.#hasSynced = true;
      this.#log.info({ node: this.nodeName, ...this.stats() }, "pod index synced");
      this.#resolveSynced(true);
    }
  }

  #onError(err: unknown): void {
    if (this.#stopped || this.#restartTimer !== undefined) return;
    const now = Date.now();
    if (now - this.#lastErrorMs > POD_INDEX_BACKOFF_RESET_MS) this.#backoffMs = this.#initialBackoffMs;
    this.#lastErrorMs = now;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#maxBackoffMs);
    this.#restarts++;
    this.#log.warn({ err, retryInMs: delay }, "pod list/watch failed; restarting");
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.#run();
    }, delay);
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err: unknown) {
      this.#log.error({ err }, "pod index update failed");
    }
  }

  #upsert(pod: V1Pod): void {
    const key = podKey(pod);
    this.#remove(key);
    const entries = podEntries(pod);
    if (entries === undefined) return;
    this.#byPod.set(key, entries);
    for (const uid of entries.uids) this.#byUid.set(uid, { ...entries.meta, key });
    for (const [id, meta] of entries.containers) this.#byContainer.set(id, { ...meta, key });
  }

  #remove(key: string): void {
    const old = this.#byPod.get(key);
    if (old === undefined) return;
    this.#byPod.delete(key);
    // Only entries this pod still owns (a recreated pod with the same UID cannot exist, but be exact anyway).
    for (const uid of old.uids) if (this.#byUid.get(uid)?.key === key) this.#byUid.delete(uid);
    for (const [id] of old.containers)
      if (this.#byContainer.get(id)?.key === key) this.#byContainer.delete(id);
  }
}

function strip(m: ContainerMeta & { key: string }): ContainerMeta {
  return {
    pod: m.pod,
    namespace: m.namespace,
    podUid: m.podUid,
    containerName: m.containerName,
    imageDigest: m.imageDigest,
  };
}

/** Turns a rejected `watch()` into `done(err)`, and starts no request once the index stopped. */
class GuardedWatch extends Watch {
  readonly #inner: Watch;
  readonly #stopped: () => boolean;

  constructor(inner: Watch, stopped: () => boolean) {
    super(inner.config);
    this.#inner = inner;
    this.#stopped = stopped;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.#stopped()) {
      const idle = new AbortController();
      idle.abort();
      return idle;
    }
    try {
      return await this.#inner.watch(path, queryParams, callback, done);
    } catch (err: unknown) {
      done(err);
      return new AbortController();
    }
  }
}
