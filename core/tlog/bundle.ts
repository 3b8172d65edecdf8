import { assertBundleLatest, bundleFromJSON, bundleToJSON, type SerializedBundle } from "@sigstore/bundle";

import { envelopeToBundle, invalid } from "../dsse/bundle.ts";
import type { Envelope } from "../dsse/envelope.ts";
import type { TlogEntryJson } from "./rekor.ts";

/**
 * A sigstore bundle v0.3 for a single-signature envelope (DSSE content, `publicKey.hint` = our keyid, as
 * core/dsse/bundle.ts makes it) with the envelope's transparency-log entries in `verificationMaterial.tlogEntries`,
 * so that it verifies offline with verifyTlogBundle. Validated with @sigstore/bundle's assertBundleLatest.
 */
export function bundleWithTlog(envelope: Envelope, entries: readonly TlogEntryJson[]): SerializedBundle {
  const base = envelopeToBundle(envelope);
  const withTlog: SerializedBundle = {
    ...base,
    verificationMaterial: { ...base.verificationMaterial, tlogEntries: [...entries] },
  };
  try {
    const bundle = bundleFromJSON(withTlog);
    assertBundleLatest(bundle);
    return bundleToJSON(bundle);
  } catch (cause) {
    throw invalid("bundle with tlog entries", cause);
  }
}
