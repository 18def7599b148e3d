// Server reflection is built on its first call: a real gRPC server and client on a unix socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Server, ServerCredentials } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import { addLazyReflection } from '../../src/api/lazy-reflection.js';
import { PACKAGE_ROOT } from '../support/daemon-harness.js';

const reflectionProto = (version: string) => join(PACKAGE_ROOT, 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', version, 'reflection.proto');
const hpcqProtos = () => loadSync(['hpcq/v1/job_service.proto'], { includeDirs: [join(PACKAGE_ROOT, 'proto')] });

interface Stream {
  write(req: object): void;
  end(): void;
  on(event: string, fn: (arg: never) => void): void;
}
type Client = { ServerReflectionInfo(): Stream; close(): void };

function listServices(address: string, version: 'v1' | 'v1alpha'): Promise<string[]> {
  const pkg = loadPackageDefinition(loadSync(reflectionProto(version), { keepCase: true })) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => Client }> };
  };
  const client = new pkg.grpc.reflection[version]!.ServerReflection(address, credentials.createInsecure());
  return new Promise<string[]>((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    let names: string[] | undefined;
    stream.on('data', (r: { list_services_response?: { service: Array<{ name: string }> } }) => (names ??= (r.list_services_response?.service ?? []).map((s) => s.name)));
    stream.on('error', reject);
    stream.on('end', () => (names ? resolve(names) : reject(new Error('no answer'))));
    stream.write({ host: '', list_services: '' });
    stream.end();
  }).finally(() => client.close());
}

describe('lazy server reflection', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((f) => f()));

  it('loads the package only at the first call, once, and answers both versions from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hpcq-reflect-'));
    const server = new Server();
    cleanups.push(() => {
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    });
    let loads = 0;
    addLazyReflection(server, (): PackageDefinition => {
      loads++;
      return hpcqProtos();
    });
    const address = `unix:${join(dir, 's.sock')}`;
    await new Promise<void>((resolve, reject) => server.bindAsync(address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    expect(loads).toBe(0);
    expect(await listServices(address, 'v1alpha')).toContain('hpcq.v1.JobService');
    expect(loads).toBe(1);
    expect(await listServices(address, 'v1')).toContain('hpcq.v1.JobService');
    expect(await listServices(address, 'v1alpha')).toContain('hpcq.v1.JobService');
    expect(loads).toBe(1);
  });
});
