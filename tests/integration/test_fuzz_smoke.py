"""A short run of the fuzzer (bench/fuzz.py): a few thousand generated bad inputs against a real `estrom up`.

The fuzzer starts its own `estrom up` on free ports, sends 3,000 bad inputs over HTTP and WAMP
(seed 7, the same inputs every run) interleaved with good documents and registrations, and ends
with one ``key=value`` line; each test below holds one of its figures to the target.  If
`estrom up` cannot start, the fuzzer exits non-zero without that line and every test fails.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Dict

import pytest

from tests.integration.conftest import ROOT, settings_free_environment

INPUTS = 3000


class FuzzRun:
    """The fuzzer's output and its last line's figures."""

    def __init__(self, output: str, returncode: int) -> None:
        self.output = output
        self.returncode = returncode
        last = output.strip().splitlines()[-1] if output.strip() else ""
        self.figures: Dict[str, str] = dict(pair.split("=", 1) for pair in last.split() if "=" in pair)

    def figure(self, name: str) -> float:
        """One figure of the last line (the test fails, with the output, if there is none)."""
        assert name in self.figures, f"the fuzzer gave no {name} (exit {self.returncode}):\n{self.output[-6000:]}"
        return float(self.figures[name])

    def findings(self) -> str:
        """The findings section of the output, for a failure message."""
        at = self.output.find("\nfindings:")
        return self.output[at:at + 8000] if at >= 0 else self.output[-4000:]


@pytest.fixture(scope="module")
def fuzz_run() -> FuzzRun:
    """One fuzz run shared by the tests of this module."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--inputs", str(INPUTS), "--seed", "7"],
        capture_output=True, text=True, cwd=ROOT, env=settings_free_environment(), timeout=600,
    )
    return FuzzRun(done.stdout + done.stderr, done.returncode)


def test_every_generated_input_was_sent(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("inputs") == INPUTS


def test_no_bad_input_gets_a_5xx(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("s5xx") == 0, fuzz_run.findings()


def test_no_wamp_call_gets_an_internal_error(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("w_internal") == 0, fuzz_run.findings()


def test_every_answer_comes_within_the_bound(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("hangs") == 0, fuzz_run.findings()


def test_no_process_crashes_or_is_restarted(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("restarts") == 0, fuzz_run.findings()


def test_every_accepted_good_document_reaches_the_tail(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("good_sent") > 0
    assert fuzz_run.figure("lost") == 0, fuzz_run.findings()


def test_every_good_registration_succeeds(fuzz_run: FuzzRun) -> None:
    assert fuzz_run.figure("good_reg_failed") == 0, fuzz_run.findings()
