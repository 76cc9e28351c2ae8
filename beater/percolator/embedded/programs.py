"""Native programs: a verification form as the native core (``_core.c``) runs it.

With the optional native module the presearcher mirrors each verified query's form
(:mod:`.verification`) in the core as a program of nested tagged tuples, keys as the
core's integer key ids.  Each tag is evaluated there as :func:`.verification.verify`
evaluates the form; what has no tag of its own is called back in Python.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

from beater.percolator.embedded.verification import BoolForm, Form, GuardForm, PatternForm, PhraseForm, RangeForm

# Tags of the native core's verification programs (_core.c, "verification programs"). The mode of a
# P_PATTERN is its PatternForm's native_mode (verification.PATTERN_PREFIX or PATTERN_GLOB).
P_CONST, P_KEY, P_ANY, P_KEYS, P_BOOL, P_RANGE, P_PHRASE, P_PATTERN, P_GUARD, P_CALL, P_ANY_PHRASE = range(11)


def native_program(form: Form, key_id: Callable[[str], int]) -> Any:
    """``form`` as the native core's program: nested tagged tuples, keys as ``key_id`` numbers.

    Each tag is evaluated there as :func:`verify` evaluates the form; what has no tag of its own
    (sloppy phrases, escaped wildcards, compiled predicates) is called back as ``form(doc)``.
    """
    t = type(form)
    ids = lambda keys: [key_id(k) for k in keys]  # noqa: E731
    if t is bool:
        return (P_CONST, form)
    if t is str:
        return (P_KEY, key_id(form))
    if t is frozenset:
        return (P_ANY, ids(form))
    if t is tuple:
        return (P_KEYS, ids(form[0]), ids(form[1]), [ids(group) for group in form[2]])
    if t is BoolForm:
        return (
            P_BOOL, ids(form.req_keys), ids(form.forb_keys), [ids(group) for group in form.req_any],
            [native_program(f, key_id) for f in form.req], [native_program(f, key_id) for f in form.forb],
            [native_program(f, key_id) for f in form.opt], form.need,
        )
    if t is GuardForm:
        inner: Tuple[Any, ...]
        if form.phrase is not None:  # a phrase on every field: the text fields' positions there
            inner = (P_ANY_PHRASE, key_id(form.escape), form.phrase, form.inner)
        else:
            inner = (P_CALL, form.inner)
        return (P_GUARD, key_id(form.escape), ids(form.need_all), ids(form.need_any), inner)
    if t is RangeForm:
        return (P_RANGE, form.field, form.low, form.high)
    if t is PhraseForm and form.slop == 0:
        return (P_PHRASE, form.field, tuple(form.tokens))
    if t is PatternForm and form.native_mode is not None:
        field = "" if form.kind is None else form.field
        return (P_PATTERN, form.native_mode, form.kind is None, field, form.start, form.lower_start, form.value, form.lower_value)
    return (P_CALL, form)
