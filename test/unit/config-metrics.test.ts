// metrics_listen: off unless set, host:port when set, and kept by hpcqd --check's printout.
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { printConfig } from '../../src/config/config-file.js';
import { ConfigError, compileConfig } from '../../src/config/load-config.js';

const HOST = { cores: 8, memoryMb: 16384, uid: 0 };

describe('metrics_listen', () => {
  it('is off by default and when empty', () => {
    expect(compileConfig({}, 'test', {}, HOST)).not.toHaveProperty('metricsListen');
    expect(compileConfig({ metrics_listen: '' }, 'test', {}, HOST)).not.toHaveProperty('metricsListen');
  });

  it.each(['127.0.0.1:9464', '0.0.0.0:0', '[::1]:9464'])('takes host:port %s', (address) => {
    expect(compileConfig({ metrics_listen: address }, 'test', {}, HOST).metricsListen).toBe(address);
  });

  it.each(['9464', 'localhost', 'unix:/run/hpcq/metrics.sock', '127.0.0.1:70000'])('refuses %s', (address) => {
    let caught: unknown;
    try {
      compileConfig({ metrics_listen: address }, 'test', {}, HOST);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([expect.stringMatching(/^metrics_listen: expected host:port/)]);
  });

  it('is printed by --check and loads back the same, on or off', () => {
    for (const raw of [{}, { metrics_listen: '127.0.0.1:9464' }]) {
      const config = compileConfig(raw, 'test', {}, HOST);
      expect(compileConfig(parseYaml(printConfig(config)), 'printed', {}, HOST)).toStrictEqual(config);
    }
  });
});
