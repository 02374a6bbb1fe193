"""Judging CT and ARI evidence: pure, at a fixed now, no network."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.checker.renewal import (
    CTFinding,
    Issuance,
    Renewal,
    RenewalWindow,
    covers_all,
    newer_issuance,
    not_deployed_message,
    renewal_requested_message,
    window_moved_forward,
)

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
SERVED_FROM = NOW - timedelta(days=85)
DAY = timedelta(days=1)


def issuance(names=("example.test", "www.example.test"), age=DAY * 3, days=90, serial="0a"):
    start = NOW - age
    return Issuance(tuple(names), start, start + timedelta(days=days), serial=serial)


@pytest.mark.parametrize(
    ("names", "wanted", "covered"),
    [
        (["example.test"], ["example.test"], True),
        (["*.example.test"], ["www.example.test"], True),
        (["*.example.test"], ["example.test"], False),
        (["*.example.test"], ["a.b.example.test"], False),
        (["example.test"], ["example.test", "www.example.test"], False),
        (["EXAMPLE.test."], ["example.TEST"], True),
    ],
)
def test_names_are_covered_as_tls_matches_them(names, wanted, covered):
    assert covers_all(names, wanted) is covered


def test_a_newer_certificate_for_the_same_names_is_found():
    newer = issuance()
    found = newer_issuance(["example.test", "www.example.test"], SERVED_FROM, None, [newer], NOW)
    assert found == newer


def test_the_newest_of_several_renewals_is_reported():
    older, newest = issuance(age=DAY * 10, serial="01"), issuance(age=DAY * 2, serial="02")
    found = newer_issuance(["example.test"], SERVED_FROM, None, [newest, older], NOW)
    assert found.serial == "02"


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (issuance(names=["other.test"]), "covers other names"),
        (issuance(names=["example.test"]), "misses www.example.test"),
        (issuance(age=timedelta(hours=2)), "issued within the deploy grace"),
        (issuance(age=DAY * 90), "older than the served certificate"),
        (issuance(age=DAY * 80, days=60), "already expired"),
    ],
)
def test_what_is_not_a_renewal_of_the_served_certificate(candidate, why):
    served = ["example.test", "www.example.test"]
    assert newer_issuance(served, SERVED_FROM, None, [candidate], NOW) is None, why


def test_the_served_certificate_itself_is_not_its_renewal():
    same = Issuance(("example.test",), NOW - DAY, NOW + 89 * DAY, sha256="ab" * 32)
    assert newer_issuance(["example.test"], NOW - DAY * 2, "ab" * 32, [same], NOW) is None


def test_a_window_before_two_thirds_of_the_lifetime_was_moved_forward():
    start, end = NOW - DAY * 60, NOW + DAY * 30  # 90 days: two thirds is day 60
    early = RenewalWindow(start=NOW - DAY, end=NOW + DAY)
    usual = RenewalWindow(start=start + DAY * 60, end=start + DAY * 62)
    assert window_moved_forward(early, start, end)
    assert not window_moved_forward(usual, start, end)
    assert not window_moved_forward(RenewalWindow(error="down"), start, end)
    assert not window_moved_forward(None, start, end)


def test_messages_say_what_happened_and_what_to_do():
    newer = Issuance(("example.test",), datetime(2026, 11, 14, tzinfo=UTC), NOW + DAY * 80, "0f3a")
    message = not_deployed_message(newer, ["192.0.2.7"], "example.test")
    assert message == (
        "a renewed certificate was issued on 14 November 2026 (serial 0f3a, valid until "
        "19 February 2027), but 192.0.2.7 still serves the old one: reload or redeploy your server"
    )
    window = RenewalWindow(NOW, NOW + DAY * 2, "https://ca.example/incident")
    assert renewal_requested_message(window) == (
        "your CA asks you to renew before 3 December 2026, because of https://ca.example/incident"
    )


@pytest.mark.parametrize(
    "renewal",
    [
        Renewal(
            ct=CTFinding(newer=issuance()), ari=RenewalWindow(NOW, NOW + DAY, "https://x.test/")
        ),
        Renewal(ct=CTFinding(), ari=None),
        Renewal(ct=CTFinding(error="the CT search is unavailable: HTTP 429"), ari=None),
        Renewal(ct=None, ari=RenewalWindow(error="malformed")),
    ],
)
def test_renewal_evidence_round_trips_through_json(renewal):
    again = Renewal.from_dict(renewal.to_dict())
    assert again.to_dict() == renewal.to_dict()
    assert again.unknown == renewal.unknown
