"""The pytest plugin's ``rollsafe_round_trips`` and ``rollsafe_corpus``
fixtures, run in a pytest subprocess on a generated project (the plugin is
loaded from its entry point, as in a user's project): each passes on a sound
history, and fails readably on a broken one."""

import pytest

pytest_plugins = ["pytester"]

OBJECTS = """\
from rollsafe import History, Registry, Retyped, Version, VersionedObject

reg = Registry("fixtures")


class Meter(VersionedObject, registry=reg):
    VERSIONS = History(Version("1.0", "Initial version"){more})
    reading: {annotation} = 0
"""

SOUND = OBJECTS.format(more="", annotation="int")
# 1.1 reads 1.0's text readings with int(): "" and "abc" cannot be read.
BROKEN = OBJECTS.format(
    more=',\n                       Version("1.1", "Numbers", Retyped("reading", str, '
         'upgrade=int, downgrade=str))', annotation="int")
# 1.1 divides readings by ten on the way up: data is lost.
LOSSY = OBJECTS.format(
    more=',\n                       Version("1.1", "Tens", Retyped("reading", int, '
         'upgrade=lambda v: v // 10, downgrade=lambda v: v * 10))', annotation="int")
# The same field, declared as a new version that keeps every value.
EVOLVED = OBJECTS.format(
    more=',\n                       Version("1.1", "Text", Retyped("reading", int, '
         'upgrade=str, downgrade=int))', annotation="str").replace("= 0", '= "0"')

TESTS = """\
from meter_objects import reg


def test_round_trips(rollsafe_round_trips):
    rollsafe_round_trips(reg, max_examples=10)


def test_corpus(rollsafe_corpus):
    rollsafe_corpus(reg, "corpus")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert()
    pytester.makepyfile(meter_objects=SOUND, test_meter=TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf", *args)


def test_round_trips_pass_on_a_sound_history_and_corpus_asks_to_be_captured(
        project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no golden corpus in *corpus: capture one per release*"
                                 "--rollsafe-capture-corpus=RELEASE*"])


def test_capture_then_replay_on_a_release_that_evolved_correctly(
        project: pytest.Pytester) -> None:
    run(project, "--rollsafe-capture-corpus=N").assert_outcomes(passed=2)
    assert (project.path / "corpus" / "N" / "Meter-1.0.json").is_file()
    project.makepyfile(meter_objects=EVOLVED)
    run(project).assert_outcomes(passed=2)


def test_a_broken_history_fails_both_readably(project: pytest.Pytester) -> None:
    run(project, "--rollsafe-capture-corpus=N").assert_outcomes(passed=2)
    project.makepyfile(meter_objects=LOSSY)
    result = run(project)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*payloads did not survive their round trips:*",
        "*- Meter 1.0 -> 1.1 -> 1.0 -> 1.0: field 'reading' was *, came back *",
        "*the golden corpus in corpus no longer round-trips:*",
        "*- N/Meter-1.0.json[[]*[]]: Meter 1.0 -> 1.1 -> 1.0 -> 1.0: field 'reading' was *",
    ])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_history_that_cannot_read_old_payloads_fails(project: pytest.Pytester) -> None:
    project.makepyfile(meter_objects=BROKEN)
    result = run(project, "-k", "round_trips")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- Meter 1.0 payload cannot be read by 1.1*invalid literal*"])


def test_capture_option_is_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--rollsafe-capture-corpus=RELEASE*"])
