/**
 * Issue 13 item 4 on a terminal (a pseudo-terminal from python3's pty module, when present): progress
 * is one line redrawn in place with percent, elapsed and ETA, and Ctrl-C (SIGINT) ends that line before
 * the interrupt message, so the message starts on a line of its own.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { NOLA_BIN, python3Missing } from './cli-helpers.js';
import { makeWorkspace, type Workspace } from './ux-helpers.js';

let ws: Workspace;
before(async () => { ws = await makeWorkspace('nola-ux-tty-'); });
after(() => ws.cleanup());

/** Runs argv on a pty, sends SIGINT once a progress line shows, returns everything the terminal received. */
const DRIVER = `
import os, pty, signal, sys, json, time
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b''
sent = False
deadline = time.time() + 60
while time.time() < deadline:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not sent and b'%' in out and b'ETA' in out:
        os.kill(pid, signal.SIGINT)
        sent = True
_, status = os.waitpid(pid, 0)
print(json.dumps({'out': out.decode('utf8', 'replace'), 'sent': sent, 'code': os.waitstatus_to_exitcode(status)}))
`;

test('on a terminal: a redrawn progress line, and the interrupt message on a line of its own', { skip: python3Missing() ?? false, timeout: 120_000 }, () => {
  // The paper preset on one thread is slow enough (seconds) to be interrupted after the first layer.
  const argv = [process.execPath, NOLA_BIN, 'compress', path.join(ws.fixtures, 'kohya-sd15.safetensors'), '--preset', 'paper',
    '--threads', '1', '-o', path.join(ws.dir, 'x.nola')];
  const r = spawnSync('python3', ['-c', DRIVER, JSON.stringify(argv)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { out, sent, code } = JSON.parse(r.stdout) as { out: string; sent: boolean; code: number };
  assert.ok(sent, `no progress line seen: ${JSON.stringify(out)}`);
  assert.equal(code, 130, JSON.stringify(out));
  assert.match(out, /\rcompress +\d+% \[[#.]+\] \d+\/6 {2}\d+:\d\d elapsed, ETA \d+:\d\d {2}lora_/);
  const at = out.indexOf('nola: interrupted');
  assert.ok(at > 0, JSON.stringify(out));
  // The pty turns \n into \r\n: the message follows a line end, not the bar.
  assert.match(out.slice(0, at), /\r?\n$/, JSON.stringify(out.slice(Math.max(0, at - 80), at + 20)));
});
