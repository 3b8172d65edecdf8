import { StellaError } from "../core/errors.ts";
import { EXIT_INPUT, EXIT_INTERNAL } from "./exit-codes.ts";

/** Where the current invocation's exit code is kept (commander actions cannot return one). */
export const invocation = { exitCode: 0 };

/**
 * Wraps a command body: its resolved number becomes the exit code; a StellaError becomes
 * `stella: <code>: <message>` on stderr and exit 3; anything else is a bug (exit 70).
 */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<number>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      invocation.exitCode = await body(...args);
    } catch (err) {
      if (err instanceof StellaError) {
        process.stderr.write(`stella: ${err.code}: ${err.message}\n`);
        invocation.exitCode = EXIT_INPUT;
      } else {
        process.stderr.write(
          `stella: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        );
        invocation.exitCode = EXIT_INTERNAL;
      }
    }
  };
}

/** Writes a document to stdout, newline-terminated. */
export function printOut(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
