"""The compatibility lint: this tree's objects against snapshots of releases.

A **snapshot** (:mod:`rollsafe.upgrade.snapshot`) records what one release
of a service declared; it is written once per release and committed.

:func:`check_compat` compares the tree with every snapshot given, one
release at a time (so a change is checked against every release still
supported, not only the last), and returns :class:`Finding` objects, each
with a suggested fix. The rules are listed in :data:`RULES` and explained,
with an example each, in ``docs/compatibility.md``.

Safe type promotions (every value of the old type is a value of the new
one, with the same wire form): a ``str`` whose ``max_length`` grows or goes,
``T`` to ``T | None``, enum values added, the same inside list, set and dict
items, and a nested object of the same class at a newer version (its own
history converts it). ``int`` to ``float`` is *not* one: 64-bit integers
above 2**53 do not survive a float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rollsafe.errors import DefinitionError, IncompatibleVersionError
from rollsafe.objects.base import VersionedObject
from rollsafe.objects.fingerprint import REMOTE_KEY, canonical_schema
from rollsafe.objects.history import parse_version
from rollsafe.objects.registry import Registry
from rollsafe.upgrade.roundtrip import round_trip, trace_fields
from rollsafe.upgrade.samples import sample_payloads
from rollsafe.upgrade.snapshot import ObjectRecord, Snapshot

__all__ = ["RULES", "Finding", "check_compat", "is_safe_promotion"]

#: Every rule of the lint: id -> what it reports.
RULES: dict[str, str] = {
    "namespace": "the registry's namespace differs from the release's (older services reject "
                 "every object)",
    "object-removed": "an object a supported release has is no longer registered",
    "version-removed": "a version a supported release has is gone from the history",
    "removed-field": "a field was removed without a Removed entry in the history",
    "required-field": "a field was added without a default",
    "not-bumped": "a class changed (schema or remote methods) without a version bump",
    "history-mismatch": "the history no longer derives the schema of an older released version",
    "type-change": "a type changed outside the safe promotions and its converters lose or refuse "
                   "old values",
    "value-too-early": "a default holds a value a supported release cannot read (an enum value "
                       "added and written in the same release)",
    "remote-method": "a remote method was removed or its signature changed incompatibly",
    "round-trip": "a payload of an older version does not come back equal after an upgrade "
                  "and a downgrade",
    "corpus": "a payload of the golden corpus no longer decodes and re-encodes identically "
              "(only when a corpus is given)",
}


# -- findings ------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One unsafe change: which ``rule``, where (``object``, the class
    ``version`` concerned, the ``field``), the ``problem``, the suggested
    ``fix``, and the snapshot ``releases`` it was found against (empty for
    a finding about the tree alone, such as a round trip)."""

    rule: str
    object: str
    version: str | None
    field: str | None
    problem: str
    fix: str
    releases: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``Object version.field``, as much of it as is known."""
        text = self.object + (f" {self.version}" if self.version else "")
        return text + (f".{self.field}" if self.field else "")

    def to_json(self) -> dict[str, Any]:
        """The finding as plain data (``rollsafe compat check --json``)."""
        return {"rule": self.rule, "object": self.object, "version": self.version,
                "field": self.field, "problem": self.problem, "fix": self.fix,
                "releases": list(self.releases)}


def check_compat(registry: Registry, snapshots: Iterable[Snapshot], *,
                 corpus: str | Path | None = None, ignore: Iterable[str] = ()
                 ) -> list[Finding]:
    """Every unsafe change of ``registry`` against each snapshot, plus the
    round trips of every older version in today's histories, plus, with
    ``corpus`` (a folder of :mod:`rollsafe.testing.corpus`), every captured
    payload today's code misreads.

    ``ignore`` accepts decisions already made, as ``RULE``,
    ``RULE:Object`` or ``RULE:Object.field`` (ValueError for an unknown
    rule). A rule broken at the same place against several releases is one
    finding listing them all. Findings are sorted by object."""
    accepted = [_parse_ignore(item) for item in ignore]
    for cls in registry.classes():
        cls._rs_info.build()
    probes = _Probes()
    explained: set[tuple[str, str]] = set()
    found: dict[tuple[Any, ...], Finding] = {}
    # One finding per rule and place: the first release's words, every
    # release it was found against.
    for snap in snapshots:
        for finding in _check_release(registry, snap, probes, explained):
            key = (finding.rule, finding.object, finding.version, finding.field)
            before = found.get(key, finding)
            if snap.release not in before.releases:
                found[key] = replace(before, releases=(*before.releases, snap.release))
    for finding in _round_trips(registry, probes, explained):
        found.setdefault((finding.rule, finding.object, finding.version, finding.field),
                         finding)
    extra = _corpus(registry, corpus) if corpus is not None else []
    order = list(RULES)
    findings = sorted([*found.values(), *extra], key=lambda f: (
        f.object, _version_key(f.version), f.field or "", order.index(f.rule)))
    return [f for f in findings if not any(_matches(f, rule) for rule in accepted)]


def _corpus(registry: Registry, root: str | Path) -> list[Finding]:
    from rollsafe.testing.corpus import check_corpus

    grouped: dict[tuple[str, str, str | None], list[Any]] = {}
    for problem in check_corpus(registry, root):
        grouped.setdefault((problem.release, problem.file, problem.field), []).append(problem)
    findings = []
    for problems in grouped.values():
        first = problems[0]
        more = f" (and {len(problems) - 1} more payloads of that file)" if problems[1:] else ""
        findings.append(Finding(
            "corpus", first.object, first.version, first.field, f"{first}{more}",
            "make the history read what that release wrote (the round-trip and type-change "
            "rules say how); never edit a corpus file to make it pass", (first.release,)))
    return findings


def _parse_ignore(item: str) -> tuple[str, str | None, str | None]:
    rule, _, where = item.partition(":")
    if rule not in RULES:
        raise ValueError(f"--ignore {item!r}: unknown rule {rule!r}; rules: "
                         f"{', '.join(RULES)}")
    name, _, fld = where.partition(".")
    return rule, name or None, fld or None


def _matches(finding: Finding, accepted: tuple[str, str | None, str | None]) -> bool:
    rule, name, fld = accepted
    return (finding.rule == rule and (name is None or finding.object == name)
            and (fld is None or finding.field == fld))


def _version_key(version: str | None) -> tuple[int, int]:
    return parse_version(version) if version else (-1, -1)


def _next_version(number: str) -> str:
    major, minor = parse_version(number)
    return f"{major}.{minor + 1}"


# -- one release ---------------------------------------------------------------

def _check_release(registry: Registry, snap: Snapshot, probes: _Probes,
                   explained: set[tuple[str, str]]) -> list[Finding]:
    if snap.namespace != registry.namespace:
        return [Finding("namespace", registry.namespace, None, None,
                        f"the registry's namespace is {registry.namespace!r}, the release's "
                        f"{snap.namespace!r}: envelopes carry it, so services of that release "
                        "reject every object",
                        "keep the namespace; if --registry names the wrong registry, name the "
                        "one this release snapshot was taken from")]
    findings: list[Finding] = []
    for name, record in sorted(snap.objects.items()):
        if name not in registry:
            findings.append(Finding(
                "object-removed", name, record.current, None,
                f"{name} is no longer registered: services of that release send and store it",
                f"keep {name} registered while a release that has it is supported (delete "
                "that release's snapshot once it is not)"))
            continue
        cls = registry.get(name)
        findings.extend(_check_object(cls, record, probes, explained))
    return findings


def _check_object(cls: type[VersionedObject], record: ObjectRecord, probes: _Probes,
                  explained: set[tuple[str, str]]) -> list[Finding]:
    info = cls._rs_info
    name, current = info.name, info.current.number
    if parse_version(record.current) > info.current.key:
        return [Finding("version-removed", name, record.current, None,
                        f"the release has {name} {record.current}, this tree only {current}: "
                        "a class never goes back to an older version",
                        f"restore {name}'s history up to {record.current}")]
    findings: list[Finding] = []
    consistent = True  # whether the release's own version is still in the history
    broken: set[str | None] = set()  # its fields the history no longer derives
    for number, recorded in sorted(record.versions.items(), key=lambda kv: parse_version(kv[0])):
        try:
            version = info.history.resolve(number, name)
        except IncompatibleVersionError:
            findings.append(Finding(
                "version-removed", name, number, None,
                f"{name} {number} was released but is gone from the history",
                f"put Version({number!r}, ...) back into {name}.VERSIONS: a released version "
                "stays in the history"))
            consistent = consistent and number != record.current
            continue
        derived = canonical_schema(cls, version.number)
        derived.pop(REMOTE_KEY, None)
        bumped = version is not info.current
        # Older versions take today's defaults: every writer sends every
        # field, so a default changed later decides nothing on the wire.
        if derived != recorded and not (bumped and _without_defaults(derived)
                                        == _without_defaults(recorded)):
            changes = _schema_changes(cls, number, recorded, derived, bumped=bumped)
            findings.extend(changes)
            if number == record.current:
                broken.update(f.field for f in changes)
    if record.remote_methods is not None:
        findings.extend(_remote_changes(cls, record))
    if consistent and None not in broken:
        findings.extend(_evolution(cls, record, probes, explained, broken))
    return findings


def _schema_changes(cls: type[VersionedObject], number: str, recorded: dict[str, Any],
                    derived: dict[str, Any], *, bumped: bool) -> list[Finding]:
    """Why the history's schema of released version ``number`` differs."""
    info = cls._rs_info
    name, current = info.name, info.current.number
    old = {f["name"]: f for f in recorded["fields"]}
    new = {f["name"]: f for f in derived.get("fields", [])}
    bump = f"add Version({_next_version(current)!r}, ...) to {name}.VERSIONS with"
    findings = []
    extra = sorted(new.keys() - old.keys())
    for fname in sorted(old.keys() - new.keys()):
        twin = next((g for g in extra if new[g]["type"] == old[fname]["type"]), None)
        removed = _removed_call(fname, old[fname])
        if bumped:
            fix = f"declare {removed} in the {name} version that dropped it"
        else:
            fix = f"{bump} {removed}"
        if twin is not None:
            fix += f"; if it was renamed to {twin!r}, declare Renamed({fname!r}, {twin!r}) instead"
            extra.remove(twin)
        findings.append(Finding(
            "removed-field", name, number, fname,
            f"{name} {number} has field {fname!r} ({_describe(old[fname]['type'])}) in the "
            "release, but the history no longer does: nothing tells older readers what to "
            "receive for it", fix))
    for fname in extra:
        if new[fname]["default"] == {"required": True}:
            findings.append(Finding(
                "required-field", name, number, fname,
                f"{name}.{fname} has no default and {name} {number} of the release lacks it: "
                "payloads and rows written by that release cannot be read",
                f"give {fname!r} a default and {bump} Added({fname!r})" if not bumped else
                f"give {fname!r} a default and declare Added({fname!r}) in the {name} version "
                "that introduced it"))
            continue
        what = f"field {fname!r} appeared in {number}"
        findings.append(_changed(name, number, fname, what, bumped, bump, f"Added({fname!r})"))
    for fname in sorted(old.keys() & new.keys()):
        if old[fname] == new[fname] or (bumped and _strip(old[fname], "default")
                                        == _strip(new[fname], "default")):
            continue
        parts = _field_diff(old[fname], new[fname])
        hint = (_retyped_call(fname, old[fname]["type"]) if old[fname]["type"]
                != new[fname]["type"] else "a Version describing the change")
        findings.append(_changed(name, number, fname, "; ".join(parts), bumped, bump, hint))
    if not findings:
        findings.append(_changed(name, number, None, "its canonical schema changed", bumped,
                                 bump, "a Version describing the change"))
    return findings


def _changed(name: str, number: str, fname: str | None, what: str, bumped: bool, bump: str,
             hint: str) -> Finding:
    if bumped:
        return Finding("history-mismatch", name, number, fname,
                       f"{name} {number} as released differs from what the history derives: "
                       f"{what}",
                       f"fix the history so that {number} is what was released: declare "
                       f"{hint} in the version that made the change")
    return Finding("not-bumped", name, number, fname,
                   f"{name} {number} changed without a version bump: {what}",
                   f"{bump} {hint}")


def _without_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "fields": [_strip(f, "default") for f in schema.get("fields", [])]}


def _field_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    parts = []
    if old["type"] != new["type"]:
        parts.append(f"{old['name']!r} type {_describe(old['type'], versions=True)} -> "
                     f"{_describe(new['type'], versions=True)}")
    if old["default"] != new["default"]:
        parts.append(f"{old['name']!r} default {_default_text(old['default'])} -> "
                     f"{_default_text(new['default'])}")
    if old.get("read_only") != new.get("read_only"):
        parts.append(f"{old['name']!r} read_only {old.get('read_only')} -> "
                     f"{new.get('read_only')}")
    return parts or [f"{old['name']!r} changed"]


# -- the change from the release's version to the current one ----------------

def _evolution(cls: type[VersionedObject], record: ObjectRecord, probes: _Probes,
               explained: set[tuple[str, str]], broken: set[str | None]) -> list[Finding]:
    info = cls._rs_info
    name, current = info.name, info.current.number
    released = record.current
    old_fields = {f["name"]: f for f in record.versions[released]["fields"]}
    now = {f["name"]: f for f in canonical_schema(cls)["fields"]}
    trace = trace_fields(cls, released)
    findings = []
    for fname, old in sorted(old_fields.items()):
        now_name = trace.get(fname)
        if now_name is None or now_name not in now or fname in broken:
            continue  # removed, and declared so; or already reported
        new = now[now_name]
        old_type, new_type = old["type"], new["type"]
        if _without_versions(old_type) != _without_versions(new_type) \
                and not is_safe_promotion(old_type, new_type):
            failure = probes.get(cls, released).get(fname)
            if failure is not None:
                explained.add((name, now_name))
                findings.append(Finding(
                    "type-change", name, current, now_name,
                    f"{name}.{now_name} was {_describe(old_type)} in {released} and is "
                    f"{_describe(new_type)} now, not a safe promotion, and its converters do "
                    f"not carry every old value: {failure}",
                    f"keep {fname!r} and add a new field of the new type (Added, filled from "
                    "the old one by a Custom change or an online migration), then remove the "
                    "old one (Removed) in a later release; or make the converters of "
                    f"Retyped({fname!r}) accept every {_describe(old_type)} both ways"))
            continue
        default = new["default"]
        if "value" in default and not _fits(old_type, default["value"]):
            findings.append(Finding(
                "value-too-early", name, current, now_name,
                f"{name}.{now_name} defaults to {_short(default['value'])}, which the "
                f"release(s) listed cannot read ({fname!r} is {_describe(old_type)} there): "
                f"every {name} created now holds it while their services still run",
                f"keep a default those releases know in this release (the old one: "
                f"{_default_text(old['default'])}); change it in the next release, once none "
                "of their services is left (the two-release rule)"))
    return findings


# -- remote methods ------------------------------------------------------------

_POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
_BY_NAME = ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")


def _remote_changes(cls: type[VersionedObject], record: ObjectRecord) -> list[Finding]:
    info = cls._rs_info
    name, current = info.name, info.current.number
    now = {m["name"]: m for m in canonical_schema(cls)[REMOTE_KEY]}
    before = {m["name"]: m for m in record.remote_methods or []}
    findings = []
    for method in sorted(before):
        problems = _signature_problems(before[method], now.get(method))
        if problems:
            findings.append(Finding(
                "remote-method", name, current, method,
                f"{name}.{method}() {'; '.join(problems)}: services of the release(s) listed "
                "still call it the old way",
                f"keep {method}() callable as before: give new parameters defaults, keep old "
                "ones (ignore them if unused), and add a new method for a new contract"))
    if parse_version(record.current) == info.current.key and before != now and not findings:
        findings.append(Finding(
            "not-bumped", name, current, None,
            f"{name} {current} changed its remote methods without a version bump",
            f"add Version({_next_version(current)!r}, ...) to {name}.VERSIONS describing the "
            "change"))
    return findings


def _signature_problems(old: dict[str, Any], new: dict[str, Any] | None) -> list[str]:
    """Why a call valid against ``old`` may fail against ``new``."""
    if new is None:
        return ["was removed"]
    problems = []
    if old["kind"] != new["kind"]:
        problems.append(f"changed kind ({old['kind']} method -> {new['kind']} method)")
    old_params, new_params = old["params"], new["params"]
    kinds = {p["kind"] for p in new_params}
    new_positional = [p for p in new_params if p["kind"] in _POSITIONAL]
    new_by_name = {p["name"]: p for p in new_params if p["kind"] in _BY_NAME}
    matched: set[str] = set()
    for index, param in enumerate(p for p in old_params if p["kind"] in _POSITIONAL):
        pname = param["name"]
        if index < len(new_positional):
            other = new_positional[index]
            if param["kind"] == "POSITIONAL_ONLY" or other["name"] == pname:
                matched.add(other["name"])
            if param["kind"] == "POSITIONAL_OR_KEYWORD" and other["name"] != pname:
                problems.append(f"takes {other['name']!r} where {pname!r} was" if pname
                                not in new_by_name else f"moved parameter {pname!r}")
                continue
        else:
            if "VAR_POSITIONAL" not in kinds:
                problems.append(f"no longer takes {pname!r} positionally" if pname in
                                new_by_name else f"no longer takes parameter {pname!r}")
            continue
        if "default" in param and "default" not in other:
            problems.append(f"made parameter {pname!r} required")
    for param in old_params:
        pname = param["name"]
        if param["kind"] != "KEYWORD_ONLY":
            continue
        other = new_by_name.get(pname)
        if other is None:
            if "VAR_KEYWORD" not in kinds:
                problems.append(f"no longer takes parameter {pname!r}")
            continue
        matched.add(pname)
        if "default" in param and "default" not in other:
            problems.append(f"made parameter {pname!r} required")
    old_kinds = {p["kind"] for p in old_params}
    for var in ("VAR_POSITIONAL", "VAR_KEYWORD"):
        if var in old_kinds and var not in kinds:
            problems.append(f"no longer takes {'*args' if var == 'VAR_POSITIONAL' else '**kwargs'}")
    old_names = {p["name"] for p in old_params}
    for param in new_params:
        if (param["name"] not in matched and param["name"] not in old_names
                and param["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD")
                and "default" not in param):
            problems.append(f"has a new required parameter {param['name']!r}")
    return problems


# -- round trips ---------------------------------------------------------------

class _Probes:
    """Round trips of the sample payloads of each class version, computed
    once: field at that version (None: not one field) -> first problem."""

    def __init__(self) -> None:
        self._done: dict[tuple[type[VersionedObject], str], dict[str | None, str]] = {}

    def get(self, cls: type[VersionedObject], version: str) -> dict[str | None, str]:
        key = (cls, version)
        if key not in self._done:
            self._done[key] = self._probe(cls, version)
        return self._done[key]

    @staticmethod
    def _probe(cls: type[VersionedObject], version: str) -> dict[str | None, str]:
        try:
            payloads = sample_payloads(cls, version)
        except DefinitionError as exc:
            return {None: f"no sample payload can be built: {exc}"}
        data_key = cls._rs_info.registry.key_data
        base = payloads[0][data_key]
        failures: dict[str | None, str] = {}
        base_failed = False
        for number, payload in enumerate(payloads):
            problems = round_trip(cls, payload)
            if not problems:
                continue
            base_failed = base_failed or number == 0
            varied = [k for k, v in payload[data_key].items() if base.get(k) != v]
            blamed = varied[0] if len(varied) == 1 and not base_failed else None
            for problem in problems:
                failures.setdefault(blamed or problem.field, problem.text)
        return failures


def _round_trips(registry: Registry, probes: _Probes, explained: set[tuple[str, str]]
                 ) -> list[Finding]:
    findings = []
    for cls in registry.newest():
        info = cls._rs_info
        name, current = info.name, info.current.number
        grouped: dict[str | None, list[tuple[str, str]]] = {}
        for version in info.history.versions[:-1]:
            trace = trace_fields(cls, version.number)
            for fname, text in probes.get(cls, version.number).items():
                now_name = trace.get(fname) if fname is not None else None
                if now_name is not None and (name, now_name) in explained:
                    continue
                grouped.setdefault(now_name or fname, []).append((version.number, text))
        for fname, failures in grouped.items():
            first, text = failures[0]
            also = [number for number, _ in failures[1:]]
            findings.append(Finding(
                "round-trip", name, first, fname,
                text + (f" (also from {', '.join(also)})" if also else ""),
                f"make {name}'s changes after {first} carry every value of the older version "
                f"both ways (Retyped and Custom converters must be inverse, up to {current} "
                "and back), or keep the old field and add a new one instead of converting it"))
    return findings


# -- canonical types -----------------------------------------------------------

def is_safe_promotion(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether canonical type ``new`` accepts every value of ``old`` with the
    same wire form (see the module docstring for the list)."""
    if old == new:
        return True
    if old.get("nullable") and not new.get("nullable"):
        return False
    kind = old["type"]
    if kind != new["type"]:
        return False
    if kind == "str":
        limit, wider = old.get("max_length"), new.get("max_length")
        return wider is None or (limit is not None and wider >= limit)
    if kind == "enum":
        return set(new["values"]) >= set(old["values"])
    if kind in ("list", "set", "dict"):
        return is_safe_promotion(old["item"], new["item"])
    if kind == "object":
        return bool(old["name"] == new["name"])
    return _strip(old, "nullable") == _strip(new, "nullable")


def _strip(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _without_versions(canon: Any) -> Any:
    """A canonical type without nested objects' versions (their own
    histories convert them)."""
    if not isinstance(canon, dict):
        return canon
    out = {k: _without_versions(v) for k, v in canon.items()}
    if out.get("type") == "object":
        out.pop("version", None)
    return out


def _fits(canon: dict[str, Any], prim: Any) -> bool:
    """Whether wire value ``prim`` is acceptable to canonical type ``canon``
    (only what safe promotions change is checked)."""
    if prim is None:
        return bool(canon.get("nullable"))
    kind = canon["type"]
    if kind == "str":
        limit = canon.get("max_length")
        return isinstance(prim, str) and (limit is None or len(prim) <= limit)
    if kind == "enum":
        return prim in canon["values"]
    if kind in ("list", "set"):
        return isinstance(prim, list) and all(_fits(canon["item"], x) for x in prim)
    if kind == "dict":
        return isinstance(prim, dict) and all(_fits(canon["item"], x) for x in prim.values())
    return True


_NAMES = {"uuid": "uuid.UUID"}


def _describe(canon: dict[str, Any], *, versions: bool = False) -> str:
    kind = canon["type"]
    if kind == "str":
        limit = canon.get("max_length")
        text = "str" if limit is None else f"str(max_length={limit})"
    elif kind == "enum":
        text = "Literal[" + ", ".join(repr(v) for v in canon["values"]) + "]"
    elif kind in ("list", "set"):
        text = f"{kind}[{_describe(canon['item'], versions=versions)}]"
    elif kind == "dict":
        text = f"dict[str, {_describe(canon['item'], versions=versions)}]"
    elif kind == "object":
        text = canon["name"] + (f" {canon.get('version')}" if versions else "")
    else:
        text = _NAMES.get(kind, kind)
    return text + " | None" if canon.get("nullable") else text


def _annotation(canon: dict[str, Any]) -> str:
    """The annotation to write for canonical type ``canon`` (max_length goes
    in its own argument)."""
    kind = canon["type"]
    if kind == "str":
        return "str | None" if canon.get("nullable") else "str"
    if kind in ("list", "set"):
        text = f"{kind}[{_annotation(canon['item'])}]"
    elif kind == "dict":
        text = f"dict[str, {_annotation(canon['item'])}]"
    else:
        return _describe(canon)
    return text + " | None" if canon.get("nullable") else text


def _removed_call(fname: str, canon_field: dict[str, Any]) -> str:
    ftype = canon_field["type"]
    args = [repr(fname), _annotation(ftype)]
    if ftype["type"] == "str" and ftype.get("max_length") is not None:
        args.append(f"max_length={ftype['max_length']}")
    default = canon_field["default"]
    if "value" in default:
        if default["value"] is not None:
            args.append(f"default={default['value']!r}")
    elif not ftype.get("nullable"):
        args.append("default=<what older readers get>")
    return f"Removed({', '.join(args)})"


def _retyped_call(fname: str, ftype: dict[str, Any]) -> str:
    args = [repr(fname), _annotation(ftype)]
    if ftype["type"] == "str" and ftype.get("max_length") is not None:
        args.append(f"max_length={ftype['max_length']}")
    return f"Retyped({', '.join(args)}, upgrade=..., downgrade=...)"


def _default_text(default: dict[str, Any]) -> str:
    if "value" in default:
        return _short(default["value"])
    return "none (required)" if default.get("required") else "a factory"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

