// Who a sampled process belongs to. The aggregator asks an AttributionSource: the Attributor
// (agent/attribute/: cgroup → container → pod → image) or, for tests and container-less use, hostOnly.
import { HOST_ATTRIBUTION, type Attribution } from "../attribute/attributor.ts";

export type { Attribution };
export { HOST_ATTRIBUTION };

export interface AttributionSource {
  /** undefined when the process is gone. */
  attribute(pid: number): Attribution | undefined;
}

/** Everything is "host". */
export const hostOnly: AttributionSource = { attribute: () => HOST_ATTRIBUTION };
