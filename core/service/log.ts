/**
 * The logger of the operator and the agent: pino, one JSON object per line on stdout.
 *
 * - Errors go under `err` (pino's standard serializer: type, message, stack, code, cause chain).
 * - Each component logs through `componentLogger(root, "leader-election")`, i.e. `child({ component })`.
 * - Data that came from outside the trust boundary (CR specs, agent payloads, paths, symbol names) is
 *   nested under one key with `untrusted(...)`, so it can never overwrite or impersonate the fields
 *   operators filter on (`level`, `msg`, `component`, `controller`, …).
 */
import { pino } from "pino";
import type { DestinationStream, Logger, LevelWithSilent } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  "trace",
  "debug",
  "info",
  "warn",
  "error",
  "fatal",
  "silent",
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go; default stdout (fd 1). Tests pass a stream to capture output. */
  destination?: DestinationStream;
  /** Static fields on every line (e.g. `{ service: "stella-operator" }`). */
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { pid: process.pid, ...options.base },
      errorKey: "err",
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
      // Level as its name ("info"), which log pipelines index without a lookup table.
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** The per-component child logger: every line carries `component`. */
export function componentLogger(parent: Logger, component: string, bindings: Record<string, unknown> = {}) {
  return parent.child({ component, ...bindings });
}

/** A logger that discards everything (tests, optional seams). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/** Wraps attacker-influenced data so it is logged under the `untrusted` key, never at top level. */
export function untrusted(data: unknown): { untrusted: unknown } {
  return { untrusted: data };
}
