"""Generated hot paths for one object class.

For each class rollsafe writes Python source once (``__init__``, a setter per
field, the current-version encoder and decoder, and change tracking), with
the common checks inlined, compiles it, and registers the source in
:mod:`linecache` so tracebacks and debuggers show the generated lines.
Everything unusual falls back to the field type's methods.
"""

from __future__ import annotations

import datetime as _dt
import linecache
import operator
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rollsafe.errors import (
    DecodeError,
    MissingFieldError,
    ReadOnlyFieldError,
    field_path,
    short_repr,
)
from rollsafe.objects.fields import MISSING, Field
from rollsafe.objects.types import (
    DateTimeType,
    DictType,
    EnumType,
    FieldType,
    ListType,
    NullableType,
    ObjectType,
    SetType,
)

if TYPE_CHECKING:
    from rollsafe.objects.base import ClassInfo, VersionedObject

__all__ = ["install", "iter_objects"]


def iter_objects(ftype: FieldType, value: Any) -> Iterator[VersionedObject]:
    """Every object held in ``value`` (of type ``ftype``), one level deep."""
    if value is None:
        return
    if isinstance(ftype, NullableType):
        yield from iter_objects(ftype.inner, value)
    elif isinstance(ftype, ObjectType):
        yield value
    elif isinstance(ftype, ListType | SetType):
        for item in value:
            yield from iter_objects(ftype.item, item)
    elif isinstance(ftype, DictType):
        for item in value.values():
            yield from iter_objects(ftype.item, item)


def _unknown_field(data: dict[Any, Any], known: frozenset[str], path: str, what: str) -> None:
    for key in data:
        if key not in known:
            where = field_path(path, key) if type(key) is str else path
            raise DecodeError(where, f"unknown field {short_repr(key)} for {what}")


def _any_changed(objects: list[Any]) -> bool:
    # A plain loop: measurably faster than any() over a generator here.
    for obj in objects:  # noqa: SIM110
        if obj._rs_has_changes():
            return True
    return False


def _list_of_objects(ftype: FieldType) -> type | None:
    if isinstance(ftype, ListType) and isinstance(ftype.item, ObjectType):
        return ftype.item.cls
    return None


def _is_object(ftype: FieldType) -> bool:
    return isinstance(ftype.inner if isinstance(ftype, NullableType) else ftype, ObjectType)


def install(info: ClassInfo) -> None:
    """Generate and attach the hot paths of ``info.cls``."""
    cls = info.cls
    cname = info.name
    fields = info.fields
    g: dict[str, Any] = {
        "_M": MISSING,
        "_UUID": uuid.UUID,
        "_datetime": _dt.datetime,
        "_timezone": _dt.timezone,
        "_utc": _dt.UTC,
        "_new": object.__new__,
        "_cls": cls,
        "_ALL": frozenset(fields),
        "_KNOWN": frozenset(fields),
        "_MissingFieldError": MissingFieldError,
        "_ReadOnlyFieldError": ReadOnlyFieldError,
        "_DecodeError": DecodeError,
        "_unknown_field": _unknown_field,
        "_iter_objects": iter_objects,
        "_WHAT": f"{cname} {info.current.number}",
        "_NAME": cname,
        "_CUR": info.current.number,
        "_CURV": info.current,
        "_info": info,
        "_SORTED_ALL": sorted(fields),
        "_any_changed": _any_changed,
        "_K_NAME": info.registry.key_name,
        "_K_NS": info.registry.key_namespace,
        "_K_VER": info.registry.key_version,
        "_K_DATA": info.registry.key_data,
        "_K_CH": info.registry.key_changes,
        "_NS": info.registry.namespace,
        "_fromiso": _dt.datetime.fromisoformat,
    }
    for name, fld in fields.items():
        g[f"_t_{name}"] = fld.ftype
        g[f"_f_{name}"] = fld
        g[f"_d_{name}"] = fld.default
        inner = fld.ftype.inner if isinstance(fld.ftype, NullableType) else fld.ftype
        child = inner.cls if isinstance(inner, ObjectType) else _list_of_objects(inner)
        if child is not None:
            g[f"_C_{name}"] = child
            g[f"_I_{name}"] = child._rs_info  # type: ignore[attr-defined]
        if isinstance(inner, EnumType):
            g[f"_E_{name}"] = inner.values
        item = _item_type(fld.ftype)
        if item is not None:
            item = item.inner if isinstance(item, NullableType) else item
            if isinstance(item, ObjectType):
                g[f"_IC_{name}"] = item.cls
            elif isinstance(item, EnumType):
                g[f"_IE_{name}"] = item.values
    src: list[str] = []
    src += _init_source(cname, fields)
    src += _setter_source(cname, fields)
    src += _encode_source(fields)
    src += _envelope_source(fields)
    src += _decode_source(fields)
    src += _decode_envelope_source(fields)
    src += _tracking_source(fields)
    for index, version in enumerate(info.history.versions[:-1]):
        schema = info.schemas[version.key]
        for name, fld in schema.items():
            g[f"_o{index}_{name}"] = fld.ftype
        src += _version_encoder_source(f"_rs_encode_{index}", f"_o{index}_", schema)
    text = "\n".join(src) + "\n"
    filename = f"<rollsafe generated {cls.__module__}.{cls.__qualname__}>"
    code = compile(text, filename, "exec")
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(code, g)

    cls.__init__ = g["__init__"]  # type: ignore[method-assign]
    cls.__init__.__qualname__ = f"{cls.__qualname__}.__init__"
    for name, fld in fields.items():
        getter = operator.attrgetter(f"_v_{name}")
        setter = g[f"_set_{name}"]
        doc = f"{fld.ftype.describe()}{' (read-only)' if fld.read_only else ''}"
        setattr(cls, name, property(getter, setter, None, doc))
    for method in ("_rs_encode", "_rs_envelope", "_rs_values", "_rs_what_changed",
                   "_rs_has_changes", "_rs_snapshot", "_rs_reset"):
        setattr(cls, method, g[method])
    info.encoders = {version.key: g[f"_rs_encode_{index}"]
                     for index, version in enumerate(info.history.versions[:-1])}
    info.all_fields = g["_ALL"]
    info.decode_data = g["_rs_decode_data"]
    info.decode_fast = g["_rs_decode_fast"]


def _item_type(ftype: FieldType) -> FieldType | None:
    """The item type of a list, set or dict field; None for other fields."""
    if isinstance(ftype, ListType | SetType | DictType):
        return ftype.item
    return None


def _item_check(ftype: FieldType, var: str, name: str, wire: bool) -> str | None:
    """Source of the cheap test of one item (of type ``ftype``) of the
    container field ``name``: of a value given by code, or with ``wire``, of
    a primitive that is also the in-memory value (and its own encoding).
    None when items always take the field type's methods."""
    inner = ftype.inner if isinstance(ftype, NullableType) else ftype
    if isinstance(inner, ObjectType):
        if wire:
            return None
        check: str | None = f"type({var}) is _IC_{name}"
    elif isinstance(inner, EnumType):
        check = f"(type({var}) is str and {var} in _IE_{name})"
    elif isinstance(inner, ListType | SetType | DictType):
        return None
    elif wire:
        check = inner.fast_decode_check(var) if inner.to_prim_src(var) == var else None
    else:
        check = inner.fast_check(var)
    if check is None or inner is ftype:
        return check
    return f"({var} is None or {check})"


def _check_expr(var: str, fld: Field, name: str | None = None) -> str | None:
    """Source of the cheap validity test of scalar ``var`` for ``fld``."""
    name = name or var
    ftype = fld.ftype
    inner = ftype.inner if isinstance(ftype, NullableType) else ftype
    if isinstance(inner, EnumType | ObjectType):
        check = (f"(type({var}) is str and {var} in _E_{name})" if isinstance(inner, EnumType)
                 else f"type({var}) is _C_{name}")
        return check if inner is ftype else f"({var} is None or {check})"
    return ftype.fast_check(var)


def _parenthesized(expr: str) -> str:
    """``expr`` in parentheses, unless it already is as a whole."""
    depth = 0
    for i, char in enumerate(expr):
        depth += (char == "(") - (char == ")")
        if depth == 0 and i < len(expr) - 1:
            return f"({expr})"
    return expr


def _checked(var: str, fld: Field, name: str, fail: str, indent: str, *,
             ok: str | None = None, wire: bool = False, guard: str = "") -> list[str]:
    """Source lines running the statement ``fail`` unless ``var`` passes the
    cheap test of ``fld``'s type, and ``ok`` (if given) when it passes.

    A list, set or dict (or None, when the field is nullable) is tested item
    by item in a plain loop: for the short containers objects hold, that is
    several times faster than a C-level pass (``frozenset.issuperset(map(
    type, v))`` builds a set, ``min`` and ``max`` parse their arguments
    slowly), and no slower on long ones. ``wire`` tests a primitive instead
    (see :func:`_item_check`); ``guard`` is an extra condition on the
    container."""
    ftype = fld.ftype
    inner = ftype.inner if isinstance(ftype, NullableType) else ftype
    item = _item_type(inner)
    if item is None:
        expr = _check_expr(var, fld, name)
        if ok is None:
            return _guarded(expr, fail, indent)
        if expr is None:
            return [f"{indent}{fail}"]
        return [f"{indent}if {expr}:", f"{indent}    {ok}", f"{indent}else:", f"{indent}    {fail}"]
    check = _item_check(item, "_x", name, wire)
    if check is None:
        return [f"{indent}{fail}"]
    if isinstance(inner, DictType):
        kind, loop, check = "dict", f"for _k, _x in {var}.items():", f"type(_k) is str and {check}"
    else:
        kind, loop = "list" if isinstance(inner, ListType) else "set", f"for _x in {var}:"
    lines = []
    if inner is not ftype:
        lines += [f"{indent}if {var} is None:", f"{indent}    {ok or 'pass'}"]
    lines += [f"{indent}{'elif' if lines else 'if'} type({var}) is {kind}{guard}:",
              f"{indent}    {loop}",
              f"{indent}        if not {_parenthesized(check)}:",
              f"{indent}            {fail}",
              f"{indent}            break"]
    if ok is not None:
        lines += [f"{indent}    else:", f"{indent}        {ok}"]
    return [*lines, f"{indent}else:", f"{indent}    {fail}"]


def _guarded(check: str | None, statement: str, indent: str) -> list[str]:
    """Source lines running ``statement`` only when ``check`` is false (or
    always, when there is no cheap check)."""
    if check:
        return [f"{indent}if not {check}:", f"{indent}    {statement}"]
    return [f"{indent}{statement}"]


def _immutable_default(fld: Field) -> bool:
    return fld.has_default and fld.default_factory is None and (
        fld.default is None or not fld.ftype.mutable)


def _init_source(cname: str, fields: dict[str, Field]) -> list[str]:
    # Immutable defaults sit in the signature (validated once, at build);
    # everything else defaults to _M, which fails every fast check and so
    # lands in _slow_<name>, where defaults and errors are handled.
    params = ", ".join(f"{n}=_d_{n}" if _immutable_default(f) else f"{n}=_M"
                       for n, f in fields.items())
    lines = [f"def __init__(self, *, {params}):" if fields else "def __init__(self):"]
    for name, fld in fields.items():
        lines += _checked(name, fld, name, f"{name} = _slow_{name}({name})", "    ")
        lines.append(f"    self._v_{name} = {name}")
    lines.append("    self._rs_changed = _ALL")
    lines.append("    self._rs_baseline = None")
    for name, fld in fields.items():
        path = repr(f"{cname}.{name}")
        lines.append(f"def _slow_{name}(v):")
        lines.append("    if v is _M:")
        if not fld.has_default:
            lines.append(f"        raise _MissingFieldError({path}, "
                         "'required field not given (it has no default)')")
        elif _immutable_default(fld):
            lines.append(f"        return _d_{name}")
        else:
            lines.append(f"        return _f_{name}.make_default({path})")
        lines.append(f"    return _t_{name}.validate(v, {path})")
    return lines


def _setter_source(cname: str, fields: dict[str, Field]) -> list[str]:
    lines = []
    for name, fld in fields.items():
        path = repr(f"{cname}.{name}")
        lines.append(f"def _set_{name}(self, v):")
        if fld.read_only:
            lines.append(f"    raise _ReadOnlyFieldError({path}, "
                         "'read-only field: set it when the object is built')")
            continue
        lines += _checked("v", fld, name, f"v = _t_{name}.validate(v, {path})", "    ")
        lines.append(f"    self._v_{name} = v")
        lines.append("    ch = self._rs_changed")
        lines.append("    if ch is not _ALL:")
        lines.append(f"        ch.add({name!r})")
    return lines


def _data_items(schema: dict[str, Field], var: Callable[[str], str],
                type_prefix: str) -> list[str]:
    """Source of ``'name': <primitive of var(name)>`` for each field: the
    common types inline, the rest through the field type's ``to_prim``."""
    items = []
    for name, fld in schema.items():
        value = var(name)
        expr = fld.ftype.to_prim_src(value)
        if expr is None:
            expr = f"{type_prefix}{name}.to_prim({value}, path + {'.' + name!r}, nested)"
        items.append(f"{name!r}: {expr}")
    return items


def _encode_source(fields: dict[str, Field]) -> list[str]:
    items = _data_items(fields, lambda name: f"self._v_{name}", "_t_")
    return [
        "def _rs_encode(self, path, nested):",
        "    return {" + ", ".join(items) + "}",
        "def _rs_values(self):",
        "    return {" + ", ".join(f"{n!r}: self._v_{n}" for n in fields) + "}",
    ]


def _version_encoder_source(fname: str, prefix: str, schema: dict[str, Field]) -> list[str]:
    """An encoder of an older version's data from a values dict."""
    items = _data_items(schema, lambda name: f"values[{name!r}]", prefix)
    return [f"def {fname}(values, path, nested):", "    return {" + ", ".join(items) + "}"]


def _envelope_source(fields: dict[str, Field]) -> list[str]:
    """The fast encoder: the whole envelope at the current version, nested
    objects through their own fast encoders. Errors it raises carry no
    precise path; the caller then re-runs the precise encoder."""
    lines = ["def _rs_envelope(self):"]
    items = []
    for name, fld in fields.items():
        var = f"self._v_{name}"
        ftype = fld.ftype
        inner = ftype.inner if isinstance(ftype, NullableType) else ftype
        expr = ftype.to_prim_src(var)
        if expr is None and isinstance(inner, ObjectType):
            lines.append(f"    v = {var}")
            call = (f"(v._rs_envelope() if type(v) is _C_{name} "
                    f"else _t_{name}.to_prim(v, '', None))")
            if inner is not ftype:
                call = f"(None if v is None else {call})"
            lines.append(f"    e_{name} = {call}")
            expr = f"e_{name}"
        elif expr is None and _list_of_objects(inner) is not None and inner is ftype:
            # Every item of the exact class: each through its fast encoder.
            fail = f"e_{name} = _t_{name}.to_prim(v, '', None)"
            lines += [f"    v = {var}",
                      "    if type(v) is list:",
                      f"        e_{name} = [x._rs_envelope() for x in v if type(x) is _C_{name}]",
                      f"        if len(e_{name}) != len(v):",
                      f"            {fail}",
                      "    else:",
                      f"        {fail}"]
            expr = f"e_{name}"
        elif expr is None and isinstance(ftype, ListType | DictType) and \
                _item_check(ftype.item, "_x", name, wire=True) is not None:
            # Items that are their own encoding: a checked shallow copy.
            lines.append(f"    v = {var}")
            lines += _checked("v", fld, name, f"e_{name} = _t_{name}.to_prim(v, '', None)",
                              "    ", ok=f"e_{name} = v.copy()", wire=True)
            expr = f"e_{name}"
        elif expr is None:
            expr = f"_t_{name}.to_prim({var}, '', None)"
        items.append(f"{name!r}: {expr}")
    lines.append("    env = {_K_NAME: _NAME, _K_NS: _NS, _K_VER: _CUR, _K_DATA: {"
                 + ", ".join(items) + "}}")
    # What changed is computed only when something did: in the common case
    # (nothing changed) that costs no call and no set.
    lines += ["    ch = self._rs_changed",
              "    if ch is _ALL:",
              "        env[_K_CH] = _SORTED_ALL[:]"]
    in_place = _in_place_changes(fields)
    if in_place:
        lines += ["    else:",
                  "        b = self._rs_baseline",
                  f"        if ch or (b is not None and ({in_place})):",
                  "            env[_K_CH] = sorted(self._rs_what_changed())"]
    else:
        lines += ["    elif ch:",
                  "        env[_K_CH] = sorted(self._rs_what_changed())"]
    return [*lines, "    return env"]


def _in_place_changes(fields: dict[str, Field]) -> str:
    """Source of a test, true when a mutable field differs from its
    baseline ``b`` (empty when the class has no mutable field)."""
    mutable = [(n, f) for n, f in fields.items() if f.ftype.mutable]
    return " or ".join(_changed_expr(name, fld, f"b[{i}]") for i, (name, fld) in enumerate(mutable))


def _decode_envelope_source(fields: dict[str, Field]) -> list[str]:
    """The fast decoder of a whole envelope. Anything but a well-formed
    current-version envelope goes to the precise decoder."""
    lines = [
        "def _rs_decode_fast(prim, limits, depth):",
        # Subscripts, not dict.get: a missing key is malformed anyway, and
        # the precise decoder then says why.
        "    if type(prim) is not dict or depth > limits.max_depth:",
        "        return _info.decode(prim, _NAME, limits, depth)",
        "    try:",
        "        if prim[_K_VER] != _CUR or prim[_K_NAME] != _NAME or prim[_K_NS] != _NS:",
        "            return _info.decode(prim, _NAME, limits, depth)",
        "        data = prim[_K_DATA]",
        "    except KeyError:",
        "        return _info.decode(prim, _NAME, limits, depth)",
        "    n = len(prim)",
        "    if type(data) is not dict or (n != 4 and (n != 5 or _K_CH not in prim)):",
        "        return _info.decode(prim, _NAME, limits, depth)",
        "    depth += 1",
        "    o = _new(_cls)",
        "    miss = 0",
    ]
    for name, fld in fields.items():
        ftype = fld.ftype
        inner = ftype.inner if isinstance(ftype, NullableType) else ftype
        lines.append("    try:")
        lines.append(f"        v = data[{name!r}]")
        lines.append("    except KeyError:")
        if not fld.has_default:
            lines.append(f"        raise _DecodeError(_NAME, 'required field {name} missing')")
        elif _immutable_default(fld):
            lines.append(f"        v = _d_{name}")
        else:
            lines.append(f"        v = _f_{name}.make_default(_NAME)")
        lines.append("        miss += 1")
        lines.append("    else:")
        if isinstance(inner, ObjectType):
            call = f"_I_{name}.decode_fast(v, limits, depth)"
            if inner is not ftype:
                call = f"(None if v is None else {call})"
            lines.append(f"        v = {call}")
        elif _list_of_objects(inner) is not None and inner is ftype:
            lines += [
                "        if (type(v) is list and len(v) <= limits.max_items",
                "                and depth <= limits.max_depth):",
                f"            dec = _I_{name}.decode_fast",
                "            v = [dec(x, limits, depth + 1) for x in v]",
                "        else:",
                f"            v = _t_{name}.from_prim(v, '', limits, depth)"]
        elif (isinstance(ftype, ListType | DictType)
              and _item_check(ftype.item, "_x", name, wire=True) is not None):
            lines += _checked("v", fld, name, f"v = _t_{name}.from_prim(v, '', limits, depth)",
                              "        ", ok="v = v.copy()", wire=True,
                              guard=" and len(v) <= limits.max_items and depth <= limits.max_depth")
        elif isinstance(inner, DateTimeType):
            lines.append("        w = _fromiso(v) if (type(v) is str and len(v) <= 64) else None")
            test = "w is None or w.tzinfo is not _utc"
            if inner is not ftype:
                test = f"v is not None and ({test})"
            lines.append(f"        if {test}:")
            lines.append(f"            w = _t_{name}.from_prim(v, '', limits, depth)")
            lines.append("        v = w")
        else:
            check = (_check_expr("v", fld, name) if isinstance(inner, EnumType)
                     else ftype.fast_decode_check("v"))
            lines += _guarded(check, f"v = _t_{name}.from_prim(v, '', limits, depth)",
                              "        ")
        lines.append(f"    o._v_{name} = v")
    lines += [
        f"    if len(data) != {len(fields)} - miss:",
        "        _unknown_field(data, _KNOWN, _NAME, _WHAT)",
        "    if n == 4:",  # the header check above: 4 keys, or 5 with the changes
        "        o._rs_changed = set()",
        "    else:",
        "        ch = prim[_K_CH]",
        "        if type(ch) is list and _KNOWN.issuperset(ch):",
        "            o._rs_changed = set(ch)",
        "        else:",
        "            o._rs_changed = _info._decode_changes(ch, _CURV, _NAME)",
        f"    o._rs_baseline = {_snapshot_expr(fields, 'o')}",
        "    return o",
    ]
    return lines


def _decode_source(fields: dict[str, Field]) -> list[str]:
    lines = ["def _rs_decode_data(data, path, limits, depth):", "    o = _new(_cls)",
             "    n = 0", "    get = data.get", "    depth += 1"]
    for name, fld in fields.items():
        sub = f"path + {'.' + name!r}"
        lines.append(f"    v = get({name!r}, _M)")
        lines.append("    if v is _M:")
        if not fld.has_default:
            lines.append(f"        raise _DecodeError({sub}, 'required field missing from ' "
                         "+ _WHAT)")
        elif fld.default_factory is None and (fld.default is None or not fld.ftype.mutable):
            lines.append(f"        v = _d_{name}")
        else:
            lines.append(f"        v = _f_{name}.make_default({sub})")
        lines.append("    else:")
        lines.append("        n += 1")
        lines += _guarded(fld.ftype.fast_decode_check("v"),
                          f"v = _t_{name}.from_prim(v, {sub}, limits, depth)", "        ")
        lines.append(f"    o._v_{name} = v")
    lines.append("    if n != len(data):")
    lines.append("        _unknown_field(data, _KNOWN, path, _WHAT)")
    lines.append("    return o")
    return lines


def _changed_expr(name: str, fld: Field, base: str) -> str:
    var = f"self._v_{name}"
    if _list_of_objects(fld.ftype) is not None:
        return f"({var} != {base} or _any_changed({var}))"
    if isinstance(fld.ftype, ObjectType):
        return f"({var} is not {base} or {var}._rs_has_changes())"
    expr = fld.ftype.changed_src(var, base)
    return expr if expr is not None else f"_t_{name}.changed({var}, {base})"


def _snapshot_expr(fields: dict[str, Field], obj: str) -> str:
    """Source of the baseline tuple of ``obj`` (None without mutable fields)."""
    snaps = []
    for name, fld in fields.items():
        if not fld.ftype.mutable:
            continue
        var = f"{obj}._v_{name}"
        if _is_object(fld.ftype):
            snaps.append(var)
            continue
        expr = fld.ftype.snapshot_src(var)
        if expr is not None and isinstance(fld.ftype, NullableType):
            expr = f"(None if {var} is None else {expr})"
        snaps.append(expr if expr is not None else f"_t_{name}.snapshot({var})")
    return "(" + ", ".join(snaps) + ",)" if snaps else "None"


def _tracking_source(fields: dict[str, Field]) -> list[str]:
    mutable = [(n, f) for n, f in fields.items() if f.ftype.mutable]
    lines = ["def _rs_snapshot(self):", f"    return {_snapshot_expr(fields, 'self')}"]

    lines += ["def _rs_what_changed(self):", "    ch = set(self._rs_changed)"]
    if mutable:
        lines += ["    b = self._rs_baseline", "    if b is not None:"]
        for i, (name, fld) in enumerate(mutable):
            changed = _changed_expr(name, fld, f"b[{i}]")
            lines.append(f"        if {name!r} not in ch and {changed}:")
            lines.append(f"            ch.add({name!r})")
    lines.append("    return ch")

    lines += ["def _rs_has_changes(self):", "    if self._rs_changed:", "        return True"]
    in_place = _in_place_changes(fields)
    if in_place:
        lines += ["    b = self._rs_baseline", f"    return b is not None and ({in_place})"]
    else:
        lines.append("    return False")

    lines += ["def _rs_reset(self, recursive):"]
    holders = [(n, f) for n, f in mutable if any(True for _ in f.ftype.object_classes())]
    if holders:
        lines.append("    if recursive:")
        for name, _fld in holders:
            lines.append(f"        for child in _iter_objects(_t_{name}, self._v_{name}):")
            lines.append("            child._rs_reset(True)")
    lines += ["    self._rs_changed = set()", "    self._rs_baseline = self._rs_snapshot()"]
    return lines
