"""JavaScript's JSON.stringify and Number#toString, for the metadata strings nola writes
(diffusers lora_adapter_metadata, kohya ss_network_args / ss_network_alpha): the same text, byte for byte."""
import json
import math
import re
from decimal import Decimal


def number(x):
    """Number.prototype.toString() (ECMA-262 Number::toString, radix 10)."""
    if isinstance(x, bool):
        raise TypeError('bool is not a number')
    if isinstance(x, int) and abs(x) < 2 ** 53:
        return str(x)
    x = float(x)
    if math.isnan(x):
        return 'NaN'
    if math.isinf(x):
        return 'Infinity' if x > 0 else '-Infinity'
    if x == 0:
        return '0'
    sign = '-' if x < 0 else ''
    t = Decimal(repr(abs(x))).normalize().as_tuple()  # shortest round-trip digits, as JavaScript uses
    digits = ''.join(map(str, t.digits))
    k = len(digits)
    n = t.exponent + k  # value = 0.d1..dk × 10^n
    if k <= n <= 21:
        s = digits + '0' * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + '.' + digits[n:]
    elif -6 < n <= 0:
        s = '0.' + '0' * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ('.' + digits[1:] if k > 1 else '') + 'e' + ('+' if e >= 0 else '-') + str(abs(e))
    return sign + s


_INDEX = re.compile('0|[1-9][0-9]*')


def is_index(k):
    # JavaScript objects list array-index keys (canonical integers below 2^32 - 1) first, ascending.
    # ASCII digits only: str.isdigit() is also true of '²' or '٣', which JavaScript does not treat so.
    return _INDEX.fullmatch(k) is not None and int(k) < 2 ** 32 - 1


def _keys(d):
    ks = list(d.keys())
    return sorted((k for k in ks if is_index(k)), key=int) + [k for k in ks if not is_index(k)]


def stringify(v, indent=None, _level=0):
    """JSON.stringify(v) or JSON.stringify(v, null, indent)."""
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if isinstance(v, (int, float)):
        return number(v) if math.isfinite(v) else 'null'
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    pad = '' if indent is None else '\n' + ' ' * (indent * (_level + 1))
    end = '' if indent is None else '\n' + ' ' * (indent * _level)
    colon = ':' if indent is None else ': '
    if isinstance(v, (list, tuple)):
        if not v:
            return '[]'
        return '[' + ','.join(pad + stringify(x, indent, _level + 1) for x in v) + end + ']'
    if isinstance(v, dict):
        if not v:
            return '{}'
        return '{' + ','.join(pad + json.dumps(k, ensure_ascii=False) + colon + stringify(v[k], indent, _level + 1) for k in _keys(v)) + end + '}'
    raise TypeError(f'cannot stringify {type(v).__name__}')


def ordered(v):
    """A parsed JSON value with its objects' keys in JavaScript's order (what JSON.parse would give)."""
    if isinstance(v, dict):
        return {k: ordered(v[k]) for k in _keys(v)}
    if isinstance(v, list):
        return [ordered(x) for x in v]
    return v
