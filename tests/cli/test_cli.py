"""The ``rollsafe`` console script, run for real in a subprocess against a
small object module written into a temporary directory.

Exit codes: 0 match / success, 1 differences, 2 bad usage or input."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROLLSAFE = Path(sys.executable).with_name("rollsafe")

HEADER = """\
from typing import Literal

from rollsafe import Added, History, Registry, Version, VersionedObject, field

reg = Registry("clitest")
not_a_registry = {"namespace": "clitest"}

"""

# Release N: Thing at 1.0.
THING_1_0 = """\
class Thing(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"))

    name: str = field(max_length=20)
    status: Literal["on", "off"] = "off"
"""

# Release N+1 done wrongly: a field added, no version.
THING_1_0_CHANGED = """\
class Thing(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"))

    name: str = field(max_length=20)
    status: Literal["on", "off"] = "off"
    size: int = 0
"""

# Release N+1 done right: the field added as version 1.1.
THING_1_1 = """\
class Thing(VersionedObject, registry=reg):
    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "Add size", Added("size")),
    )

    name: str = field(max_length=20)
    status: Literal["on", "off"] = "off"
    size: int = 0
"""

OTHER = """\
class Other(VersionedObject, registry=reg):
    label: str
"""

SPEC = "objmod:reg"


def write_module(directory: Path, *classes: str, name: str = "objmod") -> None:
    (directory / f"{name}.py").write_text(HEADER + "\n\n".join(classes), encoding="utf-8")


def rollsafe(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1",
           "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([str(ROLLSAFE), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def flat(text: str) -> str:
    """Output with rich's box drawing and line breaks folded away, so a
    message can be searched for whatever the layout."""
    for ch in "│╭╮╰╯─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def tail(text: str, lines: int = 12) -> str:
    """The end of some output (where a traceback names its exception)."""
    return "\n".join(text.splitlines()[-lines:])


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, the needles in stderr, and no Python traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}:\n{tail(output)}"
    assert "Traceback" not in output, tail(output)
    for needle in needles:
        assert needle in flat(result.stderr), result.stderr


def test_console_script_is_installed() -> None:
    assert ROLLSAFE.is_file(), ROLLSAFE


# -- fingerprints: the workflow -----------------------------------------------------


def test_write_then_check_matches(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0, OTHER)
    written = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json")
    assert written.returncode == 0, written.stderr
    assert re.search(r"^wrote \d+ fingerprints of 2 objects to fp\.json$", written.stdout,
                     re.MULTILINE), written.stdout
    data = json.loads((tmp_path / "fp.json").read_text(encoding="utf-8"))
    assert sorted(data) == ["Other", "Thing"]
    assert data["Thing"]["1.0"].startswith("1.0-")
    assert "1.1" not in data["Thing"]

    checked = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "fingerprints match" in checked.stdout
    assert data["Thing"]["1.0"] in checked.stdout  # the table shows each fingerprint
    assert "differs" not in checked.stdout
    assert checked.stderr == ""


def test_field_added_without_a_version_fails_check(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0, OTHER)
    assert rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json").returncode == 0
    recorded = (tmp_path / "fp.json").read_text(encoding="utf-8")

    write_module(tmp_path, THING_1_0_CHANGED, OTHER)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert result.returncode == 1, result.stdout + result.stderr
    err = flat(result.stderr)
    assert "Thing 1.0: schema changed without a version bump" in err
    assert "add Version(...) after 1.0 in Thing.VERSIONS describing the change" in err
    assert "1 difference(s)." in err
    assert "Other" not in err  # only the changed class is named
    assert "(differs)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    # --check never writes.
    assert (tmp_path / "fp.json").read_text(encoding="utf-8") == recorded


def test_new_version_is_reported_until_written(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0, OTHER)
    assert rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json").returncode == 0

    write_module(tmp_path, THING_1_1, OTHER)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert result.returncode == 1, result.stdout + result.stderr
    err = flat(result.stderr)
    assert "Thing 1.1: new version (1.1-" in err
    assert "record it with --write" in err
    assert f"rollsafe fingerprints -r {SPEC} --write fp.json" in err
    # A proper bump is not a problem of 1.0: only the new version is listed.
    assert "1 difference(s)." in err, result.stderr
    assert "Thing 1.0" not in err, result.stderr

    written = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json")
    assert written.returncode == 0, written.stderr
    assert "of 2 objects to fp.json" in written.stdout
    recorded = json.loads((tmp_path / "fp.json").read_text(encoding="utf-8"))
    assert recorded["Thing"]["1.1"].startswith("1.1-")
    again = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fingerprints match" in again.stdout


def test_new_and_removed_objects_are_reported(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    assert rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json").returncode == 0
    write_module(tmp_path, OTHER)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert result.returncode == 1
    err = flat(result.stderr)
    assert "Other: new object (1.0); record it with --write" in err
    assert "Thing: in the fingerprint file but no longer registered" in err
    assert "2 difference(s)." in err


def test_file_name_is_printed_as_given(tmp_path: Path) -> None:
    # Paths are data, not rich markup: "[old]" must survive in messages, or
    # the suggested --write command names another file.
    write_module(tmp_path, THING_1_0)
    written = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp[old].json")
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "fp[old].json").is_file()
    assert "to fp[old].json" in written.stdout, written.stdout

    write_module(tmp_path, THING_1_1)  # a new version: the hint names the file to record
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp[old].json")
    assert result.returncode == 1
    assert "--write fp[old].json" in flat(result.stderr), result.stderr


def test_a_change_without_a_bump_is_not_offered_write_as_a_fix(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    assert rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "fp.json").returncode == 0
    write_module(tmp_path, THING_1_0_CHANGED)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert result.returncode == 1
    err = flat(result.stderr)
    assert "schema changed without a version bump" in err
    assert "--write would only hide these differences" in err
    assert "rollsafe fingerprints -r" not in err


# -- fingerprints: usage and input errors ---------------------------------------------


@pytest.mark.parametrize("spec", ["objmod", "objmod:", ":reg"])
def test_bad_registry_spec(tmp_path: Path, spec: str) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", spec, "--write", "fp.json")
    assert_clean_error(result, "expected MODULE:NAME")
    assert not (tmp_path / "fp.json").exists()


def test_module_that_does_not_exist(tmp_path: Path) -> None:
    result = rollsafe(tmp_path, "fingerprints", "-r", "no_such_module:reg", "--check", "fp.json")
    assert_clean_error(result, "importing 'no_such_module' failed",
                       "No module named 'no_such_module'")


def test_module_whose_import_fails(tmp_path: Path) -> None:
    (tmp_path / "needs_missing.py").write_text("import no_such_dependency\n", encoding="utf-8")
    result = rollsafe(tmp_path, "fingerprints", "-r", "needs_missing:reg", "--check", "fp.json")
    assert_clean_error(result, "importing 'needs_missing' failed", "no_such_dependency")


def test_module_that_raises_while_declaring_objects(tmp_path: Path) -> None:
    # A history that contradicts the fields fails at import with a
    # DefinitionError; that is bad input (exit 2, its message), not "the
    # check found differences" (exit 1) and not a traceback.
    (tmp_path / "badmod.py").write_text(HEADER + textwrap.dedent("""\
        class Thing(VersionedObject, registry=reg):
            VERSIONS = History(Version("1.0", "Initial version"), Version("1.0", "Again"))
            name: str
        """), encoding="utf-8")
    result = rollsafe(tmp_path, "fingerprints", "-r", "badmod:reg", "--check", "fp.json")
    assert_clean_error(result, "badmod", "versions must increase")


def test_attribute_that_is_not_a_registry(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", "objmod:not_a_registry",
                      "--check", "fp.json")
    assert_clean_error(result, "'objmod:not_a_registry' is a dict, not a rollsafe Registry")


def test_attribute_that_does_not_exist(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", "objmod:nothing", "--check", "fp.json")
    assert_clean_error(result, "module 'objmod' has no attribute 'nothing'")


def test_class_is_not_a_registry(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", "objmod:Thing", "--check", "fp.json")
    assert_clean_error(result, "not a rollsafe Registry")


@pytest.mark.parametrize("args", [[], ["--check", "a.json", "--write", "b.json"]],
                         ids=["neither", "both"])
def test_exactly_one_of_check_and_write(tmp_path: Path, args: list[str]) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, *args)
    assert_clean_error(result, "give exactly one of --check FILE or --write FILE")
    assert not (tmp_path / "b.json").exists()


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "missing.json")
    assert_clean_error(result, "cannot read missing.json", "No such file or directory")


def test_check_of_a_directory(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    (tmp_path / "adir").mkdir()
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "adir")
    assert_clean_error(result, "cannot read adir")


@pytest.mark.parametrize("content, needle", [
    ("not json at all", "Expecting value"),
    ("[1, 2]", "not a rollsafe fingerprint file"),
    ('{"Thing": "1.0-abc"}', "entry 'Thing' is not a map of versions to fingerprints"),
    ('{"Thing": {"1.0": 5}}', "entry 'Thing' is not a map of versions to fingerprints"),
    ('{"Thing": {"one": "1.0-abc"}}', "'one'"),
], ids=["not-json", "a-list", "flat-map", "number-fingerprint", "bad-version-key"])
def test_check_of_a_malformed_file(tmp_path: Path, content: str, needle: str) -> None:
    write_module(tmp_path, THING_1_0)
    (tmp_path / "fp.json").write_text(content, encoding="utf-8")
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert_clean_error(result, needle)
    assert "fp.json" in flat(result.stderr)


def test_check_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    (tmp_path / "fp.json").write_bytes(b"\xff\xfe{}")
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--check", "fp.json")
    assert_clean_error(result, "cannot read fp.json")


def test_write_into_a_missing_directory(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_0)
    result = rollsafe(tmp_path, "fingerprints", "-r", SPEC, "--write", "nodir/fp.json")
    assert_clean_error(result, "nodir/fp.json")


# -- schema ----------------------------------------------------------------------------


def test_schema_prints_the_canonical_schema_as_json(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_1)
    result = rollsafe(tmp_path, "schema", "-r", SPEC, "Thing")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {
        "name": "Thing",
        "version": "1.1",
        "fields": [
            {"name": "name", "type": {"type": "str", "max_length": 20},
             "default": {"required": True}, "read_only": False},
            {"name": "size", "type": {"type": "int"}, "default": {"value": 0},
             "read_only": False},
            {"name": "status", "type": {"type": "enum", "values": ["off", "on"]},
             "default": {"value": "off"}, "read_only": False},
        ],
        "remote_methods": [],
    }


def test_schema_of_an_older_version(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_1)
    result = rollsafe(tmp_path, "schema", "-r", SPEC, "Thing", "--version", "1.0")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == "1.0"
    assert [f["name"] for f in data["fields"]] == ["name", "status"]


@pytest.mark.parametrize("version, needle", [
    ("9.9", "Thing 9.9 is newer than this code knows (newest: 1.1)"),
    ("0.5", "Thing has no version 0.5; known: 1.0, 1.1"),
    ("abc", "'abc' is not a version"),
])
def test_schema_of_a_bad_version(tmp_path: Path, version: str, needle: str) -> None:
    write_module(tmp_path, THING_1_1)
    result = rollsafe(tmp_path, "schema", "-r", SPEC, "Thing", "--version", version)
    assert_clean_error(result, needle)
    assert result.stdout == ""


def test_schema_of_an_unknown_object(tmp_path: Path) -> None:
    write_module(tmp_path, THING_1_1)
    result = rollsafe(tmp_path, "schema", "-r", SPEC, "Nope")
    assert_clean_error(result, "clitest has no object named 'Nope'; known: Thing")


def test_schema_with_a_bad_registry(tmp_path: Path) -> None:
    result = rollsafe(tmp_path, "schema", "-r", "no_such_module:reg", "Thing")
    assert_clean_error(result, "importing 'no_such_module' failed")
