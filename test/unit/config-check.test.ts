import { describe, it, expect, afterEach, beforeEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { printConfig } from '../../src/config/config-file.js';
import { compileConfig, loadConfig, type HostFacts } from '../../src/config/load-config.js';
import { configSchema } from '../../src/config/schema.js';

const HOST: HostFacts = { cores: 8, memoryMb: 16384, uid: 0 };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hpcq-config-check-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A configuration that sets something in every section, with units. */
const FULL = [
  'state_dir: /srv/hpcq',
  'listen: [unix:/run/hpcq/a.sock, "[::1]:50051"]',
  'tls: { cert_file: /etc/hpcq/server.crt, key_file: /etc/hpcq/server.key, client_ca_file: /etc/hpcq/ca.crt }',
  'access:',
  '  admin_groups: [hpcadm]',
  '  min_uid: 500',
  '  job_visibility: all',
  '  principals:',
  '    - { name: spiffe://example.org/portal, run_users: [alice, "@physics"] }',
  '    - { name: ops, admin: true }',
  '  rate_limit: { submits_per_second: 2.5, burst: 5, admins_exempt: false }',
  '  first_request_timeout_seconds: 1m',
  '  audit_log: /var/log/hpcq/audit.log',
  'kill_grace_seconds: 2m',
  'enforcement: rlimit',
  'require_enforcement: false',
  'job_umask: "077"',
  'node: { cores: 4, mem_mb: 12G }',
  'retention: { finished_job_max_age_days: 7d, schedule: "0 3 * * *" }',
  'clusters:',
  '  - cluster_id: c1',
  '    zone: z1',
  '    queues:',
  '      - { hpcqueue_id: normal, scheduler_queue_name: normal, default: true, max_mem_mb: 8G, max_time_seconds: 2d, allowed_groups: [physics], allowed_users: [bob] }',
  '      - { hpcqueue_id: long, scheduler_queue_name: long, priority: -5, max_cores: 2, max_running: 3, max_pending_per_user: 10 }',
  '  - { cluster_id: c2, zone: z2, queues: [{ hpcqueue_id: other, scheduler_queue_name: normal, default: true }] }',
  '',
].join('\n');

describe('hpcqd --check prints the effective configuration in the file keys', () => {
  it.each<[string, boolean, NodeJS.ProcessEnv, HostFacts]>([
    ['the embedded default, as root', false, {}, HOST],
    ['the embedded default, as a user', false, { HOME: '/home/alice' }, { cores: 2, memoryMb: 4096, uid: 1000 }],
    ['a file setting every section, with units', true, {}, HOST],
    ['a file with environment overrides', true, { HPCQ_STATE_DIR: '/from/env', HPCQ_LISTEN: 'unix:/from/env.sock' }, HOST],
  ])('loads back to the same configuration: %s', (_title, withFile, env, host) => {
    const effectiveEnv = { ...env };
    if (withFile) {
      effectiveEnv.HPCQ_CONFIG = join(dir, 'hpcqd.yaml');
      writeFileSync(effectiveEnv.HPCQ_CONFIG, FULL);
    }
    const config = loadConfig(effectiveEnv, {}, host);
    const printed = printConfig(config);
    // Loaded as a file, without the environment that made it, on a different host.
    const path = join(dir, 'printed.yaml');
    writeFileSync(path, printed);
    expect(loadConfig({ HPCQ_CONFIG: path }, {}, { cores: 64, memoryMb: 262144, uid: host.uid })).toStrictEqual(config);
    expect(compileConfig(parseYaml(printed), 'printed', {}, host)).toStrictEqual(config);
  });

  it('uses the snake_case keys the file uses, and plain numbers in the key units', () => {
    const path = join(dir, 'hpcqd.yaml');
    writeFileSync(path, FULL);
    const printed = printConfig(loadConfig({ HPCQ_CONFIG: path }, {}, HOST));
    const parsed = parseYaml(printed) as Record<string, unknown>;
    expect(configSchema.safeParse(parsed).success).toBe(true);
    expect(Object.keys(parsed)).toEqual(Object.keys(configSchema.shape));
    expect(printed).not.toMatch(/^\s*-?\s*[a-z]+[A-Z]\w*:/m); // no camelCase key anywhere
    expect(printed).toContain('kill_grace_seconds: 120\n');
    expect(printed).toContain('job_umask: "0077"\n');
    expect(printed).toMatch(/^ {2}mem_mb: 12288$/m);
    expect(printed).toMatch(/^ {2}finished_job_max_age_days: 7$/m);
    expect(printed).toMatch(/^ {2}first_request_timeout_seconds: 60$/m);
    expect(printed).toMatch(/^ {8}max_time_seconds: 172800$/m);
  });
});
