"""`sslnotify check` as a scripted tool: target lists, monitoring formats, limits, pipes."""

from __future__ import annotations

import json
import os
import pty
import re
import resource
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chalicelib import cli
from chalicelib.config import reset_settings
from tests.certs import make_leaf, make_pki

DAY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]
# A perfdata item (monitoring-plugins guidelines): 'label'=value[UOM];[warn];[crit];[min];[max]
PERFDATA = re.compile(
    r"(?P<label>'(?:[^']|'')+'|[^'= ]+)=(?P<value>-?[0-9.]+|U)(?P<uom>[a-zA-Z%]*)"
    r"(?:;(?P<warn>[-0-9.:~@]*))?(?:;(?P<crit>[-0-9.:~@]*))?(?:;[-0-9.]*){0,2}"
)
NAGIOS_LINE = re.compile(r"SSLNOTIFY (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+) \| ([^|\n]+)")


@pytest.fixture(autouse=True)
def only_check(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"check": cli.COMMANDS["check"]})


@pytest.fixture(scope="module")
def pki():
    return make_pki(datetime.now(UTC))


@pytest.fixture
def root_file(pki, ca_file):
    return ca_file(pki.root)


@pytest.fixture
def servers(tls_server, pki):
    """One server per status: ok (59 days), expiring (20 days left), invalid (self-signed)."""
    now = datetime.now(UTC)
    names = {"dns": ["localhost", "*.list.test"], "ips": ["127.0.0.1"]}
    ok = tls_server([pki.leaf(**names), pki.intermediate])
    expiring = tls_server([pki.leaf(**names, not_after=now + 20.5 * DAY), pki.intermediate])
    invalid = tls_server([make_leaf(None, **names)])
    return {"ok": ok, "expiring": expiring, "invalid": invalid}


def run(capsys, *args):
    status = cli.main(["check", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def _subprocess(args, **options):
    command = [sys.executable, "-m", "chalicelib.cli", "check", *args]
    options.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False, **options
    )


# --- lists of targets -----------------------------------------------------------------------


def test_file_of_targets_with_comments_and_a_bad_line(capsys, servers, root_file, tmp_path):
    ok, expiring = servers["ok"].port, servers["expiring"].port
    listing = tmp_path / "targets.txt"
    listing.write_text(
        "# production\n"
        f"127.0.0.1:{ok}\n"
        "\n"
        f"   https://localhost:{expiring}/path#frag   # trailing comment\n"
        "exa mple.com\n"
        f"127.0.0.1:{ok}:99\n"
    )
    status, out, err = run(capsys, "--file", str(listing), "--cafile", root_file)
    assert [line.split("  ")[1] for line in out] == ["OK", "EXPIRING"]
    assert out[1].startswith(f"localhost:{expiring}  EXPIRING")
    assert status == 3  # bad lines make the run UNKNOWN, after the good ones were checked
    assert err[0].startswith(f"sslnotify: {listing}:5: not a valid host name")
    assert err[1].startswith(f"sslnotify: {listing}:6: ")
    assert len(err) == 2


def test_file_from_stdin_and_arguments_together(servers, root_file):
    ok, invalid = servers["ok"].port, servers["invalid"].port
    answer = _subprocess(
        [f"127.0.0.1:{ok}", "--file", "-", "--cafile", root_file, "--json"],
        input=f"# one a line\n127.0.0.1:{invalid}\n",
    )
    results = [json.loads(line) for line in answer.stdout.splitlines()]
    assert [r["status"] for r in results] == ["ok", "invalid"]
    assert answer.returncode == 2 and answer.stderr == ""


def test_a_file_with_only_bad_lines_or_none_at_all(capsys, tmp_path):
    listing = tmp_path / "bad.txt"
    listing.write_text("# nothing good\nexa mple.com\n")
    status, out, err = run(capsys, "--file", str(listing))
    assert (status, out) == (3, [])
    assert err == [f"sslnotify: {listing}:2: not a valid host name: 'exa mple.com'"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    status, out, err = run(capsys, "--file", str(empty))
    assert status == 3 and len(err) == 1 and "no target given" in err[0]
    status, out, err = run(capsys, "--file", str(tmp_path / "missing.txt"))
    assert status == 3 and err == [
        f"sslnotify: error: cannot read {tmp_path / 'missing.txt'}: No such file or directory"
    ]


# --- inputs that used to end in a traceback --------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--days", "²", "localhost"],
        ["--port", "²", "localhost"],
        ["--port", "٣٦٠٥١", "localhost"],
        ["--days", "٣", "localhost"],
        ["--concurrency", "0", "localhost"],
        ["--concurrency", "many", "localhost"],
        ["--processes", "0", "localhost"],
        ["--processes", "²", "localhost"],
        ["--processes", "9999", "localhost"],
        ["--critical", "²", "localhost"],
        ["--critical", "40", "--days", "30", "localhost"],
        ["--format", "xml", "localhost"],
        ["--json", "--format", "nagios", "localhost"],
        ["--timeout", "nan", "localhost"],
        ["--timeout", "inf", "localhost"],
    ],
)
def test_odd_numbers_are_usage_errors(capsys, args):
    status, out, err = run(capsys, *args)
    assert status == 3 and out == []
    assert len(err) == 1 and err[0].startswith("sslnotify: error: "), err


@pytest.mark.parametrize("value", ["abc", "0", "-5", "٣", "nan"])
def test_bad_concurrency_in_the_environment_is_one_line(capsys, monkeypatch, value):
    monkeypatch.setenv("SSLNOTIFY_PROBE_CONCURRENCY", value)
    reset_settings()
    status, out, err = run(capsys, "localhost")
    assert (status, out) == (3, [])
    assert err == [
        f"sslnotify: SSLNOTIFY_PROBE_CONCURRENCY must be a positive number, not {value!r}"
    ]


def test_a_closed_pipe_ends_quietly(tls_server, pki, root_file):
    # About 1 KB of JSON per result: far more than a pipe holds, so `head -1` leaves first.
    server = tls_server([pki.leaf(dns=["*.list.test"]), pki.intermediate])
    targets = " ".join(f"h{n}.list.test:{server.port}" for n in range(150))
    command = (
        f"set -o pipefail; {sys.executable} -m chalicelib.cli check {targets} --ip 127.0.0.1 "
        f"--cafile {root_file} --json | head -1"
    )
    answer = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert json.loads(answer.stdout)["status"] == "ok"
    assert answer.stderr == ""
    assert answer.returncode in (0, 3)  # ok, or the exit status of a cut-off writer: no crash


def test_the_command_leaves_at_once_but_not_under_a_profiler(servers, root_file, tmp_path):
    """After `check` the process skips the interpreter's teardown (os._exit), output flushed;
    a profiler attached still gets its normal exit and writes its report."""
    import pstats

    target = servers["ok"].address
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torn down', file=sys.stderr))\n"
        "from chalicelib.cli import entry\n"
        f"sys.argv = ['sslnotify', 'check', {target!r}, '--cafile', {root_file!r}]\n"
        "entry()\n"
    )
    plain = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert plain.returncode == 0 and "  OK  " in plain.stdout
    assert "torn down" not in plain.stderr  # left at once, the output flushed first
    report = tmp_path / "check.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(report), "-m", "chalicelib.cli"]
    profiled = subprocess.run(
        [*command, "check", target, "--cafile", root_file],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert profiled.returncode == 0 and "  OK  " in profiled.stdout
    assert pstats.Stats(str(report)).total_calls > 0


def _limit_open_files(soft: int, hard: int):
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return lower


@pytest.mark.parametrize(("soft", "hard"), [(128, 128), (128, None)], ids=["fixed", "raisable"])
def test_many_targets_fit_a_low_open_files_limit(tls_server, pki, root_file, soft, hard):
    """300 targets, 1000 at once by default, under `ulimit -n 128`: none may fail for it."""
    hard = hard or resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    leaf = pki.leaf(dns=["*.list.test"], ips=["127.0.0.1"])
    ports = [tls_server([leaf, pki.intermediate]).port for _ in range(4)]
    targets = [f"h{n}.list.test:{ports[n % 4]}" for n in range(300)]
    answer = _subprocess(
        [*targets, "--ip", "127.0.0.1", "--cafile", root_file],
        preexec_fn=_limit_open_files(soft, hard),
    )
    lines = answer.stdout.splitlines()
    assert "Too many open files" not in answer.stdout + answer.stderr
    assert len(lines) == 300 and all("  OK  " in line for line in lines), lines[:3]
    assert answer.returncode == 0


def test_fit_concurrency_raises_the_soft_limit_when_it_can():
    from chalicelib import open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1000:
        pytest.skip(f"the hard open-files limit here is {hard}")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
        assert open_files.fit_concurrency(250) == 250
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        needed = open_files.files_in_use() + open_files.RESERVE + 250 * open_files.FILES_PER_PROBE
        assert raised >= needed - 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- progress on a terminal ------------------------------------------------------------------


def _targets(server, count):
    return [f"h{n}.list.test:{server.port}" for n in range(count)]


def test_progress_is_shown_on_a_terminal_only(servers, root_file):
    args = [*_targets(servers["ok"], 12), "--ip", "127.0.0.1", "--cafile", root_file]
    primary, secondary = pty.openpty()
    try:
        answer = _subprocess(args, stderr=secondary)
        os.close(secondary)
        seen = b""
        while select.select([primary], [], [], 0.5)[0]:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    assert answer.returncode == 0 and len(answer.stdout.splitlines()) == 12
    assert b"checked 12 of 12" in seen
    assert seen.endswith(b"\r\x1b[K")  # erased before the results
    piped = _subprocess(args)
    assert piped.stderr == ""


# --- --format nagios -------------------------------------------------------------------------


def _nagios(capsys, *args):
    status, out, _err = run(capsys, "--format", "nagios", *args)
    assert len(out) == 1, out
    match = NAGIOS_LINE.fullmatch(out[0])
    assert match, out[0]
    items = [m.groupdict() for m in PERFDATA.finditer(match.group(3))]
    assert " ".join(m.group(0) for m in PERFDATA.finditer(match.group(3))) == match.group(3)
    return status, match.group(1), match.group(2), items


@pytest.mark.parametrize(
    ("name", "critical", "word", "status"),
    [
        ("ok", None, "OK", 0),
        ("expiring", None, "WARNING", 1),
        ("expiring", "25", "CRITICAL", 2),
        ("expiring", "10", "WARNING", 1),
        ("invalid", None, "CRITICAL", 2),
    ],
)
def test_nagios_line(capsys, servers, root_file, name, critical, word, status):
    args = [f"127.0.0.1:{servers[name].port}", "--cafile", root_file, "--days", "30"]
    if critical:
        args += ["--critical", critical]
    code, state, summary, perfdata = _nagios(capsys, *args)
    assert (code, state) == (status, word)
    assert summary.startswith(f"127.0.0.1:{servers[name].port} ")
    [item] = perfdata
    assert item["label"] == "days"
    assert int(item["value"]) in (20, 59, 364, 365)
    assert item["warn"] == "30:"  # the plugins' range format: alert below 30
    assert item["crit"] == (f"{critical}:" if critical else None)


def test_nagios_several_targets_and_an_error(capsys, servers, root_file, closed_port):
    targets = [f"127.0.0.1:{servers[name].port}" for name in ("ok", "expiring")]
    code, state, summary, perfdata = _nagios(
        capsys, *targets, f"127.0.0.1:{closed_port()}", "--cafile", root_file, "--critical", "7"
    )
    assert (code, state) == (3, "UNKNOWN")
    assert summary.startswith("3 targets: 1 warning, 1 unknown, 1 ok")
    assert "connection refused" in summary and "20 days left" in summary
    assert [item["value"] for item in perfdata] == ["59", "20", "U"]
    assert perfdata[0]["label"] == f"'days_{targets[0]}'" and perfdata[0]["crit"] == "7:"


def test_nagios_line_carries_no_pipe_or_newline_from_a_certificate(
    capsys, tls_server, pki, root_file
):
    leaf = pki.leaf(dns=["localhost"], ips=["127.0.0.1"], not_after=datetime.now(UTC) + 3 * DAY)
    hostile = make_leaf(
        None, dns=["x"], ips=["127.0.0.1"], common_name="a|b\nSSLNOTIFY OK - fine | days=99"
    )
    for chain in ([leaf, pki.intermediate], [hostile]):
        server = tls_server(chain)
        _code, _state, summary, _ = _nagios(
            capsys, f"127.0.0.1:{server.port}", "--cafile", root_file
        )
        assert "|" not in summary


# --- --format prometheus ---------------------------------------------------------------------


def _families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_prometheus_exposition_parses_with_prometheus_client(
    capsys, servers, root_file, closed_port
):
    ports = {name: servers[name].port for name in ("ok", "expiring", "invalid")}
    refused = closed_port()
    targets = [f"127.0.0.1:{port}" for port in ports.values()] + [f"127.0.0.1:{refused}"]
    status, out, _ = run(capsys, *targets, targets[0], "--format", "prometheus", "--cafile",
                         root_file)  # fmt: skip
    assert status == 3
    text = "\n".join(out) + "\n"
    families = _families(text)
    _, json_out, _ = run(capsys, *targets, "--json", "--cafile", root_file)
    results = {f"127.0.0.1:{r['port']}": r for r in map(json.loads, json_out)}

    def samples(name):
        return {s.labels["target"]: s for s in families[name].samples}

    expiry = samples("sslnotify_certificate_expiry_timestamp_seconds")
    assert set(expiry) == set(targets[:3])  # no certificate, no expiry series
    for target in targets[:3]:
        not_after = datetime.fromisoformat(results[target]["notAfter"]).timestamp()
        assert expiry[target].value == not_after
        assert expiry[target].labels["address"] == "127.0.0.1"
    days = samples("sslnotify_certificate_days_left")
    assert days[targets[1]].value == 20
    success = samples("sslnotify_check_success")
    assert [success[t].value for t in targets] == [1, 1, 1, 0]
    statuses = {
        (s.labels["target"], s.labels["status"]): s.value
        for s in families["sslnotify_check_status"].samples
    }
    assert len(statuses) == 16  # four targets (the repeated one once) x four statuses
    for target, expected in zip(targets, ("ok", "expiring", "invalid", "error"), strict=True):
        assert {s for (t, s), v in statuses.items() if t == target and v == 1} == {expected}
    assert families["sslnotify_check_timestamp_seconds"].type == "gauge"
    for name in families:
        assert name.startswith("sslnotify_")
    assert text.count("# TYPE sslnotify_check_success gauge") == 1


def test_prometheus_per_address_series_when_a_result_has_addresses():
    from chalicelib.monitoring_output import prometheus_text

    result = {
        "host": "example.test",
        "hostAscii": "example.test",
        "port": 443,
        "status": "expiring",
        "daysLeft": 3,
        "notAfter": "2027-01-04T00:00:00Z",
        "earliestExpiry": {"notAfter": "2027-01-04T00:00:00Z"},
        "checkedAt": "2027-01-01T00:00:00Z",
        "addresses": [
            {"address": "127.0.0.2", "status": "ok", "daysLeft": 80,
             "notAfter": "2027-03-22T00:00:00Z"},
            {"address": "127.0.0.3", "status": "expiring", "daysLeft": 3,
             "notAfter": "2027-01-04T00:00:00Z"},
        ],
    }  # fmt: skip
    families = _families(prometheus_text([result]))
    days = {
        s.labels["address"]: s.value for s in families["sslnotify_certificate_days_left"].samples
    }
    assert days == {"127.0.0.2": 80, "127.0.0.3": 3}
    flags = families["sslnotify_check_status"].samples
    assert {(s.labels["address"], s.labels["status"]) for s in flags if s.value == 1} == {
        ("127.0.0.2", "ok"),
        ("127.0.0.3", "expiring"),
    }


def test_label_values_are_escaped():
    from chalicelib.monitoring_output import prometheus_text

    result = {
        "host": 'we"ird\\host',
        "hostAscii": 'we"ird\\host',
        "port": 1,
        "status": "error",
        "daysLeft": None,
        "notAfter": None,
        "checkedAt": "2027-01-01T00:00:00Z",
    }
    [sample] = _families(prometheus_text([result]))["sslnotify_check_success"].samples
    assert sample.labels["target"] == 'we"ird\\host:1'


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert re.fullmatch(r"sslnotify \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_missing_extra_is_one_line_with_the_hint(capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"local": ("no_such_package.stack", "run it")})
    status = cli.main(["local"])
    err = capsys.readouterr().err.splitlines()
    assert status == 3
    assert err == [
        "sslnotify local needs the package 'no_such_package', which is not installed: "
        "pip install 'sslnotify[local]'"
    ]


def test_the_check_command_imports_nothing_of_the_service_stack():
    code = (
        "import sys\n"
        "from chalicelib import cli\n"
        "cli.main(['check', '127.0.0.1:1', '--timeout', '1'])\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'chalice', 'moto', 'waitress', 'croniter')"
        " if m in sys.modules))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert answer.stdout.splitlines()[-1] == "[]", answer.stdout + answer.stderr
