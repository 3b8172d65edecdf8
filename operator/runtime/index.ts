/**
 * The operator runtime: a small controller-runtime for Node. Controllers import from here; test doubles
 * (`FakeClock`, `FakeLeaseClient`, `FakeEventRecorder`) are imported from their own files.
 */
export type { Clock, CancelTimer } from "./clock.ts";
export { systemClock, sleep } from "./clock.ts";
export type { ReconcileResult, Reconciler, ControllerOptions } from "./controller.ts";
export { Controller } from "./controller.ts";
export { TerminalError, isTerminalError, apiStatusCode, isConflict, isNotFound } from "./errors.ts";
export type { EventRecorder, EventInput, EventType, ObjectRef } from "./events.ts";
export { KubernetesEventRecorder, FakeEventRecorder, objectRef } from "./events.ts";
export type { HealthCheck } from "../../core/service/health.ts";
export { HealthServer } from "../../core/service/health.ts";
export type { ChangeHandler, ChangeType, ResourceType } from "./informer.ts";
export { ResourceInformer, customResourceInformer, objectKey, splitKey, resourcePath } from "./informer.ts";
export type { Lease, LeaseClient, LeaseRecord, StoppedReason } from "./leader-election.ts";
export { LeaderElector, defaultIdentity } from "./leader-election.ts";
export { KubernetesLeaseClient } from "./lease-client.ts";
export type { CacheRunnable, Runnable, ManagerOptions } from "./manager.ts";
export { Manager, ManagerError, installSignalHandlers } from "./manager.ts";
export { createRegistry, counter, gauge, histogram, exponentialBuckets } from "../../core/service/metrics.ts";
export type { RateLimiter } from "./rate-limiter.ts";
export { defaultControllerRateLimiter } from "./rate-limiter.ts";
export { mergePatchOptions, requestOptions } from "./request-options.ts";
export type {
  Condition,
  ConditionInput,
  ConditionStatus,
  ResourceRef,
  StatusApi,
  StatusObject,
} from "./status.ts";
export { setCondition, findCondition, isConditionTrue, removeCondition, patchStatus } from "./status.ts";
export { WorkQueue } from "./workqueue.ts";
