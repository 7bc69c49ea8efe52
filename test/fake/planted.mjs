// Planted agreement: two fake backends whose answers agree at known rates per task type, and
// whose logprobs say how sure they are in a known relation to agreement. Shadow comparisons,
// `report` and `calibrate` must recover what is planted here.
//
//   startFakeOpenAI({ planted: { role: 'reference' } })   // one side
//   startFakeOpenAI({ planted: { role: 'candidate' } })   // the other (or control({planted}))
//
// The planting, deterministic from the prompt (the last user message's text, hashed with
// FNV-1a; send distinct prompts to draw distinct outcomes):
//   task type   a leading tag in the prompt: "[classification] ...", "[extraction] ...",
//               "[text] ..."; no tag: text.
//   agree       u1 < rates[task], u1 uniform in [0, 1) from the hash. Default rates (RATES):
//               classification 0.9, extraction 0.8, text 0.6.
//   answers     role 'reference' always gives the canonical answer; role 'candidate' gives it
//               when they agree, else a variant:
//                 classification  one of positive|negative|neutral|mixed; the variant is
//                                 another label (exact match fails);
//                 extraction      {"name": <one of 8>, "year": 1900..2019}; the variant has
//                                 year + 1 (json scores 0.5: one field of two);
//                 text            12 words from one vocabulary; the variant 12 words from a
//                                 disjoint one (ROUGE-L and token F1 0; agreeing: 1).
//   confidence  when logprobs are asked (either role): every token's logprob is ln(c), so the
//               geometric mean of its probabilities is c, and so is the least one, with
//               c = 0.80 + 0.19 u2 when they agree, 0.35 + 0.30 u2 when not (u2 a second
//               uniform from the hash). Each token's top-2 alternative has probability
//               (1 - c) / 2, so the first-token margin is c - (1 - c) / 2. The planted
//               threshold: an answer agrees exactly when its confidence is >= 0.8 (nothing
//               falls in (0.65, 0.8)).

export const RATES = { classification: 0.9, extraction: 0.8, text: 0.6 };
const LABELS = ['positive', 'negative', 'neutral', 'mixed'];
const NAMES = ['Ada', 'Boris', 'Chen', 'Dana', 'Emeka', 'Farah', 'Goran', 'Hana'];
const VOCAB_A = ['river', 'stone', 'lantern', 'meadow', 'copper', 'harbor', 'willow', 'orbit',
  'thistle', 'canyon', 'ember', 'glacier', 'pepper', 'marble', 'falcon', 'quartz'];
const VOCAB_B = ['window', 'ticket', 'blanket', 'engine', 'pocket', 'ladder', 'violin', 'carpet',
  'bucket', 'rocket', 'pillow', 'hammer', 'candle', 'wallet', 'button', 'mirror'];

// FNV-1a over the UTF-8 bytes, then a seed-specific mix: a 32-bit unsigned integer.
export function plantHash(text, seed = 0) {
  let h = 2166136261 ^ seed;
  for (const b of Buffer.from(String(text), 'utf8')) h = Math.imul(h ^ b, 16777619) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 2246822507) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
const uniform = (text, seed) => plantHash(text, seed) / 4294967296;

export function plantedTask(text) {
  const m = /^\s*\[(classification|extraction|text)\]/.exec(String(text));
  return m ? m[1] : 'text';
}

// Whether the two roles agree on this prompt, and the confidence planted with it.
export function plantedOutcome(text, rates = RATES) {
  const task = plantedTask(text);
  const agree = uniform(text, 1) < (rates[task] ?? RATES[task]);
  const u2 = uniform(text, 2);
  const confidence = agree ? 0.80 + 0.19 * u2 : 0.35 + 0.30 * u2;
  return { task, agree, confidence };
}

function words(vocab, h, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(vocab[plantHash(String(h), i + 10) % vocab.length]);
  return out.join(' ');
}

function canonical(task, h) {
  if (task === 'classification') return LABELS[h % 4];
  if (task === 'extraction') return JSON.stringify({ name: NAMES[h % 8], year: 1900 + (h % 120) });
  return words(VOCAB_A, h, 12);
}

function variant(task, h) {
  if (task === 'classification') return LABELS[(h % 4 + 1 + ((h >>> 8) % 3)) % 4];
  if (task === 'extraction') return JSON.stringify({ name: NAMES[h % 8], year: 1901 + (h % 120) });
  return words(VOCAB_B, h, 12);
}

// The answer of `role` ('reference' or 'candidate') to the prompt text: {text, logprob, alt}
// (alt: the logprob of each token's second choice).
export function plantedAnswer(text, { role = 'reference', rates = RATES } = {}) {
  const { task, agree, confidence } = plantedOutcome(text, rates);
  const h = plantHash(text, 3);
  const answer = role === 'candidate' && !agree ? variant(task, h) : canonical(task, h);
  return { text: answer, logprob: Math.log(confidence), alt: Math.log((1 - confidence) / 2), agree, task, confidence };
}
