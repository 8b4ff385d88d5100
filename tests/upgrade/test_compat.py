"""The compatibility lint (rollsafe.upgrade.compat) and its snapshots
(rollsafe.upgrade.snapshot): each rule is detected against a snapshot of
release N, the fix it suggests makes the check pass,
rules hold against every snapshot given (not only the last), and the test
domains and the benchmark model raise nothing.

Release N of the ``shop`` namespace is declared once (``release_n``); each
test declares the next tree, once unsafely and once as the finding says.
"""

import json
import uuid
from pathlib import Path
from typing import Literal

import pytest

from rollsafe import (
    Added,
    Custom,
    EnumValuesAdded,
    History,
    NestedVersion,
    Registry,
    Removed,
    Retyped,
    Version,
    VersionedObject,
    field,
    remotable,
    remotable_classmethod,
)
from rollsafe.errors import SnapshotError
from rollsafe.upgrade.compat import RULES, Finding, check_compat, is_safe_promotion
from rollsafe.upgrade.samples import sample_payloads
from rollsafe.upgrade.snapshot import (
    Snapshot,
    read_snapshot,
    read_snapshots,
    take_snapshot,
    write_snapshot,
)
from support import load_bench_model

CURRENT_1_1 = History(Version("1.0", "Initial version"), Version("1.1", "Next"))


def release_n() -> Registry:
    """Release N: Order 1.0 and Line 1.0."""
    reg = Registry("shop")

    class Line(VersionedObject, registry=reg):
        sku: str = field(max_length=40)
        quantity: int = 1

    class Order(VersionedObject, registry=reg):
        id: uuid.UUID
        status: Literal["new", "paid"] = "new"
        note: str | None = field(default=None, max_length=100)
        amount: int = 0
        lines: list[Line] = field(default_factory=list)

        @remotable
        def pay(self, amount: int, currency: str = "EUR") -> None:
            """Pay the order."""

        @remotable_classmethod
        def find(cls, id: str) -> "Order":
            """Find an order."""
            raise NotImplementedError

    return reg


N = take_snapshot(release_n(), "N")


def findings(reg: Registry, *snapshots: Snapshot, ignore: tuple[str, ...] = ()
             ) -> list[Finding]:
    return check_compat(reg, snapshots or (N,), ignore=ignore)


def rules_at(found: list[Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.where) for f in found]


def _body(klass: type) -> dict:
    """The class body of ``klass`` with its plain bases' bodies merged in."""
    body: dict = {}
    annotations: dict = {}
    for part in reversed(klass.__mro__[:-1]):
        body.update(vars(part))
        annotations.update(vars(part).get("__annotations__", {}))
    for name in ("__dict__", "__weakref__", "__qualname__"):
        body.pop(name, None)
    body["__annotations__"] = annotations
    return body


def shop(order_body: type, *, line: type | None = None) -> Registry:
    """A tree of the shop: Line unchanged (or built from ``line``'s body),
    Order built from ``order_body``'s body (annotations, history, methods)."""
    reg = Registry("shop")
    if line is None:
        class Line(VersionedObject, registry=reg):
            sku: str = field(max_length=40)
            quantity: int = 1
    else:
        type("Line", (VersionedObject,), _body(line), registry=reg)
    type("Order", (VersionedObject,), _body(order_body), registry=reg)
    return reg


class Remotes:
    """Order's remote methods, as release N declares them."""

    @remotable
    def pay(self, amount: int, currency: str = "EUR") -> None:
        """Pay the order."""

    @remotable_classmethod
    def find(cls, id: str) -> "Order":  # type: ignore[name-defined]  # noqa: F821
        """Find an order."""
        raise NotImplementedError


# -- the baseline ------------------------------------------------------------------

def test_the_release_itself_is_clean() -> None:
    assert findings(release_n()) == []


def test_every_rule_is_documented_with_an_example() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "compatibility.md").read_text(
        encoding="utf-8")
    for rule in RULES:
        assert f"`{rule}`" in page, rule


# -- removed-field ---------------------------------------------------------------

class RemovedWithoutEntry(Remotes):
    VERSIONS = CURRENT_1_1
    __annotations__ = {"id": uuid.UUID, "status": Literal["new", "paid"], "amount": int,
                       "lines": "list[Line]"}
    status = "new"
    amount = 0
    lines = field(default_factory=list)


class RemovedDeclared(RemovedWithoutEntry):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "No notes", Removed("note", str | None, max_length=100)))


def test_a_field_removed_without_a_removed_entry_is_reported_with_the_entry_to_add() -> None:
    found = findings(shop(RemovedWithoutEntry))
    assert rules_at(found) == [("removed-field", "Order 1.0.note")]
    assert "Removed('note', str | None, max_length=100)" in found[0].fix
    assert found[0].releases == ("N",)


def test_declaring_the_removal_passes() -> None:
    assert findings(shop(RemovedDeclared)) == []


def test_a_field_removed_without_a_version_bump_says_to_bump() -> None:
    class NoBump(RemovedWithoutEntry):
        VERSIONS = History(Version("1.0", "Initial version"))

    found = findings(shop(NoBump))
    assert rules_at(found) == [("removed-field", "Order 1.0.note")]
    assert found[0].fix.startswith("add Version('1.1', ...) to Order.VERSIONS with Removed(")


def test_a_rename_without_renamed_is_reported_as_a_removal_suggesting_renamed() -> None:
    class Renamed_(RemovedWithoutEntry):
        __annotations__ = {"comment": str | None}
        comment = field(default=None, max_length=100)

    found = findings(shop(Renamed_))
    assert rules_at(found) == [("removed-field", "Order 1.0.note")]
    assert "Renamed('note', 'comment')" in found[0].fix


# -- required-field --------------------------------------------------------------

class Fields11:
    __annotations__ = {"id": uuid.UUID, "status": Literal["new", "paid"], "note": str | None,
                       "amount": int, "lines": "list[Line]"}
    status = "new"
    note = field(default=None, max_length=100)
    amount = 0
    lines = field(default_factory=list)


class Base11(Fields11, Remotes):
    """Release N's Order fields and remote methods, to build variants on."""


class RequiredAdded(Base11):
    VERSIONS = CURRENT_1_1
    __annotations__ = {"customer": str}


class RequiredFixed(Base11):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Orders name a customer", Added("customer")))
    __annotations__ = {"customer": str}
    customer = "unknown"


def test_a_required_field_added_without_a_default_is_reported() -> None:
    found = findings(shop(RequiredAdded))
    assert rules_at(found) == [("required-field", "Order 1.0.customer")]
    assert "give 'customer' a default" in found[0].fix
    assert "Added('customer')" in found[0].fix


def test_a_default_and_an_added_entry_pass() -> None:
    assert findings(shop(RequiredFixed)) == []


# -- not-bumped ------------------------------------------------------------------

class WidenedNoBump(Base11):
    VERSIONS = History(Version("1.0", "Initial version"))
    note = field(default=None, max_length=200)


class WidenedBumped(Base11):
    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Longer notes",
                Retyped("note", str | None, max_length=100, upgrade=lambda v: v,
                        downgrade=lambda v: v if v is None else v[:100])))
    note = field(default=None, max_length=200)


def test_a_change_without_a_version_bump_is_reported() -> None:
    found = findings(shop(WidenedNoBump))
    assert rules_at(found) == [("not-bumped", "Order 1.0.note")]
    assert "str(max_length=100) | None -> str(max_length=200) | None" in found[0].problem
    assert found[0].fix.startswith("add Version('1.1', ...) to Order.VERSIONS with Retyped(")


def test_the_bump_with_its_change_passes() -> None:
    assert findings(shop(WidenedBumped)) == []


def test_a_nested_class_changed_without_a_bump_is_reported_on_it() -> None:
    class Line2:
        __annotations__ = {"sku": str, "quantity": int, "price": int}
        sku = field(max_length=40)
        quantity = 1
        price = 0

    found = findings(shop(type("Same", (Base11,), {"VERSIONS": History(
        Version("1.0", "Initial version"))}), line=Line2))
    assert rules_at(found) == [("not-bumped", "Line 1.0.price")]


# -- history-mismatch ------------------------------------------------------------

class Undeclared(Base11):
    VERSIONS = History(Version("1.0", "Initial version"),
                       Version("1.1", "Orders have a total", Added("total")))
    __annotations__ = {"total": int}
    total = 0
    note = field(default=None, max_length=200)  # widened, but the history does not say


def test_a_history_that_no_longer_derives_the_release_is_reported() -> None:
    found = findings(shop(Undeclared))
    assert rules_at(found) == [("history-mismatch", "Order 1.0.note")]
    assert "Retyped('note', str | None, max_length=100, upgrade=..., downgrade=...)" \
        in found[0].fix


def test_declaring_the_change_in_the_history_passes() -> None:
    class Declared(Undeclared):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Orders have a total; longer notes", Added("total"),
                    Retyped("note", str | None, max_length=100, upgrade=lambda v: v,
                            downgrade=lambda v: v if v is None else v[:100])))

    assert findings(shop(Declared)) == []


def test_a_default_changed_in_a_later_version_is_no_mismatch() -> None:
    # The two-release rule's second step: the new default in its own version.
    class LaterDefault(Base11):
        VERSIONS = History(Version("1.0", "Initial version"), Version("1.1", "Paid by default"))
        status = "paid"

    assert findings(shop(LaterDefault)) == []


# -- type-change -----------------------------------------------------------------

def typed(annotation: object, *changes: object, default: object = 0) -> type:
    class Typed(Base11):
        VERSIONS = History(Version("1.0", "Initial version"), Version("1.1", "Typed", *changes))
        __annotations__ = {"amount": annotation}
        amount = default
    return Typed


def test_a_type_change_whose_converters_carry_every_old_value_passes() -> None:
    # int -> str with str / int converters: every int comes back.
    tree = shop(typed(str, Retyped("amount", int, upgrade=str, downgrade=int), default="0"))
    assert findings(tree) == []


def test_a_type_change_whose_converter_refuses_old_values_is_reported() -> None:
    released = take_snapshot(
        shop(typed(str, Retyped("amount", int, upgrade=str, downgrade=int), default="0")),
        "N+1")

    class Back(Base11):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Amounts as text", Retyped("amount", int, upgrade=str, downgrade=int)),
            Version("1.2", "Amounts as numbers again",
                    Retyped("amount", str, upgrade=int, downgrade=str)))

    found = check_compat(shop(Back), [released])
    assert rules_at(found) == [("type-change", "Order 1.2.amount")]
    assert "was str in 1.1 and is int now" in found[0].problem
    assert "invalid literal for int()" in found[0].problem


def test_int_to_float_is_not_a_safe_promotion_for_64_bit_ints() -> None:
    tree = shop(typed(float, Retyped("amount", int, upgrade=float, downgrade=int),
                      default=0.0))
    found = findings(tree)
    assert rules_at(found) == [("type-change", "Order 1.1.amount")]
    assert "9007199254740993" in found[0].problem
    assert "add a new field of the new type" in found[0].fix


def test_the_suggested_fix_a_new_field_beside_the_old_passes() -> None:
    def fill(values: dict) -> None:
        values["amount_exact"] = float(values["amount"])

    class NewField(Base11):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Amounts as floats too", Added("amount_exact"),
                                   Custom("fill it", upgrade=fill, downgrade=lambda v: None)))
        __annotations__ = {"amount_exact": float}
        amount_exact = 0.0

    assert findings(shop(NewField)) == []


@pytest.mark.parametrize(("old", "new", "safe"), [
    ({"type": "str", "max_length": 10}, {"type": "str", "max_length": 20}, True),
    ({"type": "str", "max_length": 10}, {"type": "str", "max_length": None}, True),
    ({"type": "str", "max_length": 20}, {"type": "str", "max_length": 10}, False),
    ({"type": "str", "max_length": None}, {"type": "str", "max_length": 10}, False),
    ({"type": "int"}, {"type": "int", "nullable": True}, True),
    ({"type": "int", "nullable": True}, {"type": "int"}, False),
    ({"type": "enum", "values": ["a"]}, {"type": "enum", "values": ["a", "b"]}, True),
    ({"type": "enum", "values": ["a", "b"]}, {"type": "enum", "values": ["a"]}, False),
    ({"type": "list", "item": {"type": "str", "max_length": 1}},
     {"type": "list", "item": {"type": "str", "max_length": None, "nullable": True}}, True),
    ({"type": "set", "item": {"type": "int"}}, {"type": "list", "item": {"type": "int"}}, False),
    ({"type": "object", "name": "Line", "version": "1.0"},
     {"type": "object", "name": "Line", "version": "1.1"}, True),
    ({"type": "object", "name": "Line", "version": "1.0"},
     {"type": "object", "name": "Item", "version": "1.0"}, False),
    ({"type": "int"}, {"type": "float"}, False),
    ({"type": "str", "max_length": None}, {"type": "uuid"}, False),
], ids=repr)
def test_safe_promotions(old: dict, new: dict, safe: bool) -> None:
    assert is_safe_promotion(old, new) is safe


# -- value-too-early ------------------------------------------

def with_status(default: str, fallback: dict[str, str] | None) -> type:
    class Status(Base11):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Orders can be drafts",
                                   EnumValuesAdded("status", ["draft"], fallback=fallback)))
        __annotations__ = {"status": Literal["new", "paid", "draft"]}
        status = default
    return Status


def test_an_enum_value_added_and_written_by_default_in_the_same_release_is_reported() -> None:
    found = findings(shop(with_status("draft", {"draft": "new"})))
    assert rules_at(found) == [("value-too-early", "Order 1.1.status")]
    assert "'draft'" in found[0].problem
    assert "the old one: 'new'" in found[0].fix


def test_an_enum_value_without_a_fallback_is_no_finding() -> None:
    # Without a fallback, sending it to an older reader fails loudly
    # (DowngradeError): a design as valid as a fallback, which older readers
    # see instead of the value. Only writing it early is unsafe.
    assert findings(shop(with_status("new", None))) == []
    assert rules_at(findings(shop(with_status("draft", None)))) == [
        ("value-too-early", "Order 1.1.status")]


def test_a_new_value_with_a_fallback_and_the_old_default_passes() -> None:
    assert findings(shop(with_status("new", {"draft": "new"}))) == []


def test_a_nullable_field_defaulting_to_none_at_once_is_reported() -> None:
    tree = shop(typed(int | None, Retyped("amount", int, upgrade=lambda v: v,
                                          downgrade=lambda v: 0 if v is None else v),
                      default=None))
    assert rules_at(findings(tree)) == [("value-too-early", "Order 1.1.amount")]
    fixed = shop(typed(int | None, Retyped("amount", int, upgrade=lambda v: v,
                                           downgrade=lambda v: 0 if v is None else v)))
    assert findings(fixed) == []


def test_rules_hold_against_every_snapshot_given_not_only_the_last() -> None:
    # N-1 added "draft" (with a fallback); the tree makes it the default. Against
    # N-1 alone that is the two-release rule done right; N (still supported)
    # cannot read "draft".
    n1 = take_snapshot(shop(with_status("new", {"draft": "new"})), "N+1")

    class DraftByDefault(Base11):
        VERSIONS = History(
            Version("1.0", "Initial version"),
            Version("1.1", "Orders can be drafts",
                    EnumValuesAdded("status", ["draft"], fallback={"draft": "new"})),
            Version("1.2", "Drafts by default"))
        __annotations__ = {"status": Literal["new", "paid", "draft"]}
        status = "draft"

    tree = shop(DraftByDefault)
    assert check_compat(tree, [n1]) == []
    found = check_compat(tree, [N, n1])
    assert rules_at(found) == [("value-too-early", "Order 1.2.status")]
    assert found[0].releases == ("N",)


def test_a_finding_against_two_releases_is_listed_once_with_both() -> None:
    n_again = take_snapshot(release_n(), "N-bis")
    found = check_compat(shop(RemovedWithoutEntry), [N, n_again])
    assert [(f.rule, f.releases) for f in found] == [("removed-field", ("N", "N-bis"))]


# -- remote methods --------------------------------------------------------------

def with_pay(source: str, bump: bool = True) -> type:
    namespace: dict = {"remotable": remotable, "remotable_classmethod": remotable_classmethod}
    exec(source, namespace)
    body = {"VERSIONS": CURRENT_1_1 if bump else History(Version("1.0", "Initial version"))}
    body.update({k: v for k, v in namespace.items() if k in ("pay", "find")})
    return type("Remote", (Fields11,), body)


FIND = "@remotable_classmethod\ndef find(cls, id: str) -> 'Order': ...\n"


@pytest.mark.parametrize(("source", "problem"), [
    (FIND, "Order.pay() was removed"),
    ("@remotable\ndef pay(self, amount: int, currency: str = 'EUR', *, card: str) -> None: ...\n"
     + FIND, "has a new required parameter 'card'"),
    ("@remotable\ndef pay(self, amount: int) -> None: ...\n" + FIND,
     "no longer takes parameter 'currency'"),
    ("@remotable\ndef pay(self, amount: int, currency: str) -> None: ...\n" + FIND,
     "made parameter 'currency' required"),
    ("@remotable\ndef pay(self, currency: str = 'EUR', amount: int = 0) -> None: ...\n" + FIND,
     "moved parameter 'amount'"),
    ("@remotable_classmethod\ndef pay(cls, amount: int, currency: str = 'EUR') -> None: ...\n"
     + FIND, "changed kind (instance method -> class method)"),
], ids=["removed", "new-required", "param-removed", "lost-default", "reordered", "kind"])
def test_an_incompatible_remote_method_change_is_reported(source: str, problem: str) -> None:
    found = findings(shop(with_pay(source)))
    assert [f.rule for f in found] == ["remote-method"]
    assert problem in found[0].problem


def test_a_new_optional_parameter_with_a_bump_passes() -> None:
    source = ("@remotable\ndef pay(self, amount: int, currency: str = 'EUR', "
              "note: str = '') -> None: ...\n" + FIND)
    assert findings(shop(with_pay(source))) == []


def test_a_compatible_remote_change_without_a_bump_is_reported() -> None:
    source = ("@remotable\ndef pay(self, amount: int, currency: str = 'EUR', "
              "note: str = '') -> None: ...\n" + FIND)
    found = findings(shop(with_pay(source, bump=False)))
    assert rules_at(found) == [("not-bumped", "Order 1.0")]


# -- round-trip ------------------------------------------------------------------

def test_a_history_that_loses_data_on_the_way_back_is_reported_without_any_snapshot() -> None:
    def shout(values: dict) -> None:
        if values["note"] is not None:
            values["note"] = values["note"].upper()

    class Lossy(Base11):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Notes are shouted",
                                   Custom("upper-case notes", upgrade=shout,
                                          downgrade=lambda v: None)))

    found = check_compat(shop(Lossy), [])
    assert rules_at(found) == [("round-trip", "Order 1.0.note")]
    assert "field 'note' was 'a', came back 'A'" in found[0].problem
    assert found[0].releases == ()

    class Lossless(Lossy):
        VERSIONS = History(Version("1.0", "Initial version"), Version("1.1", "Nothing lost"))

    assert check_compat(shop(Lossless), []) == []


# -- objects, versions and namespaces ------------------------------------------------

def test_an_object_no_longer_registered_is_reported() -> None:
    reg = Registry("shop")

    class Line(VersionedObject, registry=reg):
        sku: str = field(max_length=40)
        quantity: int = 1

    found = findings(reg)
    assert rules_at(found) == [("object-removed", "Order 1.0")]


def test_a_released_version_dropped_from_the_history_is_reported() -> None:
    class Rewritten(Base11):
        VERSIONS = History(Version("2.0", "Initial version"))

    found = findings(shop(Rewritten))
    assert rules_at(found) == [("version-removed", "Order 1.0")]
    assert "put Version('1.0', ...) back" in found[0].fix


def test_another_namespace_is_one_finding() -> None:
    reg = Registry("other")
    found = findings(reg)
    assert [f.rule for f in found] == ["namespace"]


# -- ignore ---------------------------------------------------------------------------

def test_ignore_accepts_a_decision_by_rule_object_or_field() -> None:
    tree = shop(RemovedWithoutEntry)
    assert findings(tree, ignore=("removed-field",)) == []
    assert findings(tree, ignore=("removed-field:Order",)) == []
    assert findings(tree, ignore=("removed-field:Order.note",)) == []
    assert len(findings(tree, ignore=("removed-field:Order.status",))) == 1
    assert len(findings(tree, ignore=("type-change",))) == 1
    with pytest.raises(ValueError, match="unknown rule 'no-such-rule'"):
        findings(tree, ignore=("no-such-rule",))


# -- snapshots as files -------------------------------------------------------------

def test_a_snapshot_file_reads_back_equal(tmp_path: Path) -> None:
    path = write_snapshot(N, tmp_path / "snaps" / "N.json")
    assert read_snapshot(path) == N
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["objects"]["Order"]["current"] == "1.0"
    assert [m["name"] for m in data["objects"]["Order"]["remote_methods"]] == ["find", "pay"]
    assert read_snapshots(tmp_path / "snaps") == [N]


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "is not JSON"),
    ("[]", "not a rollsafe compatibility snapshot"),
    ('{"format": "rollsafe-compat-snapshot", "format_version": 9}', "format version 9"),
    ('{"format": "rollsafe-compat-snapshot", "format_version": 1, "release": "N", '
     '"namespace": "shop", "objects": {"Order": {"current": "1.1", "versions": {}}}}',
     "must record its current version's schema"),
])
def test_a_bad_snapshot_file_is_a_snapshot_error(tmp_path: Path, text: str,
                                                 message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SnapshotError, match=message):
        read_snapshot(path)


def test_two_snapshots_of_one_release_are_refused(tmp_path: Path) -> None:
    write_snapshot(N, tmp_path / "a.json")
    write_snapshot(N, tmp_path / "b.json")
    with pytest.raises(SnapshotError, match="two snapshots of release 'N'"):
        read_snapshots(tmp_path)


def test_a_derived_snapshot_records_up_to_the_manifest() -> None:
    tree = shop(RequiredFixed)
    derived = take_snapshot(tree, "N", manifest={"Order": "1.0", "Line": "1.0"})
    assert derived.objects["Order"].current == "1.0"
    assert list(derived.objects["Order"].versions) == ["1.0"]
    assert derived.objects["Order"].remote_methods is None  # unknown for an older version
    assert derived.objects["Order"].versions == N.objects["Order"].versions
    with pytest.raises(SnapshotError, match=r"Order has no version 0\.9"):
        take_snapshot(tree, "N", manifest={"Order": "0.9"})
    with pytest.raises(SnapshotError, match=r"no longer registers: \['Gone'\]"):
        take_snapshot(tree, "N", manifest={"Gone": "1.0"})


# -- no false positives ---------------------------------------------------------------

def _domains() -> list[Registry]:
    import domain  # tests/storage/domain.py, on sys.path through tests/storage/conftest

    return [load_bench_model().bench, domain.reg]


@pytest.fixture(scope="module")
def test_domains() -> list[Registry]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
    try:
        return _domains()
    finally:
        sys.path.pop(0)


def test_the_test_domains_and_the_benchmark_model_raise_nothing(
        test_domains: list[Registry]) -> None:
    for reg in test_domains:
        snapshots = [take_snapshot(reg, "now")]
        # And every older release their histories describe.
        for cls in reg.newest():
            for number in cls.VERSIONS.numbers[:-1]:
                manifest = {**reg.manifest(), cls.__name__: number}
                snapshots.append(take_snapshot(reg, f"{cls.__name__}-{number}",
                                               manifest=manifest))
        assert len(snapshots) > 1
        assert check_compat(reg, snapshots) == [], reg


def fleet_n() -> Registry:
    reg = Registry("fleet")

    class Tag(VersionedObject, registry=reg):
        label: str

    class Box(VersionedObject, registry=reg):
        id: str
        tag: Tag

        @remotable
        def rename(self, name: str) -> str:
            return name

    return reg


def fleet_n1() -> Registry:
    reg = Registry("fleet")

    class Tag(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Tags have a color", Added("color")))
        label: str
        color: str = "grey"

    class Box(VersionedObject, registry=reg):
        VERSIONS = History(Version("1.0", "Initial version"),
                           Version("1.1", "Boxes weigh; tags have colors", Added("weight"),
                                   NestedVersion("tag", "1.1")))
        id: str
        tag: Tag
        weight: int = 0

        @remotable
        def rename(self, name: str, reason: str = "") -> str:
            return name

    return reg


def test_two_releases_that_evolve_correctly_raise_nothing() -> None:
    assert check_compat(fleet_n1(), [take_snapshot(fleet_n(), "N")]) == []


def test_sample_payloads_of_every_version_decode(test_domains: list[Registry]) -> None:
    import rollsafe

    for reg in test_domains:
        for cls in reg.newest():
            for number in cls.VERSIONS.numbers:
                payloads = sample_payloads(cls, number)
                assert len(payloads) > 3
                for payload in payloads:
                    assert payload[reg.key_version] == number
                    rollsafe.from_primitive(payload, cls)
