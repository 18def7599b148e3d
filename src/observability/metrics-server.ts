/**
 * Serves GET /metrics over plain HTTP on metrics_listen (host:port) for Prometheus. It shows job
 * counts per queue and node capacity, not jobs or users, and takes no input: bind it to loopback or
 * a management network (it has no TLS or authentication, like most exporters).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';

export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export class MetricsServer {
  private readonly server: Server;
  /** host:port actually bound (port 0 resolved); set by start(). */
  address = '';

  constructor(
    private readonly listen: string,
    metrics: MetricsSource,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      metrics.text().then(
        (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : body),
        (err: unknown) => {
          this.log.error({ err }, 'could not collect metrics');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics; see the hpcqd log\n');
        },
      );
    });
    // A scraper that connects and never sends a request must not hold a socket for ever.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  async start(): Promise<void> {
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(this.listen);
    if (!m) throw new Error(`metrics_listen must be host:port, got ${JSON.stringify(this.listen)}`);
    const host = m[1]!.replace(/^\[|\]$/g, '');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(Number(m[2]), host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const bound = this.server.address() as AddressInfo;
    this.address = `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
    this.log.info({ address: this.address }, 'serving metrics at /metrics');
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
