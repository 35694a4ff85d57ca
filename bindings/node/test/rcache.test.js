'use strict';
// The Node.js wrapper on memory:// and, when RCACHE_TEST_REDIS_URL names a
// private server (tests/with-redis.sh), on Redis: node --test test/
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { describe, it, before, after } = require('node:test');
const rcache = require('../rcache');

const urls = ['memory://'];
if (process.env.RCACHE_TEST_REDIS_URL) urls.push(process.env.RCACHE_TEST_REDIS_URL);
let run = 0;

for (const url of urls) {
  describe(`rcache on ${url.split(':')[0]}`, () => {
    let client;
    before(() => {
      run += 1;
      client = new rcache.Client(url, { prefix: `node-test-${process.pid}-${run}:` });
    });
    after(() => client.close());

    it('loads the library of this checkout and ABI', () => {
      assert.equal(rcache.abiVersion, 2);
      assert.match(rcache.version, /^\d+\.\d+\.\d+$/);
    });

    it('gets and sets bytes with a TTL', async () => {
      assert.equal(client.get('missing'), null);
      client.set('k', 'v', 60);
      assert.deepEqual(client.get('k'), Buffer.from('v'));
      const left = client.ttl('k');
      assert.ok(left > 55 && left <= 60, `ttl ${left}`);
      client.set(Buffer.from([0, 1, 255]), Buffer.from([0, 0, 7]));
      assert.deepEqual(client.get(Buffer.from([0, 1, 255])), Buffer.from([0, 0, 7]));
      client.set('empty', '');
      assert.deepEqual(client.get('empty'), Buffer.alloc(0));
      client.set('forever', 'x', rcache.NO_EXPIRY);
      assert.equal(client.ttl('forever'), Infinity);
      client.set('short', 'gone soon', 0.1);
      await new Promise((resolve) => setTimeout(resolve, 250));
      assert.equal(client.get('short'), null);
      assert.equal(client.delete('k'), true);
      assert.equal(client.delete('k'), false);
    });

    it('counts with a TTL set when the counter is created', () => {
      assert.equal(client.incr('hits', 1, 60), 1);
      assert.equal(client.incr('hits', 5), 6);
      assert.ok(client.ttl('hits') > 0);
    });

    it('invalidates tagged entries', () => {
      client.set('user:1', 'Ada', 60, ['users', 'team:a']);
      client.set('user:2', 'Grace', 60, ['users']);
      client.set('team', 'A', 60, ['team:a']);
      client.set('plain', 'p', 60);
      client.invalidateTags(['users']);
      assert.equal(client.get('user:1'), null);
      assert.equal(client.get('user:2'), null);
      assert.deepEqual(client.get('team'), Buffer.from('A'));
      assert.deepEqual(client.get('plain'), Buffer.from('p'));
      client.set('user:1', 'Ada again', 60, ['users']);
      assert.deepEqual(client.get('user:1'), Buffer.from('Ada again'));
    });

    it('computes a missing value once, and passes the callback\'s exception on', () => {
      let calls = 0;
      const compute = () => { calls += 1; return `computed ${calls}`; };
      assert.deepEqual(client.getOrCompute('page', compute, 60), Buffer.from('computed 1'));
      assert.deepEqual(client.getOrCompute('page', compute, 60), Buffer.from('computed 1'));
      assert.equal(calls, 1);
      const failure = new Error('the database is down');
      assert.throws(() => client.getOrCompute('broken', () => { throw failure; }), (error) => error === failure);
      assert.equal(client.get('broken'), null);
      assert.deepEqual(client.getOrCompute('broken', () => 'fine now', 60), Buffer.from('fine now'));
    });

    it('keeps sessions with versioned saves', () => {
      const sessions = client.sessions('sess:');
      const { id, secret } = sessions.create({ user: 'ada' }, 600);
      assert.match(id, /^[0-9a-f]{32}$/);
      assert.match(secret, /^[0-9a-f]{32}$/);
      const first = sessions.load(id, secret);
      assert.deepEqual(first.fields, { user: Buffer.from('ada') });
      const version = sessions.save(id, secret, { cart: '3 items' }, { version: first.version, ttl: 600 });
      assert.ok(version > first.version);
      assert.throws(() => sessions.save(id, secret, { cart: 'stale' }, { version: first.version }),
        (error) => error instanceof rcache.RCacheError && error.status === rcache.CONFLICT);
      sessions.save(id, secret, {}, { remove: ['user'] });
      assert.deepEqual(sessions.load(id, secret).fields, { cart: Buffer.from('3 items') });
      assert.equal(sessions.load(id, 'f'.repeat(32)), null);
      assert.equal(sessions.destroy(id, secret), true);
      assert.equal(sessions.load(id, secret), null);
    });

    it('reports bad input with the library\'s status and message', () => {
      assert.throws(() => client.get(''), (error) => error instanceof rcache.RCacheError &&
        error.code === 'RCACHE_STATUS_INVALID_ARGUMENT' && /key/.test(error.message));
      assert.throws(() => client.set('k', 'v', -5), RangeError);
      assert.throws(() => client.get(42), TypeError);
    });
  });
}

describe('rcache errors and lifetime', () => {
  it('refuses a malformed URL, an unreachable server and a closed client', () => {
    assert.throws(() => new rcache.Client('nonsense://x'), (error) => error.code === 'RCACHE_STATUS_INVALID_ARGUMENT');
    assert.throws(() => new rcache.Client('redis://127.0.0.1:1/0', { connectTimeout: 0.2 }),
      (error) => error.code === 'RCACHE_STATUS_CONNECTION' && /refused/.test(error.message));
    const client = new rcache.Client();
    client.close();
    assert.throws(() => client.get('k'), rcache.RCacheError);
    client.close();
  });

  it('runs the example', () => {
    const output = execFileSync(process.execPath, [path.join(__dirname, '..', 'example.js')], {
      env: { ...process.env, RCACHE_URL: urls[urls.length - 1] }, encoding: 'utf8',
    });
    assert.match(output, /computed 1 time\(s\)/);
    assert.match(output, /cart 3 items/);
  });
});
