// Who a sampled process belongs to. The agent asks an AttributionSource (agent/attribute/ in a
// cluster or standalone); outside any container a process is attributed to "host".

export interface Attribution {
  /** 64-hex container id, or "host". */
  container: string;
  pod: string;
  namespace: string;
  containerName: string;
  /** "sha256:…" or "". */
  imageDigest: string;
}

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

/** Everything is "host": for machines without containers, and tests. */
export const hostOnly: AttributionSource = { attribute: () => HOST_ATTRIBUTION };
