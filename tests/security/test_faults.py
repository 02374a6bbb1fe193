"""Failing dependencies during the daily sweep, injected in a share of calls with a fixed seed.

Hundreds of subscriptions over loopback TLS servers; while the sweep runs, SES throttles and
rejects, DynamoDB throttles, checkers crash or time out half-way, Lambda invocations fail
and asynchronous ones are delivered twice (so conditional claims fail). After AWS-style
retries (the in-process Lambda retries an asynchronous invocation twice) every due alert
is delivered exactly once, no subscription is lost or changed, and the operator's report
shows the failures. Faults are transient, as AWS's are: one call fails, its retry may pass.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from moto.core.exceptions import JsonRESTError

import lambdas.checker
from chalicelib import aws, logs, report
from chalicelib.config import get_settings, reset_settings
from chalicelib.invoke import invoke
from chalicelib.privacy import AddressVault
from local.function_logs import LogShipper, current_function, running
from tests.certs import make_pki, pem_bundle
from tests.security.conftest import emulated_items, record_figure, sent_messages
from tests.tls_servers import TLSServer

# A longer run: SSLNOTIFY_FAULT_SUBSCRIPTIONS=3000 SSLNOTIFY_FAULT_SEED=1 (any seed holds).
SEED = int(os.environ.get("SSLNOTIFY_FAULT_SEED") or 8)
SUBSCRIPTIONS = int(os.environ.get("SSLNOTIFY_FAULT_SUBSCRIPTIONS") or 300)
EXPIRING_SERVERS, GOOD_SERVERS = 8, 4
SHARE = {
    "ses_throttle": 0.15,
    "ses_reject": 0.05,
    "dynamodb_throttle": 0.03,
    "invoke_failure": 0.03,
    "duplicate_delivery": 0.30,
    "checker_crash": 0.25,
    "checker_timeout": 0.25,
}

DYNAMODB_REQUESTS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
)


class ThroughputExceeded(JsonRESTError):
    """DynamoDB's answer to a request over the provisioned (or on-demand) throughput."""

    code = 400

    def __init__(self):
        super().__init__(
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        )


class Faults:
    """Decide, with one seeded generator, which calls fail; count what was injected."""

    def __init__(self, seed: int, share: dict[str, float]):
        # One generator per kind: threads drawing for one kind do not shift another's sequence.
        self.rngs = {kind: random.Random(f"{seed}:{kind}") for kind in share}
        self.share = share
        self.injected: Counter[str] = Counter()
        self.enabled = False
        self._failed_once: set[tuple[str, str]] = set()

    def strike(self, kind: str, once_per: str | None = None) -> bool:
        """Tell whether this call fails; with once_per, a given subject fails at most once."""
        if not self.enabled or self.rngs[kind].random() >= self.share[kind]:
            return False
        if once_per is not None:
            if (kind, once_per) in self._failed_once:
                return False
            self._failed_once.add((kind, once_per))
        self.injected[kind] += 1
        return True


class LogCapture(logging.Handler):
    """Send each function's log records to its emulated log group, as Lambda ships stdout."""

    def __init__(self, shipper: LogShipper):
        super().__init__()
        self.shipper = shipper
        self.setFormatter(logs.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        function = current_function.get()
        if function is not None:
            self.shipper.add(function, self.format(record))


def pseudonymous_subscriptions(vault: AddressVault, targets: list[str], rng: random.Random):
    """Yield subscription items as the confirm action writes them."""
    for index in range(SUBSCRIPTIONS):
        address = f"subscriber{index}@example.org"
        yield (
            address,
            {
                "subscriber": vault.pseudonym(address),
                "target": rng.choice(targets),
                "address": vault.seal(address),
                "tolerance": rng.choice(["30", "14", "auto"]),
                "token": f"unsubscribe-token-{index:06d}-xxxxxxxx",
                "confirm_token": f"confirm-token-{index:06d}-xxxxxxxxxx",
                "created_at": "2026-11-01T00:00:00Z",
                "confirmed_at": "2026-11-01T00:00:00Z",
            },
        )


@pytest.fixture
def world(lambdas, monkeypatch, tmp_path, atomic_dynamodb):
    """Return the in-process service with servers, subscriptions, fault injection and log groups."""
    pki = make_pki(name="sslnotify Faults Test")
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(pem_bundle(pki.root))
    monkeypatch.setenv("SSLNOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSLNOTIFY_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSLNOTIFY_CHECK_TIMEOUT", "5")
    monkeypatch.setenv("SSLNOTIFY_SES_RATE", "100000")
    monkeypatch.setenv("SSLNOTIFY_CHECKER_BATCH", "1")  # a checker per target: more to crash
    reset_settings()
    settings = get_settings()
    import chalicelib.mailer

    monkeypatch.setattr(chalicelib.mailer, "BACKOFF_SECONDS", 0.0001)
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0001)

    now = datetime.now(UTC).replace(microsecond=0)
    servers = []
    for index in range(EXPIRING_SERVERS + GOOD_SERVERS):
        days = 5 if index < EXPIRING_SERVERS else 120
        leaf = pki.leaf(
            now=now,
            not_after=now + timedelta(days=days, hours=1),
            dns=["localhost"],
            ips=["127.0.0.1"],
        )
        servers.append(TLSServer([leaf, pki.intermediate]))
    expiring = {server.address for server in servers[:EXPIRING_SERVERS]}

    vault = AddressVault(settings.require_secret())
    rng = random.Random(SEED)
    addresses = {}
    with aws.table("subscriptions").batch_writer() as writer:
        for address, item in pseudonymous_subscriptions(vault, [s.address for s in servers], rng):
            writer.put_item(Item=item)
            addresses[address] = item
    due = {
        address
        for address, item in addresses.items()
        if item["target"] in expiring and item["tolerance"] in {"30", "14"}
    }
    # "auto" is a third of the leaf's lifetime: about 2 days for these 6-day leaves, so no alert.

    faults = Faults(SEED, SHARE)
    _inject(monkeypatch, lambdas, faults)

    groups = {key: report.log_group(settings, key) for key in lambdas_keys()}
    shipper = LogShipper(groups, period=3600)
    capture = LogCapture(shipper)
    logging.getLogger().addHandler(capture)
    _route_logs(monkeypatch, lambdas, shipper)
    yield {
        "settings": settings,
        "lambdas": lambdas,
        "faults": faults,
        "due": due,
        "addresses": addresses,
        "shipper": shipper,
    }
    logging.getLogger().removeHandler(capture)
    for server in servers:
        server.close()


def lambdas_keys() -> list[str]:
    """Return the functions of resources.json that run as Lambdas (all but the API)."""
    from chalicelib.config import resources

    return [key for key in resources()["functions"] if key != "api"]


def _inject(monkeypatch, fake, faults: Faults) -> None:
    """Patch SES, DynamoDB (moto), the Lambda service and the checker to fail now and then."""
    ses = aws.client("ses")
    real_send = ses.send_raw_email

    def send_raw_email(**arguments):
        destination = arguments["Destinations"][0]
        if faults.strike("ses_throttle"):
            error = {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}
            raise ClientError({"Error": error}, "SendRawEmail")
        if faults.strike("ses_reject", once_per=destination):
            error = {"Code": "MessageRejected", "Message": "Transient rejection."}
            raise ClientError({"Error": error}, "SendRawEmail")
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", send_raw_email)

    from moto.dynamodb.responses import DynamoHandler

    for name in DYNAMODB_REQUESTS:  # per request, as DynamoDB throttles
        original = getattr(DynamoHandler, name)

        def throttled(self, __original=original):
            if faults.strike("dynamodb_throttle"):
                raise ThroughputExceeded()
            return __original(self)

        monkeypatch.setattr(DynamoHandler, name, throttled)

    real_invoke = fake.invoke

    def invoke_with_faults(FunctionName, InvocationType, Payload):
        action = json.loads(Payload).get("action")
        # Not the schedules' own events: EventBridge retries those itself.
        spared = {"sweep", "report"}
        if action not in spared and faults.strike("invoke_failure"):
            error = {"Code": "ServiceException", "Message": "Lambda was unable to run this."}
            raise ClientError({"Error": error}, "Invoke")
        answer = real_invoke(FunctionName, InvocationType, Payload)
        if InvocationType == "Event" and faults.strike("duplicate_delivery"):
            fake.queue.append(fake.queue[-1])  # at-least-once: the same event arrives twice
        return answer

    monkeypatch.setattr(fake, "invoke", invoke_with_faults)

    real_checker = lambdas.checker.handler
    real_checker_invoke = lambdas.checker.invoke

    def checker(event, context):
        subject = json.dumps(event, sort_keys=True)
        if faults.strike("checker_crash", once_per=subject):
            raise RuntimeError("checker crashed before probing (out of memory)")
        if faults.strike("checker_timeout", once_per=subject):

            def invoke_until_killed(function, payload, wait=False, **options):
                if function == "mailer":
                    raise TimeoutError("Task timed out after 120.00 seconds")
                return real_checker_invoke(function, payload, wait, **options)

            monkeypatch.setattr(lambdas.checker, "invoke", invoke_until_killed)
            try:
                return real_checker(event, context)
            finally:
                monkeypatch.setattr(lambdas.checker, "invoke", real_checker_invoke)
        return real_checker(event, context)

    monkeypatch.setattr(lambdas.checker, "handler", checker)


def _route_logs(monkeypatch, fake, shipper: LogShipper) -> None:
    """Attribute each handler's log lines to its function, and log an unhandled error as Lambda."""
    real_handler = fake._handler

    def handler_for(function_name: str):
        key, handler = real_handler(function_name)

        def logged(event, context, __key=key, __handler=handler):
            with running(__key):
                try:
                    return __handler(event, context)
                except Exception as error:
                    line = {"errorMessage": str(error), "errorType": type(error).__name__}
                    shipper.add(__key, "[ERROR] " + json.dumps(line))
                    raise

        return key, logged

    monkeypatch.setattr(fake, "_handler", handler_for)


def delivered(settings) -> Counter[tuple[str, str]]:
    """Count the emails SES accepted, by (recipient, kind of email)."""
    counted: Counter[tuple[str, str]] = Counter()
    for message in sent_messages():
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        kind = "alert" if "alert" in str(parsed["Subject"]).lower() else str(parsed["Subject"])
        counted[(str(parsed["To"]), kind)] += 1
    return counted


def run_report(world) -> str:
    """Ship the log lines, run the reporter without faults, return the report mailed."""
    world["faults"].enabled = False
    world["shipper"].flush()
    before = len(sent_messages())
    invoke("reporter", {"action": "report"}, wait=True)
    (mailed,) = sent_messages()[before:]
    parsed = email.message_from_string(mailed.raw_data, policy=email.policy.default)
    assert parsed["To"] == world["settings"].operator_email
    return parsed.get_body(preferencelist=("plain",)).get_content()


def test_every_due_alert_is_delivered_exactly_once_despite_injected_faults(world):
    """The sweep under faults: each due alert once, no other mail, no subscription changed."""
    fake, faults, settings = world["lambdas"], world["faults"], world["settings"]
    before = emulated_items("subscriptions")
    day = datetime.now(UTC).date().isoformat()
    faults.enabled = True
    invoke("cron", {"action": "sweep", "day": day})
    fake.drain()
    faults.enabled = False
    failures = [(key, type(error).__name__, str(error)[:200]) for key, _, error in fake.failures]
    counts = delivered(settings)
    alerts = {to: n for (to, kind), n in counts.items() if kind == "alert"}
    missing = sorted(world["due"] - set(alerts))
    doubled = sorted(to for to, n in alerts.items() if n > 1)
    unexpected = sorted(set(alerts) - world["due"])
    record_figure("faults injected during the sweep", sum(faults.injected.values()))
    record_figure("subscriptions swept under faults", SUBSCRIPTIONS)
    record_figure(
        "due alerts delivered exactly once under faults", len(world["due"]) - len(missing)
    )
    assert faults.injected.keys() == SHARE.keys(), (
        f"some kind was never injected: {faults.injected}"
    )
    assert (missing, doubled, unexpected) == ([], [], []), (
        f"{len(missing)} due alert(s) never sent, {len(doubled)} sent twice; "
        f"faults {dict(faults.injected)}; unrecovered {failures[:5]}"
    )
    assert emulated_items("subscriptions") == before
    states = [
        item
        for item in map(json.loads, emulated_items("checkstate"))
        if not item["Attributes"]["subscriber"]["S"].startswith("#")
    ]
    # A state is kept only for what must be remembered: today's alerts, and failures.
    alerting = [s for s in states if s["Attributes"].get("alert_sent_day", {}).get("S") == day]
    assert len(alerting) == len(world["due"])
    assert all(
        s["Attributes"]["status"]["S"] != "ok" or s["Attributes"]["alerting"]["BOOL"]
        for s in states
    )
    text = run_report(world)
    assert "checker crashed before probing" in text
    assert "Task timed out" in text
    assert f"{len(world['due'])} alerts" in text.replace(",", "")


def test_a_permanently_rejected_address_is_reported_and_spares_the_others(world, monkeypatch):
    """SES rejects one address every time: the others get their alerts, the report says so."""
    fake, settings = world["lambdas"], world["settings"]
    victim = sorted(world["due"])[0]
    ses = aws.client("ses")
    real_send = ses.send_raw_email

    def send_raw_email(**arguments):
        if arguments["Destinations"][0] == victim:
            error = {"Code": "MessageRejected", "Message": "Email address is not verified."}
            raise ClientError({"Error": error}, "SendRawEmail")
        return real_send(**arguments)

    monkeypatch.setattr(ses, "send_raw_email", send_raw_email)
    day = datetime.now(UTC).date().isoformat()
    invoke("cron", {"action": "sweep", "day": day})
    fake.drain()
    alerts = {to for (to, kind), _ in delivered(settings).items() if kind == "alert"}
    assert alerts == world["due"] - {victim}
    assert [(key, type(error).__name__) for key, _, error in fake.failures] == [
        ("mailer", "DeliveryFailed")
    ]
    text = run_report(world)
    assert "notification not sent" in text
    assert "DeliveryFailed" in text
    assert victim not in text  # the report names the subscriber by pseudonym only


@pytest.mark.parametrize("kind", list(SHARE))
def test_one_kind_of_fault_alone(world, kind):
    """Each kind of fault on its own, at twice its share: each due alert still goes out once."""
    fake, faults = world["lambdas"], world["faults"]
    faults.share = {name: (min(0.5, 2 * SHARE[name]) if name == kind else 0.0) for name in SHARE}
    day = datetime.now(UTC).date().isoformat()
    faults.enabled = True
    invoke("cron", {"action": "sweep", "day": day})
    fake.drain()
    faults.enabled = False
    alerts = Counter({to: n for (to, k), n in delivered(world["settings"]).items() if k == "alert"})
    missing = sorted(world["due"] - set(alerts))
    doubled = sorted(to for to, n in alerts.items() if n > 1)
    failures = [(key, type(error).__name__) for key, _, error in fake.failures]
    assert (len(missing), len(doubled), failures) == (0, 0, []), dict(faults.injected)
    assert faults.injected[kind] > 0
    record_figure("faults injected during the sweep", faults.injected[kind])


def test_a_throttled_recipients_read_is_retried_not_dropped(world, monkeypatch):
    """DynamoDB leaves every key of the first reads unprocessed: the batch is retried, not lost."""
    import chalicelib.subscription_data

    table = aws.table("subscriptions")
    client = table.meta.client
    real_batch_get = client.batch_get_item
    refusals = iter(range(8))  # as many as _batch_get tries before giving up

    def unprocessed(RequestItems, **kwargs):
        if table.name in RequestItems and next(refusals, None) is not None:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return real_batch_get(RequestItems=RequestItems, **kwargs)

    monkeypatch.setattr(client, "batch_get_item", unprocessed)
    monkeypatch.setattr(chalicelib.subscription_data.time, "sleep", lambda seconds: None)
    invoke("cron", {"action": "sweep", "day": datetime.now(UTC).date().isoformat()})
    world["lambdas"].drain()
    alerts = {to for (to, kind), _ in delivered(world["settings"]).items() if kind == "alert"}
    assert alerts == world["due"]


def test_a_data_answer_lost_after_its_writes_loses_no_alert(world, monkeypatch):
    """Blocking data calls that ran but whose answer was lost (read timeout): nothing is lost."""
    from botocore.exceptions import ReadTimeoutError

    fake = world["lambdas"]
    real_invoke = fake.invoke
    rng = random.Random(SEED)
    lost = []

    def invoke_losing_answers(FunctionName, InvocationType, Payload):
        answer = real_invoke(FunctionName, InvocationType, Payload)
        action = json.loads(Payload).get("action")
        if InvocationType == "RequestResponse" and action != "sweep" and rng.random() < 0.2:
            lost.append(action)
            raise ReadTimeoutError(endpoint_url=f"https://lambda/{FunctionName}")
        return answer

    monkeypatch.setattr(fake, "invoke", invoke_losing_answers)
    invoke("cron", {"action": "sweep", "day": datetime.now(UTC).date().isoformat()})
    fake.drain()
    monkeypatch.setattr(fake, "invoke", real_invoke)
    alerts = Counter(
        {to: n for (to, kind), n in delivered(world["settings"]).items() if kind == "alert"}
    )
    record_figure("faults injected during the sweep", len(lost))
    assert "step_notifications" in lost
    assert set(alerts) == world["due"], f"{len(world['due'] - set(alerts))} lost; {lost}"
    assert max(alerts.values()) == 1


def test_one_mailer_event_run_by_four_instances_at_once_sends_each_alert_once(world, monkeypatch):
    """At-least-once delivery, concurrently: the conditional claims let one instance send each."""
    from concurrent.futures import ThreadPoolExecutor

    import lambdas.mailer

    fake = world["lambdas"]
    captured = []
    real_invoke = fake.invoke

    def capture_mailer_events(FunctionName, InvocationType, Payload):
        if InvocationType == "Event" and FunctionName.endswith("-mailer"):
            captured.append(json.loads(Payload))
            return {"StatusCode": 202}
        return real_invoke(FunctionName, InvocationType, Payload)

    monkeypatch.setattr(fake, "invoke", capture_mailer_events)
    invoke("cron", {"action": "sweep", "day": datetime.now(UTC).date().isoformat()})
    fake.drain()
    assert captured
    with ThreadPoolExecutor(4 * len(captured)) as pool:
        answers = list(pool.map(lambda event: lambdas.mailer.handler(event, None), captured * 4))
    sent = sum(answer["response"]["sent"] for answer in answers)
    alerts = Counter(
        {to: n for (to, kind), n in delivered(world["settings"]).items() if kind == "alert"}
    )
    assert set(alerts) == world["due"]
    assert max(alerts.values()) == 1
    assert sent == len(world["due"])
    record_figure("concurrent duplicate mailer runs", 3 * len(captured))


class Killed(BaseException):
    """The Lambda runtime ending a function at its timeout: no except clause of it runs."""


def test_a_mailer_killed_half_way_loses_no_alert(world, monkeypatch):
    """The first attempt of a mailer batch is killed after a few sends: the retry sends the rest."""
    import chalicelib.mailer
    import lambdas.mailer

    fake = world["lambdas"]
    real_deliver = chalicelib.mailer.Mailer.deliver
    killed_events: set[str] = set()
    sends = Counter()

    def deliver(self, message, **options):
        sends["all"] += 1
        if sends["all"] % 7 == 0 and current_event[0] not in killed_events:
            killed_events.add(current_event[0])
            raise Killed()
        return real_deliver(self, message, **options)

    current_event = [""]
    real_handler = lambdas.mailer.handler

    def handler(event, context):
        current_event[0] = json.dumps(event, sort_keys=True)
        try:
            return real_handler(event, context)
        except Killed:
            raise RuntimeError("Task timed out after 300.00 seconds") from None

    monkeypatch.setattr(chalicelib.mailer.Mailer, "deliver", deliver)
    monkeypatch.setattr(lambdas.mailer, "handler", handler)
    invoke("cron", {"action": "sweep", "day": datetime.now(UTC).date().isoformat()})
    fake.drain()
    alerts = Counter(
        {to: n for (to, kind), n in delivered(world["settings"]).items() if kind == "alert"}
    )
    assert killed_events, "no mailer attempt was killed"
    assert max(alerts.values()) == 1
    assert set(alerts) == world["due"], f"{len(world['due'] - set(alerts))} alerts lost"
