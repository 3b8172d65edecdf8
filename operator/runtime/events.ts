/**
 * Kubernetes Events for our objects: `events.k8s.io/v1` (client-node `EventsV1Api`), the API client-go's
 * `tools/events` recorder uses, with `reportingController`, `reportingInstance`, `action`, `reason`,
 * `note`, `type` and a `regarding` object reference.
 *
 * De-duplication, simplified from client-go's `eventBroadcasterImpl.recordToSink`: an event identical to
 * one recorded in the last `windowMs` (same regarding object, type, reason, action, note, related) is
 * not created again; its occurrences are counted and written as `series: {count, lastObservedTime}` with
 * one merge patch per `seriesFlushMs` at most. So a hot loop costs one create plus one patch per flush
 * interval, not one write per occurrence. Writes are fire-and-forget (a recorder never fails a reconcile);
 * errors are logged, and at most `maxInFlight` requests run at once — further new events are dropped and
 * counted.
 *
 * Validation mirrors the apiserver's for events.k8s.io/v1 creates: reason and action ≤ 128 characters,
 * note ≤ 1 KiB, reportingInstance ≤ 128; events about cluster-scoped objects go to namespace "default".
 */
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment --
   client-node's model classes are plain data: its ObjectSerializer reads fields, never prototypes. */
import { V1MicroTime } from "@kubernetes/client-node";
import type {
  EventsV1Api,
  EventsV1Event,
  KubernetesObject,
  V1ObjectReference,
} from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import type { Logger } from "../../core/service/log.ts";
import { silentLogger } from "../../core/service/log.ts";
import type { CancelTimer, Clock } from "./clock.ts";
import { systemClock, timeoutSignal } from "./clock.ts";
import { isNotFound } from "./errors.ts";
import { counter } from "../../core/service/metrics.ts";
import { mergePatchOptions, requestOptions } from "./request-options.ts";

export type EventType = "Normal" | "Warning";

export interface ObjectRef {
  apiVersion?: string | undefined;
  kind: string;
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string | undefined;
  uid?: string | undefined;
  resourceVersion?: string | undefined;
}

export interface EventInput {
  type: EventType;
  /** Why: CamelCase, e.g. "SignatureInvalid". ≤ 128 characters. */
  reason: string;
  /** What the controller did or failed to do, e.g. "Verify". ≤ 128 characters. */
  action: string;
  /** Human-readable detail, ≤ 1 KiB (truncated). */
  note: string;
  related?: ObjectRef;
}

/** What controllers depend on; tests use `FakeEventRecorder`. */
export interface EventRecorder {
  /** Records an event about `regarding`. Never throws, never blocks. */
  event(regarding: ObjectRef, input: EventInput): void;
}

/** The reference to put in `regarding` for a Kubernetes object. */
export function objectRef(obj: KubernetesObject): ObjectRef {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind ?? "",
    name: obj.metadata?.name ?? "",
    namespace: obj.metadata?.namespace,
    uid: obj.metadata?.uid,
    resourceVersion: obj.metadata?.resourceVersion,
  };
}

/** Records events in memory, for controller unit tests. */
export class FakeEventRecorder implements EventRecorder {
  readonly events: (EventInput & { regarding: ObjectRef })[] = [];

  event(regarding: ObjectRef, input: EventInput): void {
    this.events.push({ regarding, ...input });
  }
}

export type EventsApi = Pick<EventsV1Api, "createNamespacedEvent" | "patchNamespacedEvent">;

export interface KubernetesEventRecorderOptions {
  api: EventsApi;
  /** `reportingController`; default "stella-operator". */
  reportingController?: string;
  /** `reportingInstance`: this replica, e.g. the leader-election identity. */
  reportingInstance: string;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Identical events within this window are merged into a series (default 6 min, client-go). */
  windowMs?: number;
  /** At most one series patch per event per this interval (default 30 s). */
  seriesFlushMs?: number;
  /** Remembered distinct events (LRU); default 4096. */
  maxEntries?: number;
  /** Concurrent API requests; default 64. */
  maxInFlight?: number;
  /** Per-request timeout; default 10 s. */
  requestTimeoutMs?: number;
}

const LIMIT_REASON = 128;
const LIMIT_ACTION = 128;
const LIMIT_NOTE_BYTES = 1024;
const LIMIT_INSTANCE = 128;
const MAX_NAME = 253;

interface Entry {
  readonly key: string;
  readonly namespace: string;
  /** Set once the create succeeded. */
  name: string | undefined;
  count: number;
  patchedCount: number;
  lastObservedMs: number;
  flush: CancelTimer | undefined;
}

export class KubernetesEventRecorder implements EventRecorder {
  readonly #api: EventsApi;
  readonly #controller: string;
  readonly #instance: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #seriesFlushMs: number;
  readonly #maxEntries: number;
  readonly #maxInFlight: number;
  readonly #timeoutMs: number;
  readonly #dropCounter: (() => void) | undefined;
  /** Insertion-ordered: the first entry is the least recently created. */
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Set<Promise<void>>();
  #seq = 0;
  #dropped = 0;
  #stopped = false;

  constructor(options: KubernetesEventRecorderOptions) {
    this.#api = options.api;
    this.#controller = options.reportingController ?? "stella-operator";
    this.#instance = options.reportingInstance.slice(0, LIMIT_INSTANCE);
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({ component: "events" });
    this.#windowMs = options.windowMs ?? 6 * 60_000;
    this.#seriesFlushMs = options.seriesFlushMs ?? 30_000;
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#maxInFlight = options.maxInFlight ?? 64;
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    if (options.registry !== undefined) {
      const c = counter(options.registry, {
        name: "stella_events_dropped_total",
        help: "Kubernetes Events not recorded because too many API requests were in flight or after shutdown",
      });
      c.inc(0);
      this.#dropCounter = () => {
        c.inc();
      };
    }
  }

  get droppedCount(): number {
    return this.#dropped;
  }

  event(regarding: ObjectRef, input: EventInput): void {
    const reason = input.reason.slice(0, LIMIT_REASON);
    const action = input.action.slice(0, LIMIT_ACTION);
    const note = truncateUtf8(input.note, LIMIT_NOTE_BYTES);
    const namespace =
      regarding.namespace !== undefined && regarding.namespace !== "" ? regarding.namespace : "default";
    const key = JSON.stringify([
      regarding.apiVersion,
      regarding.kind,
      regarding.namespace,
      regarding.name,
      regarding.uid,
      input.related?.kind,
      input.related?.namespace,
      input.related?.name,
      input.type,
      reason,
      action,
      note,
    ]);
    const now = this.#clock.now();
    const existing = this.#entries.get(key);
    if (existing !== undefined && now - existing.lastObservedMs <= this.#windowMs && !this.#stopped) {
      existing.count++;
      existing.lastObservedMs = now;
      this.#scheduleFlush(existing);
      return;
    }
    if (this.#stopped || this.#inFlight.size >= this.#maxInFlight) {
      this.#drop(reason);
      return;
    }
    if (existing !== undefined) this.#forget(existing);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined) break;
      this.#forget(oldest);
    }
    const entry: Entry = {
      key,
      namespace,
      name: undefined,
      count: 1,
      patchedCount: 1,
      lastObservedMs: now,
      flush: undefined,
    };
    this.#entries.set(key, entry);
    const body: EventsV1Event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: this.#eventName(regarding.name, now), namespace },
      eventTime: new V1MicroTime(now),
      reportingController: this.#controller,
      reportingInstance: this.#instance,
      action,
      reason,
      note,
      type: input.type,
      regarding: toReference(regarding),
    };
    if (input.related !== undefined) body.related = toReference(input.related);
    this.#track(this.#create(entry, body));
  }

  /** Writes pending series counts now and waits for every in-flight request. */
  async flush(): Promise<void> {
    for (const entry of this.#entries.values()) {
      if (entry.flush !== undefined) {
        entry.flush();
        entry.flush = undefined;
        this.#track(this.#patchSeries(entry));
      }
    }
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Stops recording (later events are dropped), flushes, and waits up to `deadlineMs`. */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    this.#stopped = true;
    const { signal, dispose } = timeoutSignal(this.#clock, deadlineMs);
    const timedOut = new Promise<void>((resolve) => {
      signal.addEventListener("abort", () => {
        resolve();
      });
    });
    await Promise.race([this.flush(), timedOut]);
    dispose();
    for (const entry of this.#entries.values()) entry.flush?.();
    this.#entries.clear();
  }

  async #create(entry: Entry, body: EventsV1Event): Promise<void> {
    const { signal, dispose } = timeoutSignal(this.#clock, this.#timeoutMs);
    try {
      await this.#api.createNamespacedEvent({ namespace: entry.namespace, body }, requestOptions({ signal }));
      entry.name = body.metadata?.name;
      if (entry.count > entry.patchedCount) this.#scheduleFlush(entry);
    } catch (err: unknown) {
      this.#log.warn({ err, reason: body.reason }, "failed to create event");
      if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    } finally {
      dispose();
    }
  }

  #scheduleFlush(entry: Entry): void {
    // While the create is in flight there is nothing to patch yet; #create reschedules.
    if (entry.flush !== undefined || entry.name === undefined || this.#stopped) return;
    entry.flush = this.#clock.setTimeout(() => {
      entry.flush = undefined;
      this.#track(this.#patchSeries(entry));
    }, this.#seriesFlushMs);
  }

  async #patchSeries(entry: Entry): Promise<void> {
    const name = entry.name;
    const count = entry.count;
    if (name === undefined || count <= entry.patchedCount) return;
    const { signal, dispose } = timeoutSignal(this.#clock, this.#timeoutMs);
    try {
      // events.k8s.io validation: series.count ≥ 2 and lastObservedTime set; both hold here.
      await this.#api.patchNamespacedEvent(
        {
          name,
          namespace: entry.namespace,
          body: { series: { count, lastObservedTime: new V1MicroTime(entry.lastObservedMs) } },
        },
        mergePatchOptions(signal),
      );
      entry.patchedCount = Math.max(entry.patchedCount, count);
    } catch (err: unknown) {
      // 404: the apiserver expired the event (default TTL 1 h); the next occurrence creates a new one.
      if (isNotFound(err)) this.#forget(entry);
      else this.#log.warn({ err }, "failed to update event series");
    } finally {
      dispose();
    }
  }

  #track(p: Promise<void>): void {
    this.#inFlight.add(p);
    void p.finally(() => {
      this.#inFlight.delete(p);
    });
  }

  #forget(entry: Entry): void {
    entry.flush?.();
    entry.flush = undefined;
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
  }

  #drop(reason: string): void {
    this.#dropped++;
    this.#dropCounter?.();
    this.#log.debug({ reason }, "event dropped");
  }

  /** client-go: `<regarding name>.<unix nanos in hex>`; a per-recorder sequence keeps names unique. */
  #eventName(regardingName: string, nowMs: number): string {
    const suffix = (BigInt(nowMs) * 1_000_000n + BigInt(this.#seq++ % 1_000_000)).toString(16);
    const prefix = regardingName.slice(0, MAX_NAME - suffix.length - 1).replace(/[^a-z0-9]+$/, "");
    return `${prefix === "" ? "event" : prefix}.${suffix}`;
  }
}

function toReference(ref: ObjectRef): V1ObjectReference {
  const out: V1ObjectReference = { kind: ref.kind, name: ref.name };
  if (ref.apiVersion !== undefined) out.apiVersion = ref.apiVersion;
  if (ref.namespace !== undefined && ref.namespace !== "") out.namespace = ref.namespace;
  if (ref.uid !== undefined) out.uid = ref.uid;
  if (ref.resourceVersion !== undefined) out.resourceVersion = ref.resourceVersion;
  return out;
}

/** Truncates to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(s: string, maxBytes: number): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= maxBytes) return s;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) to a character boundary.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
