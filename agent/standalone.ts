// Attribution for `stella agent record` on a machine without a cluster: container ids from cgroups,
// no pods.
import { hostOnly, type AttributionSource } from "./pipeline/attribution.ts";

export function standaloneAttribution(_cgroupRoot?: string): AttributionSource {
  return hostOnly;
}
