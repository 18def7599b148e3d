/**
 * Counters and histograms for events on the submit path, kept in plain numbers and handed to the
 * prom-client registry only when scraped. prom-client validates and hashes the labels of every
 * inc() and observe() (about a microsecond each); a submit records several events, and metrics
 * must cost under 3% of submit throughput. Here an event is one Map lookup and an addition.
 */
import { Counter, type Metric, type Registry } from 'prom-client';

/** Counts by label values. */
export class CountTable {
  private readonly rows = new Map<string, { values: readonly string[]; n: number }>();

  constructor(readonly labelNames: readonly string[]) {}

  /** Adds `n` to the row of these label values (in labelNames order). */
  add(n: number, ...values: string[]): void {
    const key = values.join('\0');
    const row = this.rows.get(key);
    if (row) row.n += n;
    else this.rows.set(key, { values, n });
  }

  /** Registers a prom-client counter showing the table when scraped. */
  register(registry: Registry, name: string, help: string): void {
    const { labelNames, rows } = this;
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { values, n } of rows.values()) this.inc(Object.fromEntries(labelNames.map((label, i) => [label, values[i]!])), n);
      },
    });
  }
}

export interface HistogramSnapshot {
  /** Upper bounds (le) with the cumulative count of observations at or below each, ascending. */
  buckets: ReadonlyArray<readonly [le: number, count: number]>;
  sum: number;
  count: number;
}

/** A histogram with fixed upper bounds. */
export class BucketHistogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  snapshot(): HistogramSnapshot {
    let cumulative = 0;
    return { buckets: this.bounds.map((le, i) => [le, (cumulative += this.counts[i]!)] as const), sum: this.sum, count: this.count };
  }
}

export type HistogramSeries = HistogramSnapshot & { labels?: Readonly<Record<string, string>> };

/**
 * A Prometheus histogram read from snapshots when scraped: a BucketHistogram's, or buckets counted
 * elsewhere (the store's group commits). The registry needs only name, help, type and get().
 */
export class SnapshotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => readonly HistogramSeries[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> }> {
    const values = [];
    for (const { labels = {}, buckets, sum, count } of this.read()) {
      for (const [le, n] of buckets) values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: n });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
      values.push({ metricName: `${this.name}_sum`, labels: { ...labels }, value: sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...labels }, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Registry.registerMetric is typed for prom-client's own classes but reads only the above. */
  register(registry: Registry): void {
    registry.registerMetric(this as unknown as Metric);
  }
}

/** Upper bounds always shown for the store's batch sizes (1, 3, 7 ... 65535), so the series exist before the first batch. */
const POWER_OF_TWO_BOUNDS = Array.from({ length: 16 }, (_, k) => 2 ** (k + 1) - 1);

/**
 * Cumulative buckets from counts in power-of-two ranges keyed "1", "2-3", "4-7"... (the group
 * committer's): a range's last number is an exact upper bound.
 */
export function powerOfTwoBuckets(counts: Readonly<Record<string, number>>): Array<[number, number]> {
  const perBound = new Map<number, number>(POWER_OF_TWO_BOUNDS.map((le) => [le, 0]));
  for (const [key, n] of Object.entries(counts)) {
    const le = Number(key.split('-').pop());
    perBound.set(le, (perBound.get(le) ?? 0) + n);
  }
  let cumulative = 0;
  return [...perBound.keys()].sort((a, b) => a - b).map((le) => [le, (cumulative += perBound.get(le)!)]);
}
