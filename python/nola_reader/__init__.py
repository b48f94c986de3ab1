"""nola_reader: read a NOLA file (https://github.com/... nola, docs/FORMAT.md) into the LoRA `nola expand` would
write, in memory, with numpy (torch optional).

    from nola_reader import load
    lora = load('adapter.nola.safetensors')            # numpy arrays
    lora = load('adapter.nola.safetensors', 'pt')      # torch tensors (torch must be installed)
    lora = load('style.nola.safetensors', to='kohya')  # as `nola expand --to kohya` (diffusers -> kohya / peft)
    lora.family     # the expanded file's family: the source's, or `to`
    lora.tensors    # {name: array} in the expanded file's order; same dtypes, shapes and bits as `nola expand`
    lora.config     # the adapter_config.json expand writes beside a PEFT adapter (a dict), else None
    lora.config_text  # that file's text, byte for byte
    lora.metadata   # the expanded file's __metadata__ (dict of str) or None

BF16 tensors: torch.bfloat16 with framework='pt'; with numpy (which has no bfloat16) a uint16 array of the
bfloat16 bits (`lora.float32(name)` widens any tensor exactly). `lora.bytes(name)` is a tensor's
little-endian bytes as the file would hold them.
"""
import json
from collections import Counter

import numpy as np

from . import _js

from ._container import read_nola
from ._dtypes import decode, encode
from ._errors import FormatError, IoError, NolaError, NumericError, UsageError
from ._plan import FAMILIES, file_order, plan_output, sha256_of
from ._synth import component_seeds, full_selections, synthesize

__all__ = ['load', 'Lora', 'NolaError', 'FormatError', 'IoError', 'NumericError', 'UsageError']
__version__ = '0.1.0'

_NUMPY = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'BF16': '<u2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': '<i1',
          'U8': '<u1', 'U16': '<u2', 'U32': '<u4', 'U64': '<u8', 'BOOL': '?', 'F8_E4M3': '<u1', 'F8_E5M2': '<u1'}
_MAX = {'F64': np.finfo(np.float64).max, 'F32': float(np.finfo(np.float32).max), 'F16': 65504.0,
        'BF16': float(np.array([0x7F7F0000], np.uint32).view(np.float32)[0])}


class Lora:
    """The expanded LoRA: tensors (in file order), their safetensors dtypes, metadata, PEFT config, family."""

    def __init__(self, family, raw, dtypes, shapes, metadata, config, warnings, framework):
        self.family = family
        self.metadata = metadata
        # As a JSON reader gets it from the adapter_config.json expand writes (integral numbers are ints).
        self.config = None if config is None else json.loads(_js.stringify(config))
        # That file's exact text (JSON.stringify(config, null, 2)), or None.
        self.config_text = None if config is None else _js.stringify(config, 2)
        self.warnings = warnings
        self.dtypes = dtypes
        self._raw = raw
        self.tensors = {name: _array(raw[name], dtypes[name], shapes[name], framework) for name in raw}

    def bytes(self, name):
        return self._raw[name]

    def float32(self, name):
        return decode(self._raw[name], self.dtypes[name]).astype(np.float32).reshape(self.tensors[name].shape)

    def __repr__(self):
        return f'<nola_reader.Lora {self.family}: {len(self.tensors)} tensors>'


def _array(raw, dtype, shape, framework):
    a = np.frombuffer(raw, _NUMPY[dtype]).reshape(shape)
    if framework == 'np':
        return a
    import torch
    if dtype == 'BF16':
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    if dtype in ('U16', 'U32', 'U64'):  # older torch has no wide unsigned dtypes (only integer alphas use them)
        a = a.astype(np.int64)
    return torch.from_numpy(a.copy())


# Component bases whose selections (their Fisher–Yates shuffles) load() makes in one lockstep run: enough to
# amortize numpy's cost per step, few enough to bound what is held ahead (an int64 index per entry).
SELECTION_LANES = 256


class _Selections:
    """π of the orthogonal-components bases, made by full_selections ahead of the layers load() synthesizes
    next, about SELECTION_LANES components at a time (grouped by length), each handed out once."""

    def __init__(self, layers, use_order):
        self.layers, self.order, self.ready = layers, use_order, {}

    def of(self, i):
        """{'A': rank × d_in, 'B': rank × d_out} for layer i; None unless its basis is orthogonal-components."""
        if self.layers[i]['basis'] != 'orthogonal-components':
            return None
        if i not in self.ready:
            self._make_ahead(self.order.index(i))
        return self.ready.pop(i)

    def _make_ahead(self, start):
        window, lanes = [], 0
        for i in self.order[start:]:
            e = self.layers[i]
            if e['basis'] == 'orthogonal-components' and i not in self.ready:
                window.append(i)
                lanes += 2 * e['rank']
                if lanes >= SELECTION_LANES:
                    break
        by_length = {}
        for i in window:
            e = self.layers[i]
            for f, d in (('A', e['d_in']), ('B', e['d_out'])):
                by_length.setdefault(d, []).append((i, f, component_seeds(e['seed_' + f], e['rank'])))
        for d, bases in by_length.items():
            made = full_selections([s for _, _, seeds in bases for s in seeds], d)
            at = 0
            for i, f, seeds in bases:
                self.ready.setdefault(i, {})[f] = made[at:at + len(seeds)]
                at += len(seeds)


def _factors(nola, i, e, ratio, selections=None):
    where = f"{nola['path']}: layer {e['name']!r}"
    sa, sb = (None, None) if selections is None else (selections['A'], selections['B'])
    a = synthesize(e['basis'], e['seed_A'], e['num_basis_A'], e['rank'], e['d_in'], 'A', np.asarray(e['coeffs_A'], np.float64), sa)
    b = synthesize(e['basis'], e['seed_B'], e['num_basis_B'], e['rank'], e['d_out'], 'B', np.asarray(e['coeffs_B'], np.float64), sb)
    # The target tool applies scale_out to B·A as written; expand folds the difference into B.
    if ratio != 1:
        b = b * ratio
    for f, x, dtype in (('A', a, e['dtype_A']), ('B', b, e['dtype_B'])):
        m = float(np.max(np.abs(x))) if x.size else 0.0
        if not np.isfinite(m) or abs(float(decode(encode([m], dtype), dtype)[0])) > _MAX[dtype]:
            raise NumericError(f'{where}: factor {f} synthesizes to values (max |x| = {m}) that {dtype} cannot hold')
    return a, b


def _plan_for(nola, to):
    """plan_output, its errors naming the NOLA file as nola's do (src/pipeline/expand.ts planOutputFor)."""
    try:
        return plan_output(nola, to)
    except NolaError as e:
        prefix = f"{nola['path']}: "
        if not str(e).startswith(prefix):
            e.args = (prefix + str(e),) + e.args[1:]
        raise


def load(path, framework='np', to=None, *, max_factor_values=2 ** 24, max_output_bytes=2 ** 31, max_basis_work=2 ** 36):
    """The LoRA `nola expand PATH` would write (`nola expand PATH --to TO` with `to`): tensors bit for bit,
    metadata, adapter config. `to`: None (the source's family), 'peft', 'kohya' or 'diffusers'; a conversion
    nola refuses raises UsageError with nola's message. A file that would cost more than a limit (values in
    one factor, bytes of the expanded tensors, multiply-adds of the uniform basis: nola's --max-* defaults)
    raises IoError before anything is decoded; raise the limit for a file you trust."""
    if framework not in ('np', 'pt'):
        raise UsageError(f"framework must be 'np' or 'pt', got {framework!r}")
    if to is not None and to not in FAMILIES:
        raise UsageError(f"to must be None, 'peft', 'kohya' or 'diffusers', got {to!r}")
    for name, v in (('max_factor_values', max_factor_values), ('max_output_bytes', max_output_bytes), ('max_basis_work', max_basis_work)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f'{name} must be a positive integer, got {v!r}')
    nola = read_nola(path, {'max_factor_values': max_factor_values, 'max_output_bytes': max_output_bytes, 'max_basis_work': max_basis_work}, compact=True)
    nola['path'] = path
    plan = _plan_for(nola, to)
    order = file_order(plan['tensors'])
    raw, dtypes, shapes, cache = {}, {}, {}, {}
    uses = Counter(t['source'][1] for t in order if t['source'][0] == 'factor')
    selections = _Selections(nola['layers'], list(uses))
    for t in order:
        src = t['source']
        if src[0] == 'factor':
            i = src[1]
            if i not in cache:
                e = nola['layers'][i]
                cache[i] = _factors(nola, i, e, e['scale'] / plan['scale_out'][i], selections.of(i))
            data = encode(cache[i][0 if src[2] == 'A' else 1], t['dtype'])
            # A layer's float64 factors are dropped once its last tensor is encoded: held are the
            # layers whose tensors the file order has begun and not finished (one, for nola's layouts).
            uses[i] -= 1
            if uses[i] == 0:
                del cache[i], nola['layers'][i]['coeffs_A'], nola['layers'][i]['coeffs_B']
        else:
            data = src[1]
        raw[t['name']], dtypes[t['name']], shapes[t['name']] = data, t['dtype'], t['shape']
    metadata = plan['metadata']
    if plan['finalize'] is not None:
        metadata = {**metadata, **plan['finalize'](sha256_of(raw[t['name']] for t in order))}
    return Lora(plan['family'], raw, dtypes, shapes, metadata, plan['config'], plan['warnings'], framework)
