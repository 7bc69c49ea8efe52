// gen_pii_set.mjs: writes test/router/pii_generated.tsv, the large labelled set that
// test_pii.c scores the detector on (recall and precision per type, with targets).
//
// Why generated: hand-written sets are small and easy; this one draws thousands of texts
// from many templates (mail, chat, CSV, HTML, headers, .env files, logs) with a fixed seed,
// and varies what real text varies: Unicode spaces and dashes inside values, zero-width
// characters, full-width forms, values wrapped across lines and quoted replies, context
// words or none. Half of it is hard negatives: order numbers, versions, timestamps, UUIDs,
// hashes, coordinates, prices, ISBNs, tracking numbers, IMEIs, dates near "Tel", values that
// fail their checksums, and secret-looking configuration that holds no secret.
//
//   node test/router/gen_pii_set.mjs > test/router/pii_generated.tsv
//
// Output: "text<TAB>expected" per line; expected is "-" or "type:count,...", counting
// distinct values per type. In text, "\n", "\t" and "\\" stand for a newline, a tab and a
// backslash. All values are random and fictitious (documentation IP ranges, example.*
// domains, random digits with valid checksums).

let seed = 0x5eed1234;
function rnd() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (a, b) => a + Math.floor(rnd() * (b - a + 1));
const pick = (a) => a[Math.floor(rnd() * a.length)];
const digits = (n) => Array.from({ length: n }, () => ri(0, 9)).join('');
const chars = (n, set) => Array.from({ length: n }, () => set[ri(0, set.length - 1)]).join('');
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPDIG = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0234567';
const B64URL = ALNUM + '_-';
const B64 = ALNUM + '/+';
const HEX = '0123456789abcdef';

// Separators as real text writes them.
const SPACES = [' ', ' ', ' ', '\u00a0', '\u2009', '\u202f', '\u2007', '\u3000', ' \u200b'];
const DASHES = ['-', '-', '\u2013', '\u2014', '\u2011', '\u2212', '\u2010'];
const sp = () => pick(SPACES);
const dash = () => pick(DASHES);
const fullwidth = (s) => s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
const ascii = (s) => s.replace(/[\uff01-\uff5e]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0));
const zw = (s) => s.replace(/(\d)(?=\d)/g, (m) => (rnd() < 0.3 ? m + '\u200b' : m));

function luhnDigit(body) {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let v = +body[body.length - 1 - i];
    if (i % 2 === 0) { v *= 2; if (v > 9) v -= 9; }
    sum += v;
  }
  return (10 - (sum % 10)) % 10;
}
function luhnOk(s) { return luhnDigit(s.slice(0, -1)) === +s.slice(-1); }
function mod97(s) { let m = 0; for (const c of s) m = (m * 10 + +c) % 97; return m; }

// ---- Value makers: each returns the value (as written) ----
const FIRST = ['john', 'maria', 'li', 'priya', 'oconnor', 'anna', 'jean', 'kenji', 'fatima', 'lukas', 'sofia', 'ahmed'];
const LAST = ['smith', 'garcia', 'wang', 'patel', 'muller', 'rossi', 'dubois', 'tanaka', 'khan', 'novak'];
const DOM = ['example.com', 'example.org', 'mail.example.net', 'corp.example.co.uk', 'example.de', 'eu-west.example.io'];
function email() {
  const f = pick(FIRST), l = pick(LAST);
  const local = pick([`${f}.${l}`, `${f}${ri(1, 99)}`, `${f[0]}.${l}`, `${f}+news`, `${f}_${l}`, `o'${l}`, `${f}.o'${l}`, `${l}-${f}`]);
  return `${local}@${pick(DOM)}`;
}
function nanp() { return [String(ri(2, 9)) + digits(2), String(ri(2, 9)) + digits(2), digits(4)]; }
function phone() {
  const k = ri(0, 13);
  const s = sp(), d = dash();
  const [a, b, c] = nanp();
  switch (k) {
    case 0: return `(${a})${s}${b}${d}${c}`;
    case 1: return `${a}${d}${b}${d}${c}`;
    case 2: return `+1${s}${a}${s}${b}${s}${c}`;
    case 3: return `+44${s}20${s}${digits(4)}${s}${digits(4)}`;
    case 4: return `+33${s}${ri(6, 7)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}`;
    case 5: return `0033${s}${ri(6, 7)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}`;
    case 6: return `00${s}31${s}6${s}${digits(4)}${s}${digits(4)}`;
    case 7: return `0${ri(6, 7)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}${s}${digits(2)}`;
    case 8: return `${ri(6, 9)}${digits(4)}${s}${digits(5)}`;
    case 9: return `+91${s}${ri(6, 9)}${digits(4)}${s}${digits(5)}`;
    case 10: return `+49${s}(0)30${s}${digits(6)}`;
    case 11: return `020${s}${ri(3, 8)}${digits(3)}${s}${digits(4)}`;
    case 12: return `+${ri(2, 9)}${digits(ri(9, 11))}`;
    default: return `0${ri(1, 9)}${digits(2)}${d}${ri(1, 9)}${digits(6)}`;
  }
}
function ssn() {
  let area;
  do area = ri(1, 899); while (area === 666);
  const s = pick(['-', '-', ' ', '\u2013', '\u2011', '\u00a0']);
  return `${String(area).padStart(3, '0')}${s}${String(ri(1, 99)).padStart(2, '0')}${s}${String(ri(1, 9999)).padStart(4, '0')}`;
}
function cardDigits() {
  const k = ri(0, 3);
  let body;
  if (k === 0) body = '4' + digits(14);
  else if (k === 1) body = '5' + ri(1, 5) + digits(13);
  else if (k === 2) body = '3' + pick(['4', '7']) + digits(12);
  else body = '6011' + digits(11);
  return body + luhnDigit(body);
}
function groupCard(n, s) {
  if (n.length === 15) return [n.slice(0, 4), n.slice(4, 10), n.slice(10)].join(s);
  return n.match(/.{1,4}/g).join(s);
}
function card() {
  const n = cardDigits();
  const k = ri(0, 4);
  if (k === 0) return n;
  if (k === 1) return groupCard(n, sp());
  if (k === 2) return groupCard(n, dash());
  if (k === 3) return fullwidth(groupCard(n, ' '));
  return zw(groupCard(n, ' '));
}
const IBAN_C = { DE: 18, GB: -1, FR: 23, NL: -2, ES: 20, IT: -3, BE: 12, AT: 16 };
function ibanRaw() {
  const cc = pick(Object.keys(IBAN_C));
  let bban;
  if (cc === 'GB') bban = 'NWBK' + digits(14);
  else if (cc === 'NL') bban = 'ABNA' + digits(10);
  else if (cc === 'IT') bban = 'X' + digits(10) + digits(12);
  else bban = digits(IBAN_C[cc]);
  const num = (bban + cc + '00').replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  const check = String(98 - mod97(num)).padStart(2, '0');
  return cc + check + bban;
}
function iban(v = ibanRaw()) {
  const k = ri(0, 2);
  if (k === 0) return v;
  return v.match(/.{1,4}/g).join(k === 1 ? ' ' : sp());
}
function ipv4() {
  return pick([`192.0.2.${ri(1, 254)}`, `198.51.100.${ri(1, 254)}`, `203.0.113.${ri(1, 254)}`, `10.${ri(0, 255)}.${ri(0, 255)}.${ri(1, 254)}`, `172.${ri(16, 31)}.${ri(0, 255)}.${ri(1, 254)}`, `192.168.${ri(0, 255)}.${ri(1, 254)}`]);
}
function ipv6() {
  const g = () => chars(4, HEX).replace(/^0+(?=.)/, '');
  return pick([`2001:db8:${g()}:${g()}::${g()}`, `2001:db8:${g()}:${g()}:${g()}:${g()}:${g()}:${g()}`, `fe80::${g()}:${g()}:${g()}:${g()}`, `2001:db8::${ri(2, 9)}${g().slice(0, 3)}`]);
}
// National ids.
function nino() {
  const A = 'ABCEGHJKLMNPRSTWXYZ', B = 'ABCEGHJKLMNPRSTWXYZ';
  let p;
  do p = pick([...A]) + pick([...B]); while (['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ'].includes(p));
  const d = digits(6), s = pick(['A', 'B', 'C', 'D']);
  return rnd() < 0.5 ? p + d + s : `${p} ${d.slice(0, 2)} ${d.slice(2, 4)} ${d.slice(4)} ${s}`;
}
const DNI_L = 'TRWAGMYFPDXBNJZSQVHLCKE';
function dni() {
  if (rnd() < 0.3) {
    const x = ri(0, 2), d = digits(7);
    return 'XYZ'[x] + d + (rnd() < 0.3 ? '-' : '') + DNI_L[+(x + d) % 23];
  }
  const d = String(ri(10000000, 99999999));
  return d + pick(['', '', '-', ' ']) + DNI_L[+d % 23];
}
function bsnDigits() {
  for (;;) {
    const d = String(ri(100000000, 999999999));
    let sum = 0;
    for (let j = 0; j < 8; j++) sum += (9 - j) * +d[j];
    if ((sum - +d[8]) % 11 === 0) return d;
  }
}
const ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
function cfCheck(s) {
  let sum = 0;
  for (let j = 0; j < 15; j++) {
    const c = s[j], v = /\d/.test(c) ? +c : c.charCodeAt(0) - 65;
    sum += j % 2 === 0 ? ODD[v] : v;
  }
  return String.fromCharCode(65 + (sum % 26));
}
function cf() {
  const L = 'BCDFGHLMNPRSTVZ';
  const s = chars(6, L) + digits(2) + pick([...'ABCDEHLMPRST']) + String(ri(1, 71)).padStart(2, '0') + pick([...'ABCDEFGHLMZ']) + digits(3);
  return s + cfCheck(s);
}
function nir() {
  for (;;) {
    const b = String(ri(1, 2)) + digits(2) + String(ri(1, 12)).padStart(2, '0') + String(ri(1, 95)).padStart(2, '0') + digits(3) + digits(3);
    const key = String(97 - Number(BigInt(b) % 97n)).padStart(2, '0');
    if (rnd() < 0.5) return b + key;
    return `${b[0]} ${b.slice(1, 3)} ${b.slice(3, 5)} ${b.slice(5, 7)} ${b.slice(7, 10)} ${b.slice(10, 13)} ${key}`;
  }
}
function steuerOk(d) {
  const cnt = Array(10).fill(0);
  for (let j = 0; j < 10; j++) cnt[+d[j]]++;
  let twice = 0, missing = 0;
  for (const c of cnt) { if (c === 0) missing++; else if (c === 2 || c === 3) twice++; else if (c > 3) return false; }
  if (twice !== 1 || missing < 1 || missing > 2 || d[0] === '0') return false;
  let product = 10;
  for (let j = 0; j < 10; j++) { let sum = (+d[j] + product) % 10; if (sum === 0) sum = 10; product = (sum * 2) % 11; }
  let check = 11 - product; if (check === 10) check = 0;
  return check === +d[10];
}
function steuer() {
  for (;;) {
    const d = String(ri(1, 9)) + digits(10);
    if (steuerOk(d)) return rnd() < 0.6 ? d : `${d.slice(0, 2)} ${d.slice(2, 5)} ${d.slice(5, 8)} ${d.slice(8)}`;
  }
}
// Secrets.
const sec = {
  openai_key: () => pick(['sk-', 'sk-proj-', 'sk-svcacct-']) + chars(ri(40, 60), B64URL).replace(/^/, 'A1'),
  anthropic_key: () => 'sk-ant-api03-' + chars(93, B64URL) + 'AA',
  aws_access_key: () => 'AKIA' + chars(16, UPDIG),
  github_token: () => pick(['ghp_', 'gho_', 'ghs_']) + chars(36, ALNUM),
  gitlab_token: () => 'glpat-' + chars(20, B64URL.replace('_', '')),
  slack_token: () => pick(['xoxb-', 'xoxp-']) + digits(12) + '-' + digits(12) + '-' + chars(24, ALNUM),
  stripe_key: () => pick(['sk_live_', 'rk_live_', 'sk_test_']) + chars(ri(24, 40), ALNUM),
  google_api_key: () => 'AIza' + chars(35, B64URL),
  jwt: () => 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ' + chars(ri(20, 60), B64URL) + '.' + chars(43, B64URL),
};
function awsSecret() { let s; do s = chars(40, B64); while (!/[0-9]/.test(s) || !/[a-z]/.test(s) || !/[A-Z]/.test(s)); return s; }
function password() { return pick(['hunter2!', 'S3cure#Pass', 'Tr0ub4dor&3', 'p@ssw0rd99', 'N0tMyRealPw', 'Zx9!kLm2q']) + digits(2); }
function pem() {
  const kind = pick(['RSA ', 'EC ', 'OPENSSH ', '']);
  const body = Array.from({ length: ri(3, 8) }, () => chars(64, B64)).join('\n');
  return `-----BEGIN ${kind}PRIVATE KEY-----\n${body}\n-----END ${kind}PRIVATE KEY-----`;
}

// ---- Wrapping ----
// Breaks a value at one of its separators (or between groups) into two lines, optionally
// with a quoted-reply prefix on the continuation.
function wrapAt(v) {
  const idx = [];
  for (let i = 1; i < v.length - 1; i++) if (v[i] === ' ' && /\d/.test(v[i - 1]) && /\d/.test(v[i + 1])) idx.push(i);
  if (!idx.length) return null;
  const i = pick(idx), pre = pick(['\n', '\n', '\n> ', '\r\n', '\n>> ']);
  return v.slice(0, i) + pre + v.slice(i + 1);
}

// ---- Templates ----
const out = [];
function add(text, labels) {
  const m = {};
  for (const [t, v] of labels) { (m[t] ??= new Set()).add(ascii(v).replace(/[^0-9a-z]/gi, '').toLowerCase()); }
  const order = ['email', 'phone', 'ssn', 'credit_card', 'iban', 'ipv4', 'ipv6', 'uk_nino', 'es_dni', 'nl_bsn',
    'it_codice_fiscale', 'fr_nir', 'de_steuer_id', 'openai_key', 'anthropic_key', 'aws_access_key', 'aws_secret',
    'github_token', 'gitlab_token', 'slack_token', 'stripe_key', 'google_api_key', 'private_key', 'jwt',
    'password_in_url', 'env_secret'];
  const exp = order.filter((t) => m[t]).map((t) => `${t}:${m[t].size}`).join(',') || '-';
  out.push(text.replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/\t/g, '\\t') + '\t' + exp);
}

const CTX_PHONE = ['Call me at', 'Phone:', 'Tel.', 'Mobile', 'text me at', 'reach me on', 'WhatsApp', 'Fax', 'ring me on', 'Tél :', 'Telefon:', 'cell'];
const CTX_NONE = ['Details:', 'see below', 'Ref', 'Contact', 'Notes -', ''];
const NAMES = ['Alice', 'Bob', 'Chen', 'Dana', 'Emeka', 'Farah'];

function gen(n, f) { for (let i = 0; i < n; i++) f(i); }

// Emails: prose, mail headers, mailto links (one value), HTML, CSV, zero-width, full width.
gen(160, () => {
  const e = email(), k = ri(0, 7);
  if (k === 0) add(`Please forward the report to ${e} before Friday.`, [['email', e]]);
  else if (k === 1) add(`From: ${pick(NAMES)} <${e}>\nTo: team@${pick(DOM)}\nSubject: Q3`, [['email', e], ['email', 'team@x']]);
  else if (k === 2) add(`<p>Write to <a href="mailto:${e}">${e}</a> for help.</p>`, [['email', e]]);
  else if (k === 3) add(`name,role,email\n${pick(NAMES)},admin,${e}`, [['email', e]]);
  else if (k === 4) { const z = e.replace('@', pick(['\u200b@', '@\u200b', '\uff20'])); add(`contact: ${z}`, [['email', e]]); }
  else if (k === 5) add(`> On Monday ${pick(NAMES)} <${e}> wrote:\n> sounds good`, [['email', e]]);
  else if (k === 6) add(`Reply-To: ${e}`, [['email', e]]);
  else add(`${fullwidth(e)} is my address`, [['email', e]]);
});
// Phones, with and without context, wrapped, in links.
gen(320, () => {
  const p = phone(), k = ri(0, 6);
  const plain = p;
  if (k === 0) add(`${pick(CTX_PHONE)} ${p} after 5pm`, [['phone', plain]]);
  else if (k === 1) add(`<a href="tel:${p.replace(/[^\d+]/g, '')}">${p}</a>`, [['phone', plain]]);
  else if (k === 2) add(`https://wa.me/${ri(1, 9)}${digits(10)} for WhatsApp`, [['phone', 'wa']]);
  else if (k === 3) { const w = wrapAt(p); if (w) add(`${pick(CTX_PHONE)} ${w}`, [['phone', plain]]); else add(`${pick(CTX_PHONE)} ${p}`, [['phone', plain]]); }
  else if (k === 4) add(`${pick(NAMES)}: ${p}`, [['phone', plain]]);
  else if (k === 5) add(`name;phone\n${pick(NAMES)};${p}`, [['phone', plain]]);
  else add(`${p}`, [['phone', plain]]);
});
// SSNs.
gen(100, () => {
  const s = ssn(), k = ri(0, 2);
  if (k === 0) add(`SSN: ${s}`, [['ssn', s]]);
  else if (k === 1) add(`employee ${pick(NAMES)}, social security number ${s}, start date Monday`, [['ssn', s]]);
  else add(`ss# ${s.replace(/\D/g, '')}`, [['ssn', s]]);
});
// Cards, wrapped and quoted.
gen(200, () => {
  const c = card(), k = ri(0, 4);
  if (k === 0) add(`Card number: ${c}, exp 04/27`, [['credit_card', c]]);
  else if (k === 1) { const w = wrapAt(groupCard(ascii(c).replace(/\D/g, ''), ' ')); add(`pay with\n> ${w ?? c}\n> thanks`, [['credit_card', c]]); }
  else if (k === 2) add(`order,amount,card\n1042,19.99,${c}`, [['credit_card', c]]);
  else if (k === 3) { const w = wrapAt(groupCard(ascii(c).replace(/\D/g, ''), ' ')); add(`charge ${w ?? c} please`, [['credit_card', c]]); }
  else add(`${c}`, [['credit_card', c]]);
});
// IBANs.
gen(160, () => {
  const raw = ibanRaw(), v = iban(raw), k = ri(0, 3);
  if (k === 0) add(`IBAN: ${v}`, [['iban', v]]);
  else if (k === 1) { const w = wrapAt(raw.match(/.{1,4}/g).join(' ')); add(`Bitte überweisen an\n${w ?? v}\nDanke`, [['iban', v]]); }
  else if (k === 2) add(`> account ${raw.match(/.{1,4}/g).join(' ')}`, [['iban', v]]);
  else add(`payee,iban\nACME,${raw}`, [['iban', v]]);
});
// IPs, including IPv6 in Received: headers.
gen(120, () => {
  const a = ipv4(), b = ipv6(), k = ri(0, 3);
  if (k === 0) add(`ssh admin@${a} failed`, [['ipv4', a], ['email', 'admin@' + a]].slice(0, 1));
  else if (k === 1) add(`Received: from mail.example.com ([IPv6:${b}])\n\tby mx.example.net`, [['ipv6', b]]);
  else if (k === 2) add(`client ${b} connected from ${a}`, [['ipv6', b], ['ipv4', a]]);
  else add(`allow ${a}/32 in the firewall`, [['ipv4', a]]);
});
// National ids with context.
gen(100, () => { const v = nino(); add(pick([`NI number ${v}`, `National Insurance: ${v}`, `nino=${v}`, `${pick(NAMES)} (${v}) starts Monday`]), [['uk_nino', v]]); });
gen(100, () => { const v = dni(); add(pick([`DNI ${v}`, `NIF: ${v}`, `documento ${v} caduca`, `${v}`]), [['es_dni', v]]); });
gen(100, () => { const v = bsnDigits(); const w = rnd() < 0.3 ? `${v.slice(0, 4)}.${v.slice(4, 6)}.${v.slice(6)}` : v; add(pick([`BSN: ${w}`, `burgerservicenummer ${w}`, `mijn BSN is ${w}`]), [['nl_bsn', v]]); });
gen(100, () => { const v = cf(); add(pick([`codice fiscale ${v}`, `CF: ${v}`, `${v}`, `il mio C.F. è ${v}.`]), [['it_codice_fiscale', v]]); });
gen(100, () => { const v = nir(); add(pick([`numéro de sécurité sociale ${v}`, `NIR : ${v}`, `${v}`]), [['fr_nir', v]]); });
gen(100, () => { const v = steuer(); add(pick([`Steuer-ID: ${v}`, `Steueridentifikationsnummer ${v}`, `IdNr ${v}`, `tax id ${v}`]), [['de_steuer_id', v]]); });
// Secrets: keys in prose, .env files, code, JSON, headers.
const ENV = { openai_key: 'OPENAI_API_KEY', anthropic_key: 'ANTHROPIC_API_KEY', aws_access_key: 'AWS_ACCESS_KEY_ID', github_token: 'GITHUB_TOKEN', gitlab_token: 'GITLAB_TOKEN', slack_token: 'SLACK_BOT_TOKEN', stripe_key: 'STRIPE_SECRET_KEY', google_api_key: 'GOOGLE_API_KEY', jwt: 'AUTH_TOKEN' };
for (const [t, mk] of Object.entries(sec)) {
  gen(70, () => {
    const v = mk(), k = ri(0, 5);
    if (k === 0) add(`${ENV[t]}=${v}`, [[t, v]]);
    else if (k === 1) add(`why does this fail? client = Client(api_key="${v}")`, [[t, v]]);
    else if (k === 2) add(`{"${ENV[t].toLowerCase()}": "${v}", "debug": true}`, [[t, v]]);
    else if (k === 3) add(`export ${ENV[t]}='${v}'\nnpm start`, [[t, v]]);
    else if (k === 4) add(`here is my key ${v} can you check it`, [[t, v]]);
    else add(`Authorization: Bearer ${v}`, [[t, v]]);
  });
}
gen(70, () => { const a = sec.aws_access_key(), s = awsSecret(), k = ri(0, 2);
  if (k === 0) add(`aws_access_key_id = ${a}\naws_secret_access_key = ${s}`, [['aws_access_key', a], ['aws_secret', s]]);
  else if (k === 1) add(`AWS_SECRET_ACCESS_KEY=${s}`, [['aws_secret', s]]);
  else add(`creds: ${a} ${s}`, [['aws_access_key', a], ['aws_secret', s]]);
});
gen(70, () => add(`my deploy key:\n${pem()}\nwhy is it rejected?`, [['private_key', 'k']]));
gen(90, () => { const p = password(), u = pick(['admin', 'app', 'svc_user']), k = ri(0, 3);
  if (k === 0) add(`DATABASE_URL=postgres://${u}:${p}@db.internal.example:5432/app`, [['password_in_url', p]]);
  else if (k === 1) add(`mongodb+srv://${u}:${p}@cluster0.example.net/test?retryWrites=true`, [['password_in_url', p]]);
  else if (k === 2) add(`Server=db.example;Database=app;User Id=${u};Password=${p};`, [['password_in_url', p]]);
  else add(`redis://:${p}@cache.example:6379/0`, [['password_in_url', p]]);
});
gen(110, () => { const name = pick(['DB_PASSWORD', 'SECRET_KEY', 'JWT_SECRET', 'SMTP_PASS', 'API_TOKEN', 'CLIENT_SECRET', 'ENCRYPTION_KEY', 'MYAPP_API_KEY', 'password']);
  const v = name === 'password' ? password() : chars(ri(16, 40), ALNUM); const k = ri(0, 2);
  if (k === 0) add(`# .env\nNODE_ENV=production\n${name}=${v}\nPORT=3000`, [['env_secret', v]]);
  else if (k === 1) add(`${name}: "${v}"`, [['env_secret', v]]);
  else add(`settings.${name} = '${v}'`, [['env_secret', v]]);
});
// CSV exports whose phone column is far from its header; negatives: the same with an id
// column instead.
gen(120, () => {
  const rows = ri(2, 6), cols = ['id', 'name', 'email', 'city', 'country', 'notes', pick(['phone', 'Mobile', 'tel', 'Phone Number', 'cell'])];
  const sep = pick([',', ';', '\t']);
  const labels = [];
  const lines = [cols.join(sep)];
  for (let r = 0; r < rows; r++) {
    const e = email(), p = `${ri(2, 9)}${digits(9)}`;
    labels.push(['email', e], ['phone', p]);
    lines.push([digits(6), pick(NAMES), e, pick(['Lyon', 'Pune', 'Leeds', 'Graz']), pick(['FR', 'IN', 'UK', 'AT']), pick(['vip', 'n/a', 'call after 6']), p].join(sep));
  }
  add(lines.join('\n'), labels);
});
gen(80, () => {
  const sep = pick([',', ';']);
  const lines = [['order_id', 'sku', 'qty', 'price', 'phone'].join(sep)];
  for (let r = 0; r < ri(2, 5); r++) lines.push([`${ri(1, 9)}${digits(9)}`, chars(8, UPDIG), ri(1, 9), `${ri(1, 99)}.${digits(2)}`, ''].join(sep));
  add(lines.join('\n'), []);
});
// Mixed texts: several types and a repeated value (counted once).
gen(150, () => {
  const e = email(), p = phone(), c = card();
  add(`Hi ${pick(NAMES)},\nplease update my record: ${e}, ${pick(CTX_PHONE)} ${p}.\nCard ${c}.\nThanks, again my mail is ${e}`,
    [['email', e], ['phone', p], ['credit_card', c]]);
});

// ---- Hard negatives ----
const uuid = () => `${chars(8, HEX)}-${chars(4, HEX)}-4${chars(3, HEX)}-a${chars(3, HEX)}-${chars(12, HEX)}`;
function badLuhn(n) { const last = (+n.slice(-1) + ri(1, 9)) % 10; return n.slice(0, -1) + last; }
function imei() { const b = pick(['35', '86', '01', '99']) + digits(12); return b + luhnDigit(b); }
function isbn13() { const b = '978' + digits(9); let s = 0; for (let i = 0; i < 12; i++) s += +b[i] * (i % 2 ? 3 : 1); return b + ((10 - (s % 10)) % 10); }
const NEG = [
  () => `Order #${digits(10)} shipped on ${ri(2019, 2025)}-${String(ri(1, 12)).padStart(2, '0')}-${String(ri(1, 28)).padStart(2, '0')}`,
  () => `order ORD-${ri(2019, 2025)}-${digits(6)} is delayed`,
  () => `upgrade to v${ri(1, 20)}.${ri(0, 30)}.${ri(0, 99)} and build ${ri(10, 30)}.${ri(0, 9)}.${ri(1000, 30000)}.${ri(100, 2000)}`,
  () => `Chrome/${ri(100, 130)}.0.${ri(1000, 7000)}.${ri(10, 200)} Safari/537.36`,
  () => `timestamp ${ri(2019, 2025)}-${String(ri(1, 12)).padStart(2, '0')}-${String(ri(1, 28)).padStart(2, '0')}T${String(ri(0, 23)).padStart(2, '0')}:${String(ri(0, 59)).padStart(2, '0')}:00Z epoch ${ri(1500000000, 1800000000)}`,
  () => `Tel ${pick(NAMES)} ${ri(2019, 2025)}-${String(ri(1, 12)).padStart(2, '0')}-${String(ri(1, 28)).padStart(2, '0')} ${String(ri(0, 23)).padStart(2, '0')}:${String(ri(0, 59)).padStart(2, '0')}`,
  () => `Tel. appointment ${String(ri(1, 28)).padStart(2, '0')}.${String(ri(1, 12)).padStart(2, '0')}.${ri(2019, 2025)} ${String(ri(8, 18)).padStart(2, '0')}:00`,
  () => `request id ${uuid()} trace ${chars(32, HEX)}`,
  () => `commit ${chars(40, HEX)} sha256:${chars(64, HEX)}`,
  () => `location ${(rnd() * 180 - 90).toFixed(6)}, ${(rnd() * 360 - 180).toFixed(6)}`,
  () => `total $${ri(1, 9)},${digits(3)}.${digits(2)} or €${ri(10, 999)},${digits(2)}`,
  () => `ISBN ${isbn13()} and ISBN-13: 978-${ri(0, 9)}-${digits(3)}-${digits(5)}-${ri(0, 9)}`,
  () => `tracking 1Z${chars(6, UPDIG).toUpperCase()}${digits(10)} and ${digits(22)}`,
  () => `IMEI ${imei()}`,
  () => `device IMEI: ${imei()} serial ${chars(10, UPDIG)}`,
  () => `card ${groupCard(badLuhn(cardDigits()), ' ')} was declined (typo)`,
  () => { const v = ibanRaw(); const bad = v.slice(0, 2) + String((+v.slice(2, 4) + 1) % 100).padStart(2, '0') + v.slice(4); return `IBAN ${bad.match(/.{1,4}/g).join(' ')} (wrong check digits) Tel`; },
  () => `ICCID ${'8944' + digits(15)}`,
  () => `RF18 5390 0754 7034 reference, Tel desk`,
  () => `numbers ${ri(1, 9)}${digits(2)} ${digits(3)} ${digits(3)} ${digits(3)}`,
  () => `TOKEN_LIMIT=${ri(1000, 9000)}\nmax_tokens=${ri(100, 4000)}\nPASSWORD_MIN_LENGTH=${ri(8, 12)}`,
  () => `API_KEY=\${API_KEY}\nSECRET_KEY=<your secret key>\nDB_PASSWORD=changeme`,
  () => `OPENAI_API_KEY=your_api_key_here`,
  () => `postgres://user:password@localhost:5432/db (replace with yours)`,
  () => `pip install scikit-learn; sk-learn is not a package; the ask-${chars(24, 'abcdefghij')} flag`,
  () => `the password: forgotten, reset it via the link`,
  () => `primary_key=id, sort_key=created_at, cache_key=user_${digits(5)}`,
  () => `base64 ${chars(40, B64)} is the encoded image header`,
  () => `AKIA is the prefix of AWS keys; AKIAEXAMPLE is too short`,
  () => `-----BEGIN PUBLIC KEY-----\n${chars(64, B64)}\n-----END PUBLIC KEY-----`,
  () => `-----BEGIN CERTIFICATE-----\n${chars(64, B64)}\n-----END CERTIFICATE-----`,
  () => `invoice ${ri(10000000, 99999999)}${pick(['A', 'X', 'Q'])}-rev`,
  () => `part number AB${digits(6)}E and size ${ri(1, 99)}x${ri(1, 99)}`,
  () => `BSN ${(() => { for (;;) { const d = String(ri(100000000, 999999999)); let s = 0; for (let j = 0; j < 8; j++) s += (9 - j) * +d[j]; if ((s - +d[8]) % 11 !== 0) return d; } })()} (invalid)`,
  () => `ticket ${digits(11)} for the tax office`,
  () => `temperature ${ri(-20, 40)}°C at ${String(ri(0, 23)).padStart(2, '0')}:${String(ri(0, 59)).padStart(2, '0')}, Tel Aviv`,
  () => `meeting 10:30${dash()}11:45, room 4${digits(2)}`,
  () => `range 2019${dash()}2024 and pages 120${dash()}135`,
  () => `ratio ${ri(1, 9)}:${ri(1, 9)} and score ${ri(10, 99)}.${ri(0, 9)}%`,
  () => `matrix\n${ri(1, 9)}${digits(2)} ${digits(3)}\n${digits(3)} ${digits(3)}`,
  () => `zoom ${ri(800, 999)} ${digits(4)} ${digits(4)} passcode ${digits(6)}`,
  () => `npm install react@${ri(16, 19)}.${ri(0, 3)}.${ri(0, 9)} and icon@2x.png`,
  () => `git@github.com:org/repo.git and user@-invalid.example`,
  () => `lot ${ri(1, 9)}${digits(3)}${dash()}${digits(4)}${dash()}${digits(4)} expires ${String(ri(1, 12)).padStart(2, '0')}/${ri(25, 30)}`,
  () => `EAN ${pick(['76', '87', '90'])}${digits(11)} weight ${ri(1, 999)}.${ri(0, 9)} kg`,
];
gen(1400, () => add(pick(NEG)(), []));

// A random permutation keeps neighbouring lines unrelated; the seed keeps the file stable.
for (let i = out.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [out[i], out[j]] = [out[j], out[i]]; }
process.stdout.write(`# Generated by test/router/gen_pii_set.mjs (seed 0x5eed1234); do not edit by hand.\n# ${out.length} texts. Columns: text (\\n \\t \\r \\\\ escaped)<TAB>expected distinct values per type.\n` + out.join('\n') + '\n');
