// llama_bench.mjs: the llama.cpp side of bench/engine/bench.sh, through node-llama-cpp
// (3.21.1, CPU build). Same protocol as hl_bench.c: a 128-token prompt (BOS, then ids
// 301..427) in one batch of 128, then N greedy decode steps; one warm-up run, best of two.
//
// Usage: node llama_bench.mjs MODEL.gguf THREADS [N_DECODE]
// Output: llama prefill_tok_s=X decode_tok_s=Y
import { getLlama } from "node-llama-cpp";

const [modelPath, threadsArg, nArg] = process.argv.slice(2);
const threads = Number(threadsArg ?? 1);
const nDecode = Number(nArg ?? 64);
const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const prompt = [1];
for (let i = 1; i < 128; i++) prompt.push(300 + i);

let bestPrefill = Infinity, bestDecode = Infinity;
for (let rep = 0; rep < 3; rep++) {
  const ctx = await model.createContext({ contextSize: 512, batchSize: 128, threads, sequences: 1 });
  const seq = ctx.getSequence();
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt);
  const t1 = performance.now();
  let n = 0;
  // evaluate() feeds the given token and yields greedy continuations, one forward pass each.
  for await (const tok of seq.evaluate([prompt[prompt.length - 1] + 1], { temperature: 0 })) {
    void tok;
    if (++n >= nDecode) break;
  }
  const t2 = performance.now();
  if (rep > 0) {
    bestPrefill = Math.min(bestPrefill, (t1 - t0) / 1000);
    bestDecode = Math.min(bestDecode, (t2 - t1) / 1000);
  }
  await ctx.dispose();
}
console.log(`llama prefill_tok_s=${(128 / bestPrefill).toFixed(2)} decode_tok_s=${(nDecode / bestDecode).toFixed(2)}`);
await model.dispose();
await llama.dispose();
