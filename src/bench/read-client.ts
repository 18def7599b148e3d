/**
 * The reading client of the scale benchmark, run as a program of its own (as a real client is):
 * inside the benchmark process, which has just generated a million records, its heap and collector
 * pauses would be measured instead of the daemon. Warm-up calls (JIT, connection, table cache) are
 * made first and not counted, so the figures are the steady state.
 *
 * Usage: node read-client.js <address> <highest job id> <warm-up calls> <measured calls>
 * Prints one JSON line: GetJob and ListJobs latency percentiles in ms.
 */
import { credentials } from '@grpc/grpc-js';
import { JobServiceClient, type ListJobsRequest } from '../gen/hpcq/v1/job_service.js';
import { JobState } from '../gen/hpcq/v1/job.js';
import { percentile } from './percentile.js';

const [address = '', maxIdArg = '0', warmArg = '0', samplesArg = '0'] = process.argv.slice(2);
const maxId = Number(maxIdArg);
const warm = Number(warmArg);
const samples = Number(samplesArg);
const client = new JobServiceClient(address, credentials.createInsecure());

const LIST_FILTERS: ReadonlyArray<Pick<ListJobsRequest, 'states' | 'runUser'>> = [
  { states: [JobState.JOB_STATE_COMPLETED], runUser: '' },
  { states: [], runUser: 'u7' },
  { states: [JobState.JOB_STATE_FAILED, JobState.JOB_STATE_TIMEOUT], runUser: 'u42' },
];

function getJob(): Promise<unknown> {
  const jobId = String(1 + Math.floor(Math.random() * maxId));
  return new Promise((resolve, reject) => client.getJob({ jobId }, (err, res) => (err ? reject(err) : resolve(res))));
}

function listPage(i: number): Promise<unknown> {
  const filter = LIST_FILTERS[i % LIST_FILTERS.length]!;
  const req: ListJobsRequest = { clusterId: '', queue: '', pageSize: 100, pageToken: '', includeInstances: false, ...filter };
  return new Promise((resolve, reject) => client.listJobs(req, (err, res) => (err ? reject(err) : resolve(res))));
}

async function sortedLatencies(calls: number, warmUp: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmUp; i++) await call(i);
  const latencies: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await call(i);
    latencies.push(performance.now() - start);
  }
  return latencies.sort((a, b) => a - b);
}

const get = await sortedLatencies(samples, warm, getJob);
const list = await sortedLatencies(Math.ceil(samples / 50), Math.ceil(warm / 50), listPage);
client.close();
process.stdout.write(
  `${JSON.stringify({
    getJob: { p50: percentile(get, 50), p99: percentile(get, 99), p999: percentile(get, 99.9) },
    listJobs: { p50: percentile(list, 50), p99: percentile(list, 99) },
  })}\n`,
);
