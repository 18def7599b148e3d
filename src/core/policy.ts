/** Small shared vocabulary of admin policy. */
import type { EnforcementMode } from './job.js';

/** The configured `enforcement`: a mode, or `auto` (cgroup2, then cgroup1, then rlimit). */
export type EnforcementRequest = 'auto' | EnforcementMode;
