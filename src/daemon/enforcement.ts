/**
 * Chooses how job limits are enforced on this host and applies the admin's policy:
 * - a requested mode that the host cannot provide refuses the start (never a silent fallback);
 * - with `require_enforcement: true`, a root daemon on `auto` that finds no usable cgroups refuses
 *   to start too: on a compute node that means the cgroup setup is broken, and the admin must fix it
 *   or choose `enforcement: rlimit` knowingly. An unprivileged daemon (a developer's machine) falls
 *   back to rlimit with a warning, since it cannot have cgroups unless they were delegated to it.
 */
import { ROOT_STATE_DIR, stateDirHash } from '../config/default-state-dir.js';
import type { EnforcementMode } from '../core/job.js';
import type { EnforcementRequest } from '../core/policy.js';
import { createLimiter, detectEnforcementOnHost } from '../exec/limits/detect-enforcement.js';
import type { Limiter } from '../exec/limits/limiter.js';

export type EnforcementSelection =
  | { ok: true; mode: EnforcementMode; reasons: string[]; limiter: Limiter }
  | { ok: false; mode: EnforcementRequest; reasons: string[] };

/**
 * Name of this daemon's cgroup parent below each hierarchy: `hpcq` for the default state directory,
 * `hpcq-<hash of the state dir>` for others, so daemons side by side never touch each other's jobs.
 */
export function cgroupParentName(stateDir: string): string {
  if (stateDir === ROOT_STATE_DIR) return 'hpcq';
  return `hpcq-${stateDirHash(stateDir)}`;
}

export async function selectEnforcement(requested: EnforcementRequest, requireEnforcement: boolean, uid: number, stateDir: string): Promise<EnforcementSelection> {
  const detection = await detectEnforcementOnHost({ requested, parentName: cgroupParentName(stateDir) });
  if (!detection.ok) return { ok: false, mode: requested, reasons: [detection.error, ...detection.reasons] };
  if (detection.mode === 'rlimit' && requested === 'auto' && requireEnforcement && uid === 0) {
    return {
      ok: false,
      mode: requested,
      reasons: [
        'no usable cgroup v2 or v1 hierarchy was found, and require_enforcement is true; fix the cgroup setup, or set enforcement: rlimit to accept the weaker rlimit enforcement',
        ...detection.reasons,
      ],
    };
  }
  return { ok: true, mode: detection.mode, reasons: detection.reasons, limiter: createLimiter(detection) };
}
