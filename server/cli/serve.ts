// `baton serve`: run the broker until a signal drains it.

import { join } from "node:path";
import { ConfigError, loadConfig } from "../config.js";
import { type RunningBroker, startBroker } from "../main.js";
import { createLogger } from "../telemetry/logger.js";

/** The longest a drain may take before the process exits anyway. */
const SHUTDOWN_LIMIT_MS = 20_000;

export async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  for (const warning of config.warnings) logger.warn(warning);

  // The one place that handles signals. The first SIGINT or SIGTERM drains:
  // new calls are refused with SHUTTING_DOWN, streams end with their cursor,
  // running calls finish (up to the gRPC grace period), then the database
  // connections and any embedded PostgreSQL stop, and the process exits 0.
  // A second signal, or a drain that overruns SHUTDOWN_LIMIT_MS (say, on a
  // hung database), exits at once with status 1.
  let broker: RunningBroker | null = null;
  let stopping = false;
  const stop = (): void => {
    const started = Date.now();
    setTimeout(() => {
      logger.error("shutdown did not finish in time; exiting", { limit_ms: SHUTDOWN_LIMIT_MS });
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS);
    broker!.stop().then(
      () => {
        logger.info("shutdown complete", { drain_ms: Date.now() - started });
        process.exit(0);
      },
      (err: unknown) => {
        logger.error("shutdown failed", { error: err });
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn("second signal; exiting without draining", { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info("shutting down", { signal });
    // While starting, the drain begins once the broker is up.
    if (broker) stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  broker = await startBroker(config, logger);
  if (!config.operatorToken) {
    logger.info("operator credential is in the data directory", { file: join(config.dataDir, "operator-token") });
  }
  if (stopping) stop();
}
