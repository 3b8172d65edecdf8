/** Tool version recorded in predicates' metadata; kept in step with package.json. */
export const VERSION = "0.1.0";
