/** Exit codes scripts can branch on; documented in README "CLI reference". */
export const EXIT_OK = 0;
/** The command ran, and the answer is "no": a signature that does not verify, a policy that fails. */
export const EXIT_VERIFY_FAILED = 1;
/** Bad flags or arguments. */
export const EXIT_USAGE = 2;
/** An input could not be read or parsed (truncated ELF, malformed envelope, missing file). */
export const EXIT_INPUT = 3;
/** A bug: an error we did not expect. */
export const EXIT_INTERNAL = 70;
