"""infra/main.bicep as data: its parameters, variables and resources, parsed by checkov's own Bicep
parser (pycep), and a small evaluator for the expressions the template uses.

Runs in the checkov venv that infra/scan.sh sets up (pycep comes with checkov). Used by
infra/check_types.py (property names and value types against the ARM type definitions) and by
infra/tests/ (what the template does for given parameters).

pycep's own JSON output drops the quotes that tell a string literal from a name, so this module
reads its syntax tree instead: `'text'` is a literal, `text` a reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Token, Tree
from pycep import BicepParser

MAIN = Path(__file__).resolve().parent / "main.bicep"


# --- expressions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lit:
    """A literal: str (unquoted), int, bool or None (null). `interpolated` strings have `${...}`."""
    value: Any
    interpolated: bool = False


@dataclass(frozen=True)
class Ref:
    """A name: parameter, variable, resource, or loop variable."""
    name: str


@dataclass
class Obj:
    """An object literal: key -> expression, in order. Keys that are interpolated stay as written."""
    pairs: dict[str, Any]
    line: int = 0


@dataclass
class Arr:
    items: list[Any]


@dataclass
class Cond:
    condition: Any
    if_true: Any
    if_false: Any


@dataclass
class Call:
    """A function call; `name` is pycep's rule name (`concat`, `json_func`, `subscription_resource_id`)."""
    name: str
    args: list[Any]


@dataclass
class Prop:
    """`base.a.b`: a property path on an expression."""
    base: Any
    path: list[str]


@dataclass
class Index:
    base: Any
    index: Any


@dataclass
class Op:
    """Any other operator (`not_op`, `equals`, `and`, `or`, `greater_than`, `minus`, ...)."""
    name: str
    operands: list[Any]


@dataclass
class Unknown:
    """A construct this model does not read; checks skip it."""
    text: str


def _token_text(tok: Token) -> Any:
    text = str(tok)
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        inner = text[1:-1].replace("\\'", "'")
        return Lit(inner, interpolated="${" in inner)
    return Ref(text)


def _names(node: Any) -> list[str]:
    if isinstance(node, Token):
        return [str(node)]
    if node.data == "operator":
        return _names(node.children[0])
    if node.data == "property_accessor":
        return _names(node.children[0]) + _names(node.children[1])
    if node.data == "string":
        return [str(node.children[0])]
    return [f"<{node.data}>"]


def expr(node: Any) -> Any:
    """Turns a pycep tree node into the classes above."""
    if node is None:
        return None
    if isinstance(node, Token):
        return _token_text(node)
    assert isinstance(node, Tree)
    kind = node.data
    kids = [c for c in node.children]
    if kind == "string":
        return _token_text(kids[0])
    if kind == "int":
        return Lit(int(str(kids[0])))
    if kind == "true":
        return Lit(True)
    if kind == "false":
        return Lit(False)
    if kind == "null":
        return Lit(None)
    if kind == "object":
        pairs: dict[str, Any] = {}
        for pair in kids:
            if not isinstance(pair, Tree) or pair.data != "pair":
                continue
            key_tree, value = pair.children[0], pair.children[1]
            key = str(key_tree.children[0]) if isinstance(key_tree, Tree) else str(key_tree)
            if len(key) >= 2 and key[0] == "'" and key[-1] == "'":
                key = key[1:-1]
            pairs[key] = expr(value)
        line = getattr(node.meta, "line", 0) if not node.meta.empty else 0
        return Obj(pairs, line)
    if kind == "array":
        return Arr([expr(k) for k in kids if k is not None])
    if kind == "operator":
        return expr(kids[0])
    if kind == "conditional":
        return Cond(expr(kids[0]), expr(kids[1]), expr(kids[2]))
    if kind == "property_accessor":
        # `a.b.c` comes right-nested, as (a, (b, c)).
        return Prop(expr(kids[0]), _names(kids[1]))
    if kind == "index_accessor":
        return Index(expr(kids[0]), expr(kids[1]))
    if kind == "function":
        call = kids[0]
        if isinstance(call, Tree):
            return Call(call.data, [expr(a) for a in call.children if a is not None])
        return Unknown(str(call))
    if kind == "parentheses" or kind == "paren":
        return expr(kids[0])
    return Op(kind, [expr(k) for k in kids if k is not None])


# --- the template ---------------------------------------------------------------------------------

@dataclass
class Param:
    name: str
    type: str
    default: Any
    allowed: list[Any] | None
    min_value: int | None = None
    max_value: int | None = None


@dataclass
class Resource:
    symbol: str
    type: str  # Microsoft.Web/sites
    api_version: str
    body: Obj
    condition: Any = None  # `if (...)`
    loop_var: str | None = None
    loop_over: Any = None
    existing: bool = False


@dataclass
class Template:
    params: dict[str, Param] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)


def _decorators(tree: Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in tree.children:
        if isinstance(child, Tree):
            value = child.children[0] if child.children else None
            out[child.data] = expr(value) if isinstance(value, (Tree, Token)) else value
    return out


def load(text: str | None = None) -> Template:
    """Parses main.bicep (or `text`)."""
    tree = BicepParser()._create_tree(text=text if text is not None else MAIN.read_text(), file_path=None)
    template = Template()
    for node in tree.children:
        if not isinstance(node, Tree):
            continue
        kids = node.children
        if node.data == "param":
            decos = _decorators(kids[0]) if isinstance(kids[0], Tree) and kids[0].data == "decorator" else {}
            name = str(kids[1])
            ptype = str(kids[2].children[0])
            default = expr(kids[3]) if len(kids) > 3 else None
            allowed = decos.get("deco_allowed")
            template.params[name] = Param(
                name, ptype, default,
                [i.value for i in allowed.items] if isinstance(allowed, Arr) else None,
                _int(decos.get("deco_min_val")), _int(decos.get("deco_max_val")),
            )
        elif node.data == "var":
            template.variables[str(kids[1])] = expr(kids[2])
        elif node.data == "resource":
            symbol = str(kids[1])
            type_api = str(kids[2].children[0]).strip("'")
            rtype, version = type_api.rsplit("@", 1)
            existing = kids[3] is not None
            spec = kids[4]
            resource = Resource(symbol, rtype, version, Obj({}), existing=existing)
            if isinstance(spec, Tree) and spec.data == "loop":
                loop_array = spec.children[0]
                resource.loop_var = str(loop_array.children[0])
                resource.loop_over = expr(loop_array.children[1])
                spec = spec.children[-1]
            if isinstance(spec, Tree) and spec.data == "deploy_condition":
                resource.condition = expr(spec.children[0])
                spec = spec.children[1]
            body = expr(spec)
            resource.body = body if isinstance(body, Obj) else Obj({})
            template.resources[symbol] = resource
    return template


def _int(value: Any) -> int | None:
    if isinstance(value, Lit):
        return value.value
    if isinstance(value, Op) and value.name == "minus" and value.operands and isinstance(value.operands[0], Lit):
        return -value.operands[0].value
    if isinstance(value, (int, Token)):
        return int(str(value))
    return None


# --- evaluation -----------------------------------------------------------------------------------

class Refused(Exception):
    """The template refuses the parameters: ARM would fail the deployment with this message."""


class Unevaluable(Exception):
    """An expression this evaluator cannot compute (a resource property known only at deployment)."""


def evaluate(template: Template, node: Any, params: dict[str, Any], scope: dict[str, Any] | None = None) -> Any:
    """Computes `node` for the given parameter values (defaults fill the rest)."""
    scope = scope or {}

    def ev(n: Any) -> Any:
        if isinstance(n, Lit):
            if n.interpolated:
                raise Unevaluable(n.value)
            return n.value
        if isinstance(n, Ref):
            if n.name in scope:
                return scope[n.name]
            if n.name in params:
                return params[n.name]
            if n.name in template.params:
                return ev(template.params[n.name].default)
            if n.name in template.variables:
                return ev(template.variables[n.name])
            raise Unevaluable(n.name)
        if isinstance(n, Obj):
            return {k: ev(v) for k, v in n.pairs.items()}
        if isinstance(n, Arr):
            return [ev(i) for i in n.items]
        if isinstance(n, Cond):
            return ev(n.if_true) if ev(n.condition) else ev(n.if_false)
        if isinstance(n, Index):
            base = ev(n.base)
            key = ev(n.index)
            if isinstance(base, _Anything):
                raise Refused(str(key))
            try:
                return base[key]
            except (KeyError, IndexError, TypeError):
                raise Refused(f"{key}") from None
        if isinstance(n, Prop):
            value = ev(n.base)
            for part in n.path:
                if isinstance(value, _Anything) or not isinstance(value, dict) or part not in value:
                    raise Refused(part)
                value = value[part]
            return value
        if isinstance(n, Call):
            args = [ev(a) for a in n.args]
            functions = {
                "contains": lambda c, v: v in c,
                "starts_with": lambda s, p: str(s).lower().startswith(str(p).lower()),
                "empty": lambda v: not v,
                "concat": lambda *xs: sum(xs, []) if all(isinstance(x, list) for x in xs) else "".join(map(str, xs)),
                "json_func": lambda text: _Anything() if text.strip() == "{}" else __import__("json").loads(text),
                "any_func": lambda v: v,
            }
            if n.name not in functions:
                raise Unevaluable(n.name)
            return functions[n.name](*args)
        if isinstance(n, Op):
            ops = n.operands
            if n.name == "not_op":
                return not ev(ops[0])
            if n.name == "equals":
                return ev(ops[0]) == ev(ops[1])
            if n.name == "not_equals":
                return ev(ops[0]) != ev(ops[1])
            if n.name in ("and", "and_op"):
                return ev(ops[0]) and ev(ops[1])
            if n.name in ("or", "or_op"):
                return ev(ops[0]) or ev(ops[1])
            if n.name == "greater_than":
                return ev(ops[0]) > ev(ops[1])
            if n.name == "minus" and len(ops) == 1:
                return -ev(ops[0])
            raise Unevaluable(n.name)
        raise Unevaluable(repr(n))

    return ev(node)


class _Anything(dict):
    """`any(json('{}'))`: an empty object whose every property access fails, naming the property."""
