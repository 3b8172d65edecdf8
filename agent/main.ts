import type { AgentConfigOverrides } from "./config.ts";

export function runAgent(_o: {
  fileText?: string;
  fileName?: string;
  overrides?: AgentConfigOverrides;
}): Promise<number> {
  return Promise.resolve(70);
}
