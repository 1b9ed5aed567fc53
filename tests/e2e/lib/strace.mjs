// Reading an `strace -f -tt -s N -o FILE` trace of the server: which syscall
// happened on which line, joining "<unfinished ...>" with "<... resumed>".
// strace handles one stop at a time and a traced thread stays stopped until
// its line is written, so a syscall caused by another (an fsync that returns,
// then the answer it unblocks) appears later in the file.

const READS = new Set(['read', 'readv', 'recvfrom', 'recvmsg', 'pread64', 'preadv']);
const WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg', 'pwrite64', 'pwritev', 'pwritev2']);
const SYNCS = new Set(['fsync', 'fdatasync', 'sync_file_range', 'syncfs']);
const OPENS = new Set(['open', 'openat', 'openat2', 'creat']);
const FDNEW = new Set(['accept', 'accept4', 'socket', 'dup', 'dup2', 'dup3', 'eventfd2', 'pipe2']);
const CLOSES = new Set(['close']);

/** The -e trace= list that gives this parser what it needs besides reads, writes and syncs. */
export const FD_TRACKING = 'open,openat,close,accept,accept4,socket';

/**
 * Parse a trace into a list of completed syscalls:
 * {name, pid, entry, exit, fd, args (entry text), result (text after '='), text (entry + exit text)}
 * entry/exit are line numbers (0-based). Only the families above are kept.
 */
export function parseTrace(content) {
  const lines = content.split('\n');
  const pending = new Map(); // pid -> {name, entry, head}
  const calls = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$/.exec(lines[i]);
    if (!m) continue;
    const pid = Number(m[1]);
    const rest = m[3];
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      const p = pending.get(pid);
      pending.delete(pid);
      if (!p || p.name !== resumed[1]) continue;
      finish(p.name, pid, p.entry, i, p.head, resumed[2]);
      continue;
    }
    const call = /^(\w+)\((.*)$/.exec(rest);
    if (!call) continue;
    const name = call[1];
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(pid, { name, entry: i, head: call[2].slice(0, -'<unfinished ...>'.length) });
      continue;
    }
    finish(name, pid, i, i, call[2], '');
  }

  function finish(name, pid, entry, exit, head, tail) {
    const full = head + tail;
    const rm = /\)\s+=\s+(-?\d+|\?)(.*)$/.exec(full);
    const result = rm ? rm[1] : '?';
    const fdm = /^(\d+)/.exec(head.trim());
    let kind = null;
    if (READS.has(name)) kind = 'read';
    else if (WRITES.has(name)) kind = 'write';
    else if (SYNCS.has(name)) kind = 'sync';
    else if (OPENS.has(name)) kind = 'open';
    else if (FDNEW.has(name)) kind = 'fdnew';
    else if (CLOSES.has(name)) kind = 'close';
    if (!kind) return;
    const c = { name, kind, pid, entry, exit, fd: fdm ? Number(fdm[1]) : null, result, text: full };
    if (kind === 'fdnew') c.fd = /^\d+$/.test(result) ? Number(result) : null;
    if (kind === 'open') {
      const pm = /"((?:[^"\\]|\\.)*)"/.exec(head);
      c.path = pm ? pm[1] : null;
      c.fd = /^\d+$/.test(result) ? Number(result) : null;
    }
    calls.push(c);
  }
  calls.sort((a, b) => a.entry - b.entry);
  return calls;
}

/**
 * Give every read, write and sync call `path`: the file its fd was opened as
 * (by the last open of that fd before it), or null for sockets and other fds
 * that did not come from an open (accept, socket, ...).
 */
export function annotatePaths(calls) {
  const fdPath = new Map(); // fd -> path
  const byLine = [...calls].sort((a, b) => a.exit - b.exit);
  for (const c of byLine) {
    if (c.kind === 'open' && c.fd !== null) fdPath.set(c.fd, c.path);
    else if (c.kind === 'fdnew' && c.fd !== null) fdPath.delete(c.fd);
    else if (c.kind === 'close' && c.fd !== null && c.result === '0') fdPath.delete(c.fd);
    else if (c.kind === 'sync' || c.kind === 'read' || c.kind === 'write') c.path = fdPath.has(c.fd) ? fdPath.get(c.fd) : null;
  }
  return calls;
}
