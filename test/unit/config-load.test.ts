import { describe, it, expect, afterEach, beforeEach } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { DaemonConfig } from '../../src/config/daemon-config.js';
import { ConfigError, checkListenAddress, compileConfig, loadConfig, type HostFacts } from '../../src/config/load-config.js';
import { configSchema } from '../../src/config/schema.js';
import { DEFAULT_ACCESS } from '../support/access-defaults.js';

const REFERENCE_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '../../config/hpcqd.yaml');
const HOST: HostFacts = { cores: 8, memoryMb: 16384, uid: 0 };
/** A root daemon's default socket for a state_dir other than /var/lib/hpcq: /run/hpcq/hpcqd-<10 hex of sha256(state_dir)>.sock. */
const rootSocketFor = (stateDir: string) => `unix:/run/hpcq/hpcqd-${createHash('sha256').update(stateDir).digest('hex').slice(0, 10)}.sock`;
/** A tls section that makes TCP listeners acceptable. */
const TLS = { cert_file: '/etc/hpcq/tls/server.crt', key_file: '/etc/hpcq/tls/server.key' };

/** The embedded default on an 8-core, 16 GiB host run as root, written out by hand from schema.ts. */
const EXPECTED_DEFAULT: DaemonConfig = {
  stateDir: '/var/lib/hpcq',
  listen: ['unix:/run/hpcq/hpcqd.sock'],
  tls: undefined,
  access: DEFAULT_ACCESS,
  maxArrayCount: 10_000,
  killGraceSeconds: 30,
  enforcement: 'auto',
  requireEnforcement: true,
  clockSkewSeconds: 300,
  jobUmask: 0o022,
  nodeCores: 8,
  nodeMemMb: 16384 - 512,
  retentionMaxAgeDays: 30,
  retentionSchedule: '',
  clusters: [
    {
      clusterId: 'hpcq-local',
      zone: 'local',
      backend: 'local',
      queues: [
        {
          clusterId: 'hpcq-local',
          zone: 'local',
          hpcqueueId: 'hpcq-normal',
          schedulerQueueName: 'normal',
          isDefault: true,
          priority: 10,
          maxCores: 8,
          defaultCores: 1,
          maxMemMb: 15872,
          defaultMemMb: 1024,
          maxTimeSeconds: 7 * 24 * 3600,
          defaultTimeSeconds: 3600,
          maxRunning: 0,
          maxPending: 100_000,
    maxRunningPerUser: 0,
    maxPendingPerUser: 0,
          allowedGroups: [],
          allowedUsers: [],
        },
        {
          clusterId: 'hpcq-local',
          zone: 'local',
          hpcqueueId: 'hpcq-debug',
          schedulerQueueName: 'debug',
          isDefault: false,
          priority: 20,
          maxCores: 8,
          defaultCores: 1,
          maxMemMb: 15872,
          defaultMemMb: 512,
          maxTimeSeconds: 1800,
          defaultTimeSeconds: 600,
          maxRunning: 4,
          maxPending: 1000,
    maxRunningPerUser: 0,
    maxPendingPerUser: 0,
          allowedGroups: [],
          allowedUsers: [],
        },
      ],
    },
  ],
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hpcq-config-test-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Expects a ConfigError and returns it. */
function configError(fn: () => unknown): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a ConfigError').toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

const problemsOf = (raw: unknown, overrides: { stateDir?: string; listen?: string } = {}, host: HostFacts = HOST) =>
  configError(() => compileConfig(raw, 'test', overrides, host)).problems;

/** One cluster with the given queues; a queue needs only its id and name. */
function oneCluster(queues: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return { clusters: [{ cluster_id: 'c1', zone: 'z1', queues }], ...extra };
}
const q = (id: string, fields: Record<string, unknown> = {}) => ({ hpcqueue_id: id, scheduler_queue_name: id, ...fields });

describe('embedded default', () => {
  it('compiles to the documented defaults', () => {
    expect(compileConfig({}, 'embedded default', {}, HOST)).toStrictEqual(EXPECTED_DEFAULT);
  });

  it('is what loadConfig returns with no file, environment or flags', () => {
    expect(loadConfig({}, {}, HOST)).toStrictEqual(EXPECTED_DEFAULT);
  });

  it('uses the detected cores and memory when node.cores and node.mem_mb are 0', () => {
    const config = compileConfig({}, 'test', {}, { cores: 4, memoryMb: 8192, uid: 0 });
    expect(config.nodeCores).toBe(4);
    expect(config.nodeMemMb).toBe(8192 - 512);
    // Queues with max 0 take the node's capacity.
    expect(config.clusters[0]!.queues[0]).toMatchObject({ hpcqueueId: 'hpcq-normal', maxCores: 4, maxMemMb: 7680 });
  });

  it('uses node.cores and node.mem_mb from the file instead of detection', () => {
    const config = compileConfig({ node: { cores: 4, mem_mb: 6000 } }, 'test', {}, { cores: 64, memoryMb: 262144, uid: 0 });
    expect([config.nodeCores, config.nodeMemMb]).toEqual([4, 6000]);
  });

  it('subtracts node.reserved_mem_mb from the detected memory, keeping at least 256 MiB', () => {
    expect(compileConfig({ node: { reserved_mem_mb: 2048 } }, 'test', {}, HOST).nodeMemMb).toBe(16384 - 2048);
    const tiny = oneCluster([q('tiny', { default: true, default_mem_mb: 64 })]);
    expect(compileConfig(tiny, 'test', {}, { cores: 1, memoryMb: 600, uid: 0 }).nodeMemMb).toBe(256);
  });

  it('is frozen all the way down', () => {
    const config = compileConfig({}, 'test', {}, HOST);
    const cluster = config.clusters[0]!;
    const queue = cluster.queues[0]!;
    for (const part of [config, config.listen, config.clusters, cluster, cluster.queues, queue, queue.allowedGroups, queue.allowedUsers, config.access, config.access.adminGroups, config.access.principals, config.access.rateLimit]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (config as { nodeCores: number }).nodeCores = 1;
    }).toThrow(TypeError);
  });

  it('compiles on a small node (1 core, 2 GiB)', () => {
    // The embedded queues take their maxima from the node, so the default starts on any host.
    const config = compileConfig({}, 'embedded default', {}, { cores: 1, memoryMb: 2048, uid: 0 });
    for (const queue of config.clusters[0]!.queues) {
      expect(queue.maxCores).toBeLessThanOrEqual(config.nodeCores);
      expect(queue.maxMemMb).toBeLessThanOrEqual(config.nodeMemMb);
    }
  });
});

describe('state_dir and listen defaults', () => {
  it('root: /var/lib/hpcq and unix:/run/hpcq/hpcqd.sock, whatever HOME says', () => {
    const config = compileConfig({}, 'test', {}, { ...HOST, uid: 0 }, { HOME: '/root', XDG_STATE_HOME: '/xdg' });
    expect(config.stateDir).toBe('/var/lib/hpcq');
    expect(config.listen).toEqual(['unix:/run/hpcq/hpcqd.sock']);
  });

  it('other users: ~/.local/state/hpcq from HOME', () => {
    const config = compileConfig({}, 'test', {}, { ...HOST, uid: 1000 }, { HOME: '/home/alice' });
    expect(config.stateDir).toBe('/home/alice/.local/state/hpcq');
    expect(config.listen).toEqual(['unix:/home/alice/.local/state/hpcq/hpcqd.sock']);
  });

  it('other users: $XDG_STATE_HOME/hpcq when XDG_STATE_HOME is set', () => {
    const config = compileConfig({}, 'test', {}, { ...HOST, uid: 1000 }, { HOME: '/home/alice', XDG_STATE_HOME: '/xdg/state' });
    expect(config.stateDir).toBe('/xdg/state/hpcq');
  });

  it('other users without HOME in the environment: the OS home directory', () => {
    expect(compileConfig({}, 'test', {}, { ...HOST, uid: 1000 }, {}).stateDir).toBe(join(homedir(), '.local', 'state', 'hpcq'));
  });

  it('root with another state_dir: unix:/run/hpcq/hpcqd-<hash of the state_dir>.sock', () => {
    const config = compileConfig({ state_dir: '/srv/hpcq' }, 'test', {}, HOST);
    expect(config.listen).toEqual([rootSocketFor('/srv/hpcq')]);
    expect(config.listen[0]).toMatch(/^unix:\/run\/hpcq\/hpcqd-[0-9a-f]{10}\.sock$/);
    // Two daemons side by side get two sockets.
    expect(compileConfig({ state_dir: '/srv/hpcq2' }, 'test', {}, HOST).listen).not.toEqual(config.listen);
    // Spelling out the default state_dir keeps the default socket.
    expect(compileConfig({ state_dir: '/var/lib/hpcq' }, 'test', {}, HOST).listen).toEqual(['unix:/run/hpcq/hpcqd.sock']);
  });

  it('non-root: the default socket follows a configured state_dir', () => {
    expect(compileConfig({ state_dir: '/srv/hpcq' }, 'test', {}, { ...HOST, uid: 1000 }).listen).toEqual(['unix:/srv/hpcq/hpcqd.sock']);
  });

  it('a configured listen list is kept as given', () => {
    const config = compileConfig({ listen: ['unix:/run/hpcq.sock', '127.0.0.1:50051', '[::1]:50052'], tls: TLS }, 'test', {}, HOST);
    expect(config.listen).toEqual(['unix:/run/hpcq.sock', '127.0.0.1:50051', '[::1]:50052']);
    expect(config.stateDir).toBe('/var/lib/hpcq');
  });
});

describe('loadConfig: file, environment, flags', () => {
  it('reads a YAML file named by HPCQ_CONFIG', () => {
    const path = writeConfig(
      'hpcqd.yaml',
      ['state_dir: /srv/hpcq', 'kill_grace_seconds: 5', 'enforcement: rlimit', 'job_umask: "077"', 'node:', '  cores: 4', '  mem_mb: 8192', ''].join('\n'),
    );
    const config = loadConfig({ HPCQ_CONFIG: path }, {}, HOST);
    expect(config).toMatchObject({ stateDir: '/srv/hpcq', listen: [rootSocketFor('/srv/hpcq')], killGraceSeconds: 5, enforcement: 'rlimit', jobUmask: 0o077, nodeCores: 4, nodeMemMb: 8192 });
    expect(config.clusters[0]!.queues[0]).toMatchObject({ maxCores: 4, maxMemMb: 8192 });
  });

  it('reads a JSON file', () => {
    const path = writeConfig(
      'hpcqd.json',
      JSON.stringify({ clock_skew_seconds: 60, retention: { finished_job_max_age_days: 0 }, clusters: [{ cluster_id: 'c1', zone: 'z1', queues: [q('only', { default: true })] }] }),
    );
    const config = loadConfig({ HPCQ_CONFIG: path }, {}, HOST);
    expect(config.clockSkewSeconds).toBe(60);
    expect(config.retentionMaxAgeDays).toBe(0);
    expect(config.retentionSchedule).toBe('');
    expect(config.clusters.map((c) => [c.clusterId, c.queues.map((x) => x.hpcqueueId)])).toEqual([['c1', ['only']]]);
  });

  it('an empty file means the embedded default', () => {
    expect(loadConfig({ HPCQ_CONFIG: writeConfig('empty.yaml', '') }, {}, HOST)).toStrictEqual(EXPECTED_DEFAULT);
    expect(loadConfig({ HPCQ_CONFIG: writeConfig('comments.yaml', '# nothing\n') }, {}, HOST)).toStrictEqual(EXPECTED_DEFAULT);
  });

  it('--config wins over HPCQ_CONFIG', () => {
    const fromEnv = writeConfig('env.yaml', 'kill_grace_seconds: 1\n');
    const fromFlag = writeConfig('flag.yaml', 'kill_grace_seconds: 2\n');
    expect(loadConfig({ HPCQ_CONFIG: fromEnv }, { configPath: fromFlag }, HOST).killGraceSeconds).toBe(2);
  });

  it('HPCQ_STATE_DIR wins over the file, and the default socket moves with it', () => {
    const path = writeConfig('c.yaml', 'state_dir: /from/file\n');
    const config = loadConfig({ HPCQ_CONFIG: path, HPCQ_STATE_DIR: '/from/env' }, {}, HOST);
    expect(config.stateDir).toBe('/from/env');
    expect(config.listen).toEqual([rootSocketFor('/from/env')]);
    expect(config.access.auditLogPath).toBe('/from/env/audit.log');
    expect(loadConfig({ HPCQ_CONFIG: path, HPCQ_STATE_DIR: '/from/env' }, {}, { ...HOST, uid: 1000 }).listen).toEqual(['unix:/from/env/hpcqd.sock']);
  });

  it('HPCQ_STATE_DIR applies without a file, for non-root too', () => {
    expect(loadConfig({ HPCQ_STATE_DIR: '/tmp/hpcq-state' }, {}, { ...HOST, uid: 1000 }).stateDir).toBe('/tmp/hpcq-state');
  });

  it('HPCQ_LISTEN replaces the file listen list with one address', () => {
    const path = writeConfig('c.yaml', 'listen:\n  - unix:/a.sock\n  - unix:/b.sock\ntls:\n  cert_file: /etc/hpcq/server.crt\n  key_file: /etc/hpcq/server.key\n');
    expect(loadConfig({ HPCQ_CONFIG: path, HPCQ_LISTEN: '127.0.0.1:7000' }, {}, HOST).listen).toEqual(['127.0.0.1:7000']);
    expect(loadConfig({ HPCQ_CONFIG: path, HPCQ_LISTEN: 'unix:/run/x.sock' }, {}, HOST).listen).toEqual(['unix:/run/x.sock']);
    expect(loadConfig({ HPCQ_LISTEN: 'unix:/run/x.sock' }, {}, HOST).listen).toEqual(['unix:/run/x.sock']);
  });

  it('flags win over the environment', () => {
    const config = loadConfig({ HPCQ_STATE_DIR: '/env', HPCQ_LISTEN: 'unix:/env.sock' }, { stateDir: '/flag', listen: 'unix:/flag.sock' }, HOST);
    expect(config.stateDir).toBe('/flag');
    expect(config.listen).toEqual(['unix:/flag.sock']);
  });

  it('environment values are validated like file values', () => {
    const relative = configError(() => loadConfig({ HPCQ_STATE_DIR: 'relative/dir' }, {}, HOST));
    expect(relative.problems).toContainEqual(expect.stringMatching(/^state_dir: must be an absolute path/));
    const remote = configError(() => loadConfig({ HPCQ_LISTEN: '0.0.0.0:50051' }, {}, HOST));
    expect(remote.problems).toEqual([expect.stringMatching(/^listen\.0: TCP address 0\.0\.0\.0:50051 needs TLS: set tls\.cert_file and tls\.key_file/)]);
    const loopback = configError(() => loadConfig({ HPCQ_LISTEN: '127.0.0.1:50051' }, {}, HOST));
    expect(loopback.problems).toEqual([expect.stringMatching(/^listen\.0: TCP address 127\.0\.0\.1:50051 needs TLS/)]);
  });

  it('a TCP HPCQ_LISTEN is accepted when the file configures tls', () => {
    const path = writeConfig('c.yaml', 'tls:\n  cert_file: /etc/hpcq/server.crt\n  key_file: /etc/hpcq/server.key\n');
    const config = loadConfig({ HPCQ_CONFIG: path, HPCQ_LISTEN: '0.0.0.0:50051' }, {}, HOST);
    expect(config.listen).toEqual(['0.0.0.0:50051']);
    expect(config.tls).toStrictEqual({ certFile: '/etc/hpcq/server.crt', keyFile: '/etc/hpcq/server.key', clientCaFile: undefined });
  });

  it('a missing file is a ConfigError naming the file', () => {
    const path = join(dir, 'missing.yaml');
    const err = configError(() => loadConfig({ HPCQ_CONFIG: path }, {}, HOST));
    expect(err.source).toBe(path);
    expect(err.problems).toEqual([expect.stringMatching(/^cannot read: .*ENOENT/)]);
    expect(err.message).toContain(path);
  });

  it('malformed YAML is a ConfigError with the line and column of each syntax error', () => {
    const path = writeConfig('bad.yaml', 'node: [1, 2\nclusters: {\n');
    const err = configError(() => loadConfig({ HPCQ_CONFIG: path }, {}, HOST));
    expect(err.source).toBe(path);
    expect(err.problems).toEqual([
      `${path}:2:1: not valid YAML/JSON: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      `${path}:3:1: not valid YAML/JSON: Flow map in block collection must be sufficiently indented and end with a }`,
    ]);
  });

  it('a file that is not a mapping is a ConfigError', () => {
    const path = writeConfig('list.yaml', '- a\n- b\n');
    expect(configError(() => loadConfig({ HPCQ_CONFIG: path }, {}, HOST)).problems).toEqual([`${path}:1:1: (top level): Invalid input: expected object, received array`]);
    expect(problemsOf(['a'])).toEqual([expect.stringMatching(/^\(top level\): /)]);
  });
});

describe('each problem is reported with its path', () => {
  it.each([
    ['unknown top-level key', { bogus: 1 }, /^bogus: unknown key; expected one of state_dir, listen, tls, access, kill_grace_seconds, /],
    ['unknown key in node', { node: { cpus: 4 } }, /^node\.cpus: unknown key; expected one of cores, mem_mb, reserved_mem_mb$/],
    ['unknown key in a queue', oneCluster([q('a', { default: true, max_cpus: 1 })]), /^clusters\.0\.queues\.0\.max_cpus: unknown key; expected one of hpcqueue_id, /],
    ['misspelt key in a queue', oneCluster([q('a', { default: true, max_runing: 1 })]), /^clusters\.0\.queues\.0\.max_runing: unknown key; did you mean "max_running"\?$/],
    ['bad type', { kill_grace_seconds: 'thirty' }, /^kill_grace_seconds: /],
    ['out of range', { kill_grace_seconds: 3601 }, /^kill_grace_seconds: /],
    ['non-integer', { clock_skew_seconds: 1.5 }, /^clock_skew_seconds: /],
    ['unknown enforcement', { enforcement: 'docker' }, /^enforcement: /],
    ['umask as a number', { job_umask: 22 }, /^job_umask: /],
    ['umask not octal', { job_umask: '0089' }, /^job_umask: /],
    ['no clusters', { clusters: [] }, /^clusters: /],
    ['cluster without queues', { clusters: [{ cluster_id: 'c1', zone: 'z', queues: [] }] }, /^clusters\.0\.queues: /],
    ['bad queue id', oneCluster([q('1bad', { default: true })]), /^clusters\.0\.queues\.0\.hpcqueue_id: /],
    ['empty listen list', { listen: [] }, /^listen: /],
    ['duplicate queue id', oneCluster([q('a', { default: true }), { hpcqueue_id: 'a', scheduler_queue_name: 'b' }]), /^clusters\.0\.queues\.1\.hpcqueue_id: duplicate queue id a$/],
    [
      'duplicate queue id across clusters',
      { clusters: [{ cluster_id: 'c1', zone: 'z', queues: [q('a', { default: true })] }, { cluster_id: 'c2', zone: 'z', queues: [q('a', { default: true })] }] },
      /^clusters\.1\.queues\.0\.hpcqueue_id: duplicate queue id a$/,
    ],
    ['duplicate queue name in a cluster', oneCluster([q('a', { default: true }), { hpcqueue_id: 'b', scheduler_queue_name: 'a' }]), /^clusters\.0\.queues\.1\.scheduler_queue_name: duplicate queue name a in cluster c1$/],
    [
      'duplicate cluster id',
      { clusters: [{ cluster_id: 'c1', zone: 'z', queues: [q('a', { default: true })] }, { cluster_id: 'c1', zone: 'z', queues: [q('b', { default: true })] }] },
      /^clusters\.1\.cluster_id: duplicate cluster c1$/,
    ],
    ['two default queues', oneCluster([q('a', { default: true }), q('b', { default: true })]), /^clusters\.0\.queues: exactly one queue must have default: true, found 2$/],
    ['no default queue', oneCluster([q('a'), q('b')]), /^clusters\.0\.queues: exactly one queue must have default: true, found 0$/],
    ['default_cores above max_cores', oneCluster([q('a', { default: true, max_cores: 2, default_cores: 4 })]), /^clusters\.0\.queues\.0\.default_cores: 4 exceeds max_cores 2$/],
    ['default_cores above the node (max_cores 0)', oneCluster([q('a', { default: true, default_cores: 9 })]), /^clusters\.0\.queues\.0\.default_cores: 9 exceeds max_cores 8$/],
    ['default_mem_mb above max_mem_mb', oneCluster([q('a', { default: true, max_mem_mb: 512, default_mem_mb: 1024 })]), /^clusters\.0\.queues\.0\.default_mem_mb: 1024 exceeds max_mem_mb 512$/],
    ['default_time above max_time', oneCluster([q('a', { default: true, max_time_seconds: 60, default_time_seconds: 3600 })]), /^clusters\.0\.queues\.0\.default_time_seconds: 3600 exceeds max_time_seconds 60$/],
    ['max_cores above the node', oneCluster([q('a', { default: true, max_cores: 16 })]), /^clusters\.0\.queues\.0\.max_cores: 16 exceeds the node's 8 allocatable cores/],
    ['max_mem_mb above the node', oneCluster([q('a', { default: true, max_mem_mb: 20000 })]), /^clusters\.0\.queues\.0\.max_mem_mb: 20000 exceeds the node's 15872 MiB/],
    ['TCP without tls', { listen: ['0.0.0.0:50051'] }, /^listen\.0: TCP address 0\.0\.0\.0:50051 needs TLS: set tls\.cert_file and tls\.key_file/],
    ['loopback TCP without tls', { listen: ['unix:/ok.sock', 'localhost:50051'] }, /^listen\.1: TCP address localhost:50051 needs TLS: .*tls\.cert_file/],
    ['IPv6 loopback TCP without tls', { listen: ['[::1]:50051'] }, /^listen\.0: TCP address \[::1\]:50051 needs TLS/],
    ['tls.cert_file without key_file', { tls: { cert_file: '/etc/hpcq/server.crt' } }, /^tls\.key_file: tls\.cert_file and tls\.key_file go together$/],
    ['tls.key_file without cert_file', { tls: { key_file: '/etc/hpcq/server.key' } }, /^tls\.cert_file: tls\.cert_file and tls\.key_file go together$/],
    ['tls.client_ca_file alone', { tls: { client_ca_file: '/etc/hpcq/ca.crt' } }, /^tls\.client_ca_file: needs tls\.cert_file and tls\.key_file$/],
    ['relative tls.cert_file', { tls: { ...TLS, cert_file: 'server.crt' } }, /^tls\.cert_file: must be an absolute path, got "server\.crt"$/],
    ['relative tls.key_file', { tls: { ...TLS, key_file: 'tls/server.key' } }, /^tls\.key_file: must be an absolute path, got "tls\/server\.key"$/],
    ['relative tls.client_ca_file', { tls: { ...TLS, client_ca_file: 'ca.crt' } }, /^tls\.client_ca_file: must be an absolute path, got "ca\.crt"$/],
    ['unknown key under tls', { tls: { ...TLS, ca_file: '/x' } }, /^tls\.ca_file: unknown key; did you mean "client_ca_file"\?$/],
    ['unknown key under access', { access: { admin_group: ['wheel'] } }, /^access\.admin_group: unknown key; did you mean "admin_groups"\?$/],
    ['unknown key under access.rate_limit', { access: { rate_limit: { per_second: 5 } } }, /^access\.rate_limit\.per_second: unknown key; did you mean "submits_per_second"\?$/],
    ['unknown key in a principal', { access: { principals: [{ name: 'p', run_user: ['alice'] }] } }, /^access\.principals\.0\.run_user: unknown key; did you mean "run_users"\?$/],
    [
      'duplicate principal names',
      { access: { principals: [{ name: 'spiffe://example.org/portal', run_users: ['alice'] }, { name: 'ops', admin: true }, { name: 'spiffe://example.org/portal', admin: true }] } },
      /^access\.principals\.2\.name: duplicate principal "spiffe:\/\/example\.org\/portal"$/,
    ],
    ['a principal without a name', { access: { principals: [{ name: '', admin: true }] } }, /^access\.principals\.0\.name: /],
    ['a bad run_users entry', { access: { principals: [{ name: 'p', run_users: ['@'] }] } }, /^access\.principals\.0\.run_users\.0: /],
    ['a bad admin group name', { access: { admin_groups: ['wheel staff'] } }, /^access\.admin_groups\.0: /],
    ['min_uid 0', { access: { min_uid: 0 } }, /^access\.min_uid: /],
    ['unknown job_visibility', { access: { job_visibility: 'some' } }, /^access\.job_visibility: /],
    ['relative access.audit_log', { access: { audit_log: 'audit.log' } }, /^access\.audit_log: must be an absolute path, got "audit\.log"$/],
    ['a bad allowed_groups entry', oneCluster([q('a', { default: true, allowed_groups: ['-x y'] })]), /^clusters\.0\.queues\.0\.allowed_groups\.0: /],
    ['allow_remote_tcp (removed)', { allow_remote_tcp: true }, /^allow_remote_tcp: unknown key; expected one of /],
    ['a missing required key', oneCluster([{ hpcqueue_id: 'a', default: true }]), /^clusters\.0\.queues\.0\.scheduler_queue_name: required key is missing$/],
    ['relative state_dir', { state_dir: 'var/hpcq', listen: ['unix:/run/hpcq.sock'] }, /^state_dir: must be an absolute path, got "var\/hpcq"$/],
    ['relative unix socket', { listen: ['unix:hpcqd.sock'] }, /^listen\.0: unix socket path must be absolute/],
    ['listen that is neither unix: nor host:port', { listen: ['unix:/ok.sock', 'localhost'] }, /^listen\.1: expected unix:\/abs\/path\.sock or host:port/],
  ] as const)('%s', (_title, raw, pattern) => {
    const problems = problemsOf(raw);
    expect(problems).toContainEqual(expect.stringMatching(pattern));
  });

  it('the same scheduler_queue_name in two clusters is fine', () => {
    const config = compileConfig(
      { clusters: [{ cluster_id: 'c1', zone: 'z', queues: [q('a', { default: true, scheduler_queue_name: 'normal' })] }, { cluster_id: 'c2', zone: 'z', queues: [q('b', { default: true, scheduler_queue_name: 'normal' })] }] },
      'test',
      {},
      HOST,
    );
    expect(config.clusters.map((c) => c.queues[0]!.schedulerQueueName)).toEqual(['normal', 'normal']);
  });

  it('ConfigError carries its source and lists every problem in the message', () => {
    const err = configError(() => compileConfig({ listen: ['0.0.0.0:1'], state_dir: 'rel' }, '/etc/hpcq/hpcqd.yaml', {}, HOST));
    expect(err.name).toBe('ConfigError');
    expect(err.source).toBe('/etc/hpcq/hpcqd.yaml');
    expect(err.message.startsWith('invalid configuration (/etc/hpcq/hpcqd.yaml):')).toBe(true);
    for (const problem of err.problems) expect(err.message).toContain(`\n  - ${problem}`);
  });
});

describe('several problems are reported together', () => {
  it('all cross-field problems at once', () => {
    const problems = problemsOf({
      state_dir: 'relative/state',
      listen: ['0.0.0.0:50051'],
      clusters: [{ cluster_id: 'c1', zone: 'z', queues: [q('a', { default: true }), q('a', { scheduler_queue_name: 'b', default: true, max_cores: 1, default_cores: 2 })] }],
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^state_dir: must be an absolute path/),
        expect.stringMatching(/^listen\.0: TCP address 0\.0\.0\.0:50051 needs TLS/),
        expect.stringMatching(/^clusters\.0\.queues\.1\.hpcqueue_id: duplicate queue id a/),
        expect.stringMatching(/^clusters\.0\.queues: exactly one queue must have default: true, found 2/),
        expect.stringMatching(/^clusters\.0\.queues\.1\.default_cores: 2 exceeds max_cores 1/),
      ]),
    );
  });

  it('all schema problems at once', () => {
    const problems = problemsOf({ bogus: true, kill_grace_seconds: 'thirty', enforcement: 'docker', node: { cores: -1 } });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^bogus: unknown key/),
        expect.stringMatching(/^kill_grace_seconds: /),
        expect.stringMatching(/^enforcement: /),
        expect.stringMatching(/^node\.cores: /),
      ]),
    );
  });

  it('schema problems and cross-field problems from one file, all at once', () => {
    // Regression (src/config/load-config.ts:67-73): when the schema check fails, compileConfig throws with
    // only the schema issues and never runs the cross-field checks, so an admin fixing the file sees
    // the duplicate queue id, the two defaults, the default above max, the TCP address without TLS and the
    // relative state_dir only after a second attempt.
    const path = writeConfig(
      'broken.yaml',
      [
        'state_dir: relative/state',
        'listen: ["0.0.0.0:50051"]',
        'unknown_key: 1',
        'kill_grace_seconds: thirty',
        'clusters:',
        '  - cluster_id: c1',
        '    zone: z',
        '    queues:',
        '      - { hpcqueue_id: a, scheduler_queue_name: a, default: true }',
        '      - { hpcqueue_id: a, scheduler_queue_name: b, default: true, max_cores: 1, default_cores: 2 }',
        '',
      ].join('\n'),
    );
    const err = configError(() => loadConfig({ HPCQ_CONFIG: path }, {}, HOST));
    expect(err.source).toBe(path);
    // In file order, each at its line and column.
    expect(err.problems).toEqual([
      // Derived from the relative state_dir, so not in the file: no position, first.
      'access.audit_log: must be an absolute path, got "relative/state/audit.log"',
      `${path}:1:12: state_dir: must be an absolute path, got "relative/state"`,
      expect.stringMatching(new RegExp(`^${escapeRegExp(path)}:2:10: listen\\.0: TCP address 0\\.0\\.0\\.0:50051 needs TLS`)),
      `${path}:3:1: unknown_key: unknown key; expected one of state_dir, listen, tls, access, kill_grace_seconds, enforcement, require_enforcement, clock_skew_seconds, max_array_count, job_umask, node, retention, metrics_listen, clusters`,
      expect.stringMatching(new RegExp(`^${escapeRegExp(path)}:4:21: kill_grace_seconds: invalid duration "thirty": use seconds \\(3600\\), units`)),
      `${path}:9:7: clusters.0.queues: exactly one queue must have default: true, found 2`,
      `${path}:10:24: clusters.0.queues.1.hpcqueue_id: duplicate queue id a`,
      `${path}:10:96: clusters.0.queues.1.default_cores: 2 exceeds max_cores 1`,
    ]);
  });
});

describe('checkListenAddress', () => {
  it.each(['unix:/run/hpcq/hpcqd.sock', 'unix:/var/lib/hpcq/hpcqd.sock'])('accepts %s without TLS', (address) => {
    expect(checkListenAddress(address, false)).toEqual([]);
    expect(checkListenAddress(address, true)).toEqual([]);
  });

  it.each(['localhost:50051', '127.0.0.1:50051', '127.1.2.3:1', '[::1]:50051', '0.0.0.0:50051', '[::]:50051', '10.0.0.5:50051', 'example.com:50051', '127.example.com:50051'])(
    'rejects TCP %s without TLS (loopback included), accepts it with',
    (address) => {
      expect(checkListenAddress(address, false)).toEqual([`TCP address ${address} needs TLS: set tls.cert_file and tls.key_file (plaintext TCP carries no identity, so it is refused, loopback included)`]);
      expect(checkListenAddress(address, true)).toEqual([]);
    },
  );

  it.each(['unix:relative.sock', 'unix:', 'localhost', ':50051', 'host:port', 'tcp://localhost:1', '[::1]50051'])('rejects malformed %s', (address) => {
    expect(checkListenAddress(address, true)).toHaveLength(1);
    expect(checkListenAddress(address, false)).toHaveLength(1);
  });

  it('ports above 65535 are rejected, with TLS too', () => {
    // Regression (src/config/load-config.ts:159): \d{1,5} accepts 65536..99999; the config validates but
    // the daemon then fails when binding.
    expect(checkListenAddress('127.0.0.1:65536', true)).toEqual([expect.stringMatching(/^expected unix:/)]);
    expect(checkListenAddress('localhost:99999', true)).toEqual([expect.stringMatching(/^expected unix:/)]);
    expect(checkListenAddress('127.0.0.1:65535', true)).toEqual([]);
  });
});

describe('tls and access sections', () => {
  it('tls compiles to absolute paths, client_ca_file optional', () => {
    expect(compileConfig({ tls: TLS, listen: ['0.0.0.0:50051'] }, 'test', {}, HOST).tls).toStrictEqual({
      certFile: '/etc/hpcq/tls/server.crt',
      keyFile: '/etc/hpcq/tls/server.key',
      clientCaFile: undefined,
    });
    const mutual = compileConfig({ tls: { ...TLS, client_ca_file: '/etc/hpcq/tls/clients.crt' } }, 'test', {}, HOST);
    expect(mutual.tls).toStrictEqual({ certFile: '/etc/hpcq/tls/server.crt', keyFile: '/etc/hpcq/tls/server.key', clientCaFile: '/etc/hpcq/tls/clients.crt' });
    expect(Object.isFrozen(mutual.tls)).toBe(true);
    // tls with only unix sockets is fine (it is used once a TCP address is added).
    expect(mutual.listen).toEqual(['unix:/run/hpcq/hpcqd.sock']);
  });

  it('access.audit_log defaults to <state_dir>/audit.log', () => {
    expect(compileConfig({}, 'test', {}, HOST).access.auditLogPath).toBe('/var/lib/hpcq/audit.log');
    expect(compileConfig({ state_dir: '/srv/hpcq' }, 'test', {}, HOST).access.auditLogPath).toBe('/srv/hpcq/audit.log');
    expect(compileConfig({}, 'test', { stateDir: '/from/flag' }, HOST).access.auditLogPath).toBe('/from/flag/audit.log');
    expect(compileConfig({}, 'test', {}, { ...HOST, uid: 1000 }, { HOME: '/home/alice' }).access.auditLogPath).toBe('/home/alice/.local/state/hpcq/audit.log');
    expect(compileConfig({ access: { audit_log: '/var/log/hpcq/audit.log' } }, 'test', {}, HOST).access.auditLogPath).toBe('/var/log/hpcq/audit.log');
  });

  it('access.rate_limit defaults to 20/s, burst 40, admins exempt; keys default one by one', () => {
    expect(compileConfig({}, 'test', {}, HOST).access.rateLimit).toStrictEqual({ perSecond: 20, burst: 40, adminsExempt: true });
    expect(compileConfig({ access: { rate_limit: {} } }, 'test', {}, HOST).access.rateLimit).toStrictEqual({ perSecond: 20, burst: 40, adminsExempt: true });
    expect(compileConfig({ access: { rate_limit: { burst: 5 } } }, 'test', {}, HOST).access.rateLimit).toStrictEqual({ perSecond: 20, burst: 5, adminsExempt: true });
    expect(compileConfig({ access: { rate_limit: { submits_per_second: 0, admins_exempt: false } } }, 'test', {}, HOST).access.rateLimit).toStrictEqual({
      perSecond: 0,
      burst: 40,
      adminsExempt: false,
    });
  });

  it('access compiles from snake_case, principals with their defaults', () => {
    const config = compileConfig(
      {
        access: {
          admin_groups: ['hpcadm'],
          min_uid: 500,
          allow_root_group: true,
          job_visibility: 'all',
          principals: [{ name: 'spiffe://example.org/portal', run_users: ['alice', '@physics'] }, { name: 'ops.example.org', admin: true }],
          max_connections: 100,
          max_connections_per_uid: 10,
          max_streams_per_principal: 20,
          first_request_timeout_seconds: 3,
        },
      },
      'test',
      {},
      HOST,
    );
    expect(config.access).toStrictEqual({
      adminGroups: ['hpcadm'],
      minUid: 500,
      allowRootGroup: true,
      jobVisibility: 'all',
      principals: [
        { name: 'spiffe://example.org/portal', runUsers: ['alice', '@physics'], admin: false },
        { name: 'ops.example.org', runUsers: [], admin: true },
      ],
      rateLimit: { perSecond: 20, burst: 40, adminsExempt: true },
      maxConnections: 100,
      maxConnectionsPerUid: 10,
      maxStreamsPerPrincipal: 20,
      firstRequestTimeoutMs: 3000,
      auditLogPath: '/var/lib/hpcq/audit.log',
    });
  });

  it('queues compile allowed_groups and allowed_users', () => {
    const config = compileConfig(oneCluster([q('a', { default: true, allowed_groups: ['physics'], allowed_users: ['alice', 'bob'] }), q('b')]), 'test', {}, HOST);
    expect(config.clusters[0]!.queues.map((x) => [x.allowedGroups, x.allowedUsers])).toEqual([
      [['physics'], ['alice', 'bob']],
      [[], []],
    ]);
  });
});

describe('config/hpcqd.yaml, the reference configuration', () => {
  const text = readFileSync(REFERENCE_FILE, 'utf8');

  it.each([
    ['root on 8 cores / 16 GiB', { HPCQ_CONFIG: REFERENCE_FILE }, HOST],
    ['a user on 32 cores / 64 GiB', { HPCQ_CONFIG: REFERENCE_FILE, HOME: '/home/alice' }, { cores: 32, memoryMb: 65536, uid: 1000 }],
  ] as const)('compiles to exactly the embedded default (%s)', (_title, env, host) => {
    const { HPCQ_CONFIG: _path, ...rest } = env;
    expect(loadConfig(env, {}, host)).toStrictEqual(compileConfig({}, 'embedded default', {}, host, rest));
  });

  it('spells out every default key with its default value (not relying on the schema)', () => {
    expect(parseYaml(text)).toStrictEqual(configSchema.parse({}));
  });

  it('shows the tls keys and access.audit_log commented out, since they have no fixed default', () => {
    const raw = parseYaml(text) as { tls: unknown; access: Record<string, unknown> };
    expect(raw.tls).toEqual({});
    expect(raw.access).not.toHaveProperty('audit_log');
    for (const key of ['cert_file', 'key_file', 'client_ca_file']) expect(text).toMatch(new RegExp(`^#\\s+${key}: /`, 'm'));
    expect(text).toMatch(/^ {2}# audit_log: \/var\/lib\/hpcq\/audit\.log$/m);
    expect(text).not.toContain('allow_remote_tcp');
  });

  it('leaves state_dir and listen commented out, since their defaults depend on the user', () => {
    const raw = parseYaml(text) as Record<string, unknown>;
    expect(raw).not.toHaveProperty('state_dir');
    expect(raw).not.toHaveProperty('listen');
    expect(text).toMatch(/^# state_dir: /m);
    expect(text).toMatch(/^# listen:$/m);
  });

  it('has a comment on every key', () => {
    const lines = text.split('\n');
    const uncommented: string[] = [];
    lines.forEach((line, i) => {
      if (!/^\s*(- )?[a-z_]+:/.test(line)) return;
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === '') j--;
      const previous = j >= 0 ? lines[j]!.trim() : '';
      if (!previous.startsWith('#') && !line.includes(' # ')) uncommented.push(`${i + 1}: ${line}`);
    });
    expect(uncommented).toEqual([]);
  });
});
