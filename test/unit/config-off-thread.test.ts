// The daemon loads its configuration in a worker thread (src/config/load-config-off-thread.ts) so
// the YAML parser and zod never enter its heap. Same answers as loadConfig, and the daemon's own
// module graph reaches neither library.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.js';
import { loadConfig, type HostFacts } from '../../src/config/load-config.js';
import { loadConfigOffThread } from '../../src/config/load-config-off-thread.js';

const HOST: HostFacts = { cores: 8, memoryMb: 16384, uid: 0 };
const dir = mkdtempSync(join(tmpdir(), 'hpcq-config-thread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadConfigOffThread', () => {
  it('answers what loadConfig answers, frozen, for the embedded default and a file with environment and flags', async () => {
    expect(await loadConfigOffThread({}, {}, HOST)).toStrictEqual(loadConfig({}, {}, HOST));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'kill_grace_seconds: 7\nretention:\n  schedule: "0 3 * * *"\n');
    const env = { HPCQ_CONFIG: path, HPCQ_STATE_DIR: join(dir, 'state') };
    const flags = { listen: `unix:${join(dir, 'x.sock')}` };
    const config = await loadConfigOffThread(env, flags, HOST);
    expect(config).toStrictEqual(loadConfig(env, flags, HOST));
    expect(config).toMatchObject({ killGraceSeconds: 7, retentionSchedule: '0 3 * * *', listen: [`unix:${join(dir, 'x.sock')}`] });
    expect(Object.isFrozen(config) && Object.isFrozen(config.clusters[0]) && Object.isFrozen(config.clusters[0]!.queues[0])).toBe(true);
  });

  it('rejects with the same ConfigError (source and every problem) as loadConfig', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'kill_grace_seconds: soon\nretention:\n  schedule: hourly\n');
    const expected = (() => {
      try {
        loadConfig({ HPCQ_CONFIG: path }, {}, HOST);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('loadConfig accepted a bad file');
    })();
    const err = await loadConfigOffThread({ HPCQ_CONFIG: path }, {}, HOST).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).source).toBe(path);
    expect((err as ConfigError).problems).toEqual(expected.problems);
    expect((err as ConfigError).problems).toHaveLength(2);
  });
});

/** Bare package names reachable by static imports from a src/ module (not `import type`, not `import()`). */
function staticPackages(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  };
  visit(entry);
  return packages;
}

describe("the daemon's module graph", () => {
  it('reaches neither the YAML parser nor zod (only the config worker does)', () => {
    const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
    const daemon = staticPackages(join(src, 'daemon', 'run-daemon.ts'));
    expect(daemon).toContain('@grpc/grpc-js');
    expect(daemon).toContain('level');
    expect(daemon).not.toContain('zod');
    expect(daemon).not.toContain('yaml');
    const worker = staticPackages(join(src, 'config', 'config-worker.ts'));
    expect(worker).toContain('zod');
    expect(worker).toContain('yaml');
  });
});
