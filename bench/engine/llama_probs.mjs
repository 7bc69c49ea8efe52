// llama_probs.mjs: llama.cpp's next-token probabilities (node-llama-cpp 3.21.1, CPU, 1 thread)
// after a prompt of token ids, one "id<TAB>probability" line per vocabulary entry. Made
// test/engine/data/qwen2_ref.tsv (on the model test_model.c writes; run that test with
// HL_KEEP_QWEN2=1 to keep the file):
//   node llama_probs.mjs MODEL.gguf 1 260 261 262 263 264 > qwen2_ref.tsv
// Run it from a folder where node-llama-cpp is installed (bench.sh's $HL_BENCH_DIR/nlc).
import { getLlama } from "node-llama-cpp";

const [modelPath, ...ids] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: 64, batchSize: 32, threads: 1, sequences: 1 });
const seq = ctx.getSequence();
const prompt = ids.map(Number);
const opts = { temperature: 1, topK: 0, topP: 1, minP: 0 };
for await (const r of seq.evaluateWithMetadata(prompt, { probabilities: true }, opts)) {
  const lines = [];
  for (const [tok, p] of r.probabilities) lines.push(`${tok}\t${p}`);
  lines.sort((a, b) => Number(a.split("\t")[0]) - Number(b.split("\t")[0]));
  console.log(lines.join("\n"));
  break;
}
await ctx.dispose();
await model.dispose();
await llama.dispose();
