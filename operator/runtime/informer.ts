/**
 * A shared-informer-like cache of one resource kind, on client-node's `ListWatch` (what `makeInformer`
 * returns; built directly here so we can pass a reconnect `delayFn` on our Clock, a field selector, and
 * our own `Watch`).
 *
 * What client-node's ListWatch does and does not do (2.0.1, `dist/cache.js`), and what we add:
 * - It lists, then watches from the list's resourceVersion; a normal watch close reconnects by itself
 *   (1 s doubling to 30 s), and 410 Gone re-lists by itself.
 * - Any other failure (list error, HTTP error, connection reset) emits `error` and STOPS: nothing
 *   restarts it. We restart with our own backoff (1 s doubling to 30 s, reset after 2 min without failure),
 *   resuming from the last resourceVersion.
 * - Stopping it aborts the request, which also emits `error`: ignored once we are shutting down.
 * - If `Watch.watch` itself rejects (e.g. exec credential plugin failing) inside its reconnect path, the
 *   rejection would be unhandled; `GuardedWatch` turns it into a normal `done(err)`.
 * - Handlers that throw would be swallowed by its line parser or break its list path; we isolate them.
 *
 * `hasSynced()` becomes true once the first list has been applied to the cache (client-go HasSynced) and
 * stays true across restarts. Keys are `namespace/name`, or `name` for cluster-scoped objects
 * (client-go `MetaNamespaceKeyFunc`).
 */
import { ADD, DELETE, ERROR, ListWatch, UPDATE, Watch, CustomObjectsApi } from "@kubernetes/client-node";
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../../core/service/log.ts";
import { silentLogger } from "../../core/service/log.ts";
import type { CancelTimer, Clock } from "./clock.ts";
import { sleep, systemClock } from "./clock.ts";

export type ChangeType = "add" | "update" | "delete";
export type ChangeHandler<T> = (type: ChangeType, key: string, obj: T) => void;

export const INFORMER_INITIAL_BACKOFF_MS = 1_000;
export const INFORMER_MAX_BACKOFF_MS = 30_000;
/** Failures this far apart restart with the initial backoff again (client-go reflector: 2 min). */
export const INFORMER_BACKOFF_RESET_MS = 120_000;

export interface InformerOptions<T extends KubernetesObject> {
  /** For logs, e.g. "funcproofs". */
  name: string;
  /** Collection path watched, e.g. `/apis/evidence.stella-ops.org/v1alpha1/funcproofs`. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** A client-node Watch; tests pass a subclass that replays events. */
  watch: Watch;
  labelSelector?: string;
  fieldSelector?: string;
  clock?: Clock;
  logger?: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** `namespace/name`, or `name` when cluster-scoped. */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns === undefined || ns === "" ? name : `${ns}/${name}`;
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Turns a rejected `watch()` into `done(err)` and starts no request once the informer stopped. */
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

export class ResourceInformer<T extends KubernetesObject> {
  readonly name: string;
  readonly #lw: ListWatch<T>;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #handlers: ChangeHandler<T>[] = [];
  #syncWaiters: (() => void)[] = [];
  readonly #stop = new AbortController();
  #started = false;
  #stopped = false;
  #synced = false;
  #listedOk = false;
  #lastErrorMs = Number.NEGATIVE_INFINITY;
  #backoffMs: number;
  #restartTimer: CancelTimer | undefined;

  constructor(options: InformerOptions<T>) {
    this.name = options.name;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({ component: "informer", informer: options.name });
    this.#initialBackoffMs = options.initialBackoffMs ?? INFORMER_INITIAL_BACKOFF_MS;
    this.#maxBackoffMs = options.maxBackoffMs ?? INFORMER_MAX_BACKOFF_MS;
    this.#backoffMs = this.#initialBackoffMs;
    const list = async (): Promise<KubernetesListObject<T>> => {
      const result = await options.list();
      this.#listedOk = true;
      return result;
    };
    this.#lw = new ListWatch<T>(
      options.path,
      new GuardedWatch(options.watch, () => this.#stopped),
      list,
      false,
      options.labelSelector,
      options.fieldSelector,
      { delayFn: (ms) => sleep(this.#clock, ms, this.#stop.signal).then(() => undefined) },
    );
    this.#lw.on(ADD, (obj) => {
      this.#dispatch("add", obj);
    });
    this.#lw.on(UPDATE, (obj) => {
      this.#dispatch("update", obj);
    });
    this.#lw.on(DELETE, (obj) => {
      this.#dispatch("delete", obj);
    });
    this.#lw.on(ERROR, (err?: unknown) => {
      this.#onError(err);
    });
  }

  /** Registers a handler for adds, updates and deletes (typically: enqueue the key). */
  onChange(handler: ChangeHandler<T>): void {
    this.#handlers.push(handler);
  }

  get(key: string): T | undefined {
    const { namespace, name } = splitKey(key);
    return this.#lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.#lw.list(namespace);
  }

  keys(): string[] {
    return this.#lw.list().map(objectKey);
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves true once synced, false if `signal` aborts or the informer shuts down first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (this.#stopped || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.#syncWaiters = this.#syncWaiters.filter((w) => w !== waiter);
        resolve(false);
      };
      const waiter = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#synced);
      };
      this.#syncWaiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Starts listing and watching. Resolves after the first attempt (list applied and watch connected, or
   * failed with a restart scheduled); use `waitForSync` to wait for the cache.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#stopped = false;
    await this.#run();
  }

  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stop.abort();
    this.#restartTimer?.();
    this.#restartTimer = undefined;
    await this.#lw.stop();
    this.#wakeSyncWaiters();
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
    if (this.#listedOk && !this.#synced) {
      this.#synced = true;
      this.#log.info({ objects: this.#lw.list().length }, "cache synced");
      this.#wakeSyncWaiters();
    }
  }

  #onError(err: unknown): void {
    if (this.#stopped) return; // our own abort on shutdown surfaces as an error too
    if (this.#restartTimer !== undefined) return;
    const now = this.#clock.now();
    // client-go's reflector backoff: reset only after a quiet period, so a watch that connects and
    // fails at once keeps backing off.
    if (now - this.#lastErrorMs > INFORMER_BACKOFF_RESET_MS) this.#backoffMs = this.#initialBackoffMs;
    this.#lastErrorMs = now;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#maxBackoffMs);
    this.#log.warn({ err, retryInMs: delay }, "list/watch failed; restarting");
    this.#restartTimer = this.#clock.setTimeout(() => {
      this.#restartTimer = undefined;
      void this.#run();
    }, delay);
  }

  #dispatch(type: ChangeType, obj: T): void {
    const key = objectKey(obj);
    for (const handler of this.#handlers) {
      try {
        handler(type, key, obj);
      } catch (err: unknown) {
        this.#log.error({ err, key, type }, "informer event handler failed");
      }
    }
  }

  #wakeSyncWaiters(): void {
    const waiters = this.#syncWaiters;
    this.#syncWaiters = [];
    for (const w of waiters) w();
  }
}

/** Identifies a resource collection; `group` "" is the core API (`/api/v1`). */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  /** Watch one namespace; absent = all namespaces (or cluster-scoped). */
  namespace?: string | undefined;
}

export function resourcePath(r: ResourceType): string {
  const base = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespace === undefined ? "" : `/namespaces/${encodeURIComponent(r.namespace)}`;
  return `${base}${ns}/${r.plural}`;
}

export interface CustomResourceInformerOptions {
  labelSelector?: string;
  fieldSelector?: string;
  clock?: Clock;
  logger?: Logger;
}

/** An informer for a custom resource, listing through CustomObjectsApi and watching its collection. */
export function customResourceInformer<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  resource: ResourceType,
  options: CustomResourceInformerOptions = {},
): ResourceInformer<T> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural, namespace } = resource;
  const selectors = {
    ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
    ...(options.fieldSelector === undefined ? {} : { fieldSelector: options.fieldSelector }),
  };
  const list = async (): Promise<KubernetesListObject<T>> => {
    const out: unknown =
      namespace === undefined
        ? await api.listClusterCustomObject({ group, version, plural, ...selectors })
        : await api.listNamespacedCustomObject({ group, version, namespace, plural, ...selectors });
    return out as KubernetesListObject<T>;
  };
  return new ResourceInformer<T>({
    name: plural,
    path: resourcePath(resource),
    list,
    watch: new Watch(kubeConfig),
    ...options,
  });
}
