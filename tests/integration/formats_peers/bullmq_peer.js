// BullMQ (from npm, run with node): `produce N DELAYED PRIORITIZED [DUE]` adds jobs with BullMQ's own
// Queue.add and prints getJobCounts; `report` prints getJobCounts; `worker CONCURRENCY` runs a
// real Worker whose jobs sleep. Env: PEER_REDIS_URL, PEER_QUEUE, PEER_STARTED.
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const url = process.env.PEER_REDIS_URL;
const name = process.env.PEER_QUEUE;
const started = process.env.PEER_STARTED || `${name}:started`;
const connection = () => new IORedis(url, { maxRetriesPerRequest: null });
const TYPES = ['wait', 'paused', 'prioritized', 'active', 'delayed', 'failed'];

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'worker') {
    const counter = connection();
    const worker = new Worker(
      name,
      async () => {
        await counter.incr(started);
        await new Promise((resolve) => setTimeout(resolve, 120000));
      },
      { connection: connection(), concurrency: Number(args[0]) },
    );
    await worker.waitUntilReady();
    process.stdout.write('ready\n');
    return;
  }
  const queue = new Queue(name, { connection: connection() });
  if (cmd === 'produce') {
    const [n, delayed, prioritized, due = 0] = args.map(Number);
    for (let i = 0; i < n; i++) await queue.add('slow', { i });
    for (let i = 0; i < delayed; i++) await queue.add('later', { i }, { delay: 600000 });
    for (let i = 0; i < prioritized; i++) await queue.add('urgent', { i }, { priority: 5 });
    // delayed by 1 ms: due at once, but only a worker ever promotes it to wait
    for (let i = 0; i < due; i++) await queue.add('due', { i }, { delay: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.stdout.write(JSON.stringify(await queue.getJobCounts(...TYPES)) + '\n');
  await queue.close();
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
