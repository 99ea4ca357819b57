// Serving instances announce themselves in the store they share: a heartbeat row each, naming the PII keys
// the instance holds, so that a tool can ask "can every live instance read what I am about to write?".
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { isoMicros, nowMicros, timestampNow } from './clock.js';
import type { Db } from './db/database.js';

/** How often an instance renews its row, and how long a row outlives its last renewal. */
export const HEARTBEAT_INTERVAL_MS = 10_000;
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_INTERVAL_MS;

export interface LiveInstance {
  id: string;
  label: string;
  piiKeyIds: string[];
  startedAt: string;
}

const expiry = () => isoMicros(nowMicros() + HEARTBEAT_TTL_MS * 1000);

/** The instances whose heartbeat has not expired. */
export async function liveInstances(db: Db): Promise<LiveInstance[]> {
  const rows = await db.selectFrom('instances').selectAll().where('expires_at', '>', timestampNow()).orderBy('started_at').execute();
  return rows.map((row) => ({
    id: row.id,
    label: row.label,
    piiKeyIds: JSON.parse(row.pii_key_ids) as string[],
    startedAt: row.started_at,
  }));
}

/** "instance host:pid (id …, up since …)", for messages. */
export const describeInstance = (instance: LiveInstance): string =>
  `instance ${instance.label} (id ${instance.id}, up since ${instance.startedAt})`;

export class InstanceHeartbeat {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly db: Db,
    readonly instance: LiveInstance,
    private readonly logger: Logger | undefined,
  ) {}

  /** Registers this process (and clears rows long expired), then renews its row every HEARTBEAT_INTERVAL_MS. */
  static async start(db: Db, piiKeyIds: string[], logger?: Logger): Promise<InstanceHeartbeat> {
    const instance: LiveInstance = { id: randomUUID(), label: `${hostname()}:${process.pid}`, piiKeyIds, startedAt: timestampNow() };
    await db.deleteFrom('instances').where('expires_at', '<', isoMicros(nowMicros() - 24 * 3600 * 1e6)).execute();
    await db
      .insertInto('instances')
      .values({
        id: instance.id,
        label: instance.label,
        pii_key_ids: JSON.stringify(piiKeyIds),
        started_at: instance.startedAt,
        expires_at: expiry(),
      })
      .execute();
    const heartbeat = new InstanceHeartbeat(db, instance, logger);
    heartbeat.timer = setInterval(() => void heartbeat.beat(), HEARTBEAT_INTERVAL_MS).unref();
    return heartbeat;
  }

  private async beat(): Promise<void> {
    try {
      await this.db.updateTable('instances').set({ expires_at: expiry() }).where('id', '=', this.instance.id).execute();
    } catch (error) {
      // The store is away; the next beat tries again, and until then the row may expire (so rotation waits).
      this.logger?.warn({ err: error }, 'instance heartbeat failed');
    }
  }

  /** Removes the row: a stopped instance holds back nothing. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.db.deleteFrom('instances').where('id', '=', this.instance.id).execute();
  }
}
