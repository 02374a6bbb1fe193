"""The side-by-side benchmark runs end to end on a few endpoints (no timing is asserted)."""

from __future__ import annotations

import re

import pytest

from bench import side_by_side


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 8 and cells[0] and not cells[0].startswith("-"):
            rows[cells[0]] = cells[5]
    return rows


def test_without_blackbox_the_column_is_skipped_with_a_message(capsys):
    side_by_side.main(["--targets", "30", "--latency-ms", "5", "--blackbox", "/nonexistent"])
    out = capsys.readouterr().out
    assert "blackbox_exporter not found: its column is skipped" in out
    rows = _rows(out)
    assert rows == {
        "sslnotify check (new process)": "30 / 30",
        "bare asyncio handshakes": "30 / 30",
        "probes alone (gather_evidence)": "30 / 30",
        "checker: probe + evaluate_group": "30 / 30",
    }
    assert re.search(r"load average before: [0-9.]+ [0-9.]+ [0-9.]+", out)


@pytest.mark.skipif(side_by_side.find_blackbox(None) is None, reason="no blackbox_exporter here")
def test_with_blackbox_every_probe_succeeds(capsys):
    side_by_side.main(["--targets", "30", "--latency-ms", "5"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["blackbox_exporter (tcp, tls: true)"] == "30 / 30"
    assert "finished before blackbox_exporter in" in out


def test_the_race_is_summed_up_over_the_rounds():
    def rounds(*pairs):
        return [
            [side_by_side.Row("cli", cli, 0.0, 1), side_by_side.Row("exporter", exporter, 0.0, 1)]
            for cli, exporter in pairs
        ]

    line = side_by_side.race_summary(rounds((0.70, 0.80), (0.90, 0.80), (0.75, 0.76)))
    assert line == (
        "sslnotify check finished before blackbox_exporter in 2 of 3 rounds; "
        "medians 0.75 s and 0.80 s"
    )
