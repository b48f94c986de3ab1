/**
 * A linear-time matcher for the regular expressions PEFT uses as rank_pattern / alpha_pattern keys.
 * The keys come from files (adapter_config.json, a config stored in a NOLA file), so a backtracking
 * engine would let a file hang the process: `(a+)+$` against a long module name takes exponential
 * time in RegExp. This is a Thompson NFA run as a Pike VM (Russ Cox, "Regular Expression Matching:
 * the Virtual Machine Approach"): every step advances all threads over one character, a thread per
 * program position at most, so a match costs O(|text| · |program|) whatever the pattern.
 *
 * The subset (what PEFT keys use in practice): literal characters, `.`, character classes `[a-z_]`,
 * `[^...]`, the escapes \d \D \w \W \s \S \n \t \r \f \v and any escaped punctuation (`\.`), groups
 * `( )`, `(?: )`, `(?P<n> )`, `(?<n> )`, alternation `|`, the quantifiers * + ? {m} {m,} {m,n}
 * (lazy forms accepted: laziness cannot change whether a whole string matches) and the anchors ^ $.
 * Anything else (backreferences, lookaround, \b, inline flags, `{,n}`, a lone `{`) is refused with a
 * line saying what, rather than guessed at: Python's `re` and JavaScript's RegExp disagree on some of
 * it, and PEFT means Python's. Characters are UTF-16 code units and \d \w \s are ASCII-only (module
 * paths are ASCII). Pure: no I/O.
 */

/** Largest m or n in {m,n}. */
export const MAX_PATTERN_REPEAT = 1000;
/** Largest compiled program (instructions); bounds the work per character of text. */
export const MAX_PATTERN_PROGRAM = 20_000;
/** Longest pattern key, in characters. */
export const MAX_PATTERN_LENGTH = 10_000;

/** Thrown for a pattern outside the subset; the caller turns it into a FormatError naming the file. */
export class PatternError extends Error {}

type CharTest = (c: number) => boolean;
type Node =
  | { t: 'char'; test: CharTest }
  | { t: 'cat'; xs: Node[] }
  | { t: 'alt'; xs: Node[] }
  | { t: 'rep'; x: Node; min: number; max: number }
  | { t: 'bol' }
  | { t: 'eol' };

const isDigit: CharTest = (c) => c >= 48 && c <= 57;
const isWord: CharTest = (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const SPACES = new Set([9, 10, 11, 12, 13, 32, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]);
const isSpace: CharTest = (c) => SPACES.has(c) || (c >= 0x2000 && c <= 0x200a);
const not = (f: CharTest): CharTest => (c) => !f(c);
// `.` as in RegExp without the s flag (and Python's re without DOTALL for \n).
const isDot: CharTest = (c) => c !== 10 && c !== 13 && c !== 0x2028 && c !== 0x2029;
const CONTROL_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11 };
const CLASS_ESCAPES: Record<string, CharTest> = { d: isDigit, D: not(isDigit), w: isWord, W: not(isWord), s: isSpace, S: not(isSpace) };

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): Node {
    const n = this.alternation();
    if (this.i < this.s.length) this.refuse(`unbalanced ')' at position ${this.i}`);
    return n;
  }

  private refuse(why: string): never {
    throw new PatternError(why);
  }

  private peek(): string | undefined {
    return this.s[this.i];
  }

  private alternation(): Node {
    const xs = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      xs.push(this.sequence());
    }
    return xs.length === 1 ? xs[0] : { t: 'alt', xs };
  }

  private sequence(): Node {
    const xs: Node[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this.atom();
      xs.push(this.quantified(atom));
    }
    return { t: 'cat', xs };
  }

  private quantified(atom: Node): Node {
    const c = this.peek();
    let min: number, max: number;
    if (c === '*') { min = 0; max = Infinity; this.i++; }
    else if (c === '+') { min = 1; max = Infinity; this.i++; }
    else if (c === '?') { min = 0; max = 1; this.i++; }
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i, this.i + 24));
      if (!m) this.refuse(`'{' at position ${this.i} does not start a {m}, {m,} or {m,n} repetition`);
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min > MAX_PATTERN_REPEAT || (max !== Infinity && max > MAX_PATTERN_REPEAT)) {
        this.refuse(`repetition ${m[0]} exceeds ${MAX_PATTERN_REPEAT}`);
      }
      if (max < min) this.refuse(`repetition ${m[0]} has its bounds out of order`);
      this.i += m[0].length;
    } else {
      return atom;
    }
    if (atom.t === 'bol' || atom.t === 'eol') this.refuse(`quantifier after an anchor at position ${this.i - 1}`);
    if (this.peek() === '?') this.i++; // lazy: same set of matching strings
    const next = this.peek();
    if (next === '*' || next === '+' || next === '?' || next === '{') this.refuse(`quantifier '${next}' at position ${this.i} repeats a quantifier`);
    return { t: 'rep', x: atom, min, max };
  }

  private atom(): Node {
    const c = this.s[this.i];
    switch (c) {
      case '(': return this.group();
      case '[': return this.charClass();
      case '.': this.i++; return { t: 'char', test: isDot };
      case '^': this.i++; return { t: 'bol' };
      case '$': this.i++; return { t: 'eol' };
      case '\\': return { t: 'char', test: this.escape(false) };
      case '*': case '+': case '?': return this.refuse(`nothing to repeat before '${c}' at position ${this.i}`);
      case '{': return this.refuse(`'{' at position ${this.i} repeats nothing`);
      default: {
        this.i++;
        const code = c.charCodeAt(0);
        return { t: 'char', test: (x) => x === code };
      }
    }
  }

  private group(): Node {
    const at = this.i;
    this.i++;
    if (this.peek() === '?') {
      const rest = this.s.slice(this.i, this.i + 40);
      const named = /^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(rest);
      if (rest.startsWith('?:')) this.i += 2;
      else if (named) this.i += named[0].length;
      else this.refuse(`group '(${rest.slice(0, 3)}' at position ${at} (lookaround, flags or other extensions) is not supported`);
    }
    const inner = this.alternation();
    if (this.peek() !== ')') this.refuse(`unbalanced '(' at position ${at}`);
    this.i++;
    return inner;
  }

  /** One escape; inside a class `\b` and friends are still refused (they differ between engines). */
  private escape(inClass: boolean): CharTest {
    const e = this.s[this.i + 1];
    if (e === undefined) this.refuse('pattern ends with a lone backslash');
    this.i += 2;
    if (CLASS_ESCAPES[e] !== undefined) return CLASS_ESCAPES[e];
    if (CONTROL_ESCAPES[e] !== undefined) { const code = CONTROL_ESCAPES[e]; return (x) => x === code; }
    if (/[A-Za-z0-9]/.test(e)) {
      this.refuse(`escape '\\${e}'${inClass ? ' inside a class' : ''} (backreferences, \\b, \\x, \\u, ...) is not supported`);
    }
    const code = e.charCodeAt(0);
    return (x) => x === code;
  }

  private charClass(): Node {
    const at = this.i;
    this.i++;
    let negate = false;
    if (this.peek() === '^') { negate = true; this.i++; }
    if (this.peek() === ']') this.refuse(`character class at position ${at} starts with ']' (Python and JavaScript read it differently)`);
    const parts: CharTest[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.refuse(`unterminated character class at position ${at}`);
      if (c === ']') { this.i++; break; }
      if (c === '[') this.refuse(`'[' inside a character class at position ${this.i} (nested sets) is not supported`);
      const lo = this.classAtom();
      if (this.peek() === '-' && this.s[this.i + 1] !== ']' && this.s[this.i + 1] !== undefined) {
        this.i++;
        const hi = this.classAtom();
        if (typeof lo !== 'number' || typeof hi !== 'number') this.refuse(`range with a class escape in the character class at position ${at}`);
        if (hi < lo) this.refuse(`range out of order in the character class at position ${at}`);
        parts.push((x) => x >= lo && x <= hi);
      } else {
        parts.push(typeof lo === 'number' ? (x) => x === lo : lo);
      }
    }
    const inSet: CharTest = (x) => parts.some((p) => p(x));
    return { t: 'char', test: negate ? not(inSet) : inSet };
  }

  /** A code unit, or a class escape's test. */
  private classAtom(): number | CharTest {
    const c = this.s[this.i];
    if (c === '\\') {
      const e = this.s[this.i + 1];
      if (e !== undefined && CLASS_ESCAPES[e] === undefined && CONTROL_ESCAPES[e] === undefined && !/[A-Za-z0-9]/.test(e)) {
        this.i += 2;
        return e.charCodeAt(0);
      }
      if (e !== undefined && CONTROL_ESCAPES[e] !== undefined) { this.i += 2; return CONTROL_ESCAPES[e]; }
      return this.escape(true);
    }
    this.i++;
    return c.charCodeAt(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Program

type Inst =
  | { op: 'char'; test: CharTest }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'bol' }
  | { op: 'eol' }
  | { op: 'match' };

/** Instructions `n` compiles to, computed before emitting any (so `(a{1000}){1000}` is refused cheaply). */
function cost(n: Node): number {
  switch (n.t) {
    case 'char': case 'bol': case 'eol': return 1;
    case 'cat': return n.xs.reduce((a, x) => a + cost(x), 0);
    case 'alt': return n.xs.reduce((a, x) => a + cost(x) + 2, 0);
    case 'rep': {
      const c = cost(n.x);
      return n.max === Infinity ? c * Math.max(n.min, 1) + 2 : c * n.max + n.max - n.min;
    }
  }
}

function emit(n: Node, prog: Inst[]): void {
  switch (n.t) {
    case 'char': prog.push({ op: 'char', test: n.test }); return;
    case 'bol': prog.push({ op: 'bol' }); return;
    case 'eol': prog.push({ op: 'eol' }); return;
    case 'cat': for (const x of n.xs) emit(x, prog); return;
    case 'alt': {
      const jumps: Array<{ op: 'jmp'; x: number }> = [];
      n.xs.forEach((x, i) => {
        if (i < n.xs.length - 1) {
          const split = { op: 'split' as const, x: prog.length + 1, y: 0 };
          prog.push(split);
          emit(x, prog);
          const j = { op: 'jmp' as const, x: 0 };
          prog.push(j);
          jumps.push(j);
          split.y = prog.length;
        } else {
          emit(x, prog);
        }
      });
      for (const j of jumps) j.x = prog.length;
      return;
    }
    case 'rep': {
      for (let i = 0; i < n.min; i++) emit(n.x, prog);
      if (n.max === Infinity) {
        const split = { op: 'split' as const, x: prog.length + 1, y: 0 };
        const loop = prog.length;
        prog.push(split);
        emit(n.x, prog);
        prog.push({ op: 'jmp', x: loop });
        split.y = prog.length;
        return;
      }
      const splits: Array<{ op: 'split'; x: number; y: number }> = [];
      for (let i = n.min; i < n.max; i++) {
        const split = { op: 'split' as const, x: prog.length + 1, y: 0 };
        prog.push(split);
        splits.push(split);
        emit(n.x, prog);
      }
      for (const s of splits) s.y = prog.length;
    }
  }
}

/** A compiled pattern that matches whole strings. */
export interface CompiledPattern {
  /** True when the whole of `text` matches. Time O(|text| · program size), no backtracking. */
  matches(text: string): boolean;
  readonly size: number;
}

function compileNode(n: Node): CompiledPattern {
  const c = cost(n) + 1;
  if (c > MAX_PATTERN_PROGRAM) throw new PatternError(`it compiles to about ${c} instructions, more than the limit of ${MAX_PATTERN_PROGRAM}`);
  const prog: Inst[] = [];
  emit(n, prog);
  prog.push({ op: 'match' });
  return { matches: (text) => run(prog, text), size: prog.length };
}

/** Compiles `pattern` to match whole strings (as if wrapped in ^(?:…)$). Throws PatternError outside the subset. */
export function compilePattern(pattern: string): CompiledPattern {
  if (pattern.length > MAX_PATTERN_LENGTH) throw new PatternError(`it is ${pattern.length} characters long, more than the limit of ${MAX_PATTERN_LENGTH}`);
  return compileNode(new Parser(pattern).parse());
}

/**
 * PEFT's get_pattern_key rule, `re.match(rf"(.*\.)?({key})$", module_path)`: the key matches the
 * whole module path or a dot-separated suffix of it. Compiled as the whole-string pattern
 * `(?:.*\.)?(?:key)`.
 */
export function compilePeftKey(key: string): CompiledPattern {
  if (key.length > MAX_PATTERN_LENGTH) throw new PatternError(`it is ${key.length} characters long, more than the limit of ${MAX_PATTERN_LENGTH}`);
  const inner = new Parser(key).parse();
  const dot = 46;
  const prefix: Node = { t: 'rep', x: { t: 'cat', xs: [{ t: 'rep', x: { t: 'char', test: isDot }, min: 0, max: Infinity }, { t: 'char', test: (x) => x === dot }] }, min: 0, max: 1 };
  return compileNode({ t: 'cat', xs: [prefix, inner] });
}

/** The Pike VM: one list of live program positions per text position, each position at most once. */
function run(prog: Inst[], text: string): boolean {
  const n = prog.length;
  const mark = new Uint32Array(n);
  let gen = 0;
  let clist = new Int32Array(n), nlist = new Int32Array(n);
  let clen = 0, nlen = 0;
  // Each position is expanded once per step and pushes at most two others.
  const stack = new Int32Array(2 * n + 2);
  const len = text.length;
  const add = (list: Int32Array, count: number, pc0: number, pos: number): number => {
    let sp = 0;
    stack[sp++] = pc0;
    while (sp > 0) {
      const pc = stack[--sp];
      if (mark[pc] === gen) continue;
      mark[pc] = gen;
      const ins = prog[pc];
      switch (ins.op) {
        case 'jmp': stack[sp++] = ins.x; break;
        case 'split': stack[sp++] = ins.y; stack[sp++] = ins.x; break;
        case 'bol': if (pos === 0) stack[sp++] = pc + 1; break;
        case 'eol': if (pos === len) stack[sp++] = pc + 1; break;
        default: list[count++] = pc;
      }
    }
    return count;
  };
  gen++;
  clen = add(clist, 0, 0, 0);
  for (let pos = 0; ; pos++) {
    if (clen === 0) return false;
    if (pos === len) {
      for (let t = 0; t < clen; t++) if (prog[clist[t]].op === 'match') return true;
      return false;
    }
    const c = text.charCodeAt(pos);
    gen++;
    nlen = 0;
    for (let t = 0; t < clen; t++) {
      const ins = prog[clist[t]];
      if (ins.op === 'char' && ins.test(c)) nlen = add(nlist, nlen, clist[t] + 1, pos + 1);
    }
    [clist, nlist] = [nlist, clist];
    clen = nlen;
  }
}
