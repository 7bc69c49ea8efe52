// GET /metrics through the real gateway: Prometheus text format, counters that match the
// requests served, histograms, gauges for backends and budgets.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFakeOpenAI } from '../fake/openai.mjs';
import { gatewayBinaryMissing, MODELS, startGateway } from './gateway.mjs';

const skip = gatewayBinaryMissing();

function parse(text) {
  const series = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    series.set(m[1], Number(m[2]));
  }
  return series;
}

describe('metrics', { skip: skip ?? false }, () => {
  test('counters, histograms and gauges match what was served', async () => {
    const local = await startFakeOpenAI({ models: [MODELS.local] });
    const gw = await startGateway({
      backends: [{ name: 'local', kind: 'openai', location: 'local', base_url: `${local.url}/v1`, model: MODELS.local, warmup: false, max_retries: 0 }],
      routes: [{ name: 'default', to: ['local'] }],
      budgets: [{ name: 'monthly', period: 'month', limit_usd: 100 }],
    });
    try {
      const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      for (let i = 0; i < 5; i++) await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'one two' }] });
      local.control({ status: 500, count: 1 });
      await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] }).catch(() => {});
      const res = await fetch(`${gw.url}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      const m = parse(await res.text());
      assert.equal(m.get('hybridllm_attempts_total{backend="local",source="local",status="ok"}'), 5);
      assert.equal(m.get('hybridllm_attempts_total{backend="local",source="local",status="error"}'), 1);
      const ledger = gw.ledger().filter((l) => l.status === 'ok');
      const input = ledger.reduce((a, l) => a + l.input_tokens, 0);
      assert.equal(m.get('hybridllm_tokens_total{backend="local",direction="input"}'), input);
      const count = m.get('hybridllm_attempt_duration_seconds_count{backend="local"}');
      assert.equal(count, m.get('hybridllm_attempt_duration_seconds_bucket{backend="local",le="+Inf"}'));
      assert.ok(count >= 6);
      assert.equal(m.get('hybridllm_requests_in_flight'), 0);
      assert.equal(m.get('hybridllm_backend_ready{backend="local"}'), 1);
      assert.equal(m.get('hybridllm_backend_breaker_state{backend="local"}'), 0);
      assert.equal(m.get('hybridllm_budget_limit_usd{budget="monthly"}'), 100);
      assert.equal(m.get('hybridllm_ledger_records_total'), gw.ledger().length);
      assert.ok(m.get('hybridllm_ledger_index_lag_bytes') >= 0, 'the SQLite index reports its lag');
      assert.equal(m.get('hybridllm_ledger_index_errors_total'), 0);
    } finally {
      await gw.stop();
      await local.close();
    }
  });
});
