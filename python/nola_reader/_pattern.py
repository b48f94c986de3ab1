"""A linear-time matcher for PEFT's rank_pattern / alpha_pattern keys: src/formats/pattern.ts, ported.

The keys come from the file (the adapter config a NOLA file stores), so Python's backtracking `re` would
let a file hang the reader: `(a+)+$` against a long module name takes exponential time. This is the same
Thompson NFA run as a Pike VM as nola's, with the same subset and the same refusals, so the reader and
`nola expand` accept and refuse the same keys and match them the same way; every match costs
O(len(text) * program size). test/python/pattern.test.ts compares it with nola's matcher on generated
patterns and runs the hostile ones.

Subset: literal characters, `.`, classes `[a-z_]` / `[^...]`, the escapes \\d \\D \\w \\W \\s \\S \\n \\t \\r
\\f \\v and escaped punctuation, groups `( )` `(?: )` `(?P<n> )` `(?<n> )`, `|`, the quantifiers * + ?
{m} {m,} {m,n} (lazy forms accepted), and ^ $ (which match only at the ends of the text). Characters are
code points (nola's are UTF-16 code units; module paths are ASCII, where the two agree)."""
import re

MAX_PATTERN_REPEAT = 1000
MAX_PATTERN_PROGRAM = 20_000
MAX_PATTERN_LENGTH = 10_000

INF = float('inf')


class PatternError(Exception):
    """A pattern outside the subset; the caller turns it into a FormatError naming the file."""


def _is_digit(c):
    return 48 <= c <= 57


def _is_word(c):
    return _is_digit(c) or 65 <= c <= 90 or 97 <= c <= 122 or c == 95


_SPACES = {9, 10, 11, 12, 13, 32, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff}


def _is_space(c):
    return c in _SPACES or 0x2000 <= c <= 0x200a


def _not(f):
    return lambda c: not f(c)


def _is_dot(c):
    return c not in (10, 13, 0x2028, 0x2029)


_CONTROL_ESCAPES = {'n': 10, 't': 9, 'r': 13, 'f': 12, 'v': 11}
_CLASS_ESCAPES = {'d': _is_digit, 'D': _not(_is_digit), 'w': _is_word, 'W': _not(_is_word),
                  's': _is_space, 'S': _not(_is_space)}
_ALNUM = re.compile(r'[A-Za-z0-9]')  # a fixed pattern of ours, not one from a file
_REPEAT = re.compile(r'\{([0-9]+)(,([0-9]*))?\}')  # ASCII digits, as nola's
_NAMED = re.compile(r'\?P?<[A-Za-z_][A-Za-z0-9_]*>')


def _equals(code):
    return lambda c: c == code


# Nodes: ('char', test) ('cat', [nodes]) ('alt', [nodes]) ('rep', node, min, max) ('bol',) ('eol',)

class _Parser:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def parse(self):
        n = self.alternation()
        if self.i < len(self.s):
            self.refuse(f"unbalanced ')' at position {self.i}")
        return n

    @staticmethod
    def refuse(why):
        raise PatternError(why)

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else None

    def alternation(self):
        xs = [self.sequence()]
        while self.peek() == '|':
            self.i += 1
            xs.append(self.sequence())
        return xs[0] if len(xs) == 1 else ('alt', xs)

    def sequence(self):
        xs = []
        while True:
            c = self.peek()
            if c is None or c == '|' or c == ')':
                break
            xs.append(self.quantified(self.atom()))
        return ('cat', xs)

    def quantified(self, atom):
        c = self.peek()
        if c == '*':
            lo, hi = 0, INF
            self.i += 1
        elif c == '+':
            lo, hi = 1, INF
            self.i += 1
        elif c == '?':
            lo, hi = 0, 1
            self.i += 1
        elif c == '{':
            m = _REPEAT.match(self.s[self.i:self.i + 24])
            if not m:
                self.refuse(f"'{{' at position {self.i} does not start a {{m}}, {{m,}} or {{m,n}} repetition")
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else INF if m.group(3) == '' else int(m.group(3))
            if lo > MAX_PATTERN_REPEAT or (hi != INF and hi > MAX_PATTERN_REPEAT):
                self.refuse(f'repetition {m.group(0)} exceeds {MAX_PATTERN_REPEAT}')
            if hi < lo:
                self.refuse(f'repetition {m.group(0)} has its bounds out of order')
            self.i += len(m.group(0))
        else:
            return atom
        if atom[0] in ('bol', 'eol'):
            self.refuse(f'quantifier after an anchor at position {self.i - 1}')
        if self.peek() == '?':
            self.i += 1  # lazy: the same set of matching strings
        nxt = self.peek()
        if nxt in ('*', '+', '?', '{'):
            self.refuse(f"quantifier '{nxt}' at position {self.i} repeats a quantifier")
        return ('rep', atom, lo, hi)

    def atom(self):
        c = self.s[self.i]
        if c == '(':
            return self.group()
        if c == '[':
            return self.char_class()
        if c == '.':
            self.i += 1
            return ('char', _is_dot)
        if c == '^':
            self.i += 1
            return ('bol',)
        if c == '$':
            self.i += 1
            return ('eol',)
        if c == '\\':
            return ('char', self.escape(False))
        if c in '*+?':
            self.refuse(f"nothing to repeat before '{c}' at position {self.i}")
        if c == '{':
            self.refuse(f"'{{' at position {self.i} repeats nothing")
        self.i += 1
        return ('char', _equals(ord(c)))

    def group(self):
        at = self.i
        self.i += 1
        if self.peek() == '?':
            rest = self.s[self.i:self.i + 40]
            named = _NAMED.match(rest)
            if rest.startswith('?:'):
                self.i += 2
            elif named:
                self.i += len(named.group(0))
            else:
                self.refuse(f"group '({rest[:3]}' at position {at} (lookaround, flags or other extensions) is not supported")
        inner = self.alternation()
        if self.peek() != ')':
            self.refuse(f"unbalanced '(' at position {at}")
        self.i += 1
        return inner

    def escape(self, in_class):
        if self.i + 1 >= len(self.s):
            self.refuse('pattern ends with a lone backslash')
        e = self.s[self.i + 1]
        self.i += 2
        if e in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[e]
        if e in _CONTROL_ESCAPES:
            return _equals(_CONTROL_ESCAPES[e])
        if _ALNUM.fullmatch(e):
            where = ' inside a class' if in_class else ''
            self.refuse(f"escape '\\{e}'{where} (backreferences, \\b, \\x, \\u, ...) is not supported")
        return _equals(ord(e))

    def char_class(self):
        at = self.i
        self.i += 1
        negate = False
        if self.peek() == '^':
            negate = True
            self.i += 1
        if self.peek() == ']':
            self.refuse(f"character class at position {at} starts with ']' (Python and JavaScript read it differently)")
        parts = []
        while True:
            c = self.peek()
            if c is None:
                self.refuse(f'unterminated character class at position {at}')
            if c == ']':
                self.i += 1
                break
            if c == '[':
                self.refuse(f"'[' inside a character class at position {self.i} (nested sets) is not supported")
            lo = self.class_atom()
            after = self.s[self.i + 1] if self.i + 1 < len(self.s) else None
            if self.peek() == '-' and after != ']' and after is not None:
                self.i += 1
                hi = self.class_atom()
                if not isinstance(lo, int) or not isinstance(hi, int):
                    self.refuse(f'range with a class escape in the character class at position {at}')
                if hi < lo:
                    self.refuse(f'range out of order in the character class at position {at}')
                parts.append(lambda x, lo=lo, hi=hi: lo <= x <= hi)
            else:
                parts.append(_equals(lo) if isinstance(lo, int) else lo)

        def in_set(x):
            return any(p(x) for p in parts)
        return ('char', _not(in_set) if negate else in_set)

    def class_atom(self):
        c = self.s[self.i]
        if c == '\\':
            e = self.s[self.i + 1] if self.i + 1 < len(self.s) else None
            if e is not None and e not in _CLASS_ESCAPES and e not in _CONTROL_ESCAPES and not _ALNUM.fullmatch(e):
                self.i += 2
                return ord(e)
            if e is not None and e in _CONTROL_ESCAPES:
                self.i += 2
                return _CONTROL_ESCAPES[e]
            return self.escape(True)
        self.i += 1
        return ord(c)


# Instructions: ['char', test] ['split', x, y] ['jmp', x] ['bol'] ['eol'] ['match']

def _cost(n):
    t = n[0]
    if t in ('char', 'bol', 'eol'):
        return 1
    if t == 'cat':
        return sum(_cost(x) for x in n[1])
    if t == 'alt':
        return sum(_cost(x) + 2 for x in n[1])
    c = _cost(n[1])
    lo, hi = n[2], n[3]
    return c * max(lo, 1) + 2 if hi == INF else c * hi + hi - lo


def _emit(n, prog):
    t = n[0]
    if t == 'char':
        prog.append(['char', n[1]])
    elif t in ('bol', 'eol'):
        prog.append([t])
    elif t == 'cat':
        for x in n[1]:
            _emit(x, prog)
    elif t == 'alt':
        jumps = []
        xs = n[1]
        for i, x in enumerate(xs):
            if i < len(xs) - 1:
                split = ['split', len(prog) + 1, 0]
                prog.append(split)
                _emit(x, prog)
                j = ['jmp', 0]
                prog.append(j)
                jumps.append(j)
                split[2] = len(prog)
            else:
                _emit(x, prog)
        for j in jumps:
            j[1] = len(prog)
    else:  # rep
        x, lo, hi = n[1], n[2], n[3]
        for _ in range(lo):
            _emit(x, prog)
        if hi == INF:
            loop = len(prog)
            split = ['split', len(prog) + 1, 0]
            prog.append(split)
            _emit(x, prog)
            prog.append(['jmp', loop])
            split[2] = len(prog)
            return
        splits = []
        for _ in range(lo, int(hi)):
            split = ['split', len(prog) + 1, 0]
            prog.append(split)
            splits.append(split)
            _emit(x, prog)
        for s in splits:
            s[2] = len(prog)


class CompiledPattern:
    """A compiled pattern that matches whole strings, in O(len(text) * size), without backtracking."""

    def __init__(self, prog):
        self.prog = prog
        self.size = len(prog)

    def matches(self, text):
        prog = self.prog
        n = len(prog)
        length = len(text)
        mark = [-1] * n

        def add(lst, pc0, pos, gen):
            stack = [pc0]
            while stack:
                pc = stack.pop()
                if mark[pc] == gen:
                    continue
                mark[pc] = gen
                ins = prog[pc]
                op = ins[0]
                if op == 'jmp':
                    stack.append(ins[1])
                elif op == 'split':
                    stack.append(ins[2])
                    stack.append(ins[1])
                elif op == 'bol':
                    if pos == 0:
                        stack.append(pc + 1)
                elif op == 'eol':
                    if pos == length:
                        stack.append(pc + 1)
                else:
                    lst.append(pc)

        gen = 0
        clist = []
        add(clist, 0, 0, gen)
        pos = 0
        while True:
            if not clist:
                return False
            if pos == length:
                return any(prog[pc][0] == 'match' for pc in clist)
            c = ord(text[pos])
            gen += 1
            nlist = []
            for pc in clist:
                ins = prog[pc]
                if ins[0] == 'char' and ins[1](c):
                    add(nlist, pc + 1, pos + 1, gen)
            clist = nlist
            pos += 1


def _compile_node(n):
    c = _cost(n) + 1
    if c > MAX_PATTERN_PROGRAM:
        raise PatternError(f'it compiles to about {c} instructions, more than the limit of {MAX_PATTERN_PROGRAM}')
    prog = []
    _emit(n, prog)
    prog.append(['match'])
    return CompiledPattern(prog)


def _check_length(s):
    if len(s) > MAX_PATTERN_LENGTH:
        raise PatternError(f'it is {len(s)} characters long, more than the limit of {MAX_PATTERN_LENGTH}')


def compile_pattern(pattern):
    """`pattern` as a whole-string matcher (as if wrapped in ^(?:...)$). Raises PatternError outside the subset."""
    _check_length(pattern)
    return _compile_node(_Parser(pattern).parse())


def compile_peft_key(key):
    """PEFT's get_pattern_key rule, re.match(rf"(.*\\.)?({key})$", path): the key matches the whole module
    path or a dot-separated suffix of it; compiled as the whole-string pattern (?:.*\\.)?(?:key)."""
    _check_length(key)
    inner = _Parser(key).parse()
    prefix = ('rep', ('cat', [('rep', ('char', _is_dot), 0, INF), ('char', _equals(46))]), 0, 1)
    return _compile_node(('cat', [prefix, inner]))
