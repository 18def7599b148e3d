// The benchmarks' daemon configurations are real configurations: `npm run bench` must not stop on
// one the daemon refuses (an access section given twice did, once the bench's own gained one).
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { benchConfig } from '../../src/bench/bench-daemon.js';
import { compileConfig } from '../../src/config/load-config.js';

const HOST = { cores: 2, memoryMb: 8192, uid: 0 };

describe('benchConfig', () => {
  it('is a valid configuration, with one access section whatever a bench adds to it', () => {
    const access = { rate_limit: '{ submits_per_second: 0 }', max_streams_per_principal: '100000', principals: '[{ name: bench-portal, run_users: [hpcq-bench] }]' };
    for (const text of [benchConfig({ cores: 1 }), benchConfig({ cores: 1, access })]) {
      const config = compileConfig(parse(text), 'bench', {}, HOST);
      expect(config.clusters.map((c) => c.clusterId)).toEqual(['bench']);
    }
    expect(compileConfig(parse(benchConfig({ cores: 1 })), 'bench', {}, HOST).access.maxStreamsPerPrincipal).toBe(10000);
    const withAccess = compileConfig(parse(benchConfig({ cores: 1, access })), 'bench', {}, HOST);
    expect(withAccess.access.maxStreamsPerPrincipal).toBe(100000);
    expect(withAccess.access.rateLimit.perSecond).toBe(0);
  });
});
