// A forward proxy for the tests of HTTPS_PROXY / http_proxy / NO_PROXY: CONNECT tunnels (what
// a client does for https:// through a proxy) and absolute-form plain HTTP requests (http://).
// It records what it was asked for, and resolves the names in `hosts` itself ({name: ip}), so a
// test can use an upstream name that only the proxy knows: a call that skips the proxy fails.
//
//   const proxy = await startProxy({ hosts: { 'upstream.hltest': '127.0.0.1' } });
//   env HTTPS_PROXY=proxy.url ... proxy.connects -> [{host, port}], proxy.forwards -> [{method, url}]
import http from 'node:http';
import net from 'node:net';

export function startProxy({ hosts = {} } = {}) {
  const connects = [];
  const forwards = [];
  const sockets = new Set();
  const resolve = (h) => hosts[h] ?? h;
  const server = http.createServer((req, res) => {
    // Plain HTTP through a proxy: the request line holds the absolute URL.
    let u;
    try {
      u = new URL(req.url);
    } catch {
      res.writeHead(400).end('absolute-form URL expected');
      return;
    }
    forwards.push({ method: req.method, url: req.url });
    const up = http.request(
      { host: resolve(u.hostname), port: u.port || 80, method: req.method, path: u.pathname + u.search, headers: { ...req.headers, host: u.host } },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end('proxy: upstream unreachable');
      else res.destroy();
    });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, client, head) => {
    const [host, portText] = req.url.split(/:(?=\d+$)/);
    connects.push({ host, port: Number(portText) });
    const up = net.connect(Number(portText), resolve(host), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head?.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    client.on('close', () => up.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      ok({
        url: `http://127.0.0.1:${port}`,
        port,
        connects,
        forwards,
        reset() {
          connects.length = 0;
          forwards.length = 0;
        },
        close() {
          return new Promise((r) => {
            server.close(() => r());
            for (const s of sockets) s.destroy();
          });
        },
      });
    });
  });
}
