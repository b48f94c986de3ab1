/**
 * Issue 13 item 8 through the CLI: a checkout without a build says "run npm run build"; the README's first
 * command works when run twice; user-facing text speaks of versions, not issue numbers; the README has a
 * glossary of its terms; and the README's option table of every command (and the global options) lists
 * exactly the options `--help` prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeTempDir } from '../io/helpers.js';
import { NOLA_BIN, REPO, runNola } from './cli-helpers.js';

const README = readFileSync(path.join(REPO, 'README.md'), 'utf8');
const COMMANDS = ['compress', 'expand', 'inspect', 'verify', 'compare'];

/** The options `--help` lists (long and short flags), without --help itself. */
function helpFlags(help: string): Set<string> {
  const block = help.slice(help.indexOf('Options:'), help.includes('Commands:') ? help.indexOf('Commands:') : undefined);
  const flags = new Set<string>();
  for (const line of block.split('\n')) {
    const m = /^ {2}(-[^ ].*?)(?: {2,}|$)/.exec(line);
    if (!m) continue;
    for (const f of m[1].matchAll(/(?:^|[\s,])(--?[A-Za-z][\w-]*)/g)) flags.add(f[1]);
  }
  flags.delete('--help');
  flags.delete('-h');
  return flags;
}

/** The flags in the first column of the option table under a README heading. */
function readmeFlags(heading: RegExp): Set<string> {
  const start = README.search(heading);
  assert.ok(start >= 0, `README has no heading ${heading}`);
  const rest = README.slice(start + 1);
  const end = rest.search(/\n#{2,3} /);
  const section = end < 0 ? rest : rest.slice(0, end);
  const flags = new Set<string>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.replace(/\\\|/g, '/').split('|')[1];
    for (const f of first.matchAll(/(?:^|[\s,`[])(--?[A-Za-z][\w-]*)/g)) flags.add(f[1]);
  }
  return flags;
}

test('README option tables and --help list the same options, for every command and the global options', async () => {
  const global = await runNola(['--help']);
  assert.deepEqual([...readmeFlags(/\n### Global options\n/)].sort(), [...helpFlags(global.stdout)].sort(), 'global options');
  for (const cmd of COMMANDS) {
    const r = await runNola([cmd, '--help']);
    assert.equal(r.code, 0, r.stderr);
    const fromHelp = helpFlags(r.stdout);
    assert.ok(fromHelp.size > 0, cmd);
    assert.deepEqual([...readmeFlags(new RegExp(`\\n### \`nola ${cmd} `))].sort(), [...fromHelp].sort(), cmd);
  }
});

test('user-facing text names versions, not issue numbers; the README has a glossary of its terms', async () => {
  const texts = [README, (await runNola(['--help'])).stdout];
  for (const cmd of COMMANDS) texts.push((await runNola([cmd, '--help'])).stdout);
  for (const t of texts) assert.doesNotMatch(t, /issue\s*#?\d/i);
  const start = README.indexOf('\n## Glossary\n');
  assert.ok(start >= 0, 'README has a glossary');
  const glossary = README.slice(start, README.indexOf('\n## ', start + 1));
  for (const term of ['ΔW', 'relative Frobenius error', 'rank', 'rice coding', 'passthrough']) {
    assert.match(glossary, new RegExp(`^- \\*\\*${term}\\*\\*`, 'm'), term);
  }
});

test('the README says near the top that a NOLA file must be expanded before use', () => {
  const top = README.slice(0, 2000);
  assert.match(top.replace(/\s+/g, ' '), /A NOLA file is for storage and transfer, not for loading: expand it/);
});

test("the README's first command works when run twice", { timeout: 120_000 }, () => {
  const block = /```bash\n([\s\S]*?)```/.exec(README)![1];
  const first = block.split('\n').find((l) => l.includes('node bin/nola.js'))!;
  const cmd = first.slice(first.indexOf('node dist/fixtures/generate.js'));
  for (let i = 0; i < 2; i++) {
    const r = spawnSync('sh', ['-c', cmd], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, `run ${i + 1}: ${cmd}\n${r.stderr}`);
  }
});

test('a checkout without a build says to run npm run build, in one line, without a stack', () => {
  const tmp = makeTempDir('nola-nobuild-');
  try {
    mkdirSync(path.join(tmp.dir, 'bin'));
    copyFileSync(NOLA_BIN, path.join(tmp.dir, 'bin', 'nola.js'));
    copyFileSync(path.join(REPO, 'package.json'), path.join(tmp.dir, 'package.json'));
    const r = spawnSync(process.execPath, [path.join(tmp.dir, 'bin', 'nola.js'), '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'nola: error: nola is not built yet: run npm run build (in the nola checkout) first\n');
    assert.equal(r.stdout, '');
  } finally {
    tmp.cleanup();
  }
});
