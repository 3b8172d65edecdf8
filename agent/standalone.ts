// Attribution for `stella agent record` on a machine without a cluster: container ids from
// /proc/PID/cgroup (containerd, CRI-O, Docker forms), no pods.
import { Attributor } from "./attribute/attributor.ts";
import type { AttributionSource } from "./pipeline/attribution.ts";

export function standaloneAttribution(procRoot?: string): AttributionSource {
  return new Attributor(procRoot !== undefined ? { procRoot } : {});
}
