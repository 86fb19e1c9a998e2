"""Condition operators, policy variables and wildcard matching, with AWS's semantics.

References: IAM User Guide, "Condition operators", "Single-valued vs. multivalued context
keys", "Policy variables".

- Context keys are matched case-insensitively; values keep their case.
- Values listed for one key are OR-ed; keys of one operator and operators of one block are
  AND-ed. A negated operator (``StringNotEquals``...) is true when the context value matches
  none of the listed values.
- Missing key: positive operators are false, negated operators are true, ``...IfExists`` is
  true, ``Null`` tests presence; ``ForAllValues`` is true and ``ForAnyValue`` false.
- ``ForAllValues``: every context value satisfies the operator; ``ForAnyValue``: at least one.
  A multivalued key without a qualifier behaves as ``ForAnyValue`` for positive operators and
  as "none matches" for negated ones.
- ``StringLike`` / ``ArnLike`` / Resource / Action: ``*`` and ``?`` wildcards. Arn operators
  compare the six ARN fields one by one, so a wildcard never crosses a ``:`` before the
  resource part.
- Policy variables ``${key}``, ``${key, 'default'}``, ``${*}``, ``${?}``, ``${$}`` are replaced
  (as literal text, never as wildcards) only when the policy Version is 2012-10-17. A variable
  whose key is missing (and has no default) makes the comparison fail.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from kms.iam.policy import Condition

__all__ = ["Context", "normalize_context", "lookup", "substitute", "wildcard_match",
           "arn_match", "evaluate_condition", "conditions_hold", "NEGATED"]

# Context after normalisation: lower-cased key -> str (single-valued) or tuple[str, ...].
Context = Mapping[str, "str | tuple[str, ...]"]

NEGATED = {
    "StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike", "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals", "NotIpAddress": "IpAddress", "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def normalize_context(raw: Mapping[str, Any]) -> dict[str, str | tuple[str, ...]]:
    """Lower-case the keys and turn values into strings; lists/tuples/sets stay multivalued.
    ``None`` values are dropped (the key is absent)."""
    out: dict[str, str | tuple[str, ...]] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            out[key.lower()] = tuple(_str(v) for v in value)
        else:
            out[key.lower()] = _str(value)
    return out


def lookup(ctx: Context, key: str) -> str | tuple[str, ...] | None:
    return ctx.get(key.lower())


def _resolve(ctx: Context, inner: str) -> str | None:
    if inner in _SPECIAL:
        return _SPECIAL[inner]
    default = None
    m = _DEFAULT.match(inner)
    if m:
        inner, default = m.group(1), m.group(2)
    value = lookup(ctx, inner.strip())
    if isinstance(value, str):
        return value
    return default


def _pieces(pattern: str, ctx: Context | None) -> list[tuple[bool, str]] | None:
    """Split ``pattern`` into (is_literal, text) pieces: substituted variables are literal.
    None when a variable cannot be resolved."""
    if ctx is None or "${" not in pattern:
        return [(False, pattern)]
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _VARIABLE.finditer(pattern):
        out.append((False, pattern[pos:m.start()]))
        value = _resolve(ctx, m.group(1))
        if value is None:
            return None
        out.append((True, value))
        pos = m.end()
    out.append((False, pattern[pos:]))
    return out


def substitute(text: str, ctx: Context | None) -> str | None:
    """``text`` with its policy variables replaced; None if one cannot be resolved."""
    pieces = _pieces(text, ctx)
    return None if pieces is None else "".join(p for _, p in pieces)


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _regex(pattern: str, ctx: Context | None) -> str | None:
    pieces = _pieces(pattern, ctx)
    if pieces is None:
        return None
    return "".join(re.escape(t) if literal else _glob(t) for literal, t in pieces)


def wildcard_match(pattern: str, value: str, *, ctx: Context | None = None,
                   ignore_case: bool = False) -> bool:
    """``*`` / ``?`` glob over the whole of ``value``; variables from ``ctx`` when given."""
    rx = _regex(pattern, ctx)
    if rx is None:
        return False
    return re.fullmatch(rx, value, re.S | (re.I if ignore_case else 0)) is not None


def arn_match(pattern: str, value: str, *, ctx: Context | None = None) -> bool:
    """ArnLike / ArnEquals: field by field; the resource field may contain ``:``."""
    if pattern == "*":
        return True
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(wildcard_match(p, v, ctx=ctx) for p, v in zip(p_parts, v_parts))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    n = _number(text)
    if n is not None:
        return n
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _compare(parse: Callable[[str], float | None], test: Callable[[float, float], bool]):
    def op(ctx_value: str, policy_value: str, _ctx: Context | None) -> bool:
        a, b = parse(ctx_value), parse(policy_value)
        return a is not None and b is not None and test(a, b)
    return op


def _ip(ctx_value: str, policy_value: str, _ctx: Context | None) -> bool:
    try:
        addr = ipaddress.ip_address(ctx_value.strip())
        net = ipaddress.ip_network(policy_value.strip(), strict=False)
    except ValueError:
        return False
    return addr.version == net.version and addr in net


def _string_equals(ctx_value: str, policy_value: str, ctx: Context | None) -> bool:
    expected = substitute(policy_value, ctx)
    return expected is not None and expected == ctx_value


def _string_equals_ic(ctx_value: str, policy_value: str, ctx: Context | None) -> bool:
    expected = substitute(policy_value, ctx)
    return expected is not None and expected.casefold() == ctx_value.casefold()


_POSITIVE: dict[str, Callable[[str, str, Context | None], bool]] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ic,
    "StringLike": lambda c, p, ctx: wildcard_match(p, c, ctx=ctx),
    "NumericEquals": _compare(_number, lambda a, b: a == b),
    "NumericLessThan": _compare(_number, lambda a, b: a < b),
    "NumericLessThanEquals": _compare(_number, lambda a, b: a <= b),
    "NumericGreaterThan": _compare(_number, lambda a, b: a > b),
    "NumericGreaterThanEquals": _compare(_number, lambda a, b: a >= b),
    "DateEquals": _compare(_date, lambda a, b: a == b),
    "DateLessThan": _compare(_date, lambda a, b: a < b),
    "DateLessThanEquals": _compare(_date, lambda a, b: a <= b),
    "DateGreaterThan": _compare(_date, lambda a, b: a > b),
    "DateGreaterThanEquals": _compare(_date, lambda a, b: a >= b),
    "Bool": lambda c, p, _ctx: c.lower() == p.lower(),
    "BinaryEquals": lambda c, p, _ctx: c == p,
    "IpAddress": _ip,
    "ArnEquals": lambda c, p, ctx: arn_match(p, c, ctx=ctx),
    "ArnLike": lambda c, p, ctx: arn_match(p, c, ctx=ctx),
}


def _one(cond: Condition, value: str, ctx: Context | None) -> bool:
    """Does one context value satisfy the condition (OR over values; NOR when negated)?"""
    base = NEGATED.get(cond.operator, cond.operator)
    fn = _POSITIVE[base]
    hit = any(fn(value, pv, ctx) for pv in cond.values)
    return not hit if cond.operator in NEGATED else hit


def evaluate_condition(cond: Condition, ctx: Context, *, variables: bool = True) -> bool:
    """True when ``cond`` holds for the request context ``ctx`` (normalised)."""
    value = lookup(ctx, cond.key)
    if cond.operator == "Null":
        missing = value is None or value == ()
        return any((pv.lower() == "true") == missing for pv in cond.values)
    vctx = ctx if variables else None
    if value is None or value == ():
        if cond.qualifier == "ForAllValues":
            return True
        if cond.qualifier == "ForAnyValue":
            return False
        return cond.if_exists or cond.operator in NEGATED
    values: Iterable[str] = (value,) if isinstance(value, str) else value
    if cond.qualifier == "ForAllValues":
        return all(_one(cond, v, vctx) for v in values)
    if cond.qualifier == "ForAnyValue":
        return any(_one(cond, v, vctx) for v in values)
    if isinstance(value, str):
        return _one(cond, value, vctx)
    # A multivalued key without a set qualifier: any value for positive operators, none of
    # them for negated ones.
    if cond.operator in NEGATED:
        return all(_one(cond, v, vctx) for v in values)
    return any(_one(cond, v, vctx) for v in values)


def conditions_hold(conditions: Iterable[Condition], ctx: Context, *,
                    variables: bool = True) -> bool:
    return all(evaluate_condition(c, ctx, variables=variables) for c in conditions)
