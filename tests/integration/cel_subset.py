"""cel_subset: a small interpreter for the part of CEL the Stratos CRDs use.

No CEL implementation is installable here (no PyPI), and no API server runs in
the tests, so the x-kubernetes-validations rules of manifests/crds/ are
evaluated with this subset: literals (int, string, bool, null, lists), field
selection, indexing, has(), !, unary -, &&, ||, ?:, ==, !=, <, <=, >, >=, in,
the all()/exists() macros over lists and map keys, and the functions size,
startsWith, endsWith, contains, matches, bytes, int, string, duration.

Semantics follow the CEL specification where the CRDs can observe them:
selecting a missing field is an error, && and || absorb errors when the other
side decides the result, all() is false if any element is false even when
others are in error, comparisons across types are errors (no int/bool
mixing), size() of a string counts code points, matches() is an unanchored
RE2-style search, duration() parses Go durations. Anything outside the subset
is a CelSyntaxError, so a rule that uses more of CEL cannot slip through
untested.
"""

import re
from fractions import Fraction

__all__ = ["CelError", "CelSyntaxError", "Duration", "compile_rule", "evaluate"]


class CelError(Exception):
    """A runtime error (no such key, type mismatch...)."""


class CelSyntaxError(Exception):
    """The expression is not in the supported subset of CEL."""


class Duration:
    """A google.protobuf.Duration, in nanoseconds."""

    __slots__ = ("ns",)

    def __init__(self, ns):
        self.ns = ns

    def __eq__(self, other):
        return isinstance(other, Duration) and self.ns == other.ns

    def __hash__(self):
        return hash(self.ns)

    def __repr__(self):
        return "Duration(%dns)" % self.ns


_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6,
            "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DUR_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text):
    """time.ParseDuration: [-+]?(number unit)+ or "0"; returns nanoseconds."""
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise CelError("invalid duration %r" % text)
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise CelError("invalid duration %r" % text)
        total += Fraction(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * int(total)


# ---------------------------------------------------------------- lexer

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<int>[0-9]+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-!<>?:.,()\[\]])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unquote(lit):
    body = lit[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 1
            if i >= len(body) or body[i] not in _ESCAPES:
                raise CelSyntaxError("unsupported escape in %s" % lit)
            out.append(_ESCAPES[body[i]])
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _lex(src):
    toks = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise CelSyntaxError("unexpected %r at %d in %r" % (src[pos], pos, src))
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        text = m.group()
        if kind == "ident" and text in ("true", "false", "null", "in"):
            kind = text if text != "in" else "op"
        toks.append((kind, text))
    toks.append(("eof", ""))
    return toks


# --------------------------------------------------------------- parser

class _Parser:
    def __init__(self, src):
        self.src = src
        self.toks = _lex(src)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self, text=None):
        tok = self.toks[self.i]
        if text is not None and tok[1] != text:
            raise CelSyntaxError("expected %r, got %r in %r" % (text, tok[1], self.src))
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        if self.peek()[0] != "eof":
            raise CelSyntaxError("trailing %r in %r" % (self.peek()[1], self.src))
        return node

    def expr(self):
        cond = self.or_()
        if self.peek()[1] == "?":
            self.take("?")
            a = self.or_()
            self.take(":")
            b = self.expr()
            return ("cond", cond, a, b)
        return cond

    def or_(self):
        node = self.and_()
        while self.peek()[1] == "||":
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self):
        node = self.rel()
        while self.peek()[1] == "&&":
            self.take()
            node = ("and", node, self.rel())
        return node

    def rel(self):
        node = self.unary()
        while self.peek()[1] in ("==", "!=", "<", "<=", ">", ">=", "in"):
            op = self.take()[1]
            node = ("rel", op, node, self.unary())
        return node

    def unary(self):
        t = self.peek()[1]
        if t == "!":
            self.take()
            return ("not", self.unary())
        if t == "-":
            self.take()
            return ("neg", self.unary())
        return self.member()

    def member(self):
        node = self.primary()
        while True:
            t = self.peek()[1]
            if t == ".":
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise CelSyntaxError("field name expected in %r" % self.src)
                if self.peek()[1] == "(":
                    node = self.call(name, node)
                else:
                    node = ("select", node, name)
            elif t == "[":
                self.take()
                idx = self.expr()
                self.take("]")
                node = ("index", node, idx)
            else:
                return node

    def args(self):
        self.take("(")
        out = []
        if self.peek()[1] != ")":
            out.append(self.expr())
            while self.peek()[1] == ",":
                self.take()
                out.append(self.expr())
        self.take(")")
        return out

    def call(self, name, target):
        if name in ("all", "exists") and target is not None:
            self.take("(")
            kind, var = self.take()
            if kind != "ident":
                raise CelSyntaxError("%s() needs a variable in %r" % (name, self.src))
            self.take(",")
            pred = self.expr()
            self.take(")")
            return ("macro", name, target, var, pred)
        args = self.args()
        if name == "has" and target is None:
            if len(args) != 1 or args[0][0] != "select":
                raise CelSyntaxError("has() needs a field selection in %r" % self.src)
            return ("has", args[0][1], args[0][2])
        if target is not None:
            args = [target] + args
        want = _FUNCS.get(name)
        if want is None:
            raise CelSyntaxError("function %s() is outside the subset" % name)
        if len(args) != want[0]:
            raise CelSyntaxError("%s() takes %d argument(s)" % (name, want[0]))
        return ("call", name, args)

    def primary(self):
        kind, text = self.take()
        if kind == "int":
            return ("lit", int(text))
        if kind == "str":
            return ("lit", _unquote(text))
        if kind in ("true", "false"):
            return ("lit", kind == "true")
        if kind == "null":
            return ("lit", None)
        if kind == "ident":
            if self.peek()[1] == "(":
                return self.call(text, None)
            return ("ident", text)
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        if text == "[":
            items = []
            if self.peek()[1] != "]":
                items.append(self.expr())
                while self.peek()[1] == ",":
                    self.take()
                    items.append(self.expr())
            self.take("]")
            return ("list", items)
        raise CelSyntaxError("unexpected %r in %r" % (text, self.src))


# ------------------------------------------------------------ evaluator

def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, Duration):
        return "duration"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    if v is None:
        return "null"
    raise CelError("unsupported value %r" % (v,))


def _size(v):
    if _kind(v) in ("string", "bytes", "list", "map"):
        return len(v)
    raise CelError("no size() for %s" % _kind(v))


def _str_fn(fn):
    def wrapped(a, b):
        if _kind(a) != "string" or _kind(b) != "string":
            raise CelError("string function on %s, %s" % (_kind(a), _kind(b)))
        return fn(a, b)
    return wrapped


def _to_bytes(v):
    if _kind(v) == "string":
        return v.encode("utf-8")
    if _kind(v) == "bytes":
        return v
    raise CelError("bytes() of %s" % _kind(v))


def _to_int(v):
    k = _kind(v)
    if k == "int":
        return v
    if k == "string":
        try:
            return int(v, 10)
        except ValueError:
            raise CelError("int() of %r" % v) from None
    raise CelError("int() of %s" % k)


def _to_string(v):
    k = _kind(v)
    if k == "string":
        return v
    if k == "int":
        return str(v)
    if k == "bool":
        return "true" if v else "false"
    if k == "bytes":
        return v.decode("utf-8")
    raise CelError("string() of %s" % k)


def _to_duration(v):
    if _kind(v) == "duration":
        return v
    if _kind(v) != "string":
        raise CelError("duration() of %s" % _kind(v))
    return Duration(parse_go_duration(v))


_FUNCS = {
    "size": (1, _size),
    "startsWith": (2, _str_fn(lambda a, b: a.startswith(b))),
    "endsWith": (2, _str_fn(lambda a, b: a.endswith(b))),
    "contains": (2, _str_fn(lambda a, b: b in a)),
    "matches": (2, _str_fn(lambda a, b: re.search(b, a) is not None)),
    "bytes": (1, _to_bytes),
    "int": (1, _to_int),
    "string": (1, _to_string),
    "duration": (1, _to_duration),
}


def _equal(a, b):
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if "null" in (ka, kb):
            return False
        raise CelError("no such overload: %s == %s" % (ka, kb))
    if ka == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if ka == "map":
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _order(a, b):
    ka, kb = _kind(a), _kind(b)
    if ka != kb or ka not in ("int", "string", "bytes", "duration", "bool"):
        raise CelError("no such overload: %s < %s" % (ka, kb))
    if ka == "duration":
        a, b = a.ns, b.ns
    return (a > b) - (a < b)


def _bool(v):
    if _kind(v) != "bool":
        raise CelError("expected bool, got %s" % _kind(v))
    return v


def _eval(node, env):
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "ident":
        if node[1] not in env:
            raise CelError("undeclared reference to %r" % node[1])
        return env[node[1]]
    if op == "list":
        return [_eval(n, env) for n in node[1]]
    if op == "select":
        target = _eval(node[1], env)
        if _kind(target) != "map":
            raise CelError("select %r on %s" % (node[2], _kind(target)))
        if node[2] not in target:
            raise CelError("no such key: %s" % node[2])
        return target[node[2]]
    if op == "has":
        target = _eval(node[1], env)
        if _kind(target) != "map":
            raise CelError("has() on %s" % _kind(target))
        return node[2] in target
    if op == "index":
        target = _eval(node[1], env)
        key = _eval(node[2], env)
        if _kind(target) == "list":
            if _kind(key) != "int":
                raise CelError("list index must be int")
            if not 0 <= key < len(target):
                raise CelError("index out of range: %d" % key)
            return target[key]
        if _kind(target) == "map":
            if _kind(key) != "string" or key not in target:
                raise CelError("no such key: %r" % (key,))
            return target[key]
        raise CelError("index on %s" % _kind(target))
    if op == "not":
        return not _bool(_eval(node[1], env))
    if op == "neg":
        v = _eval(node[1], env)
        if _kind(v) != "int":
            raise CelError("-%s" % _kind(v))
        return -v
    if op in ("and", "or"):
        decisive = op == "or"      # true decides ||, false decides &&
        results = []
        for side in node[1:]:
            try:
                v = _bool(_eval(side, env))
            except CelError as err:
                results.append(err)
                continue
            if v is decisive:
                return decisive
            results.append(v)
        for r in results:
            if isinstance(r, CelError):
                raise r
        return not decisive
    if op == "cond":
        return _eval(node[2] if _bool(_eval(node[1], env)) else node[3], env)
    if op == "rel":
        rel, a, b = node[1], _eval(node[2], env), _eval(node[3], env)
        if rel == "==":
            return _equal(a, b)
        if rel == "!=":
            return not _equal(a, b)
        if rel == "in":
            if _kind(b) == "list":
                return any(_kind(x) == _kind(a) and _equal(a, x) for x in b)
            if _kind(b) == "map":
                return a in b
            raise CelError("in on %s" % _kind(b))
        c = _order(a, b)
        return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[rel]
    if op == "call":
        args = [_eval(a, env) for a in node[2]]
        return _FUNCS[node[1]][1](*args)
    if op == "macro":
        name, target, var, pred = node[1], _eval(node[2], env), node[3], node[4]
        if _kind(target) == "list":
            elems = target
        elif _kind(target) == "map":
            elems = list(target.keys())
        else:
            raise CelError("%s() on %s" % (name, _kind(target)))
        decisive = name == "exists"
        err = None
        for e in elems:
            try:
                v = _bool(_eval(pred, dict(env, **{var: e})))
            except CelError as exc:
                err = err or exc
                continue
            if v is decisive:
                return decisive
        if err:
            raise err
        return not decisive
    raise CelSyntaxError("unknown node %r" % (op,))


def compile_rule(src):
    """Parse src; raise CelSyntaxError when it is outside the subset."""
    return _Parser(src).parse()


def evaluate(src_or_ast, **env):
    """Evaluate a rule with the given variables (self=..., oldSelf=...)."""
    ast = compile_rule(src_or_ast) if isinstance(src_or_ast, str) else src_or_ast
    return _eval(ast, env)
