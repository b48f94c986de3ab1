"""What `nola expand` writes for a NOLA file (src/formats/expand-plan.ts): in its source family (planSameFamily)
or, with `to`, in another where nola converts (diffusers -> kohya, diffusers -> peft for one component):
the output tensors (names, dtypes, shapes; alpha tensors rewritten for a new rank), the metadata and the
adapter config adjusted so every layer keeps its scale, and per layer the scale the target tool will apply
(`scale_out`: expand multiplies B by scale / scale_out). Any change to that file must be mirrored here;
test/python/reader.test.ts compares both on every shared adapter and generated fixture."""
import hashlib
import math
import re

from . import _dtypes, _js
from ._pattern import PatternError, compile_peft_key
from ._errors import FormatError, NumericError, UsageError

DIFFUSERS_COMPONENTS = ['unet', 'transformer', 'transformer_2', 'text_encoder', 'text_encoder_2', 'text_encoder_3',
                        'prior', 'decoder', 'diffusion_model']
LORA_ADAPTER_METADATA_KEY = 'lora_adapter_metadata'
HASH_KEYS = ['sshs_model_hash', 'sshs_legacy_hash']
LEGACY_HASH_OF_SMALL_FILE = 'e3b0c442'
LEGACY_OFFSET = 0x100000


def escape_regex(s):
    return re.sub(r'([.*+?^${}()|\[\]\\])', r'\\\1', s)


# ----------------------------------------------------------------------------------------------
# PEFT LoraConfig semantics (src/formats/common.ts)

def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def order_safe_pattern_key(k):
    """A pattern key as nola writes it beside others (src/formats/common.ts orderSafePatternKey): an array index
    ('0') as '(0)', the same pattern, which JavaScript's key order cannot move ahead of the keys before it."""
    return f'({k})' if _js.is_index(k) else k


def pattern_keys(paths):
    """rank_pattern / alpha_pattern keys for module paths (src/formats/expand-plan.ts patternKeys): the shortest
    proper dotted suffix no other path equals or ends with after a dot, regex-escaped; else the whole path
    (anchored with ^ only where another path ends with it)."""
    uniq = list(dict.fromkeys(paths))
    out = []
    for p in paths:
        parts = p.split('.')
        for j in range(1, len(parts)):
            suffix = '.'.join(parts[len(parts) - j:])
            if not any(q != p and (q == suffix or q.endswith('.' + suffix)) for q in uniq):
                out.append(order_safe_pattern_key(escape_regex(suffix)))
                break
        else:
            anchored = any(q != p and q.endswith('.' + p) for q in uniq)
            out.append('^' + escape_regex(p) if anchored else order_safe_pattern_key(escape_regex(p)))
    return out


# The key rule nola writes (src/formats/expand-plan.ts patternKeys): unanchored unique dotted suffixes.
PATTERN_KEYS = pattern_keys


def read_lora_config(cfg, where):
    if not isinstance(cfg, dict):
        raise FormatError(f'{where} is not a JSON object')

    def num(field, default):
        v = cfg.get(field)
        if v is None:
            return default
        if not _number(v):
            raise FormatError(f'{where}: {field} must be a number')
        return v

    def pattern(field):
        v = cfg.get(field)
        if v is None:
            return {}
        if not isinstance(v, dict) or not all(_number(x) for x in v.values()):
            raise FormatError(f'{where}: {field} must be an object of pattern -> number')
        index = next((k for k in _js.ordered(v) if _js.is_index(k)), None)
        if index is not None and len(v) > 1:
            raise FormatError(f"{where}: {field} key '{index}' is an array index, which JSON readers in JavaScript list before "
                              f"every other key, so its place among the keys (PEFT takes the first that matches) cannot be kept; "
                              f"write it as '({index})', the same pattern")
        return dict(v)

    return {'r': num('r', 8), 'lora_alpha': num('lora_alpha', 8), 'use_rslora': cfg.get('use_rslora') is True,
            'rank_pattern': pattern('rank_pattern'), 'alpha_pattern': pattern('alpha_pattern')}


_PATTERN_CACHE = {}


def match_pattern_key(patterns, module_path, where):
    """PEFT's get_pattern_key: the first key k (in order) with re.match(rf"(.*\\.)?({k})$", path), matched by
    the linear-time matcher of _pattern.py (nola's), never by `re`: the keys come from the file."""
    for key in patterns:
        compiled = _PATTERN_CACHE.get(key)
        if compiled is None:
            try:
                compiled = compile_peft_key(key)
            except PatternError as e:
                raise FormatError(f'{where}: pattern key {_js.stringify(key)} is not supported: {e} (nola matches literals, ., '
                                  '[classes], \\d \\w \\s, escapes, groups, |, * + ? {m,n}, ^ $)') from None
            if len(_PATTERN_CACHE) > 10_000:
                _PATTERN_CACHE.clear()
            _PATTERN_CACHE[key] = compiled
        if compiled.matches(module_path):
            return key
    return None


def resolve_rank_alpha(view, module_path, where):
    rk = match_pattern_key(view['rank_pattern'], module_path, where)
    ak = match_pattern_key(view['alpha_pattern'], module_path, where)
    return (view['r'] if rk is None else view['rank_pattern'][rk],
            view['lora_alpha'] if ak is None else view['alpha_pattern'][ak])


def peft_scaling(alpha, r, rslora):
    return alpha / math.sqrt(r) if rslora else alpha / r


def adjust_lora_config(config, layers, where):
    """layers: dicts module_path, rank_in, rank_out, alpha_in. Returns (config, [scale_out]); the same
    object when no rank changed."""
    view = read_lora_config(config, where)
    for l in layers:
        r, _ = resolve_rank_alpha(view, l['module_path'], where)
        if r != l['rank_in']:
            raise FormatError(f"{where} gives module '{l['module_path']}' rank {r}, but its source factors have rank {l['rank_in']}")

    def target_alpha(l):
        if view['use_rslora']:
            return l['alpha_in'] * math.sqrt(l['rank_out'] / l['rank_in'])
        return (l['alpha_in'] * l['rank_out']) / l['rank_in']

    out = config
    if any(l['rank_out'] != l['rank_in'] for l in layers):
        no_patterns = not view['rank_pattern'] and not view['alpha_pattern']
        if no_patterns and len({l['rank_out'] for l in layers}) == 1:
            out = dict(config)
            out['r'] = layers[0]['rank_out']
            out['lora_alpha'] = target_alpha(layers[0])
        else:
            rank_pattern, alpha_pattern = {}, {}
            keys = PATTERN_KEYS([l['module_path'] for l in layers])
            for l, key in zip(layers, keys):
                if l['rank_out'] == l['rank_in']:
                    continue
                rank_pattern[key] = l['rank_out']
                a = target_alpha(l)
                if a != l['alpha_in'] or key in view['alpha_pattern']:
                    alpha_pattern[key] = a
            # The source's own keys after them; one that is an array index would jump ahead in JSON order.
            for k, v in view['rank_pattern'].items():
                rank_pattern.setdefault(order_safe_pattern_key(k), v)
            for k, v in view['alpha_pattern'].items():
                alpha_pattern.setdefault(order_safe_pattern_key(k), v)
            out = dict(config)
            out['rank_pattern'] = rank_pattern
            out['alpha_pattern'] = alpha_pattern
    check = read_lora_config(out, where)
    scale_out = []
    for l in layers:
        r, alpha = resolve_rank_alpha(check, l['module_path'], where)
        if r != l['rank_out']:
            raise AssertionError(f"adjusted {where} gives '{l['module_path']}' rank {r}, wanted {l['rank_out']}")
        scale_out.append(peft_scaling(alpha, r, check['use_rslora']))
    return out, scale_out


# ----------------------------------------------------------------------------------------------

def module_of(e, family):
    name = e['name']
    dot = name.find('.')
    if family == 'diffusers' and dot > 0 and name[:dot] in DIFFUSERS_COMPONENTS:
        return name[:dot], name[dot + 1:]
    return '', name


def _config_layer(e, family):
    return {'module_path': module_of(e, family)[1], 'rank_in': e['source_rank'], 'rank_out': e['rank'],
            'alpha_in': e.get('alpha', e['source_rank'])}


def _alpha_for(e, dtype):
    alpha = e.get('alpha', e['source_rank'])
    want = (alpha * e['rank']) / e['source_rank']
    out = _dtypes.representable(want, dtype)
    if not math.isfinite(out) or _dtypes.decode(_dtypes.scalar_bytes(out, dtype), dtype)[0] != out:
        raise NumericError(f"layer '{e['name']}': alpha {_js.number(want)} does not fit its {dtype} tensor")
    return out


def _is_conv_kernel(e):
    return e['kind'] == 'conv' and any(d > 1 for d in e['shape_A'][2:])


def _python_float_string(x):
    if float(x).is_integer() and abs(x) < 1e16:
        return f'{int(x)}.0'
    return _js.number(x)


def _update_kohya_metadata(meta, rows, warnings):
    network = [r for r in rows if not _is_conv_kernel(r[0])]
    conv = [r for r in rows if _is_conv_kernel(r[0])]
    main = network if network else conv

    def uniq(xs):
        return list(dict.fromkeys(xs))
    dims = uniq(r[1] for r in main)
    alphas = uniq(r[2] for r in main)
    if 'ss_network_dim' in meta:
        meta['ss_network_dim'] = _js.number(dims[0]) if len(dims) == 1 else 'Dynamic'
    if 'ss_network_alpha' in meta:
        meta['ss_network_alpha'] = _python_float_string(alphas[0]) if len(alphas) == 1 else 'Dynamic'
    if conv and network and 'ss_network_args' in meta:
        try:
            args = _js.ordered(__import__('json').loads(meta['ss_network_args']))
        except ValueError:
            args = None
        cd, ca = uniq(r[1] for r in conv), uniq(r[2] for r in conv)
        if isinstance(args, dict) and ('conv_dim' in args or 'conv_alpha' in args):
            if len(cd) == 1 and len(ca) == 1:
                if 'conv_dim' in args:
                    args['conv_dim'] = _js.number(cd[0])
                if 'conv_alpha' in args:
                    args['conv_alpha'] = _js.number(ca[0])
                meta['ss_network_args'] = _js.stringify(args)
            else:
                warnings.append('ss_network_args conv_dim/conv_alpha left as they were: the convolution layers now have different ranks')


def _parse_adapter_metadata(metadata):
    raw = (metadata or {}).get(LORA_ADAPTER_METADATA_KEY)
    if raw is None:
        return None
    try:
        parsed = _js.ordered(__import__('json').loads(raw))
    except ValueError as e:
        raise FormatError(f'__metadata__.{LORA_ADAPTER_METADATA_KEY} is not valid JSON ({e})') from None
    if not isinstance(parsed, dict):
        raise FormatError(f'__metadata__.{LORA_ADAPTER_METADATA_KEY} is not a JSON object')
    flat, components = {}, {}
    for k, v in parsed.items():
        dot = k.find('.')
        head = k[:dot] if dot > 0 else ''
        if head and head in DIFFUSERS_COMPONENTS:
            components.setdefault(head, {})[k[dot + 1:]] = v
        else:
            flat[k] = v
    return (flat or None), components, parsed


def _plan_diffusers_metadata(layers, pending, scale_out, metadata):
    meta = _parse_adapter_metadata(metadata)
    if meta is None or not metadata:
        for i in pending:
            scale_out[i] = 1
        return metadata
    flat, components, raw = meta
    by_source = {}
    for i in pending:
        c = module_of(layers[i], 'diffusers')[0]
        src = c if c in components else ('' if flat else None)
        if src is None:
            scale_out[i] = 1
            continue
        by_source.setdefault(src, []).append(i)
    rewritten = False
    for src, idx in by_source.items():
        cfg = components[src] if src else flat
        where = LORA_ADAPTER_METADATA_KEY + (f' ({src})' if src else '')
        out, s = adjust_lora_config(cfg, [_config_layer(layers[i], 'diffusers') for i in idx], where)
        for i, v in zip(idx, s):
            scale_out[i] = v
        if out is not cfg:
            rewritten = True
            for field in ('r', 'lora_alpha', 'rank_pattern', 'alpha_pattern'):
                key = f'{src}.{field}' if src else field
                if field in out:
                    raw[key] = out[field]
    if not rewritten:
        return metadata
    return {**metadata, LORA_ADAPTER_METADATA_KEY: _js.stringify(raw, 2)}


def _kohya_hash_finalizer(tensors, metadata, warnings):
    data_length = sum(math.prod(t['shape']) * _dtypes.SIZES[t['dtype']] for t in tensors)
    max_offset = int('9' * len(str(data_length)))
    header = {'__metadata__': {k: v for k, v in (metadata or {}).items() if k.startswith('ss_')}}
    for t in tensors:
        header[t['name']] = {'dtype': t['dtype'], 'shape': t['shape'], 'data_offsets': [max_offset, max_offset]}
    bound = len(_js.stringify(header).encode('utf-8')) + 7
    exact = 8 + bound + data_length <= LEGACY_OFFSET
    if not exact:
        warnings.append('sshs_legacy_hash left out: it depends on a re-serialized header nola cannot reproduce for a file over 1 MiB; '
                        'additional-networks recomputes it from the file')

    def finalize(data_sha256_hex):
        out = {'sshs_model_hash': data_sha256_hex}
        if exact:
            out['sshs_legacy_hash'] = LEGACY_HASH_OF_SMALL_FILE
        return out
    return finalize


def _kohya_alpha(stored, r):
    """kohyaAlpha: kohya's effective alpha for a stored value (0 means rank)."""
    return r if stored == 0 else stored


def _rank_changed(layers):
    """rankChanged: whether any layer is written at another rank than its source's."""
    return any(e['rank'] != e['source_rank'] for e in layers)


def _factor_tensors(e, i, key_a, key_b):
    """Layer i's two factor tensors at its new rank (outShapes)."""
    r = e['rank']
    return [{'name': key_a, 'dtype': e['dtype_A'], 'shape': [r] + e['shape_A'][1:], 'source': ('factor', i, 'A')},
            {'name': key_b, 'dtype': e['dtype_B'], 'shape': [e['shape_B'][0], r] + e['shape_B'][2:], 'source': ('factor', i, 'B')}]


def plan_same_family(nola):
    """{'tensors': [{'name','dtype','shape','source'}], 'scale_out': [...], 'metadata', 'config', 'finalize', 'warnings'}.
    source: ('factor', layer, 'A'|'B') | ('alpha', bytes) | ('passthrough', bytes)."""
    family, layers = nola['family'], nola['layers']
    warnings, tensors, scale_out, kohya_rows = [], [], [None] * len(layers), []
    for i, e in enumerate(layers):
        r = e['rank']
        tensors += _factor_tensors(e, i, e['key_A'], e['key_B'])
        if 'key_alpha' in e:
            dtype = e.get('dtype_alpha') or 'F32'
            value = _alpha_for(e, dtype)
            tensors.append({'name': e['key_alpha'], 'dtype': dtype, 'shape': [], 'source': ('alpha', _dtypes.scalar_bytes(value, dtype))})
            scale_out[i] = _kohya_alpha(value, r) / r
            kohya_rows.append((e, r, _kohya_alpha(value, r)))
        elif family == 'kohya':
            scale_out[i] = 1
            kohya_rows.append((e, r, r))
    for name, dtype, shape, data in nola['passthrough']:
        tensors.append({'name': name, 'dtype': dtype, 'shape': list(shape), 'source': ('passthrough', data)})

    changed = _rank_changed(layers)
    metadata, config = nola['metadata'], nola['config']
    pending = [i for i in range(len(layers)) if scale_out[i] is None]
    if family == 'kohya' and changed and metadata:
        metadata = dict(metadata)
        _update_kohya_metadata(metadata, kohya_rows, warnings)
    if family == 'peft' and pending:
        if isinstance(config, dict):
            config, s = adjust_lora_config(config, [_config_layer(layers[i], 'peft') for i in pending], 'adapter_config.json')
            for i, v in zip(pending, s):
                scale_out[i] = v
        else:
            for i in pending:
                scale_out[i] = layers[i]['source_scale']
            warnings.append('PEFT adapter without adapter_config.json: none written; the loader must be given r and lora_alpha that keep alpha = r')
    if family == 'diffusers' and pending:
        metadata = _plan_diffusers_metadata(layers, pending, scale_out, metadata)
    scale_out = [1 if s is None else s for s in scale_out]
    return _finish(family, tensors, scale_out, metadata, config, warnings)


def _finish(family, tensors, scale_out, metadata, config, warnings):
    """src/formats/expand-plan.ts finish: kohya hashes dropped and planned anew, output names distinct."""
    finalize = None
    if metadata and any(k in metadata for k in HASH_KEYS):
        metadata = {k: v for k, v in metadata.items() if k not in HASH_KEYS}
        finalize = _kohya_hash_finalizer(tensors, metadata, warnings)
    names = set()
    for t in tensors:
        if t['name'] in names:
            raise UsageError(f"two output tensors would be named '{t['name']}'")
        names.add(t['name'])
    return {'family': family, 'tensors': tensors, 'scale_out': scale_out, 'metadata': metadata,
            'config': config if config is not None else None, 'finalize': finalize, 'warnings': warnings}


# ----------------------------------------------------------------------------------------------
# Across families (src/formats/expand-plan.ts planOutput's `to`, planDiffusersToKohya, planDiffusersToPeft)

FAMILIES = ('peft', 'kohya', 'diffusers')
PEFT_PREFIX = 'base_model.model.'


def plan_output(nola, to=None):
    """planOutput: the same family (to None or the source's), diffusers -> kohya, diffusers -> peft; a
    UsageError saying why for every other conversion, with nola's words."""
    family, layers = nola['family'], nola['layers']
    to = family if to is None else to
    if to == family:
        return plan_same_family(nola)
    if family == 'diffusers' and to == 'kohya':
        return _plan_diffusers_to_kohya(nola)
    if family == 'diffusers' and to == 'peft':
        return _plan_diffusers_to_peft(nola)
    first = layers[0]['name'] if layers else None
    if family == 'kohya':
        raise UsageError(
            f"--to {to}: kohya keys flatten module paths to underscores (e.g. '{first if first is not None else 'lora_unet_down_blocks_0_...'}'), "
            f"so the dotted paths {to} needs (down_blocks.0 vs down_blocks_0, transformer_blocks...) cannot be recovered without the model's module table")
    if to == 'kohya':
        raise UsageError(
            f"--to kohya: a PEFT adapter's module paths (e.g. '{first if first is not None else ''}') name modules of one model with no "
            "pipeline component, and kohya keys need one (lora_unet_, lora_te_...) that cannot be inferred")
    raise UsageError(
        '--to diffusers: a PEFT adapter does not say which pipeline component (unet, text_encoder, transformer...) it adapts, '
        'and diffusers keys need one')


def _example_list(keys, n=3):
    """src/formats/refuse.ts exampleList."""
    shown = ', '.join(f"'{k}'" for k in keys[:n])
    return f'{shown} (+{len(keys) - n} more)' if len(keys) > n else shown


def _refuse_cross_passthrough(nola, to):
    passthrough = nola['passthrough']
    if passthrough:
        raise UsageError(
            f"--to {to}: {len(passthrough)} non-LoRA tensors ({_example_list([p[0] for p in passthrough])}) have no "
            f"equivalent name in {to} keys; convert without them or keep the {nola['family']} layout")


def _kohya_prefix(component, has_te2):
    """diffusers component -> kohya key prefix (ComfyUI model_lora_keys_unet, diffusers convert_state_dict_to_kohya)."""
    return {'unet': 'lora_unet_', 'diffusion_model': 'lora_unet_', 'transformer': 'lora_transformer_',
            'text_encoder': 'lora_te1_' if has_te2 else 'lora_te_', 'text_encoder_2': 'lora_te2_',
            'text_encoder_3': 'lora_te3_'}.get(component)


def _plan_diffusers_to_kohya(nola):
    _refuse_cross_passthrough(nola, 'kohya')
    layers = nola['layers']
    mods = [module_of(e, 'diffusers') for e in layers]
    has_te2 = any(c == 'text_encoder_2' for c, _ in mods)
    warnings = []
    if not has_te2 and any(c == 'text_encoder' for c, _ in mods):
        warnings.append("text_encoder layers written as 'lora_te_' (SD1/SD2 naming); an SDXL file would need 'lora_te1_'")
    tensors, scale_out, kohya_rows = [], [], []
    for i, e in enumerate(layers):
        component, module_path = mods[i]
        prefix = _kohya_prefix(component, has_te2)
        if prefix is None:
            where = f"is in component '{component}', which has" if component else 'names no pipeline component, so it has'
            raise UsageError(
                f"--to kohya: layer '{e['name']}' {where} "
                'no kohya prefix (known: unet, transformer, text_encoder, text_encoder_2, text_encoder_3, diffusion_model)')
        stem = prefix + module_path.replace('.', '_')
        r = e['rank']
        value = _dtypes.representable(e['source_scale'] * r, 'F32')
        tensors += _factor_tensors(e, i, f'{stem}.lora_down.weight', f'{stem}.lora_up.weight')
        tensors.append({'name': f'{stem}.alpha', 'dtype': 'F32', 'shape': [], 'source': ('alpha', _dtypes.scalar_bytes(value, 'F32'))})
        scale_out.append(_kohya_alpha(value, r) / r)
        kohya_rows.append((e, r, _kohya_alpha(value, r)))
    metadata = None
    if nola['metadata'] is not None:
        metadata = {k: v for k, v in nola['metadata'].items() if k != LORA_ADAPTER_METADATA_KEY}
        # kohya's training metadata in the source describes the written ranks once they changed.
        if _rank_changed(layers):
            _update_kohya_metadata(metadata, kohya_rows, warnings)
    return _finish('kohya', tensors, scale_out, metadata, None, warnings)


def _js_sorted(strings):
    """Array.prototype.sort() on strings: by UTF-16 code units (UTF-16BE bytes order the same way)."""
    return sorted(strings, key=lambda x: x.encode('utf-16-be', 'surrogatepass'))


def _plan_diffusers_to_peft(nola):
    _refuse_cross_passthrough(nola, 'peft')
    layers = nola['layers']
    mods = [module_of(e, 'diffusers') for e in layers]
    components = list(dict.fromkeys(c for c, _ in mods))
    if len(components) > 1:
        raise UsageError(
            f"--to peft: the file adapts {len(components)} pipeline components ({', '.join(components)}); a PEFT adapter "
            'adapts one model, so convert one component at a time')
    rows = [(mods[i][1], e['rank'], e['source_scale'] * e['rank']) for i, e in enumerate(layers)]

    def mode(xs):
        # The most common value, the smallest among equals.
        counts = {}
        for x in xs:
            counts[x] = counts.get(x, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    r = mode([x[1] for x in rows])
    lora_alpha = mode([x[2] for x in rows])
    rank_pattern, alpha_pattern = {}, {}
    keys = pattern_keys([x[0] for x in rows])
    for (path, rank, alpha), key in zip(rows, keys):
        if rank != r:
            rank_pattern[key] = rank
        if alpha != lora_alpha:
            alpha_pattern[key] = alpha
    meta = _parse_adapter_metadata(nola['metadata'])
    base = {}
    if meta is not None:
        flat, comps, _ = meta
        base = comps.get(components[0]) if components[0] in comps else (flat if flat is not None else {})
    config = dict(base)
    config.update({'peft_type': 'LORA', 'r': r, 'lora_alpha': lora_alpha, 'rank_pattern': rank_pattern,
                   'alpha_pattern': alpha_pattern, 'use_rslora': False,
                   'target_modules': _js_sorted(dict.fromkeys(x[0] for x in rows))})
    check = read_lora_config(config, 'adapter_config.json')
    tensors, scale_out = [], []
    for i, e in enumerate(layers):
        path = rows[i][0]
        tensors += _factor_tensors(e, i, f'{PEFT_PREFIX}{path}.lora_A.weight', f'{PEFT_PREFIX}{path}.lora_B.weight')
        rr, alpha = resolve_rank_alpha(check, path, 'adapter_config.json')
        scale_out.append(peft_scaling(alpha, rr, False))
    return _finish('peft', tensors, scale_out, {'format': 'pt'}, config, [])


def file_order(tensors):
    """The order the reference writer (and nola) lays tensors out: dtype rank descending, then UTF-8 name."""
    return sorted(tensors, key=lambda t: (-_dtypes.REFERENCE_RANK[t['dtype']], t['name'].encode('utf-8')))


def sha256_of(chunks):
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()
