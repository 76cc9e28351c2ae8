"""The supervisor's restart policy and the line it prints, as pure functions."""

from __future__ import annotations

import io
import signal
from typing import Optional, Tuple

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from estrom.supervisor import BackoffPolicy, Supervisor, describe_exit, exit_line, next_restart, summarize_output

POLICY = BackoffPolicy(initial=0.5, factor=2.0, maximum=30.0, stable_after=60.0)


def delays(policy: BackoffPolicy, runs: list) -> list:
    """The delays chosen for a sequence of runs lasting ``runs`` seconds each."""
    failures, chosen = 0, []
    for ran_for in runs:
        delay, failures = next_restart(policy, failures, ran_for)
        chosen.append(delay)
    return chosen


def test_the_first_restart_waits_the_initial_delay() -> None:
    """A part that dies for the first time is restarted after ``initial`` seconds."""
    assert next_restart(POLICY, 0, 5.0) == (0.5, 1)


def test_a_part_that_keeps_dying_waits_twice_as_long_each_time() -> None:
    """Quick exits in a row double the delay: 0.5, 1, 2, 4, 8 s."""
    assert delays(POLICY, [1.0] * 5) == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_delay_never_exceeds_the_maximum() -> None:
    """However many exits in a row, the wait stays at ``maximum``."""
    assert delays(POLICY, [0.1] * 12)[-3:] == [30.0, 30.0, 30.0]


def test_a_very_long_streak_does_not_overflow() -> None:
    """Thousands of failures (a part that can never start, for days) still give ``maximum``."""
    assert next_restart(POLICY, 100_000, 0.1) == (30.0, 100_001)


def test_a_stable_run_resets_the_back_off() -> None:
    """After a run of at least ``stable_after`` seconds the next exit waits ``initial`` again."""
    assert delays(POLICY, [1.0, 1.0, 1.0, 60.0, 1.0]) == [0.5, 1.0, 2.0, 0.5, 1.0]


def test_a_run_just_short_of_stable_keeps_the_streak() -> None:
    """59.9 s is not stable: the delay keeps growing."""
    assert delays(POLICY, [1.0, 59.9]) == [0.5, 1.0]


def test_a_kill_by_signal_is_named() -> None:
    """A negative return code is the signal that killed the process, by name."""
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"


def test_an_exit_code_is_given_as_is() -> None:
    """A process that exited by itself is described by its exit code."""
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"


def test_the_line_says_what_happened_and_when_it_restarts() -> None:
    """The one line names the part, its pid, what happened, the delay and the restart count."""
    line = exit_line("router", 123, "was killed by SIGKILL", 0.5, 1)
    assert line == "estrom: router (pid 123) was killed by SIGKILL; restarting in 0.5 s (restart 1)"


def test_the_line_carries_the_last_output_when_given() -> None:
    """A part that could not start has its last words appended, on the same line."""
    line = exit_line("beater", 7, "exited with code 1", 4.0, 3, "estrom: port 8001 is already in use")
    assert line == ("estrom: beater (pid 7) exited with code 1; restarting in 4 s (restart 3); "
                    "last output: estrom: port 8001 is already in use")
    assert "\n" not in line


def test_output_is_summarized_to_its_last_non_empty_lines_on_one_line() -> None:
    """Blank lines are skipped and the last three lines are joined with ' | '."""
    text = "starting\n\nTraceback (most recent call last):\n  File x\nValueError: bad mapping\n\n"
    assert summarize_output(text) == "Traceback (most recent call last): | File x | ValueError: bad mapping"


def test_long_output_is_cut_from_the_front() -> None:
    """The end of the output (where the reason is) is kept within the limit."""
    summary = summarize_output("x" * 1000 + " the reason", limit=50)
    assert len(summary) == 50 and summary.endswith("the reason") and summary.startswith("...")


def test_no_output_gives_an_empty_summary() -> None:
    """Nothing written: nothing appended to the line."""
    assert summarize_output("\n \n") == ""


class ScriptedPart:
    """A stand-in for a process: it 'exits' when a test says so and counts its starts."""

    name = "beater"

    def __init__(self) -> None:
        self.pid = 100
        self.returncode: Optional[int] = None
        self.starts = 0
        self.output = ""

    def start(self) -> None:
        self.starts += 1
        self.pid += 1
        self.returncode = None

    def reap(self) -> Optional[int]:
        return self.returncode

    async def wait_ready(self, reactor: object) -> None:
        return None

    def output_tail(self) -> str:
        return self.output

    async def stop(self, reactor: object) -> None:
        return None


def supervised(part: ScriptedPart) -> Tuple[Supervisor, Clock, io.StringIO]:
    """A started Supervisor of ``part`` on a fake clock, and the lines it printed."""
    clock, out = Clock(), io.StringIO()
    supervisor = Supervisor(clock, [part], POLICY, poll_s=0.2, out=out, clock=clock.seconds)
    supervisor.start()
    return supervisor, clock, out


def test_an_exit_is_reported_once_and_restarted_after_the_delay() -> None:
    """One line per exit, however often the part is polled; the restart comes after 0.5 s."""
    part = ScriptedPart()
    _, clock, out = supervised(part)
    part.returncode = -signal.SIGKILL
    clock.pump([0.2] * 3)  # 0.6 s: found dead at 0.2 s, restarted at 0.7 s
    assert part.starts == 0
    clock.advance(0.1)
    assert part.starts == 1
    assert out.getvalue() == "estrom: beater (pid 100) was killed by SIGKILL; restarting in 0.5 s (restart 1)\n"


def test_an_exit_by_itself_is_reported_with_its_last_output() -> None:
    """A part that exits with a code (not a signal) has its last output on the line."""
    part = ScriptedPart()
    _, clock, out = supervised(part)
    part.output = "Traceback...\nValueError: bad setting\n"
    part.returncode = 1
    clock.advance(0.2)
    assert out.getvalue().rstrip("\n").endswith("(restart 1); last output: Traceback... | ValueError: bad setting")


def test_stopping_during_the_back_off_cancels_the_restart() -> None:
    """Once the supervisor is stopped, a pending restart never happens."""
    part = ScriptedPart()
    supervisor, clock, _ = supervised(part)
    part.returncode = 3
    clock.advance(0.2)
    ensureDeferred(supervisor.stop())
    clock.pump([1.0] * 60)
    assert part.starts == 0
    assert clock.getDelayedCalls() == []
