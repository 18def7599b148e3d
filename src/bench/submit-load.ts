/**
 * A submit load generator run as its own process, so the benchmark can submit as an ordinary Unix
 * user (the daemon knows callers by their uid) or over mutual TLS. Reads one JSON argument, sends
 * `total` pre-encoded SubmitJob requests over `clients` connections, prints one JSON line of figures.
 */
import { readFileSync } from 'node:fs';
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { JobServiceService, SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import { percentile } from './percentile.js';

export interface SubmitLoadSpec {
  address: string;
  clients: number;
  total: number;
  request: Partial<SubmitJobRequest>;
  /** PEM paths for a TCP address: the CA of the daemon's certificate, the client certificate and key. */
  tls?: { ca: string; cert: string; key: string };
}

export interface SubmitLoadFigures {
  jobsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

const identity = (b: Buffer) => b;
const RawSubmitClient = makeGenericClientConstructor(
  { submitJob: { ...JobServiceService.submitJob, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
  'hpcq.v1.JobService',
) as unknown as new (address: string, creds: ChannelCredentials, options: object) => {
  submitJob(req: Buffer, cb: (err: ServiceError | null) => void): void;
  close(): void;
};

async function run(spec: SubmitLoadSpec): Promise<SubmitLoadFigures> {
  const creds = spec.tls
    ? credentials.createSsl(readFileSync(spec.tls.ca), readFileSync(spec.tls.key), readFileSync(spec.tls.cert))
    : credentials.createInsecure();
  const bytes = Buffer.from(SubmitJobRequest.encode(SubmitJobRequest.fromPartial(spec.request)).finish());
  // Separate channels, so each client is its own connection as separate programs would be.
  const clients = Array.from({ length: spec.clients }, () => new RawSubmitClient(spec.address, creds, { 'grpc.use_local_subchannel_pool': 1 }));
  const submit = (c: (typeof clients)[number]) => new Promise<void>((resolve, reject) => c.submitJob(bytes, (err) => (err ? reject(err) : resolve())));
  await Promise.all(clients.map(submit)); // connect and warm up
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      while (next < spec.total) {
        next++;
        const s = performance.now();
        await submit(c);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return { jobsPerSecond: spec.total / seconds, latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99) };
}

run(JSON.parse(process.argv[2]!) as SubmitLoadSpec).then(
  (figures) => {
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`submit-load: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
