/**
 * A VEX decision as plain data: what the operator decided about one (vulnerability, product) pair and the
 * runtime observations it rests on. The OpenVEX document (openvex.ts) and the evidence pack
 * (evidence-pack.ts) are both rendered from it, so they can never disagree.
 */

/** OpenVEX v0.2.0 status labels (OPENVEX-SPEC.md § Status Labels). */
export type VexStatusLabel = "not_affected" | "affected" | "fixed" | "under_investigation";

/** OpenVEX v0.2.0 justifications for not_affected (OPENVEX-SPEC.md § Status Justifications). */
export type VexJustificationLabel =
  | "component_not_present"
  | "vulnerable_code_not_present"
  | "vulnerable_code_not_in_execute_path"
  | "vulnerable_code_cannot_be_controlled_by_adversary"
  | "inline_mitigations_already_exist";

export interface VexVulnerabilityRef {
  /** CVE-2024-1234, GHSA-…, an OSV or distribution advisory ID. */
  id: string;
  aliases?: readonly string[];
}

/** An image (digest), a package (purl) or a package inside an image (both). */
export interface VexProductRef {
  /** "sha256:<64 hex>". */
  imageDigest?: string;
  /** "pkg:…". */
  purl?: string;
}

export interface StackWeight {
  /** Leaf first, frames joined by ";". */
  stack: string;
  count: number;
}

/** A vulnerable symbol and how often it was sampled in the evidence window. */
export interface SymbolSamples {
  name: string;
  samples: number;
}

export interface DecisionEvidence {
  /** The observation window [windowStartMs, windowEndMs), ms since the epoch. */
  windowStartMs: number;
  windowEndMs: number;
  /** Samples whose stacks contain a vulnerable symbol (summed over the symbols). */
  samples: number;
  /** All samples of the product in the window: the CPU-share base. */
  productSamples: number;
  /** round(1000 × samples / productSamples), capped at 1000; 0 when the product did not run. */
  cpuSharePermille: number;
  /** Vulnerable symbols with at least one sample, heaviest first. */
  observedSymbols: SymbolSamples[];
  /** Heaviest first, at most 16. */
  topStacks: StackWeight[];
  /** Sorted sets. */
  buildIds: string[];
  pods: string[];
  nodes: string[];
  /** The product's BuildIDs whose verified FuncProof function tables were searched (not_present). */
  checkedBuildIds?: string[];
  /** BuildIDs whose verified FuncProofs contain a vulnerable symbol. */
  presentInBuildIds?: string[];
}

export interface VexDecision {
  vulnerability: VexVulnerabilityRef;
  product: VexProductRef;
  /** The vulnerable symbols the statement asks about. */
  symbols: readonly string[];
  status: VexStatusLabel;
  justification?: VexJustificationLabel;
  impactStatement?: string;
  /** Required by OpenVEX for affected. */
  actionStatement?: string;
  /** CamelCase reason (SymbolObserved, NotInExecutePath, NotPresent, AwaitingEvidence, …). */
  reason: string;
  evidence: DecisionEvidence;
}
