// Audit commands: verify the stored chain (through the broker) or export
// files (offline), and export the stored chain (from the database itself).

import type { Command } from "commander";
import { createReadStream, createWriteStream, openSync } from "node:fs";
import { createInterface } from "node:readline";
import { envSecret } from "../config.js";
import { type ChainPoint, exportAudit, verifyAuditExport } from "../storage/audit.js";
import { createPool } from "../storage/db.js";
import { runningEmbeddedUrl } from "../storage/embedded.js";
import { addAuditQueryCommands } from "./audit-query.js";
import { adminClient, call, integer, printOne } from "./common.js";

/** Writes the stored audit chain (after the anchor, or --after SEQ) as JSON lines: the format of the pruner's export files. */
async function exportAuditLog(o: { out?: string; after?: number }): Promise<void> {
  const url = envSecret(process.env, "DATABASE_URL") || runningEmbeddedUrl(process.env.BATON_DATA_DIR || ".baton");
  if (!url) throw new Error("set DATABASE_URL, or run where BATON_DATA_DIR holds a running broker's embedded database");
  // A new file only: an export never overwrites an earlier one. Opened
  // here so that failure says why; a later write error reaches the write
  // callback, which reports it.
  const out = o.out ? createWriteStream("", { fd: openSync(o.out, "wx", 0o600) }).on("error", () => {}) : process.stdout;
  const db = createPool(url, 1);
  try {
    const write = (text: string): Promise<void> => new Promise((resolve, reject) => out.write(text, (err) => (err ? reject(err) : resolve())));
    const r = await exportAudit(db, o.after === undefined ? null : BigInt(o.after), write);
    if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    process.stderr.write(`${JSON.stringify({ events: r.count, last_seq: r.last?.seq.toString() ?? null, last_hash: r.last?.hash.toString("hex") ?? null })}\n`);
  } finally {
    await db.end();
  }
}

/** Verifies export files offline, in the order given, each continuing the chain of the one before. */
async function verifyExportFiles(cmd: Command, files: string[]): Promise<void> {
  let at: ChainPoint | undefined;
  let events = 0;
  for (const file of files) {
    const r = await verifyAuditExport(createInterface({ input: createReadStream(file), crlfDelay: Infinity }), at);
    events += r.eventCount;
    if (!r.intact) {
      printOne(cmd, { intact: false, file, event_count: events, first_broken_seq: r.firstBrokenSeq.toString() });
      process.exitCode = 1;
      return;
    }
    at = r.last ?? at;
  }
  printOne(cmd, { intact: true, event_count: events, last_seq: at?.seq.toString() ?? null, last_hash: at?.hash.toString("hex") ?? null });
}

export function addAuditCommands(program: Command): void {
  const audit = program.command("audit").description("the tamper-evident audit log");
  addAuditQueryCommands(audit);

  audit
    .command("verify")
    .description("verify the stored chain through the broker (the operator credential), or export files offline; exits 1 when broken")
    .argument("[export-file...]", "export files, oldest first, each continuing the one before")
    .action(async (files: string[], _o: unknown, cmd: Command) => {
      if (files.length > 0) return verifyExportFiles(cmd, files);
      const { client, md } = adminClient(cmd);
      const res = await call(client.verifyAuditLog.bind(client), {}, md);
      printOne(cmd, { ...res });
      if (!res.intact) process.exitCode = 1;
    });

  audit
    .command("export")
    .description("write the stored chain as JSON lines, read from the database (DATABASE_URL, or the embedded one in BATON_DATA_DIR)")
    .option("--out <file>", "a new file to write (never overwritten); default stdout")
    .option("--after <seq>", "start after this event sequence number", integer(0))
    .action(async (o: { out?: string; after?: number }) => exportAuditLog(o));
}
