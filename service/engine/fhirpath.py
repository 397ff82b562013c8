"""FHIRPath for rule files, checked strictly at load: an expression that does not parse, calls a function that
does not exist (or with the wrong number of arguments), or names an element the resource type does not have is a
rule-set error, never a criterion that is quietly always false.

fhirpathpy's own `compile` recovers from syntax errors (a missing `)` compiles) and reports unknown functions
only when evaluated, so the parse here uses its grammar with an error listener that raises.
"""

from __future__ import annotations

import re
import typing
from functools import cache
from typing import Any, cast

from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import ParseTreeWalker
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

Node = dict[str, Any]
_UNKNOWN = object()  # a type the check cannot follow (choice types, resolve(), ofType(...)): members not checked
_PRIMITIVE = object()
# Functions whose argument is evaluated on each item of the input, so its paths start from the item's type.
_ITEM_FUNCTIONS = frozenset({"where", "exists", "all", "select", "repeat", "any", "count", "iif", "aggregate"})
# Functions that keep the input's type; every other function's result is not followed.
_SAME_TYPE = frozenset({"where", "first", "last", "tail", "skip", "take", "distinct", "single", "intersect", "exclude"})
_TOP_NAMES = frozenset({"$this", "%resource", "%context", "%ucum", "%sct", "%loinc"})


class FhirPathError(ValueError):
    """Why an expression cannot be served."""


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(  # noqa: N802 - ANTLR's name
        self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise FhirPathError(f"syntax error at column {column + 1}: {msg}")


def parse_strict(expression: str) -> Node:
    """The expression's AST (fhirpathpy's shape); raises FhirPathError on any syntax error or trailing text."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    tree = parser.expression()
    trailing = parser.getCurrentToken()
    if trailing is not None and trailing.type != Token.EOF:
        raise FhirPathError(f"unexpected {trailing.text!r} at column {trailing.column + 1}")
    listener = ASTPathListener()  # type: ignore[no-untyped-call]
    ParseTreeWalker().walk(listener, tree)
    root: Node = listener.parentStack[0]
    return root


@cache
def _model(name: str) -> Any:
    try:
        return get_fhir_model_class(name)
    except (KeyError, ValueError):
        return None


def _element_type(annotation: Any) -> Any:
    """The FHIR type an element holds: a model class, _PRIMITIVE, or _UNKNOWN."""
    name = getattr(annotation, "__name__", "")
    if name.endswith("Type") and name != "NoneType":
        return _model(name[: -len("Type")]) or _UNKNOWN
    for arg in typing.get_args(annotation):  # Optional[...], List[...], Annotated[...]
        found = _element_type(arg)
        if found is not _PRIMITIVE:
            return found
    return _PRIMITIVE


def _member(model: Any, name: str) -> Any:
    """The type of `model.name`, or raise FhirPathError naming the element."""
    if model is _UNKNOWN:
        return _UNKNOWN
    if model is _PRIMITIVE:
        if name in ("extension", "id"):
            return _UNKNOWN
        raise FhirPathError(f"{name!r}: a primitive value has no elements")
    fields = {(f.alias or n): f for n, f in model.model_fields.items() if not n.endswith("__ext")}
    if name in fields:
        return _element_type(fields[name].annotation)
    if any(re.fullmatch(rf"{re.escape(name)}[A-Z]\w*", f) for f in fields):
        return _UNKNOWN  # a choice element (value[x]): its type depends on the data
    raise FhirPathError(f"{model.__name__} has no element {name!r}")


def _identifier(node: Node) -> str | None:
    """The name of a MemberInvocation / Identifier node."""
    for child in node.get("children") or []:
        if child.get("type") == "Identifier":
            return str(child.get("text"))
        found = _identifier(child)
        if found is not None:
            return found
    text = node.get("text")
    return str(text) if node.get("type") == "Identifier" and text else None


def _function(node: Node) -> tuple[str, list[Node]]:
    functn = next(c for c in node.get("children") or [] if c.get("type") == "Functn")
    children = functn.get("children") or []
    name = str(next(c.get("text") for c in children if c.get("type") == "Identifier"))
    params = next((c.get("children") or [] for c in children if c.get("type") == "ParamList"), [])
    return name, params


def _check_function(name: str, params: list[Node]) -> None:
    entry = cast("dict[str, Any] | None", invocation_registry.get(name))
    if entry is None:
        raise FhirPathError(f"unknown function {name}()")
    arities = entry.get("arity", {0: []})
    if len(params) not in arities:
        allowed = " or ".join(str(n) for n in sorted(arities))
        raise FhirPathError(f"{name}() takes {allowed} argument(s), not {len(params)}")


def _check(node: Node, focus: Any, resource_type: str) -> Any:
    """Check `node` evaluated on `focus`; return the type it yields (_UNKNOWN when it cannot be followed)."""
    kind = node.get("type")
    children = node.get("children") or []
    if kind == "InvocationExpression":
        left = _check(children[0], focus, resource_type)
        return _invoke(children[1], left, focus, resource_type)
    if kind == "TermExpression":
        return _check(children[0], focus, resource_type)
    if kind == "InvocationTerm":
        return _invoke(children[0], focus, focus, resource_type, first=True)
    if kind in ("MemberInvocation", "FunctionInvocation", "ThisInvocation"):
        return _invoke(node, focus, focus, resource_type, first=True)
    for child in children:  # operators, literals, parentheses: check each side from the same focus
        _check(child, focus, resource_type)
    return _UNKNOWN


def _invoke(node: Node, left: Any, focus: Any, resource_type: str, *, first: bool = False) -> Any:
    kind = node.get("type")
    if kind == "MemberInvocation":
        name = _identifier(node) or ""
        if first and name == resource_type:
            return left  # `Condition.code` on a Condition
        if name.startswith(("$", "%")) or name in _TOP_NAMES:
            return _UNKNOWN
        return _member(left, name.strip("`"))
    if kind == "FunctionInvocation":
        name, params = _function(node)
        _check_function(name, params)
        for param in params:
            _check(param, left if name in _ITEM_FUNCTIONS else focus, resource_type)
        return left if name in _SAME_TYPE else _UNKNOWN
    return _UNKNOWN  # $this, $index, $total, an indexer


def check_expression(expression: str, resource_type: str) -> None:
    """Raise FhirPathError when `expression` cannot be a working criterion on `resource_type`."""
    model = _model(resource_type)
    if model is None:
        raise FhirPathError(f"unknown resource type {resource_type!r}")
    ast = parse_strict(expression)
    for child in ast.get("children") or []:
        _check(child, model, resource_type)
