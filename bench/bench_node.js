'use strict';
// Get/set ops/s from one Node.js thread: rcache (koffi) against ioredis on
// the same server, one call at a time (each awaited), 100-byte values.
//   node bench/bench_node.js redis://127.0.0.1:PORT/0 [seconds] [rounds]
// Prints "node <client> <GET|SET> <ops/s>" per round.
const path = require('node:path');
const rcache = require('../bindings/node/rcache');
const Redis = require(path.join(__dirname, 'node', 'node_modules', 'ioredis'));

const url = process.argv[2];
const seconds = Number(process.argv[3] || 1);
const rounds = Number(process.argv[4] || 3);
const value = Buffer.alloc(100, 'x');

async function measure(op) {
  let count = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 100; i++) await op(`bench:${i}`);
    count += 100;
  }
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main() {
  const client = new rcache.Client(url, { prefix: 'bench-node:' });
  const redis = new Redis(url.replace(/^redis:/, 'redis:'), { keyPrefix: 'bench-node-ioredis:' });
  for (let i = 0; i < 100; i++) {
    client.set(`bench:${i}`, value);
    await redis.set(`bench:${i}`, value);
  }
  for (let round = 0; round < rounds; round++) {
    const results = [
      ['rcache', 'GET', await measure(async (key) => client.get(key))],
      ['ioredis', 'GET', await measure((key) => redis.getBuffer(key))],
      ['rcache', 'SET', await measure(async (key) => client.set(key, value))],
      ['ioredis', 'SET', await measure((key) => redis.set(key, value))],
    ];
    for (const [name, op, rate] of results) console.log(`node ${name} ${op} ${Math.round(rate)}`);
  }
  client.close();
  redis.disconnect();
}

main().catch((error) => { console.error(error); process.exit(1); });
