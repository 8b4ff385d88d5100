"""The pytest plugin: the ``rollsafe_fingerprints`` fixture fails a test with
a readable list of differences, and ``--rollsafe-write-fingerprints``
records the file instead.

Each scenario runs pytest in a subprocess (the plugin is loaded from its
entry point, as in a user's project) on a generated project holding an
object module and one test using the fixture."""

import json
import textwrap

import pytest

pytest_plugins = ["pytester"]

OBJECTS_1_0 = """\
from rollsafe import History, Registry, Version, VersionedObject

reg = Registry("plugintest")


class Widget(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"))

    name: str


class Gadget(VersionedObject, registry=reg):
    label: str
"""

# Widget gains a field without a new version.
OBJECTS_CHANGED = OBJECTS_1_0.replace("    name: str\n", "    name: str\n    size: int = 0\n")

TEST_MODULE = """\
from plugin_objects import reg


def test_objects_are_versioned(rollsafe_fingerprints):
    rollsafe_fingerprints(reg, "object_fingerprints.json")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert()  # so the generated test can import plugin_objects
    pytester.makepyfile(plugin_objects=OBJECTS_1_0, test_versioned=TEST_MODULE)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf", *args)


def test_missing_file_fails_with_instructions(project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no fingerprint file at object_fingerprints.json; run pytest with "
        "--rollsafe-write-fingerprints to record one*",
    ])
    # A readable failure: the message, not the plugin's source.
    result.stdout.no_fnmatch_line("*pytest.fail(*")
    assert not (project.path / "object_fingerprints.json").exists()


def test_write_option_records_then_check_passes(project: pytest.Pytester) -> None:
    written = run(project, "--rollsafe-write-fingerprints")
    written.assert_outcomes(passed=1)
    path = project.path / "object_fingerprints.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(data) == ["Gadget", "Widget"]
    assert data["Widget"]["1.0"].startswith("1.0-")

    checked = run(project)
    checked.assert_outcomes(passed=1)


def test_schema_change_fails_naming_the_class(project: pytest.Pytester) -> None:
    run(project, "--rollsafe-write-fingerprints").assert_outcomes(passed=1)
    project.makepyfile(plugin_objects=OBJECTS_CHANGED)

    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*object fingerprints differ from object_fingerprints.json:*",
        "*- Widget 1.0: schema changed without a version bump (1.0-* -> 1.0-*); "
        "add Version(...) after 1.0 in Widget.VERSIONS describing the change*",
    ])
    result.stdout.no_fnmatch_line("*Gadget*")  # the unchanged class is not listed
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*assert_fingerprints(registry, path)*")


def test_schema_change_failure_is_shown_once(project: pytest.Pytester) -> None:
    # pytest.fail(pytrace=False) keeps the report to the message; raised
    # inside "except", it also drags in the FingerprintMismatchError as the
    # context, so the list is printed twice around "During handling of the
    # above exception, another exception occurred".
    run(project, "--rollsafe-write-fingerprints").assert_outcomes(passed=1)
    project.makepyfile(plugin_objects=OBJECTS_CHANGED)

    result = run(project)
    result.assert_outcomes(failed=1)
    failures = result.stdout.str().split("= FAILURES =")[1].split("short test summary")[0]
    assert failures.count("- Widget 1.0: schema changed without a version bump") == 1, failures
    assert "During handling of the above exception" not in failures, failures


def test_write_option_after_a_change_rerecords(project: pytest.Pytester) -> None:
    run(project, "--rollsafe-write-fingerprints").assert_outcomes(passed=1)
    path = project.path / "object_fingerprints.json"
    before = json.loads(path.read_text(encoding="utf-8"))
    project.makepyfile(plugin_objects=OBJECTS_CHANGED)

    run(project, "--rollsafe-write-fingerprints").assert_outcomes(passed=1)
    after = json.loads(path.read_text(encoding="utf-8"))
    assert after["Gadget"] == before["Gadget"]
    assert after["Widget"] != before["Widget"]
    run(project).assert_outcomes(passed=1)


def test_malformed_file_fails_readably(project: pytest.Pytester) -> None:
    (project.path / "object_fingerprints.json").write_text("[]", encoding="utf-8")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*object_fingerprints.json*not a rollsafe fingerprint file*"])


def test_option_is_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--rollsafe-write-fingerprints*"])


def test_fixture_is_available_without_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixture=textwrap.dedent("""\
        def test_it(rollsafe_fingerprints):
            assert callable(rollsafe_fingerprints)
        """))
    run(pytester).assert_outcomes(passed=1)
