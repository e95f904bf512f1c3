// Prometheus metrics, exposition format 0.0.4, written by hand: a few
// counters and one latency histogram. Labels are bounded sets (method, gRPC
// code, token status); never a scope, app, customer or token id.

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly validations = new Map<string, number>();
  private readonly gauges = new Map<string, () => number>();
  private readonly counters = new Map<string, { help: string; read: () => number }>();

  /** One finished RPC. */
  observeRpc(method: string, code: string, seconds: number): void {
    const key = `method="${method}",code="${code}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.latency.get(method);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(method, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]! += 1;
    h.sum += seconds;
    h.count += 1;
  }

  observeValidation(status: string): void {
    this.validations.set(status, (this.validations.get(status) ?? 0) + 1);
  }

  gauge(name: string, read: () => number): void {
    this.gauges.set(name, read);
  }

  /** A counter kept elsewhere, read when rendered. */
  counter(name: string, help: string, read: () => number): void {
    this.counters.set(name, { help, read });
  }

  render(): string {
    const out: string[] = [];
    out.push("# HELP baton_grpc_requests_total Finished gRPC calls by method and status code.");
    out.push("# TYPE baton_grpc_requests_total counter");
    for (const [k, v] of this.requests) out.push(`baton_grpc_requests_total{${k}} ${v}`);
    out.push("# HELP baton_grpc_request_duration_seconds gRPC call latency in the broker.");
    out.push("# TYPE baton_grpc_request_duration_seconds histogram");
    for (const [m, h] of this.latency) {
      BUCKETS.forEach((b, i) => out.push(`baton_grpc_request_duration_seconds_bucket{method="${m}",le="${b}"} ${h.counts[i]}`));
      out.push(`baton_grpc_request_duration_seconds_bucket{method="${m}",le="+Inf"} ${h.count}`);
      out.push(`baton_grpc_request_duration_seconds_sum{method="${m}"} ${h.sum}`);
      out.push(`baton_grpc_request_duration_seconds_count{method="${m}"} ${h.count}`);
    }
    out.push("# HELP baton_validations_total Validate verdicts by token status.");
    out.push("# TYPE baton_validations_total counter");
    for (const [s, v] of this.validations) out.push(`baton_validations_total{status="${s}"} ${v}`);
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`);
      out.push(`# TYPE ${name} counter`);
      out.push(`${name} ${c.read()}`);
    }
    for (const [name, read] of this.gauges) {
      out.push(`# TYPE ${name} gauge`);
      out.push(`${name} ${read()}`);
    }
    return `${out.join("\n")}\n`;
  }
}
