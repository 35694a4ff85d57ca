'use strict';
// rcache from Node.js: connect, get/set with a TTL, tags, invalidation,
// get-or-compute and a session. Runs on memory://, or on RCACHE_URL.
//   node bindings/node/example.js
const rcache = require('./rcache');

const url = process.env.RCACHE_URL || 'memory://';
console.log(`rcache ${rcache.version} from Node.js ${process.version}, backend ${url}`);
const client = new rcache.Client(url, { prefix: 'node-example:' });

client.set('greeting', 'hello from Node', 60); // TTLs are seconds
console.log(`get greeting -> ${client.get('greeting')}, ${client.ttl('greeting').toFixed(1)} s left`);

client.set('user:1', 'Ada', 3600, ['users']);
client.invalidateTags(['users']);
console.log(`after invalidating tag users -> get user:1: ${client.get('user:1')}`);

let computed = 0;
const render = () => { computed += 1; return '<p>page 1</p>'; };
client.delete('page:1');
client.getOrCompute('page:1', render, 300);
const page = client.getOrCompute('page:1', render, 300);
console.log(`getOrCompute page:1 twice -> ${page}, computed ${computed} time(s)`);

const sessions = client.sessions('sess:');
const { id, secret } = sessions.create({ user: 'ada' }, 1800);
const loaded = sessions.load(id, secret);
sessions.save(id, secret, { cart: '3 items' }, { version: loaded.version, ttl: 1800 });
const fields = sessions.load(id, secret).fields;
console.log(`session ${id.slice(0, 8)}… -> user ${fields.user}, cart ${fields.cart}`);
sessions.destroy(id, secret);
client.close();
if (computed !== 1 || page.toString() !== '<p>page 1</p>' || fields.cart.toString() !== '3 items') process.exit(1);
