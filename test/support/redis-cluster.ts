import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { waitFor } from './test-env';

const run = promisify(execFile);

/**
 * Ports of the local test cluster: three masters and three replicas. No other test or service on
 * this machine uses them (the chaos and private-services helpers take random free ports).
 */
export const CLUSTER_PORTS = [7101, 7102, 7103, 7104, 7105, 7106];
const DIR = '/tmp/fp-redis-cluster';

export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's node id, for a replica. */
  masterId?: string;
  /** Slot ranges a master serves. */
  slots: [number, number][];
}

const cli = async (port: number, ...args: string[]) =>
  (await run('redis-cli', ['-p', String(port), ...args], { timeout: 30000 })).stdout.trim();

/**
 * A real Redis Cluster on this machine: six `redis-server --cluster-enabled yes` processes under
 * /tmp, joined by `redis-cli --cluster create --cluster-replicas 1`. `ensure()` is idempotent: a
 * healthy cluster already on these ports (a previous test file's) is reused as it is — each test
 * has its own key prefix — and anything else there is shut down and made again.
 */
export class LocalRedisCluster {
  readonly ports = CLUSTER_PORTS;

  /** `host:port,...` for REDIS_CLUSTER_NODES. */
  get nodesEnv(): string {
    return this.ports.map((p) => `127.0.0.1:${p}`).join(',');
  }

  static async ensure(): Promise<LocalRedisCluster> {
    const c = new LocalRedisCluster();
    if (!(await c.healthy())) {
      await c.stop();
      await c.create();
    }
    return c;
  }

  /** Every node answers, the cluster is `ok`, three masters each have an in-sync replica. */
  async healthy(): Promise<boolean> {
    try {
      for (const p of this.ports) {
        if (!(await cli(p, 'cluster', 'info')).includes('cluster_state:ok')) return false;
      }
      const nodes = await this.nodes();
      const masters = nodes.filter((n) => n.role === 'master' && n.slots.length);
      if (masters.length !== 3 || nodes.filter((n) => n.role === 'replica').length !== 3) return false;
      for (const n of nodes.filter((x) => x.role === 'replica')) {
        if (!(await cli(n.port, 'info', 'replication')).includes('master_link_status:up')) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  private async create(): Promise<void> {
    for (const p of this.ports) {
      const dir = `${DIR}/${p}`;
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      await run('redis-server', [
        '--port', String(p), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', `${dir}/nodes.conf`,
        // A replica promoted by CLUSTER FAILOVER catches up with its master first: no write is lost.
        '--cluster-node-timeout', '3000',
        '--dir', dir, '--save', '', '--appendonly', 'no',
        '--maxmemory-policy', 'noeviction',
        '--daemonize', 'yes', '--logfile', `${dir}/log`,
      ]);
    }
    for (const p of this.ports) await waitFor(`redis ${p} to answer`, async () => ((await cli(p, 'ping').catch(() => '')) === 'PONG' ? true : undefined), 10000, 100);
    await run('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60000 });
    await waitFor('the cluster to be ok with its replicas in sync', async () => ((await this.healthy()) ? true : undefined), 30000, 200);
  }

  /** Shuts every node down (without saving) and removes its files. */
  async stop(): Promise<void> {
    for (const p of this.ports) await cli(p, 'shutdown', 'nosave').catch(() => undefined);
    await waitFor('the cluster nodes to stop', async () => {
      for (const p of this.ports) if ((await cli(p, 'ping').catch(() => '')) === 'PONG') return undefined;
      return true;
    }, 10000, 100);
    rmSync(DIR, { recursive: true, force: true });
  }

  /** The cluster's nodes as node `port` sees them (`CLUSTER NODES`). */
  async nodes(port = this.ports[0]): Promise<ClusterNode[]> {
    const out = await cli(port, 'cluster', 'nodes');
    return out.split('\n').filter(Boolean).map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.split(' ');
      const replica = flags.includes('slave');
      return {
        id,
        port: Number(/:(\d+)@/.exec(addr)![1]),
        role: replica ? 'replica' : 'master',
        masterId: replica ? master : undefined,
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
          const [a, b] = s.split('-').map(Number);
          return [a, b ?? a] as [number, number];
        }),
      };
    });
  }

  /** The slot of a key (`CLUSTER KEYSLOT`). */
  async slotOf(key: string): Promise<number> {
    return Number(await cli(this.ports[0], 'cluster', 'keyslot', key));
  }

  /** The master serving a key's slot. */
  async masterOf(key: string): Promise<ClusterNode> {
    const slot = await this.slotOf(key);
    const master = (await this.nodes()).find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!master) throw new Error(`no master serves slot ${slot}`);
    return master;
  }

  /**
   * Promotes the replica of the master serving `key` with `CLUSTER FAILOVER` (the coordinated
   * kind: the master stops taking writes until its replica has caught up, then they swap), and
   * waits until the cluster is healthy again. Returns the old master and the new one.
   */
  async failoverShardOf(key: string): Promise<{ from: ClusterNode; to: ClusterNode }> {
    const from = await this.masterOf(key);
    const replica = (await this.nodes()).find((n) => n.role === 'replica' && n.masterId === from.id);
    if (!replica) throw new Error(`master ${from.port} has no replica`);
    const reply = await cli(replica.port, 'cluster', 'failover');
    if (reply !== 'OK') throw new Error(`CLUSTER FAILOVER on ${replica.port} answered ${reply}`);
    await waitFor(`replica ${replica.port} to take over from ${from.port}`, async () => {
      const now = await this.nodes(replica.port);
      return now.find((n) => n.id === replica.id)?.role === 'master' && now.find((n) => n.id === from.id)?.role === 'replica' ? true : undefined;
    }, 30000, 100);
    await waitFor('the cluster to be healthy after the failover', async () => ((await this.healthy()) ? true : undefined), 30000, 200);
    return { from, to: { ...replica, role: 'master' } };
  }

  /** A plain connection to one node. */
  node(port: number): Redis {
    return new Redis({ port, host: '127.0.0.1', lazyConnect: false });
  }
}
