// The Secrets RolloutGates name in spec.trustedKeys (issue 7). Only Secrets in the operator's own namespace are
// read: a gate is cluster-scoped, and letting it name any namespace would let whoever can create a gate make the
// operator read Secrets across the cluster. The chart's RBAC grants get/list/watch on Secrets in the release
// namespace only.
import { CoreV1Api, type KubeConfig, type V1Secret, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";

import type { PublicKey } from "../../core/dsse/keys.ts";
import type { SecretKeyRef } from "../api/generated/common.ts";
import { ResourceInformer } from "../runtime/informer.ts";
import { keysFromSecretData } from "./trusted-keys.ts";

export interface ResolvedKeys {
  keys: PublicKey[];
  /** One line per reference that gave no key, naming the reference and why. */
  problems: string[];
}

/** Resolves secretRefs against `secret(namespace/name)`; pure, so the rules are testable without a cluster. */
export function resolveKeyRefs(
  refs: readonly { secretRef: SecretKeyRef }[],
  namespace: string,
  secret: (key: string) => V1Secret | undefined,
): ResolvedKeys {
  const keys = new Map<string, PublicKey>();
  const problems: string[] = [];
  refs.forEach(({ secretRef: ref }, i) => {
    const where = `spec.trustedKeys[${i}].secretRef (${ref.namespace}/${ref.name}${ref.key === undefined ? "" : `:${ref.key}`})`;
    if (ref.namespace !== namespace) {
      problems.push(`${where}: the operator reads Secrets only in its namespace ${namespace}`);
      return;
    }
    const data = secret(`${ref.namespace}/${ref.name}`)?.data;
    if (data === undefined) {
      problems.push(`${where}: Secret not found`);
      return;
    }
    const names = Object.keys(data);
    if (ref.key === undefined && names.length !== 1) {
      problems.push(`${where}: no key given and the Secret holds ${names.length} entries, not exactly one`);
      return;
    }
    const name = ref.key ?? names[0] ?? "";
    if (data[name] === undefined) {
      problems.push(`${where}: the Secret has no entry ${name}`);
      return;
    }
    const parsed = keysFromSecretData({ [name]: data[name] }, where);
    problems.push(...parsed.problems);
    for (const k of parsed.keys) keys.set(k.keyid, k);
  });
  return { keys: [...keys.values()], problems };
}

export class GateKeys {
  readonly informer: ResourceInformer<V1Secret>;
  readonly namespace: string;

  constructor(kc: KubeConfig, namespace: string, logger: Logger) {
    this.namespace = namespace;
    const api = kc.makeApiClient(CoreV1Api);
    this.informer = new ResourceInformer<V1Secret>({
      name: "gate-key-secrets",
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
      list: () => api.listNamespacedSecret({ namespace }),
      watch: new Watch(kc),
      logger,
    });
  }

  resolve(refs: readonly { secretRef: SecretKeyRef }[]): ResolvedKeys {
    return resolveKeyRefs(refs, this.namespace, (key) => this.informer.get(key));
  }
}
