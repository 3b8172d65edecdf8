// Who a sampled process belongs to. The aggregator asks an AttributionSource: the Attributor
// (agent/attribute/: cgroup → container → pod → image) or, for tests and container-less use, hostOnly.
import type { Attribution } from "../attribute/attributor.ts";

export type { Attribution };

export const HOST_ATTRIBUTION: Attribution = Object.freeze({
  container: "host",
  pod: "",
  namespace: "",
  containerName: "",
  imageDigest: "",
});

export interface AttributionSource {
  /** undefined when the process is gone. */
  attribute(pid: number): Attribution | undefined;
}

/** Everything is "host". */
export const hostOnly: AttributionSource = { attribute: () => HOST_ATTRIBUTION };
