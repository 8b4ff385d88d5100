"""Change tracking: what_changed reports assignments, in-place container
changes and changes inside nested objects; reset_changes forgets them."""

import pytest

from rollsafe import (
    Added,
    History,
    Registry,
    Renamed,
    Version,
    VersionedObject,
    field,
    from_primitive,
    reset_changes,
    to_primitive,
    what_changed,
)

reg = Registry("tracking")


class Leaf(VersionedObject, registry=reg):
    n: int = 0
    xs: list[int] = field(default_factory=list)


class Tree(VersionedObject, registry=reg):
    name: str = "t"
    count: int = 0
    tags: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)
    grid: list[list[int]] = field(default_factory=lambda: [[1, 2], [3]])
    groups: dict[str, list[str]] = field(default_factory=lambda: {"a": ["x"]})
    maybe: list[int] | None = None
    leaf: Leaf = field(default_factory=Leaf)
    leaves: list[Leaf] = field(default_factory=lambda: [Leaf(), Leaf()])
    named: dict[str, Leaf] = field(default_factory=lambda: {"k": Leaf()})
    spare: Leaf | None = None


ALL = {"name", "count", "tags", "meta", "labels", "grid", "groups", "maybe", "leaf",
       "leaves", "named", "spare"}
HOLDERS = {"leaf", "leaves", "named"}  # fields holding (fresh) objects by default


@pytest.fixture
def tree() -> Tree:
    """A tree with every change forgotten, children included."""
    obj = Tree()
    reset_changes(obj, recursive=True)
    assert what_changed(obj) == set()
    return obj


@pytest.fixture
def local_reg() -> Registry:
    """A registry of its own, for classes declared inside one test."""
    return Registry("local")


# -- fresh objects -------------------------------------------------------------------

def test_fresh_object_reports_every_field_changed() -> None:
    assert what_changed(Tree()) == ALL
    assert what_changed(Leaf(n=1)) == {"n", "xs"}


def test_fields_left_at_their_default_are_reported_too() -> None:
    assert "count" in what_changed(Tree(name="given"))


def test_what_changed_returns_a_copy_the_caller_may_change() -> None:
    obj = Leaf()
    what_changed(obj).clear()
    assert what_changed(obj) == {"n", "xs"}


# -- assignment ------------------------------------------------------------------------

def test_reset_changes_forgets_every_change(tree: Tree) -> None:
    assert what_changed(tree) == set()
    assert what_changed(tree.leaf) == set()


def test_assignment_is_reported(tree: Tree) -> None:
    tree.count = 5
    tree.name = "new"
    assert what_changed(tree) == {"count", "name"}


def test_assignment_of_an_equal_value_is_still_reported(tree: Tree) -> None:
    tree.count = 0
    assert what_changed(tree) == {"count"}


def test_refused_assignment_is_not_reported(tree: Tree) -> None:
    with pytest.raises(ValueError):
        tree.count = "5"  # type: ignore[assignment]
    assert what_changed(tree) == set()


def test_assigning_none_to_a_nullable_field_is_reported(tree: Tree) -> None:
    tree.maybe = [1]
    reset_changes(tree)
    tree.maybe = None
    assert what_changed(tree) == {"maybe"}


# -- in-place changes of containers ---------------------------------------------------------

@pytest.mark.parametrize(("name", "mutate"), [
    ("tags", lambda t: t.tags.append("x")),
    ("tags", lambda t: t.tags.extend(["x", "y"])),
    ("meta", lambda t: t.meta.__setitem__("k", "v")),
    ("labels", lambda t: t.labels.add("x")),
    ("grid", lambda t: t.grid[1].append(4)),
    ("grid", lambda t: t.grid[0].__setitem__(0, 9)),
    ("grid", lambda t: t.grid.append([])),
    ("groups", lambda t: t.groups["a"].append("y")),
    ("groups", lambda t: t.groups.__setitem__("b", [])),
], ids=["list-append", "list-extend", "dict-set", "set-add", "list-of-lists-inner-append",
        "list-of-lists-inner-set", "list-of-lists-outer-append", "dict-of-lists-inner-append",
        "dict-of-lists-new-key"])
def test_in_place_change_of_a_container_is_reported(tree: Tree, name: str, mutate) -> None:
    mutate(tree)
    assert what_changed(tree) == {name}


def test_in_place_removal_from_a_container_is_reported() -> None:
    obj = Tree(tags=["a"], meta={"k": "v"}, labels={"x"})
    reset_changes(obj, recursive=True)
    obj.tags.pop()
    obj.meta.clear()
    obj.labels.discard("x")
    assert what_changed(obj) == {"tags", "meta", "labels"}


def test_in_place_change_of_a_nullable_list_is_reported(tree: Tree) -> None:
    tree.maybe = [1]
    reset_changes(tree)
    tree.maybe.append(2)
    assert what_changed(tree) == {"maybe"}


def test_in_place_change_undone_before_asking_is_not_reported(tree: Tree) -> None:
    tree.tags.append("x")
    tree.tags.pop()
    assert what_changed(tree) == set()


def test_in_place_change_made_before_a_reset_is_forgotten(tree: Tree) -> None:
    tree.grid[0].append(7)
    reset_changes(tree)
    assert what_changed(tree) == set()
    tree.grid[0].append(8)
    assert what_changed(tree) == {"grid"}


# -- nested objects --------------------------------------------------------------------------

def test_assignment_inside_a_nested_object_is_reported_by_the_parent(tree: Tree) -> None:
    tree.leaf.n = 3
    assert what_changed(tree) == {"leaf"}
    assert what_changed(tree.leaf) == {"n"}


def test_in_place_change_inside_a_nested_object_is_reported_by_the_parent(tree: Tree) -> None:
    tree.leaf.xs.append(1)
    assert what_changed(tree) == {"leaf"}
    assert what_changed(tree.leaf) == {"xs"}


def test_change_inside_an_element_of_a_list_of_objects_is_reported(tree: Tree) -> None:
    tree.leaves[1].n = 5
    assert what_changed(tree) == {"leaves"}


def test_in_place_change_inside_an_element_of_a_list_of_objects_is_reported(
        tree: Tree) -> None:
    tree.leaves[0].xs.append(5)
    assert what_changed(tree) == {"leaves"}


def test_replacing_an_element_of_a_list_of_objects_is_reported(tree: Tree) -> None:
    replacement = Leaf(n=7)
    reset_changes(replacement)
    tree.leaves[0] = replacement
    assert what_changed(tree) == {"leaves"}


def test_appending_to_a_list_of_objects_is_reported(tree: Tree) -> None:
    child = Leaf()
    reset_changes(child)
    tree.leaves.append(child)
    assert what_changed(tree) == {"leaves"}


def test_change_inside_an_object_held_in_a_dict_is_reported(tree: Tree) -> None:
    tree.named["k"].n = 1
    assert what_changed(tree) == {"named"}


def test_change_inside_a_nullable_nested_object_is_reported(tree: Tree) -> None:
    tree.spare = Leaf()
    reset_changes(tree, recursive=True)
    tree.spare.n = 2
    assert what_changed(tree) == {"spare"}


def test_change_two_levels_down_is_reported_at_the_top(local_reg: Registry) -> None:
    class Mid(VersionedObject, registry=local_reg):
        leaves: list[Leaf] = field(default_factory=lambda: [Leaf()])

    class Top(VersionedObject, registry=local_reg):
        mid: Mid = field(default_factory=Mid)

    top = Top()
    reset_changes(top, recursive=True)
    top.mid.leaves[0].xs.append(1)
    assert what_changed(top) == {"mid"}
    assert what_changed(top.mid) == {"leaves"}


# -- resets ----------------------------------------------------------------------------------

def test_non_recursive_reset_leaves_fresh_children_changed_so_the_parent_reports_them() -> None:
    obj = Tree()
    reset_changes(obj)
    assert what_changed(obj) == HOLDERS
    assert what_changed(obj.leaf) == {"n", "xs"}


def test_non_recursive_reset_keeps_a_childs_own_change(tree: Tree) -> None:
    tree.leaf.n = 1
    tree.count = 2
    reset_changes(tree)
    assert what_changed(tree) == {"leaf"}
    assert what_changed(tree.leaf) == {"n"}


def test_recursive_reset_clears_children_at_every_depth(tree: Tree) -> None:
    tree.leaf.n = 1
    tree.leaves[1].xs.append(1)
    tree.named["k"].n = 4
    tree.count = 1
    reset_changes(tree, recursive=True)
    assert what_changed(tree) == set()
    assert what_changed(tree.leaf) == set()
    assert what_changed(tree.leaves[1]) == set()
    assert what_changed(tree.named["k"]) == set()


def test_resetting_the_child_alone_clears_what_the_parent_reports(tree: Tree) -> None:
    tree.leaf.n = 1
    reset_changes(tree.leaf)
    assert what_changed(tree) == set()


def test_reset_of_some_fields_keeps_the_others(tree: Tree) -> None:
    tree.count = 1
    tree.name = "x"
    tree.tags.append("y")
    reset_changes(tree, fields=["count"])
    assert what_changed(tree) == {"name", "tags"}
    reset_changes(tree, fields={"tags"})
    assert what_changed(tree) == {"name"}


def test_reset_of_some_fields_keeps_an_in_place_change_of_another_field(tree: Tree) -> None:
    tree.tags.append("y")
    reset_changes(tree, fields=["count"])
    assert what_changed(tree) == {"tags"}


def test_recursive_reset_of_some_fields_resets_only_their_children(tree: Tree) -> None:
    tree.leaf.n = 1
    tree.leaves[0].n = 1
    reset_changes(tree, fields=["leaf"], recursive=True)
    assert what_changed(tree.leaf) == set()
    assert what_changed(tree.leaves[0]) == {"n"}
    assert what_changed(tree) == {"leaves"}


def test_reset_of_an_unknown_field_raises_key_error(tree: Tree) -> None:
    with pytest.raises(KeyError, match="nope"):
        reset_changes(tree, fields=["nope"])


# -- decoded objects ------------------------------------------------------------------------

def test_decoded_object_reports_the_payloads_changes(tree: Tree) -> None:
    tree.count = 3
    tree.tags.append("x")
    prim = to_primitive(tree)
    assert prim["versioned_object.changes"] == ["count", "tags"]
    assert what_changed(from_primitive(prim, Tree)) == {"count", "tags"}


def test_decoded_object_without_changes_in_the_payload_reports_none(tree: Tree) -> None:
    prim = to_primitive(tree)
    assert "versioned_object.changes" not in prim
    decoded = from_primitive(prim, Tree)
    assert what_changed(decoded) == set()


def test_decoded_nested_objects_report_their_own_payload_changes(tree: Tree) -> None:
    tree.leaves[1].n = 9
    decoded = from_primitive(to_primitive(tree), Tree)
    assert what_changed(decoded) == {"leaves"}
    assert what_changed(decoded.leaves[1]) == {"n"}
    assert what_changed(decoded.leaves[0]) == set()


def test_decoded_object_tracks_later_in_place_changes(tree: Tree) -> None:
    decoded = from_primitive(to_primitive(tree), Tree)
    decoded.groups["a"].append("z")
    decoded.leaf.xs.append(1)
    assert what_changed(decoded) == {"groups", "leaf"}


def test_upgraded_object_reports_changes_under_their_new_names(local_reg: Registry) -> None:
    class App(VersionedObject, registry=local_reg):
        VERSIONS = History(Version("1.0"),
                           Version("1.1", "", Renamed("owner", "project")),
                           Version("1.2", "", Added("restarts", default=0)))
        name: str
        project: str
        restarts: int = 0

    old = {
        "versioned_object.name": "App",
        "versioned_object.namespace": "local",
        "versioned_object.version": "1.0",
        "versioned_object.data": {"name": "a", "owner": "me"},
        "versioned_object.changes": ["owner"],
    }
    assert what_changed(from_primitive(old, App)) == {"project"}
