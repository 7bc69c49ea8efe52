// Replicas of a local server as one backend (`replicas: true`): requests are balanced across
// the healthy URLs by fewest in flight (power of two choices), each replica with its own
// probe; one that dies is skipped (the client never sees it fail), and is used again once it
// answers its probe; ledger lines name the replica.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, MODELS, posts, startGateway } from './gateway.mjs';
import { waitFor } from './util.mjs';

const chatPosts = (f) => posts(f).filter((r) => r.path === '/v1/chat/completions');

describe('replicas', { skip: gatewayBinaryMissing() ?? false }, () => {
  test('three replicas: balanced, one dies and is skipped, comes back and is used again', async () => {
    const fakes = await Promise.all([0, 1, 2].map(() => startFakeOpenAI({ models: [MODELS.local] })));
    const urls = fakes.map((f) => `${f.url}/v1`);
    const gw = await startGateway({
      backends: [{ name: 'pool', kind: 'openai', location: 'local', base_url: urls, replicas: true,
        model: MODELS.local, warmup: false, max_retries: 2, retry_base_ms: 1 }],
      routes: [{ name: 'default', to: ['pool'] }],
      extraServer: { health_interval_ms: 200 },
    });
    const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const ask = (content) => c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content }] });
    try {
      let ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.deepEqual(ready.backends[0].replicas.map((r) => [r.url, r.ready]), urls.map((u) => [u, true]));
      assert.match(ready.backends[0].status, /3 of 3 replicas/);

      // 30 at once, each held 150 ms upstream: fewest in flight spreads them.
      for (const f of fakes) f.control({ delay_ms: 150 });
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => ask(`burst ${i}`)));
      assert.ok(answers.every((a, i) => a.choices[0].message.content === `echo: burst ${i}`));
      const counts = fakes.map((f) => chatPosts(f).length);
      assert.equal(counts.reduce((a, b) => a + b), 30);
      assert.ok(counts.every((n) => n >= 7), `unbalanced: ${counts}`);
      let lines = gw.ledger();
      assert.equal(lines.length, 30);
      for (let i = 0; i < 3; i++)
        assert.equal(lines.filter((l) => l.replica === urls[i]).length, counts[i], 'ledger lines name the replica');

      // Replica 1 dies: requests keep succeeding on the others, at most one attempt fails on it.
      for (const f of fakes) f.control({ delay_ms: 0 });
      const deadPort = fakes[1].port;
      await fakes[1].close();
      for (let i = 0; i < 20; i++) assert.equal((await ask(`after ${i}`)).choices[0].message.content, `echo: after ${i}`);
      lines = gw.ledger().slice(30);
      const failed = lines.filter((l) => l.status === 'error');
      assert.ok(failed.length <= 1 && failed.every((l) => l.replica === urls[1]), JSON.stringify(failed));
      assert.equal(lines.filter((l) => l.status === 'ok').length, 20);
      assert.ok(lines.filter((l) => l.status === 'ok').every((l) => l.replica !== urls[1]));
      ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.equal(ready.backends[0].ready, true);
      assert.deepEqual(ready.backends[0].replicas.map((r) => r.ready), [true, false, true]);

      // It comes back on its port: its probe finds it and it takes requests again.
      fakes[1] = await startFakeOpenAI({ port: deadPort, models: [MODELS.local] });
      await waitFor(async () => (await (await fetch(`${gw.url}/readyz`)).json()).backends[0].replicas[1].ready,
        5000, 'the replica to be probed back');
      for (const f of fakes) f.control({ delay_ms: 100 });
      await Promise.all(Array.from({ length: 30 }, (_, i) => ask(`back ${i}`)));
      assert.ok(chatPosts(fakes[1]).length >= 5, `the replica that came back got ${chatPosts(fakes[1]).length}`);
      lines = gw.ledger().slice(-30);
      assert.equal(lines.filter((l) => l.replica === urls[1]).length, chatPosts(fakes[1]).length);
      assert.ok(lines.every((l) => l.status === 'ok' && l.backend === 'pool'));
    } finally {
      await gw.stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  test('without replicas: true a base_url list is still the first that answers', async () => {
    const fakes = await Promise.all([0, 1].map(() => startFakeOpenAI({ models: [MODELS.local] })));
    const gw = await startGateway({
      backends: [{ name: 'first', kind: 'openai', location: 'local', base_url: fakes.map((f) => `${f.url}/v1`),
        model: MODELS.local, warmup: false }],
      routes: [{ name: 'default', to: ['first'] }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      await Promise.all(Array.from({ length: 6 }, () => c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] })));
      assert.deepEqual(fakes.map((f) => chatPosts(f).length), [6, 0]);
      assert.ok(gw.ledger().every((l) => !('replica' in l)));
      const ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.equal(ready.backends[0].replicas, undefined);
    } finally {
      await gw.stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });
});
