"""The exactly-once proof, at suite size: 1,000 touches (500 leads x email + WhatsApp)
through fakes injecting 429s, 500s, hangs and dropped connections, with the dispatcher
process SIGKILLed mid-way and restarted. `./dev bench delivery` runs the same check with
10,000 touches. Takes about 15 s."""

from __future__ import annotations

from pathlib import Path

from leadops.models import TouchStatus
from leadops.testing.fakes import Faults
from leadops.testing.scenario import fault_run


def test_killed_dispatcher_under_provider_faults_sends_nothing_twice(tmp_path: Path) -> None:
    faults = Faults(
        rate_limited=0.05, server_error=0.03, hang=0.01, drop=0.01, drop_after=0.01, retry_after=0
    )
    # The fakes hang for 5 s; 2.5 s still takes a hang for one while leaving a slow answer
    # on a loaded machine room to arrive.
    report = fault_run(tmp_path, leads=500, faults=faults, kill_fraction=0.3, timeout_seconds=2.5)

    assert report.duplicates == {}
    assert report.problems == []
    assert 0 < report.killed_after_accepted < report.touches
    assert report.runs >= 2
    for answer in ("rate_limited", "server_error", "hang", "drop", "drop_after"):
        assert report.answers[answer] > 0, answer
    assert sum(report.statuses.values()) == report.touches
    assert set(report.statuses) <= {TouchStatus.SENT, TouchStatus.AMBIGUOUS, TouchStatus.FAILED}
    assert report.statuses[TouchStatus.SENT] >= 0.8 * report.touches
    assert report.statuses[TouchStatus.AMBIGUOUS] > 0  # hangs and the kill leave some in doubt
