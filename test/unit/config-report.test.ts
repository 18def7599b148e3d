import { describe, it, expect, afterEach, beforeEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, compileConfig, loadConfig, type HostFacts } from '../../src/config/load-config.js';
import { editDistance, suggestKey } from '../../src/config/problems.js';

const HOST: HostFacts = { cores: 8, memoryMb: 16384, uid: 0 };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hpcq-config-report-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** The problems of loading the file at `path`; fails the test when it loads. */
function problemsOfFile(path: string): readonly string[] {
  try {
    loadConfig({ HPCQ_CONFIG: path }, {}, HOST);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('every problem in one report, each at file:line:col', () => {
  it('a misspelt key, a wrong type and a cross-field problem, all at once', () => {
    const path = writeConfig('hpcqd.yaml', [
      'kill_grace_seconds: 10', //                     1
      'require_enforcement: "yes"', //                 2  wrong type
      'clusters:', //                                  3
      '  - cluster_id: c1', //                         4
      '    zone: z', //                                5
      '    queues:', //                                6
      '      - hpcqueue_id: normal', //                7
      '        scheduler_queue_name: normal', //       8
      '        default: true', //                      9
      '        max_runing: 4', //                      10 misspelt
      '        max_time_seconds: 1h', //               11
      '        default_time_seconds: 2h', //           12 above max_time_seconds
    ]);
    expect(problemsOfFile(path)).toEqual([
      `${path}:2:22: require_enforcement: Invalid input: expected boolean, received string`,
      `${path}:10:9: clusters.0.queues.0.max_runing: unknown key; did you mean "max_running"?`,
      `${path}:12:31: clusters.0.queues.0.default_time_seconds: 7200 exceeds max_time_seconds 3600`,
    ]);
  });

  it('a missing required key points at the mapping it belongs in', () => {
    const path = writeConfig('hpcqd.yaml', ['clusters:', '  - cluster_id: c1', '    zone: z', '    queues:', '      - hpcqueue_id: normal', '        default: true']);
    expect(problemsOfFile(path)).toEqual([`${path}:5:9: clusters.0.queues.0.scheduler_queue_name: required key is missing`]);
  });

  it('a broken queue is left out of the cross-field checks; the other queues keep their indexes', () => {
    const path = writeConfig('hpcqd.yaml', [
      'clusters:',
      '  - cluster_id: c1',
      '    zone: z',
      '    queues:',
      '      - { scheduler_queue_name: a }', //                                  5: no hpcqueue_id
      '      - { hpcqueue_id: b, scheduler_queue_name: b, default: true }',
      '      - { hpcqueue_id: b, scheduler_queue_name: c, default_cores: 99 }', // 7: duplicate id, above the node
    ]);
    expect(problemsOfFile(path)).toEqual([
      `${path}:5:9: clusters.0.queues.0.hpcqueue_id: required key is missing`,
      `${path}:7:24: clusters.0.queues.2.hpcqueue_id: duplicate queue id b`,
      `${path}:7:67: clusters.0.queues.2.default_cores: 99 exceeds max_cores 8`,
    ]);
  });

  it('a bad value is not judged again at its default: no "found 0 default queues" for default: "yes"', () => {
    const path = writeConfig('hpcqd.yaml', ['clusters:', '  - cluster_id: c1', '    zone: z', '    queues:', '      - hpcqueue_id: a', '        scheduler_queue_name: a', '        default: "yes"']);
    expect(problemsOfFile(path)).toEqual([`${path}:7:18: clusters.0.queues.0.default: Invalid input: expected boolean, received string`]);
  });

  it('JSON files get positions too', () => {
    const path = writeConfig('hpcqd.json', ['{', '  "node": { "cores": 4, "mem_mib": 2048 }', '}']);
    expect(problemsOfFile(path)).toEqual([`${path}:2:25: node.mem_mib: unknown key; did you mean "mem_mb"?`]);
  });

  it('without a file (embedded default, environment) a problem is `key.path: message`', () => {
    expect(() => loadConfig({ HPCQ_STATE_DIR: 'relative' }, {}, HOST)).toThrow(/\n {2}- state_dir: must be an absolute path, got "relative"/);
    // A value from the environment is not pointed at in the file, even when the file has the key.
    const path = writeConfig('hpcqd.yaml', ['state_dir: /srv/hpcq']);
    try {
      loadConfig({ HPCQ_CONFIG: path, HPCQ_STATE_DIR: 'relative' }, {}, HOST);
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toContain('state_dir: must be an absolute path, got "relative"');
    }
  });
});

describe('YAML syntax errors', () => {
  it.each([
    ['a duplicate key', ['node:', '  cores: 2', '  cores: 4'], ':3:3: not valid YAML/JSON: Map keys must be unique'],
    ['an unclosed quote', ['zone: "x', 'a: 1'], ':3:1: not valid YAML/JSON: Missing closing "quote'],
    ['a nested mapping on one line', ['node: cores: 4'], ':1:7: not valid YAML/JSON: Nested mappings are not allowed in compact mappings'],
  ])('%s is reported at its line and column', (_title, lines, expected) => {
    const path = writeConfig('bad.yaml', lines);
    const problems = problemsOfFile(path);
    expect(problems[0]).toBe(`${path}${expected}`);
  });
});

describe('durations and sizes with units', () => {
  const queue = (fields: Record<string, unknown>) => ({
    clusters: [{ cluster_id: 'c1', zone: 'z', queues: [{ hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true, ...fields }] }],
  });

  it('reads 30m, 2d, 16G and friends as seconds, days and MiB', () => {
    const config = compileConfig(
      {
        kill_grace_seconds: '30m',
        clock_skew_seconds: '1h30m',
        access: { first_request_timeout_seconds: '45s' },
        node: { mem_mb: '16G', reserved_mem_mb: '512M' },
        retention: { finished_job_max_age_days: '2d' },
        ...queue({ max_time_seconds: '2d', default_time_seconds: '01:30:00', max_mem_mb: '8G', default_mem_mb: '1.5G' }),
      },
      'test',
      {},
      HOST,
    );
    expect(config).toMatchObject({ killGraceSeconds: 1800, clockSkewSeconds: 5400, nodeMemMb: 16384, retentionMaxAgeDays: 2 });
    expect(config.access.firstRequestTimeoutMs).toBe(45_000);
    expect(config.clusters[0]!.queues[0]).toMatchObject({ maxTimeSeconds: 172_800, defaultTimeSeconds: 5400, maxMemMb: 8192, defaultMemMb: 1536 });
  });

  it('keeps plain numbers in the key unit, exactly as before', () => {
    const config = compileConfig({ kill_grace_seconds: 1800, node: { mem_mb: 16384 }, retention: { finished_job_max_age_days: 2 }, ...queue({ max_time_seconds: 60, default_time_seconds: 60 }) }, 'test', {}, HOST);
    expect(config).toMatchObject({ killGraceSeconds: 1800, nodeMemMb: 16384, retentionMaxAgeDays: 2 });
    expect(config.clusters[0]!.queues[0]).toMatchObject({ maxTimeSeconds: 60, defaultTimeSeconds: 60 });
  });

  it('checks ranges after the units: 2h is above kill_grace_seconds at most 3600', () => {
    expect(() => compileConfig({ kill_grace_seconds: '2h' }, 'test', {}, HOST)).toThrow(/kill_grace_seconds: Too big: expected number to be <=3600/);
  });

  it('refuses malformed values, naming the key, its position and the accepted forms', () => {
    const path = writeConfig('hpcqd.yaml', [
      'kill_grace_seconds: 30 minutes',
      'node:',
      '  mem_mb: 16Q',
      'retention:',
      '  finished_job_max_age_days: 36h',
      '  schedule: "17 * * *"',
      'clock_skew_seconds: true',
    ]);
    expect(problemsOfFile(path)).toEqual([
      `${path}:1:21: kill_grace_seconds: invalid duration "30 minutes": use seconds (3600), units (1h30m, 90m, 45s) or [D-]HH:MM:SS (01:30:00)`,
      `${path}:3:11: node.mem_mb: invalid memory size "16Q": use MiB (512) or a suffix K/M/G/T (4G)`,
      `${path}:5:30: retention.finished_job_max_age_days: "36h" is not a whole number of days`,
      `${path}:6:13: retention.schedule: not a cron expression (minute hour day-of-month month day-of-week)`,
      `${path}:7:21: clock_skew_seconds: expected seconds (3600) or a duration with units (90s, 30m, 12h, 2d)`,
    ]);
  });
});

describe('suggestKey', () => {
  const QUEUE_KEYS = ['hpcqueue_id', 'scheduler_queue_name', 'default', 'max_running', 'max_running_per_user', 'max_pending', 'max_time_seconds'];

  it.each([
    ['max_runing', 'max_running'],
    ['max_runnning', 'max_running'],
    ['maxRunning', 'max_running'],
    ['max-pending', 'max_pending'],
    ['defualt', 'default'],
    ['scheduler_queue', 'scheduler_queue_name'],
    ['max_time', 'max_time_seconds'],
  ])('%s -> %s', (key, expected) => {
    expect(suggestKey(key, QUEUE_KEYS)).toBe(expected);
  });

  it.each(['bogus', 'max', 'max_run', 'id'])('no suggestion for %s (nothing close, or more than one)', (key) => {
    expect(suggestKey(key, QUEUE_KEYS)).toBeUndefined();
  });

  it('editDistance is Levenshtein', () => {
    expect([editDistance('', 'abc'), editDistance('kitten', 'sitting'), editDistance('same', 'same')]).toEqual([3, 3, 0]);
  });
});
