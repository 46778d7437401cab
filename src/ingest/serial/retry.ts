/* The retry policy moved to src/core/retry.ts (shared with the OPC UA source); re-exported for existing imports. */
export { DEFAULT_RETRY, type RetryPolicy, retryDelay } from "../../core/retry.js";
