/**
 * Per-call options for client-node 2.x generated APIs.
 *
 * The generated clients take an optional `ConfigurationOptions` whose `middleware` can edit the request:
 * - Content type: PATCH methods otherwise pick the first type in their list, `application/json-patch+json`.
 *   `setHeaderOptions("Content-Type", PatchStrategy.MergePatch)` (client-node's documented helper)
 *   overrides it with `application/merge-patch+json` (RFC 7386).
 * - Cancellation: the generated fetch passes `RequestContext.getSignal()` to undici, but no API method
 *   takes a signal and client-node sets no request timeout. A middleware calling `setSignal` gives every
 *   call we make a deadline (leader election must not hang on a dead apiserver connection).
 */
import { Observable, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { ConfigurationOptions, ObservableMiddleware } from "@kubernetes/client-node";

export interface RequestOptions {
  signal?: AbortSignal | undefined;
  /** Sets Content-Type, e.g. `PatchStrategy.MergePatch`. */
  contentType?: PatchStrategy | undefined;
}

/** Builds the options argument of a generated API call, or undefined when there is nothing to set. */
export function requestOptions(options: RequestOptions): ConfigurationOptions | undefined {
  let out: ConfigurationOptions | undefined;
  if (options.contentType !== undefined) out = setHeaderOptions("Content-Type", options.contentType);
  if (options.signal !== undefined) {
    out = {
      ...out,
      middleware: [...(out?.middleware ?? []), signalMiddleware(options.signal)],
      middlewareMergeStrategy: "append",
    };
  }
  return out;
}

/** Options for a JSON merge patch (RFC 7386), optionally cancellable. */
export function mergePatchOptions(signal?: AbortSignal): ConfigurationOptions {
  return requestOptions({ signal, contentType: PatchStrategy.MergePatch }) ?? {};
}

function signalMiddleware(signal: AbortSignal): ObservableMiddleware {
  return {
    pre: (context) => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
}
