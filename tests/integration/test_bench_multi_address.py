"""The benchmark's multi-address targets: two loopback addresses per name, covered by the leaf."""

from __future__ import annotations

import socket
import ssl

import pytest

from bench.endpoints import Endpoints, is_multi
from bench.stack import bench_resolver
from chalicelib.checker import ssrf
from chalicelib.checker.targets import parse_target


def test_the_multi_address_share_is_spread_evenly():
    assert sum(is_multi(index, 0.2) for index in range(1000)) == 200
    assert [is_multi(index, 0.2) for index in range(5)] == [False] * 4 + [True]
    assert not any(is_multi(index, 0.0) for index in range(100))


def test_bench_resolver_answers_its_names_and_restores_the_system_one():
    system = ssrf.system_resolver
    names = {"multi-0.bench.test": ["127.0.0.1", "127.0.0.2"]}
    with bench_resolver(names):
        assert ssrf.system_resolver("MULTI-0.bench.test.", 443) == ["127.0.0.1", "127.0.0.2"]
        # As the daily checker resolves: no resolver given, so the patched system one.
        assert ssrf.resolve(parse_target("multi-0.bench.test:8443")) == ["127.0.0.1", "127.0.0.2"]
    assert ssrf.system_resolver is system


def test_bench_resolver_refuses_a_non_loopback_address():
    refused = bench_resolver({"x.bench.test": ["10.0.0.1"]})
    with pytest.raises(ValueError, match="loopback"), refused:
        pass


def test_each_address_of_a_multi_address_name_serves_a_certificate_for_the_name(tmp_path):
    with Endpoints.start(5, 0.0, tmp_path, multi_share=0.2) as endpoints:
        assert len(endpoints.names) == 1
        assert len(endpoints.addresses) == 6
        [target] = [target for target in endpoints.targets if target.startswith("multi-")]
        name, _, port = target.rpartition(":")
        assert endpoints.kinds[target] == "expiring"  # index 4 of the mix: not expired yet
        context = ssl.create_default_context(cafile=str(endpoints.ca_file))
        # The test PKI's certificates carry no Authority Key Identifier, which strict mode wants.
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        for address in endpoints.names[name]:
            with (
                socket.create_connection((address, int(port)), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.getpeercert()["subject"]


def test_multi_address_is_refused_with_isolated_workers_and_outside_zero_to_one(capsys):
    from bench.sweep import parse_arguments

    for argv in (["--multi-address", "0.2", "--isolated"], ["--multi-address", "1.5"]):
        with pytest.raises(SystemExit) as exited:
            parse_arguments(["--quick", *argv])
        assert exited.value.code == 2
    assert "in-process stack" in capsys.readouterr().err
    assert parse_arguments(["--quick", "--multi-address", "0.2"]).multi_address == 0.2
