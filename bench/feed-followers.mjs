// N followers of the change feed for bench/feed.sh: each holds a server-sent
// event stream of GET /api/changes (models=MODEL) from now on and counts the
// change events it receives; on SIGINT prints "N followers received E events
// (E/N each)". Usage: node bench/feed-followers.mjs URL N MODEL
const [url, n, model] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
let events = 0;
const ctl = new AbortController();
async function follow() {
  const res = await fetch(`${url}/api/changes?models=${model}`, { headers: { accept: 'text/event-stream' }, signal: ctl.signal });
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      const text = dec.decode(chunk, { stream: true });
      for (let i = text.indexOf('event: change'); i >= 0; i = text.indexOf('event: change', i + 1)) events++;
    }
  } catch { /* aborted */ }
}
const all = Array.from({ length: n }, follow);
process.on('SIGINT', () => {
  ctl.abort();
  console.log(`${n} followers received ${events} events (${Math.round(events / n)} each)`);
  process.exit(0);
});
await Promise.all(all);
