// A fake of the Hugging Face Hub's endpoints that `hybridllm pull` uses, and of the CDN its
// downloads are redirected to (a second server on another port: another host as far as the
// client can tell), so that pull is tested without the internet.
//
//   GET  /api/models/OWNER/NAME/tree/main      [{type, oid, size, path, lfs: {oid, size, pointerSize}}]
//   HEAD|GET /OWNER/NAME/resolve/main/FILE      302 to the CDN with X-Linked-Etag (the SHA-256,
//                                               quoted), X-Linked-Size, ETag, X-Repo-Commit;
//                                               401 X-Error-Code: RepoNotFound for an unknown
//                                               repository, GatedRepo for a gated one without
//                                               the right token (403 with a wrong one);
//                                               404 EntryNotFound for an unknown file
//   GET  {cdn}/blobs/SHA256?sig=...             the bytes; honours "Range: bytes=N-" (206 and
//                                               Content-Range) unless told not to
//
// startFakeHub({repos, token}): repos is {"OWNER/NAME": {files: {"PATH": Buffer}, gated?: bool,
// renamed_to?: "OWNER/NAME2"}}; token is the one token the fake accepts for gated repositories.
// A renamed repository answers its resolve URLs with a relative 307 to the new name (as the
// Hub does). Returns {url, cdnUrl, requests, control(o), reset(), close()}; requests records
// {server: 'hub'|'cdn', method, path, headers} of every call. control keys (merged):
//   truncate_after   the next CDN response sends its headers for the whole length and then
//                    only this many bytes before the connection is destroyed (once)
//   ignore_range     the CDN answers 200 with the whole file to ranged requests
//   corrupt          the CDN serves every file with its first byte flipped (a hash mismatch)
//   no_hash          resolve answers carry no X-Linked-Etag and a non-hash ETag (and the tree
//                    no lfs), as for a file that is not in LFS
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

export async function startFakeHub({ repos = {}, token = 'hf_fake_token' } = {}) {
  const requests = [];
  let state = {};
  const blobs = new Map(); // sha256 -> Buffer
  const index = {};
  for (const [repo, r] of Object.entries(repos)) {
    index[repo] = { ...r, files: {} };
    for (const [p, data] of Object.entries(r.files ?? {})) {
      const sha = createHash('sha256').update(data).digest('hex');
      blobs.set(sha, data);
      index[repo].files[p] = { data, sha, gitOid: createHash('sha1').update(data).digest('hex') };
    }
  }
  const record = (server, req) =>
    requests.push({ server, method: req.method, path: req.url, headers: { ...req.headers } });

  let cdnPort = 0;
  const hub = http.createServer((req, res) => {
    record('hub', req);
    const url = new URL(req.url, 'http://x');
    const error = (status, code, message) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ error: message }));
    };
    let m = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/main$/);
    if (m && req.method === 'GET') {
      const repo = index[m[1]];
      if (!repo) return error(401, 'RepoNotFound', 'Repository not found');
      if (repo.renamed_to) {
        res.writeHead(307, { location: `/api/models/${repo.renamed_to}/tree/main${url.search}` });
        return res.end();
      }
      const list = [{ type: 'file', oid: 'a'.repeat(40), size: 12, path: 'README.md' },
        { type: 'directory', oid: 'b'.repeat(40), size: 0, path: 'sub' }];
      for (const [p, f] of Object.entries(repo.files)) {
        const e = { type: 'file', oid: f.gitOid, size: f.data.length, path: p };
        if (!state.no_hash) e.lfs = { oid: f.sha, size: f.data.length, pointerSize: 134 };
        list.push(e);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(list));
    }
    m = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/);
    if (m && (req.method === 'HEAD' || req.method === 'GET')) {
      const repo = index[m[1]];
      if (!repo) return error(401, 'RepoNotFound', 'Repository not found');
      if (repo.renamed_to) {
        res.writeHead(307, { location: `/${repo.renamed_to}/resolve/main/${m[2]}` });
        return res.end();
      }
      if (repo.gated) {
        const auth = req.headers.authorization;
        if (!auth) return error(401, 'GatedRepo', 'Access to this model is restricted: you must be authenticated.');
        if (auth !== `Bearer ${token}`) return error(403, 'GatedRepo', 'Access to this model is restricted.');
      }
      const f = repo.files[decodeURIComponent(m[2])];
      if (!f) return error(404, 'EntryNotFound', 'Entry not found');
      const headers = {
        location: `http://127.0.0.1:${cdnPort}/blobs/${f.sha}?sig=${randomBytes(8).toString('hex')}`,
        'x-repo-commit': 'c'.repeat(40),
        'x-linked-size': String(f.data.length),
        etag: state.no_hash ? `"${f.gitOid}"` : `"${f.sha}"`,
      };
      if (!state.no_hash) headers['x-linked-etag'] = `"${f.sha}"`;
      res.writeHead(302, headers);
      return res.end();
    }
    error(404, 'EntryNotFound', 'not found');
  });

  const cdn = http.createServer((req, res) => {
    record('cdn', req);
    const m = new URL(req.url, 'http://x').pathname.match(/^\/blobs\/([0-9a-f]{64})$/);
    const blob = m && blobs.get(m[1]);
    if (!blob || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404);
      return res.end();
    }
    let data = blob;
    if (state.corrupt) {
      data = Buffer.from(blob);
      data[0] ^= 0xff;
    }
    let start = 0;
    const range = req.headers.range?.match(/^bytes=(\d+)-$/);
    if (range && !state.ignore_range) start = Number(range[1]);
    if (start > data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` });
      return res.end();
    }
    const body = data.subarray(start);
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length),
      'accept-ranges': 'bytes', etag: '"cdn-etag"' };
    if (start) headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    res.writeHead(start ? 206 : 200, headers);
    if (req.method === 'HEAD') return res.end();
    const cut = state.truncate_after;
    if (cut !== undefined && cut < body.length) {
      delete state.truncate_after;
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  });

  const port = await listen(hub);
  cdnPort = await listen(cdn);
  return {
    url: `http://127.0.0.1:${port}`,
    cdnUrl: `http://127.0.0.1:${cdnPort}`,
    requests,
    sha256: (repo, p) => index[repo].files[p].sha,
    control: (o) => { state = { ...state, ...o }; },
    reset: () => { state = {}; requests.length = 0; },
    close: () => Promise.all([hub, cdn].map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(r); }))),
  };
}

// A minimal GGUF v3 file: the given string and uint32 metadata, no tensors, then `padding`
// bytes of noise (so that a transfer takes more than one read).
export function tinyGGUF({ arch = 'llama', fileType = 7, padding = 0 } = {}) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
  const str = (s) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);
  parts.push(Buffer.from('GGUF'), u32(3), u64(0), u64(2));
  parts.push(str('general.architecture'), u32(8), str(arch));
  parts.push(str('general.file_type'), u32(4), u32(fileType));
  let head = Buffer.concat(parts);
  const pad = (32 - (head.length % 32)) % 32;
  return Buffer.concat([head, Buffer.alloc(pad), randomBytes(padding)]);
}
