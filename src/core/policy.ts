/** Small shared vocabulary of admin policy. */
export type EnforcementRequest = 'auto' | 'cgroup2' | 'cgroup1' | 'rlimit';
