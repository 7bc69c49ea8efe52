// Backend health through the real gateway: a local server that starts after the gateway is
// found by the health thread and joins the routing; local backends are warmed up at start
// (one 1-token completion) and /readyz says so.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, MODELS, posts, startGateway } from './gateway.mjs';
import { freePort, waitFor } from './util.mjs';

const skip = gatewayBinaryMissing();

describe('backend health', { skip: skip ?? false }, () => {
  test('a local server started later is picked up, warmed up, and served', async () => {
    const port = await freePort();
    const gw = await startGateway({
      backends: [{ name: 'late', kind: 'openai', location: 'local', base_url: `http://127.0.0.1:${port}/v1`, model: 'auto' }],
      routes: [{ name: 'default', to: ['late'] }],
      extraServer: { health_interval_ms: 200 },
    });
    let fake;
    try {
      let ready = await (await fetch(`${gw.url}/readyz`)).json();
      assert.equal(ready.backends[0].ready, false);
      const refused = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(refused.status, 503);

      fake = await startFakeOpenAI({ port, models: [MODELS.local] });
      ready = await waitFor(async () => {
        const r = await (await fetch(`${gw.url}/readyz`)).json();
        return r.backends[0].ready && r.backends[0].warm ? r : null;
      }, 5000, 'the late backend to become ready and warm');
      assert.equal(ready.backends[0].model, MODELS.local, '"auto" resolved from GET /v1/models');
      assert.equal(posts(fake)[0].body.max_tokens, 1, 'the warm-up is a 1-token completion');

      const ok = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).choices[0].message.content, 'echo: hi');
    } finally {
      await gw.stop();
      await fake?.close();
    }
  });
});
