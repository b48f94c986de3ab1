/**
 * rANS blocks (docs/FORMAT.md "rANS blocks", format version 3) in the two Python readers: the shipped
 * python/nola_reader and the numpy reference scripts/reference/nola_ref.py. Both were written from
 * FORMAT.md alone; so is the encoder below (the document's writer paragraph, in the Python of this
 * test, shared with neither reader), which makes the blocks they must decode to exactly levels · step:
 * all zeros at p = 0, the L = 1 models around p = 8 (rare levels of frequency 1 included), Gaussian levels
 * at p 30–60, the writer's own choice of p, and p = 95 with every level out to ±L. Then every refusal
 * FORMAT.md lists for a rans block, in both readers, on corrupted blocks; the table R_p against its
 * formula (computed here in float64) and each reader's model (frequencies summing to 2^16, every f ≥ 1);
 * and NOLA files written here: a version-3 file with rans and rice segments reads as its all-rice
 * version-2 twin does, byte for byte, and a version-2 file holding a rans block is refused.
 * Skipped, with a note, where python3 with numpy is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../cli/cli-helpers.js';

const PYTHONPATH = path.join(REPO, 'python');
const REFERENCE = path.join(REPO, 'scripts', 'reference');
const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const NO_NUMPY = 'python3 with numpy not found: the Python readers are not checked here';

/** R_p = round(2^24 · exp(−2^(−1 − (p − 24)/4))), FORMAT.md's formula, in float64 (the table is normative). */
const RANS_R = Array.from({ length: 96 }, (_, p) => Math.round(2 ** 24 * Math.exp(-(2 ** (-1 - (p - 24) / 4)))));

/** FORMAT.md's table, read from the document itself (the first code block after "The model for p"). */
const FORMAT_TABLE = ((): number[] => {
  const doc = readFileSync(path.join(REPO, 'docs', 'FORMAT.md'), 'utf8');
  const at = doc.indexOf('**The model for p**');
  const open = doc.indexOf('```', at), close = doc.indexOf('```', open + 3);
  return doc.slice(open + 3, close).split(',').map((t) => t.trim()).filter((t) => t !== '').map(Number);
})();

/**
 * The Python side: argv[1] the mode (roundtrip | refusals | tables | file), argv[2] scripts/reference;
 * stdin {"R": RANS_R}. Prints one JSON object.
 */
const SCRIPT = String.raw`
import sys, json, math, struct, time, zlib, hashlib, itertools
import numpy as np
sys.path.insert(0, sys.argv[2])  # scripts/reference
import nola_reader
from nola_reader import _container as reader
import nola_ref as ref

R = json.load(sys.stdin)['R']   # the RANS_R table, computed by the test (float64) from FORMAT.md's formula
LOW, M = 1 << 23, 1 << 16

# ---- FORMAT.md "rANS blocks", written here for the test (not shared with either reader) ----
MODELS = {}
def model(p):
    """(L, f, C) for p: steps 1-3 of FORMAT.md, f and C indexed by level + L."""
    if p not in MODELS:
        w, c, r2 = [1 << 24], R[p], (R[p] * R[p]) >> 24
        q = 0
        while q < 4095:
            nxt = (w[q] * c) >> 24
            if nxt == 0:
                break
            w.append(nxt); c = (c * r2) >> 24; q += 1
        L = len(w) - 1; n = 2 * L + 1; W = w[0] + 2 * sum(w[1:])
        f = [1 + (w[abs(q)] * (M - n)) // W for q in range(-L, L + 1)]
        f[L] += M - sum(f)
        C = [0]
        for v in f[:-1]:
            C.append(C[-1] + v)
        MODELS[p] = (L, f, C)
    return MODELS[p]

def encode(levels, p, step, start=LOW):
    """The writer paragraph: levels in reverse order from x = 2^23; while x >= 2^15 f emit x mod 256;
    x = floor(x/f) 2^16 + x mod f + C; then step, p, the final x, the bytes last-emitted first."""
    L, f, C = model(p)
    x, out = start, bytearray()
    for q in reversed(levels):
        fq, cq = f[q + L], C[q + L]
        while x >= (fq << 15):
            out.append(x & 255); x >>= 8
        x = (x // fq) * M + x % fq + cq
    assert LOW <= x < (1 << 31)
    return struct.pack('<f', step) + bytes([p]) + x.to_bytes(4, 'little') + bytes(reversed(out))

def choose(levels, step):
    """The writer's p: the fewest bytes among the models whose L covers the largest |level|."""
    top = max(abs(q) for q in levels)
    return min((encode(levels, p, step) for p in range(96) if model(p)[0] >= top), key=len)

def rice(levels, step):
    """A rice block of the same levels (FORMAT.md "Rice blocks"), the smallest k."""
    z = np.array([2 * q if q >= 0 else -2 * q - 1 for q in levels], np.int64)
    best = None
    for k in range(25):
        rem = ((z[:, None] >> np.arange(k)) & 1).astype(np.uint8).ravel() if k else np.zeros(0, np.uint8)
        un = np.zeros(int((z >> k).sum()) + len(z), np.uint8)
        un[np.cumsum((z >> k) + 1) - 1] = 1
        b = struct.pack('<f', step) + bytes([k]) + np.packbits(rem, bitorder='little').tobytes() + np.packbits(un, bitorder='little').tobytes()
        if best is None or len(b) < len(best):
            best = b
    return best

def decoders():
    return (('nola_reader', lambda b, n: reader._decode_rans(b, b'', n), nola_reader.FormatError),
            ('nola_ref', ref.decode_rans, ValueError))

def gaussian(rng, p, n):
    L = model(p)[0]
    return np.clip(np.rint(rng.normal(0, 2 ** ((p - 24) / 8), n)), -L, L).astype(int).tolist()

def f32(x):
    return float(np.float32(x))

mode = sys.argv[1]
out = {}
if mode == 'roundtrip':
    rng = np.random.default_rng(11)
    cases = [('zeros p=0', [0] * 1000, 0, 0.25), ('one zero p=3', [0], 3, 1.0)]
    for p in range(4, 12):  # L = 1
        L, f, _ = model(p)
        pr = np.array(f, float) / M
        lv = rng.choice([-1, 0, 1], 3000, p=pr)
        lv[rng.choice(3000, 12, replace=False)] = [-1, 1] * 6  # the rare levels too (f = 1 below p = 8)
        cases.append((f'L=1 p={p}', lv.tolist(), p, f32(0.0123)))
    cases.append(('L=1 p=8 all +1', [1] * 200, 8, 0.5))
    for p in (30, 38, 45, 52, 60):
        cases.append((f'gaussian p={p}', gaussian(rng, p, 5000), p, f32(3.7e-4)))
    g = gaussian(rng, 48, 768)
    chosen = choose(g, f32(1.9e-3))
    cases.append((f'gaussian, writer chooses p={chosen[4]}', g, chosen[4], f32(1.9e-3)))
    L95 = model(95)[0]
    wide = gaussian(rng, 95, 20000); wide[:4] = [L95, -L95, 0, L95 - 1]; wide[-2:] = [-L95, L95]
    cases.append(('p=95 wide, with +-L', wide, 95, f32(1e-6)))
    cases.append(('p=95 extremes only', [L95, -L95] * 50, 95, f32(2.5)))
    cases.append(('p=40, a denormal step', gaussian(rng, 40, 500), 40, f32(1e-40)))
    res = []
    for name, levels, p, step in cases:
        block = encode(levels, p, step)
        if name == 'gaussian, writer chooses p=%d' % p:
            assert block == chosen
        want = np.array(levels, np.int64) * np.float64(step)
        row = {'name': name, 'count': len(levels), 'bytes': len(block), 'p': p}
        for rname, dec, _ in decoders():
            got = dec(block, len(levels))
            row[rname] = bool(got.dtype == np.float64 and got.shape == want.shape and np.array_equal(got, want)
                              and np.array_equal(np.signbit(got), np.signbit(want)))
        res.append(row)
    out['cases'] = res
    # nola_reader's lockstep decoder (decode_rans_many, what read_nola runs): every case at once, with 60
    # Gaussian blocks of 1-3,000 values beside them so that the lockstep runs (it needs 48 blocks still
    # decoding) and then ends, the longest blocks finishing one by one.
    extra = [('extra', gaussian(rng, int(p), int(n)), int(p), f32(0.01)) for p, n in zip(rng.integers(20, 70, 60), rng.integers(1, 3000, 60))]
    batch = [(encode(lv, p, st), lv, st) for _, lv, p, st in cases + extra]
    many = reader.decode_rans_many([(b, len(lv)) for b, lv, _ in batch])
    def exact(got, levels, step):
        want = np.array(levels, np.int64) * np.float64(step)
        return bool(isinstance(got, np.ndarray) and got.dtype == np.float64 and np.array_equal(got, want)
                    and np.array_equal(np.signbit(got), np.signbit(want)))
    out['lockstep'] = {'blocks': len(batch), 'exact': sum(exact(g, lv, st) for g, (_, lv, st) in zip(many, batch))}
    # Speed: one 100,000-value block at a typical p (decode only; best of 3).
    levels = gaussian(rng, 48, 100_000); block = encode(levels, 48, 0.01)
    speed = {}
    for rname, dec, _ in decoders():
        ts = []
        for _ in range(3):
            t = time.perf_counter(); dec(block, len(levels)); ts.append(time.perf_counter() - t)
        speed[rname] = len(levels) / min(ts)
    out['speed'] = speed
elif mode == 'refusals':
    rng = np.random.default_rng(5)
    levels = gaussian(rng, 50, 2000)
    good = encode(levels, 50, 0.01)
    n = len(levels)
    st = lambda b, x: b[:5] + x.to_bytes(4, 'little') + b[9:]
    cases = [
        ('empty', b'', n, 'short'), ('8 bytes', good[:8], n, 'short'),
        ('truncated', good[:-1], n, 'bytes'), ('truncated to the header', good[:9], n, 'bytes'),
        ('wrong end state', encode(levels, 50, 0.01, start=LOW + 5), n, 'end'),
        ('trailing byte', good + b'\x00', n, 'trailing'),
        ('p=96', good[:4] + bytes([96]) + good[5:], n, 'p'), ('p=255', good[:4] + bytes([255]) + good[5:], n, 'p'),
        ('state 2^23 - 1', st(good, LOW - 1), n, 'state'), ('state 0', st(good, 0), n, 'state'),
        ('state 2^31', st(good, 1 << 31), n, 'state'),
        ('step 0', struct.pack('<f', 0.0) + good[4:], n, 'step'), ('step -0', struct.pack('<f', -0.0) + good[4:], n, 'step'),
        ('step -1', struct.pack('<f', -1.0) + good[4:], n, 'step'), ('step NaN', struct.pack('<f', math.nan) + good[4:], n, 'step'),
        ('step inf', struct.pack('<f', math.inf) + good[4:], n, 'step'),
        ('one value fewer than encoded', good, n - 1, 'end|trailing'),
        ('zeros block, a stray byte', encode([0] * 10, 0, 1.0) + b'\x07', 10, 'trailing'),
        ('no values: the 9-byte block of state 2^23 (accepted)', encode([], 20, 1.0), 0, None),
    ]
    res = []
    for name, block, count, kind in cases:
        row = {'name': name, 'kind': kind}
        for rname, dec, err in decoders():
            try:
                dec(block, count)
                row[rname] = None
            except err as e:
                row[rname] = [type(e).__name__, str(e)]
            except Exception as e:  # an assert, an IndexError...: not the reader's refusal
                row[rname] = ['unexpected ' + type(e).__name__, str(e)]
        res.append(row)
    out['cases'] = res
    # The same blocks through nola_reader's lockstep decoder, at once and beside 60 good blocks longer than
    # any of them (so the lockstep is still running where each refusal arises): the same refusals, word for
    # word, as the one-block decoder, and the good blocks exact.
    pads = [gaussian(rng, 40 + i % 20, 2100 + i) for i in range(60)]
    many = reader.decode_rans_many([(b, c) for _, b, c, _ in cases] + [(encode(lv, 40 + i % 20, 0.5), len(lv)) for i, lv in enumerate(pads)])
    for row, r in zip(res, many):
        row['nola_reader lockstep'] = ['FormatError', str(r)] if isinstance(r, nola_reader.FormatError) else None
    out['lockstep pads exact'] = sum(bool(np.array_equal(r, np.array(lv, np.int64) * 0.5)) for r, lv in zip(many[len(cases):], pads))
elif mode == 'tables':
    res = {}
    for rname, mod in (('nola_reader', reader), ('nola_ref', ref)):
        t = {'R': list(mod.RANS_R), 'models': []}
        for p in range(96):
            L, f, C = mod.rans_model(p)
            f, C = list(f), list(C)
            mine = model(p)
            t['models'].append({'p': p, 'L': L, 'n': len(f), 'sum': sum(f), 'min': min(f),
                                'C_ok': C == [0] + list(itertools.accumulate(f))[:-1],
                                'same_as_test': (L, f, C) == (mine[0], mine[1], mine[2])})
        res[rname] = t
    out = res
elif mode == 'file':
    import os, tempfile
    work = tempfile.mkdtemp(prefix='nola-rans-')
    rng = np.random.default_rng(3)
    # Two layers: orthogonal (A one rans block; B a rice then a rans segment) and orthogonal-components
    # (one block per component, rans and rice mixed). Each segment: (kind, levels, step).
    def seg(kind, n, p, step):
        return [kind, gaussian(rng, p, n), f32(step)]
    LAYERS = [
        dict(name='m.q', kind='linear', shape_A=[2, 64], d_out=48, rank=2, basis='orthogonal', seeds=[11, 12],
             A=[seg('rans', 100, 44, 0.01)], B=[seg('rice', 30, 40, 0.02), seg('rans', 50, 52, 0.004)]),
        dict(name='m.k', kind='linear', shape_A=[2, 32], d_out=24, rank=2, basis='orthogonal-components', seeds=[21, 22],
             A=[seg('rans', 32, 36, 0.03), seg('rans', 32, 60, 0.001)], B=[seg('rans', 24, 30, 0.05), seg('rice', 24, 48, 0.01)]),
    ]
    def block(kind, levels, step):
        return rice(levels, step) if kind == 'rice' else choose(levels, step)
    def write(path, version, as_kind=None, edit=None):
        """A NOLA file of LAYERS: as_kind 'rice' stores every segment as rice; edit(doc, blocks) may change it."""
        blocks = [[[block(as_kind or k, lv, st) for k, lv, st in L[f]] for f in 'AB'] for L in LAYERS]
        rows = []
        for L, bl in zip(LAYERS, blocks):
            q = [[[as_kind or k, len(lv), len(b)] for (k, lv, _), b in zip(L[f], bl[i])] for i, f in enumerate('AB')]
            k, l = sum(len(s[1]) for s in L['A']), sum(len(s[1]) for s in L['B'])
            rows.append([L['name'], 0, L['kind'], L['shape_A'], L['d_out'], L['rank'], None, 1, L['basis'], L['seeds'][0],
                         L['seeds'][1], k, l, q[0], q[1], 0.1, None])
        doc = {'source': {'family': 'peft', 'file': 'adapter_model.safetensors', 'bytes': 0, 'tensors_sha256': '0' * 64,
                          'metadata': None, 'config': None},
               'coeffs': {'tensor': 'nola.coeffs', 'sha256': ''},
               'key_styles': [{'A': ['base_model.model.', '.lora_A.weight'], 'B': ['base_model.model.', '.lora_B.weight'],
                               'dtype_A': 'F32', 'dtype_B': 'F32'}],
               'layer_fields': reader.LAYER_FIELDS, 'layers': rows, 'passthrough': []}
        if edit is not None:
            edit(doc, blocks)
        stream = b''.join(b for bl in blocks for f in bl for b in f)
        doc['coeffs']['sha256'] = hashlib.sha256(stream).hexdigest()
        docz = zlib.compress(json.dumps(doc).encode())
        env = json.dumps({'format_version': version, 'generator': 'lowbias32-v1', 'document': 'nola.document'})
        header = {'__metadata__': {'nola': env},
                  'nola.coeffs': {'dtype': 'U8', 'shape': [len(stream)], 'data_offsets': [0, len(stream)]},
                  'nola.document': {'dtype': 'U8', 'shape': [len(docz)], 'data_offsets': [len(stream), len(stream) + len(docz)]}}
        h = json.dumps(header).encode()
        h += b' ' * (-len(h) % 8)
        full = os.path.join(work, path)
        with open(full, 'wb') as fh:
            fh.write(struct.pack('<Q', len(h)) + h + stream + docz)
        return full
    def outcome(path):
        """(nola_reader.load: tensors as [name, dtype, shape, sha256] or the refusal; nola_ref.load_nola: coefficients or the refusal)."""
        try:
            lo = nola_reader.load(path)
            a = [[n, lo.dtypes[n], list(lo.tensors[n].shape), hashlib.sha256(lo.bytes(n)).hexdigest()] for n in lo.tensors]
            # What load() reads: the rans factors kept as level indices (Dequantized), float64 on np.asarray.
            compact = reader.read_nola(path, compact=True)['layers']
            a = {'tensors': a, 'coeffs': [[e['coeffs_A'].tolist(), e['coeffs_B'].tolist()] for e in reader.read_nola(path)['layers']],
                 'compact': [[np.asarray(e['coeffs_' + f]).tolist() for f in 'AB'] for e in compact],
                 'compact_kinds': sorted({type(e['coeffs_' + f]).__name__ for e in compact for f in 'AB'})}
        except nola_reader.NolaError as e:
            a = {'error': type(e).__name__, 'message': str(e)}
        try:
            b = [[e['coeffs_A'].tolist(), e['coeffs_B'].tolist()] for e in ref.load_nola(path)]
        except ValueError as e:
            b = {'error': type(e).__name__, 'message': str(e)}
        return a, b
    want = [[np.concatenate([np.array(lv, np.int64) * np.float64(st) for _, lv, st in L[f]]).tolist() for f in 'AB'] for L in LAYERS]
    v3 = write('v3.nola.safetensors', 3)
    v2 = write('v2-rice.nola.safetensors', 2, 'rice')
    v3rice = write('v3-rice.nola.safetensors', 3, 'rice')  # a version-3 file may hold rice blocks only
    def bytes8(doc, blocks):
        doc['layers'][0][13][0][2] = 8
    def trailing(doc, blocks):
        doc['layers'][1][13][1][2] += 1
        blocks[1][0][1] += b'\x00'
    def state(doc, blocks):
        b = blocks[0][1][1]
        blocks[0][1][1] = b[:5] + (0x80000000).to_bytes(4, 'little') + b[9:]
    o = {name: outcome(path) for name, path in [
        ('v3', v3), ('v2 rice', v2), ('v3 rice', v3rice),
        ('v2 with rans', write('v2-rans.nola.safetensors', 2)),
        ('v4', write('v4.nola.safetensors', 4)),
        ('version true', write('vtrue.nola.safetensors', True)),
        ('rans bytes 8', write('bytes8.nola.safetensors', 3, edit=bytes8)),
        ('rans trailing byte', write('trailing.nola.safetensors', 3, edit=trailing)),
        ('rans state 2^31', write('state.nola.safetensors', 3, edit=state)),
    ]}
    out = {'outcomes': o, 'want': want, 'kinds': [[[s[0] for s in L[f]] for f in 'AB'] for L in LAYERS]}
    import shutil
    shutil.rmtree(work)
print(json.dumps(out))
`;

function python<T>(mode: string): T {
  const r = spawnSync('python3', ['-c', SCRIPT, mode, REFERENCE], {
    encoding: 'utf8', env: { ...process.env, PYTHONPATH }, input: JSON.stringify({ R: RANS_R }), maxBuffer: 1 << 26, timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr || `python3 ended by ${r.signal}`);
  return JSON.parse(r.stdout) as T;
}

const READERS = ['nola_reader', 'nola_ref'] as const;
type Reader = typeof READERS[number];

test('rans: both Python readers decode blocks made by a FORMAT.md encoder to exactly levels · step', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  type Case = { name: string; count: number; bytes: number; p: number } & Record<Reader, boolean>;
  const got = python<{ cases: Case[]; speed: Record<Reader, number>; lockstep: { blocks: number; exact: number } }>('roundtrip');
  assert.ok(got.cases.length >= 15);
  for (const c of got.cases) {
    for (const r of READERS) assert.equal(c[r], true, `${c.name} (${c.count} values, p ${c.p}, ${c.bytes} bytes): ${r}`);
  }
  assert.deepEqual(got.lockstep, { blocks: got.cases.length + 60, exact: got.cases.length + 60 }, 'decode_rans_many: every block exact');
  // All zeros at p = 0 (L = 0, f_0 = 2^16): nothing to renormalize, the block is its 9-byte header.
  assert.equal(got.cases.find((c) => c.name === 'zeros p=0')!.bytes, 9);
  for (const r of READERS) t.diagnostic(`${r}: ${Math.round(got.speed[r]).toLocaleString('en-US')} values/s decoding a 100,000-value block (p 48)`);
});

/** The refusal each reader gives for each kind of corruption (one line each). */
const MESSAGES: Record<Reader, Record<string, RegExp>> = {
  nola_reader: {
    short: /^rans block shorter than its 9-byte header$/,
    step: /^rans block: step \S+ out of range$/,
    p: /^rans block: model p \d+ out of range \(0\.\.95\)$/,
    state: /^rans block: state \d+ outside \[2\^23, 2\^31\)$/,
    bytes: /^rans block: the renormalization bytes run out at value \d+ of \d+$/,
    end: /^rans block: ends in state \d+, not the starting state 2\^23$/,
    trailing: /^rans block: bytes after the last value \(\d+ unread\)$/,
  },
  nola_ref: {
    short: /^rans block of \d+ bytes, shorter than its 9-byte header$/,
    step: /^rans block: step \S+ is not finite and > 0$/,
    p: /^rans block: model p = \d+ above 95$/,
    state: /^rans block: state \d+ outside \[2\^23, 2\^31\)$/,
    bytes: /^rans block: the renormalization runs out of bytes at value \d+ of \d+$/,
    end: /^rans block: ends in state \d+, not 2\^23$/,
    trailing: /^rans block: bytes after the last value \(\d+ unread\)$/,
  },
};
const ERROR_TYPE: Record<Reader, string> = { nola_reader: 'FormatError', nola_ref: 'ValueError' };

test('rans: both Python readers refuse each corrupted block as FORMAT.md lists (short, step, p, state, bytes run out, end state, trailing bytes)', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  type Case = { name: string; kind: string | null; 'nola_reader lockstep': [string, string] | null } & Record<Reader, [string, string] | null>;
  const got = python<{ cases: Case[]; 'lockstep pads exact': number }>('refusals');
  const kinds = new Set<string>();
  assert.equal(got['lockstep pads exact'], 60, 'decode_rans_many: the good blocks beside the refused ones decode exactly');
  for (const c of got.cases) {
    assert.deepEqual(c['nola_reader lockstep'], c.nola_reader, `${c.name}: decode_rans_many refuses it as the one-block decoder does`);
    for (const r of READERS) {
      const res = c[r];
      if (c.kind === null) {
        assert.equal(res, null, `${c.name}: ${r} accepts it`);
        continue;
      }
      assert.ok(res !== null, `${c.name}: ${r} must refuse it`);
      const [type, message] = res;
      assert.equal(type, ERROR_TYPE[r], `${c.name}: ${r} raised ${type}: ${message}`);
      const want = c.kind.split('|');
      assert.ok(want.some((k) => MESSAGES[r][k].test(message)), `${c.name}: ${r} said ${JSON.stringify(message)}, expected a refusal of kind ${c.kind}`);
      want.forEach((k) => kinds.add(k));
    }
  }
  assert.deepEqual([...kinds].sort(), Object.keys(MESSAGES.nola_reader).sort(), 'every refusal is exercised');
});

test('rans: RANS_R in both readers is round(2^24·exp(−2^(−1−(p−24)/4))); every model has frequencies summing to 2^16, all ≥ 1', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  assert.deepEqual(RANS_R, FORMAT_TABLE, 'the formula gives FORMAT.md\'s table');
  type Model = { p: number; L: number; n: number; sum: number; min: number; C_ok: boolean; same_as_test: boolean };
  const got = python<Record<Reader, { R: number[]; models: Model[] }>>('tables');
  for (const r of READERS) {
    assert.deepEqual(got[r].R, RANS_R, `${r}: RANS_R`);
    assert.equal(got[r].models.length, 96);
    for (const m of got[r].models) {
      const where = `${r}: p ${m.p}`;
      assert.equal(m.n, 2 * m.L + 1, `${where}: 2L + 1 frequencies`);
      assert.equal(m.sum, 2 ** 16, `${where}: frequencies sum to 2^16`);
      assert.ok(m.min >= 1, `${where}: every frequency ≥ 1`);
      assert.ok(m.C_ok, `${where}: C is the running sum of f`);
      assert.ok(m.same_as_test, `${where}: the same model as this test's`);
    }
    const Ls = got[r].models.map((m) => m.L);
    assert.deepEqual([Ls[0], Ls[3], Ls[4], Ls[11], Ls[12], Ls[95]], [0, 0, 1, 1, 2, 2357], `${r}: L at p = 0, 3, 4, 11, 12, 95`);
    assert.ok(Ls.every((L, p) => p === 0 || L >= Ls[p - 1]), `${r}: L grows with p`);
  }
});

test('rans in NOLA files: a version-3 file reads as its all-rice version-2 twin; rans in version 2, bytes < 9 and bad blocks are refused', (t) => {
  if (!numpy) return t.skip(NO_NUMPY);
  type Refusal = { error: string; message: string };
  type ReaderOut = { tensors: Array<[string, string, number[], string]>; coeffs: number[][][]; compact: number[][][]; compact_kinds: string[] } | Refusal;
  type RefOut = number[][][] | Refusal;
  const got = python<{ outcomes: Record<string, [ReaderOut, RefOut]>; want: number[][][]; kinds: string[][][] }>('file');
  const o = got.outcomes;
  assert.ok(got.kinds.flat(2).includes('rans') && got.kinds.flat(2).includes('rice'), 'the file mixes rans and rice segments');
  const ok = (name: string): Exclude<ReaderOut, Refusal> => {
    const [a, b] = o[name];
    assert.ok(!('error' in a), `${name}: nola_reader: ${JSON.stringify(a)}`);
    assert.ok(Array.isArray(b), `${name}: nola_ref: ${JSON.stringify(b)}`);
    assert.deepEqual(a.coeffs, got.want, `${name}: nola_reader's coefficients are levels · step`);
    assert.deepEqual(a.compact, got.want, `${name}: read_nola(compact=True), as float64, the same`);
    assert.deepEqual(b, got.want, `${name}: nola_ref's coefficients are levels · step`);
    return a;
  };
  const v3 = ok('v3'), v2 = ok('v2 rice'), v3rice = ok('v3 rice');
  assert.equal(v3.tensors.length, 4);
  assert.ok(v3.compact_kinds.includes('Dequantized'), `a factor of rans blocks only is kept compact: ${v3.compact_kinds}`);
  assert.deepEqual(v2.compact_kinds, ['ndarray'], 'rice blocks are float64 arrays either way');
  assert.deepEqual(v3.tensors, v2.tensors, 'load() of the version-3 file equals that of its version-2 rice twin, byte for byte');
  assert.deepEqual(v3rice.tensors, v2.tensors, 'a version-3 file of rice blocks only reads too');
  const refused: Array<[string, RegExp, RegExp]> = [
    ['v2 with rans', /layer 'm\.q': factor A holds a rans segment, which needs format_version 3 \(this file states 2\)$/, /^layer m\.q: a rans segment in a version-2 file/],
    ['v4', /format_version 4 \/ generator 'lowbias32-v1' not supported \(this reader knows 1, 2 and 3/, /^bad envelope/],
    ['version true', /format_version True \/ generator 'lowbias32-v1' not supported/, /^bad envelope/],
    ['rans bytes 8', /layer 'm\.q': bad storage segments \[\["rans", 100, 8\]\] for 100 coefficients$/, /^layer m\.q: rans segment of 100 values in 8 bytes$/],
    ['rans trailing byte', /layer 'm\.k' factor A: rans block: bytes after the last value \(1 unread\)$/, /^rans block: bytes after the last value \(1 unread\)$/],
    ['rans state 2^31', /layer 'm\.q' factor B: rans block: state 2147483648 outside \[2\^23, 2\^31\)$/, /^rans block: state 2147483648 outside/],
  ];
  for (const [name, reader, ref] of refused) {
    const [a, b] = o[name] as [Refusal, Refusal];
    assert.equal(a.error, 'FormatError', `${name}: nola_reader: ${JSON.stringify(a)}`);
    assert.match(a.message, reader, `${name}: nola_reader`);
    assert.ok(!a.message.includes('\n'), `${name}: one line`);
    assert.equal(b.error, 'ValueError', `${name}: nola_ref: ${JSON.stringify(b)}`);
    assert.match(b.message, ref, `${name}: nola_ref`);
  }
});
