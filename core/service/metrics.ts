/**
 * The Prometheus registry (operator and agent) and metric constructors.
 *
 * One `Registry` per process, passed to every component — never prom-client's global default
 * registry, so tests build isolated registries and libraries cannot leak metrics into ours.
 * Naming follows the Prometheus conventions (https://prometheus.io/docs/practices/naming/): base units in
 * the name (`_seconds`, `_bytes`), counters end in `_total`, and no label may carry an unbounded value
 * (object names, UIDs, BuildIDs, digests, stacks): labels name a controller, a queue, a result.
 * Constructors are get-or-create so several queues/controllers share one metric family by label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { StellaError } from "../errors.ts";

export type MetricsErrorCode = "METRIC_NAME" | "METRIC_LABEL" | "METRIC_TYPE";

export class MetricsError extends StellaError<MetricsErrorCode> {}

export interface RegistryOptions {
  /** Register prom-client's default process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

export function createRegistry(options: RegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Histograms observe a quantity: its base unit must be in the name. */
const UNIT_SUFFIX = /_(seconds|bytes|ratio|bits|meters|celsius|volts|amperes|joules|grams)$/;
/**
 * Label names whose values are per-object or per-sample and therefore unbounded. Rejected at creation so
 * a careless label cannot blow up the scrape (CONVENTIONS: never BuildID, pod UID, stack).
 */
const UNBOUNDED_LABELS = new Set([
  "uid",
  "pod_uid",
  "build_id",
  "buildid",
  "stack",
  "key",
  "object",
  "digest",
  "image_digest",
  "path",
  "pod",
  "container",
]);

export interface MetricConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Called on each scrape before the value is read (pull metrics: copy a stats field in). */
  collect?: () => void;
}

export interface HistogramConfig<L extends string> extends MetricConfig<L> {
  /** Bucket upper bounds, in the unit of the metric name. */
  buckets?: readonly number[];
}

export function counter<L extends string = string>(registry: Registry, config: MetricConfig<L>): Counter<L> {
  check(config);
  if (!config.name.endsWith("_total")) {
    throw new MetricsError("METRIC_NAME", `counter ${config.name} must end in _total`);
  }
  const existing = registry.getSingleMetric(config.name);
  if (existing !== undefined) return expectType(existing, Counter, config.name) as Counter<L>;
  return new Counter<L>({ ...config, labelNames: config.labelNames ?? [], registers: [registry] });
}

export function gauge<L extends string = string>(registry: Registry, config: MetricConfig<L>): Gauge<L> {
  check(config);
  if (config.name.endsWith("_total")) {
    throw new MetricsError("METRIC_NAME", `gauge ${config.name} must not end in _total (counters only)`);
  }
  const existing = registry.getSingleMetric(config.name);
  if (existing !== undefined) return expectType(existing, Gauge, config.name) as Gauge<L>;
  return new Gauge<L>({ ...config, labelNames: config.labelNames ?? [], registers: [registry] });
}

export function histogram<L extends string = string>(
  registry: Registry,
  config: HistogramConfig<L>,
): Histogram<L> {
  check(config);
  if (!UNIT_SUFFIX.test(config.name)) {
    throw new MetricsError("METRIC_NAME", `histogram ${config.name} must name its base unit (e.g. _seconds)`);
  }
  const existing = registry.getSingleMetric(config.name);
  if (existing !== undefined) return expectType(existing, Histogram, config.name) as Histogram<L>;
  return new Histogram<L>({
    name: config.name,
    help: config.help,
    labelNames: config.labelNames ?? [],
    ...(config.buckets === undefined ? {} : { buckets: [...config.buckets] }),
    registers: [registry],
  });
}

/** `count` buckets starting at `start`, each `factor` times the previous (Prometheus ExponentialBuckets). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(12)));
  return out;
}

function check(config: MetricConfig<string>): void {
  if (!METRIC_NAME.test(config.name)) {
    throw new MetricsError("METRIC_NAME", `invalid metric name ${JSON.stringify(config.name)}`);
  }
  for (const label of config.labelNames ?? []) {
    if (!LABEL_NAME.test(label) || label.startsWith("__")) {
      throw new MetricsError("METRIC_LABEL", `invalid label name ${JSON.stringify(label)} on ${config.name}`);
    }
    if (UNBOUNDED_LABELS.has(label)) {
      throw new MetricsError(
        "METRIC_LABEL",
        `label ${label} on ${config.name} would carry unbounded values; aggregate instead`,
      );
    }
  }
}

function expectType(
  metric: unknown,
  type: abstract new (...args: never[]) => unknown,
  name: string,
): unknown {
  if (!(metric instanceof type)) {
    throw new MetricsError("METRIC_TYPE", `metric ${name} is already registered with another type`);
  }
  return metric;
}
