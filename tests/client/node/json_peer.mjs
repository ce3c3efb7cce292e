// A Node.js service reading and writing cache values the way the platform's
// TypeScript services do: JSON.stringify on write, JSON.parse(await redis.get(key))
// on read.  Node's standard library only, with a minimal RESP2 client below (no npm).
//
// Usage: node json_peer.mjs < plan.json > result.json
//   plan:   {"port": 6379, "db": 0,
//            "write": [{"key": "...", "value": <any JSON>, "px": 60000 | null}],
//            "read": ["key", ...]}
//   result: {"read": {"key": {"text": "<value as UTF-8>", "value": <JSON.parse(text)>,
//                             "stringified": <JSON.stringify(value)>}
//                           | {"missing": true} | {"text"?: "...", "error": "..."}}}
// Writes happen before reads.  Exit status 0 unless the plan or Redis failed.

import net from "node:net";
import { TextDecoder } from "node:util";

/** A RESP2 connection: send(command) resolves with the decoded reply. */
class Resp {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.waiting = [];
    socket.on("data", (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.drain();
    });
    socket.on("error", (err) => this.waiting.splice(0).forEach((w) => w.reject(err)));
  }

  static connect(port, host = "127.0.0.1") {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ port, host }, () => resolve(new Resp(socket)));
      socket.once("error", reject);
    });
  }

  send(args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const arg of args) {
      const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), "utf8");
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(Buffer.concat(parts));
    });
  }

  drain() {
    while (this.waiting.length) {
      const parsed = parse(this.buffer, 0);
      if (parsed === null) return; // incomplete: wait for more data
      const [reply, end] = parsed;
      this.buffer = this.buffer.subarray(end);
      const waiter = this.waiting.shift();
      if (reply instanceof Error) waiter.reject(reply);
      else waiter.resolve(reply);
    }
  }

  close() {
    this.socket.end();
  }
}

/** [reply, offset after it] or null when the buffer does not hold a whole reply yet.
 * Bulk strings stay Buffers: decoding them is the reader's business. */
function parse(buf, at) {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  switch (kind) {
    case "+":
      return [line, next];
    case "-":
      return [new Error(line), next];
    case ":":
      return [Number(line), next];
    case "$": {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.subarray(next, next + n), next + n + 2];
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, pos);
        if (item === null) return null;
        items.push(item[0]);
        pos = item[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`not RESP: ${JSON.stringify(buf.toString("latin1", at, at + 20))}`);
  }
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function main() {
  const plan = await readStdin();
  const redis = await Resp.connect(plan.port);
  try {
    if (plan.db) await redis.send(["SELECT", plan.db]);
    for (const { key, value, px } of plan.write ?? []) {
      const command = ["SET", key, JSON.stringify(value)];
      if (px) command.push("PX", px);
      await redis.send(command);
    }
    // fatal: bytes that are not UTF-8 are an error here, not U+FFFD in a "parsed" value
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    const read = {};
    for (const key of plan.read ?? []) {
      const bytes = await redis.send(["GET", key]);
      if (bytes === null) {
        read[key] = { missing: true };
        continue;
      }
      let text;
      try {
        text = utf8.decode(bytes);
        const value = JSON.parse(text);
        read[key] = { text, value, stringified: JSON.stringify(value) };
      } catch (err) {
        read[key] = { text, error: `${err.name}: ${err.message}` };
      }
    }
    process.stdout.write(JSON.stringify({ read }));
  } finally {
    redis.close();
  }
}

main().catch((err) => {
  process.stderr.write(`json_peer: ${err.stack ?? err}\n`);
  process.exit(1);
});
