"""The real Terraform, checked statically, applied to emulated AWS, and held to least privilege.

One moto server and one apply serve the module (about a minute: the AWS provider's own
waiters set the pace). The configuration is copied to a temporary directory with the
files it reads (resources.json, security_headers.json, the built zips), so the working
tree gets no state or lock file.

Skipped, loudly, when terraform or the offline AWS provider (/opt/tf-plugins, or
$SSLNOTIFY_TF_PLUGIN_DIR) is missing; CI has both.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
PLUGIN_DIR = Path(os.environ.get("SSLNOTIFY_TF_PLUGIN_DIR", "/opt/tf-plugins"))
TERRAFORM = shutil.which("terraform")
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
CHECKOV_OPTIONS = [
    "--framework",
    "terraform",
    "--quiet",
    "--compact",
    "-o",
    "json",
    "--skip-download",
]
DOMAIN = "sslnotify.test"
OPERATOR = "operator@example.org"
PREFIX = "sslnotify-tf"
ACCOUNT = "123456789012"  # moto's account
RESOURCES = json.loads((ROOT / "chalicelib" / "resources.json").read_text())
PERMISSIONS = json.loads((TERRAFORM_DIR / "permissions.json").read_text())
SECURITY_HEADERS = json.loads((ROOT / "local" / "security_headers.json").read_text())

if TERRAFORM is None or not PLUGIN_DIR.is_dir():
    reason = (
        f"TERRAFORM TESTS SKIPPED: terraform on PATH: {TERRAFORM}; AWS provider directory "
        f"{PLUGIN_DIR} present: {PLUGIN_DIR.is_dir()}. Install Terraform >= 1.5 and the "
        "hashicorp/aws provider (terraform providers mirror) to run them."
    )
    print(f"\n{'!' * 20}\n{reason}\n{'!' * 20}", file=sys.stderr)
    if os.environ.get("CI", "").lower() == "true":  # in CI a check that cannot run fails
        pytest.fail(reason, pytrace=False)
    pytestmark = [pytest.mark.terraform, pytest.mark.skip(reason=reason)]
else:
    pytestmark = [pytest.mark.terraform]


# ---------------------------------------------------------------- helpers


def terraform_env() -> dict[str, str]:
    """The environment of every terraform run: no prompts, no update checks, fake keys."""
    env = {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_CLI_CONFIG_FILE": os.devnull,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "TF_DATA_DIR", "TF_WORKSPACE"):
        env.pop(name, None)
    return env


def terraform(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run terraform quietly; fail with its output when it fails."""
    answer = subprocess.run(
        [TERRAFORM, *args],
        cwd=cwd,
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if answer.returncode != 0:
        pytest.fail(f"terraform {' '.join(args)} failed:\n{answer.stdout[-4000:]}\n{answer.stderr}")
    return answer


def package(out: Path) -> None:
    """Build the zips and openapi.json without third-party wheels (fast, offline)."""
    script = [sys.executable, str(ROOT / "tools" / "package.py")]
    subprocess.run([*script, "--no-deps", "--out", str(out)], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tf_vars(endpoint: str, *, emulator_gaps: bool) -> list[str]:
    """The variables of the test stage; emulator_gaps leaves out what moto lacks."""
    values = {
        "domain_name": DOMAIN,
        "operator_email": OPERATOR,
        "prefix": PREFIX,
        "aws_endpoint": endpoint,
        "protect_data": "false",
    }
    if emulator_gaps:
        values |= {
            "enable_response_headers_policy": "false",
            "ses_require_tls": "false",
            "deny_insecure_transport": "false",
            "openapi_file": "openapi-emulated.json",
        }
    return [arg for key, value in values.items() for arg in ("-var", f"{key}={value}")]


def client(service: str, endpoint: str) -> Any:
    return boto3.session.Session().client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of terraform/ beside the files it reads, with zips built and providers ready."""
    base = tmp_path_factory.mktemp("tf")
    shutil.copytree(
        TERRAFORM_DIR,
        base / "terraform",
        ignore=shutil.ignore_patterns(
            ".terraform", "*.tfstate*", ".terraform.lock.hcl", "*.tfvars"
        ),
    )
    for relative in ("chalicelib/resources.json", "local/security_headers.json"):
        (base / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, base / relative)
    # Third-party wheels are left out: moto stores the code but never runs it.
    package(base / "build" / "lambda")
    terraform("init", f"-plugin-dir={PLUGIN_DIR}", "-backend=false", cwd=base / "terraform")
    return base / "terraform"


@pytest.fixture(scope="module")
def moto_endpoint() -> Any:
    """A moto server on a free loopback port, for this module only."""
    port = free_port()
    env = {**os.environ, "MOTO_ACM_VALIDATION_WAIT": "0"}  # certificates issue at once
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("SSLNOTIFY_MOTO_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            break
        except urllib.error.HTTPError:  # any HTTP answer means it is up
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def apply_started(workspace: Path, moto_endpoint: str) -> subprocess.Popen:
    """Start applying the configuration to the emulator, in the background.

    The apply spends most of its minute in the AWS provider's waiters (Route53 changes,
    S3 lifecycle, SQS attributes): the static checks and packaging tests request this
    fixture only so that they run meanwhile.
    """
    log = open(workspace / "apply.log", "w")  # noqa: SIM115 - closed after the module
    variables = tf_vars(moto_endpoint, emulator_gaps=True)
    process = subprocess.Popen(
        [TERRAFORM, "apply", "-auto-approve", "-parallelism=30", *variables],
        cwd=workspace,
        env=terraform_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def applied(workspace: Path, apply_started: subprocess.Popen) -> dict[str, Any]:
    """Wait for the apply; return the configuration's outputs."""
    try:
        returncode = apply_started.wait(timeout=400)
    except subprocess.TimeoutExpired:
        apply_started.kill()
        returncode = "timeout"
    apply_started.log.flush()
    if returncode != 0:
        output = (workspace / "apply.log").read_text()
        pytest.fail(f"terraform apply failed ({returncode}):\n{output[-6000:]}")
    answer = terraform("output", "-json", cwd=workspace)
    return {name: item["value"] for name, item in json.loads(answer.stdout).items()}


@pytest.fixture(scope="module")
def plan(workspace: Path, moto_endpoint: str, applied: dict[str, Any]) -> dict[str, Any]:
    """The plan of the real (AWS) settings over the applied state, as terraform show -json."""
    terraform(
        "plan",
        "-refresh=false",
        "-out=real.plan",
        *tf_vars(moto_endpoint, emulator_gaps=False),
        cwd=workspace,
    )
    return json.loads(terraform("show", "-json", "real.plan", cwd=workspace).stdout)


def planned_resources(plan: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Planned values of every resource of a type, by index key."""
    found = {}
    for resource in plan["planned_values"]["root_module"].get("resources", []):
        if resource["type"] == kind:
            found[str(resource.get("index", resource["name"]))] = resource["values"]
    return found


# ---------------------------------------------------------------- static checks


def test_terraform_is_formatted():
    answer = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff"],
        cwd=TERRAFORM_DIR,
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 0, f"run `terraform fmt` in terraform/:\n{answer.stdout}"


def test_terraform_validates(workspace: Path, apply_started):
    terraform("validate", cwd=workspace)


def test_checkov_finds_nothing_unjustified(apply_started):
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail("checkov is missing: `make test` installs it into .venv-tools")
        pytest.skip("CHECKOV SKIPPED: run `make tools` to install it into .venv-tools/")
    answer = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM_DIR), *CHECKOV_OPTIONS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(answer.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for item in reports
        for check in item.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, (
        "checkov failed checks (fix, or skip with a reason beside the resource):\n"
        + ("\n".join(failed))
    )
    skipped = [
        check for item in reports for check in item.get("results", {}).get("skipped_checks", [])
    ]
    assert all(check.get("suppress_comment", "").strip() for check in skipped)


# ---------------------------------------------------------------- packaging


def test_packages_are_reproducible_and_self_contained(tmp_path: Path, apply_started):
    outputs = []
    for name in ("one", "two"):
        package(tmp_path / name)
        outputs.append(tmp_path / name)
    for key, spec in RESOURCES["functions"].items():
        first = (outputs[0] / f"{key}.zip").read_bytes()
        assert first == (outputs[1] / f"{key}.zip").read_bytes(), f"{key}.zip differs"
        names = zipfile.ZipFile(outputs[0] / f"{key}.zip").namelist()
        assert "chalicelib/resources.json" in names
        assert not [n for n in names if "__pycache__" in n or n.startswith("boto")]
        # The handler imports from the zip alone (plus third-party packages of the venv):
        # python -S ignores the project's editable install.
        module, _, attribute = spec["handler"].rpartition(".")
        site = [p for p in sys.path if p.endswith("site-packages")]
        code = (
            "import sys; sys.path[:0] = "
            + repr([str(outputs[0] / f"{key}.zip"), *site])
            + f"; import {module} as m; assert callable(getattr(m, {attribute!r}))"
            + f"; assert m.__file__.startswith({str(outputs[0])!r}), m.__file__"
        )
        env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SSLNOTIFY_SECRET": "x" * 32}
        answer = subprocess.run(
            [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env
        )
        assert answer.returncode == 0, f"{key}: {answer.stderr[-2000:]}"


def test_openapi_describes_every_chalice_route(tmp_path: Path, apply_started):
    package(tmp_path)
    document = json.loads((tmp_path / "openapi.json").read_text())
    assert document["openapi"].startswith("3.")
    from app import app

    for path, methods in app.routes.items():
        described = document["paths"][path]
        for method in methods:
            integration = described[method.lower()]["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["uri"] == "@@API_FUNCTION_INVOKE_ARN@@"
    for methods in document["paths"].values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            if integration["type"] == "mock":  # CORS preflight: the site's origin only
                headers = integration["responses"]["default"]["responseParameters"]
                origin = headers["method.response.header.Access-Control-Allow-Origin"]
                assert origin == "'@@CORS_ORIGIN@@'"


# ---------------------------------------------------------------- the emulated deployment


def test_tables_match_resources_json(applied, moto_endpoint):
    dynamodb = client("dynamodb", moto_endpoint)
    for key, spec in RESOURCES["tables"].items():
        table = dynamodb.describe_table(TableName=f"{PREFIX}-{key}")["Table"]
        schema = {item["KeyType"]: item["AttributeName"] for item in table["KeySchema"]}
        assert schema.get("HASH") == spec["hash_key"]
        assert schema.get("RANGE") == spec.get("range_key")
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = dynamodb.describe_time_to_live(TableName=f"{PREFIX}-{key}")
        ttl = ttl["TimeToLiveDescription"]
        if "ttl_attribute" in spec:
            assert ttl["TimeToLiveStatus"] == "ENABLED"
            assert ttl["AttributeName"] == spec["ttl_attribute"]
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"
        backups = dynamodb.describe_continuous_backups(TableName=f"{PREFIX}-{key}")
        recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_buckets_are_private_encrypted_and_expire(applied, moto_endpoint):
    s3 = client("s3", moto_endpoint)
    account = client("sts", moto_endpoint).get_caller_identity()["Account"]
    for key, spec in RESOURCES["buckets"].items():
        name = f"{PREFIX}-{key}-{account}"
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()), block
        encryption = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        expiry = [rule["Expiration"]["Days"] for rule in rules if "Expiration" in rule]
        assert expiry == ([spec["expire_days"]] if "expire_days" in spec else [])
    frontend = json.loads(s3.get_bucket_policy(Bucket=applied["frontend_bucket"])["Policy"])
    readers = [s["Principal"] for s in frontend["Statement"] if s["Effect"] == "Allow"]
    assert readers == [{"Service": "cloudfront.amazonaws.com"}]


def test_functions_match_resources_json(applied, moto_endpoint):
    lambda_ = client("lambda", moto_endpoint)
    iam = client("iam", moto_endpoint)
    uses_secret = functions_using_secret()
    assert uses_secret == set(PERMISSIONS["secret"]["functions"])
    for key, spec in RESOURCES["functions"].items():
        config = lambda_.get_function_configuration(FunctionName=f"{PREFIX}-{key}")
        assert config["Handler"] == spec["handler"]
        assert config["Runtime"] == "python3.13"
        assert config["Timeout"] == spec["timeout"]
        assert config["MemorySize"] == spec["memory"]
        env = config["Environment"]["Variables"]
        assert env["SSLNOTIFY_PREFIX"] == PREFIX
        if key in uses_secret:
            assert len(env["SSLNOTIFY_SECRET"]) >= 32
        else:
            assert "SSLNOTIFY_SECRET" not in env, f"{key} does not use the secret"
        assert env["SSLNOTIFY_SITE_URL"] == f"https://{DOMAIN}"
        assert env["SSLNOTIFY_API_URL"] == f"https://api.{DOMAIN}"
        assert env["SSLNOTIFY_OPERATOR_EMAIL"] == OPERATOR
        assert env["SSLNOTIFY_SENDER"].endswith(f"<noreply@{DOMAIN}>")
        assert env["SSLNOTIFY_SES_CONFIGURATION_SET"] == PREFIX
        assert env["SSLNOTIFY_BACKUP_BUCKET"].startswith(f"{PREFIX}-backups-")
        assert env["SSLNOTIFY_CHECK_IPV6"] == "0"  # Lambda outside a VPC has no IPv6 egress
        role = config["Role"].rpartition("/")[2]
        assert role == f"{PREFIX}-{key}"
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [role]
    groups = client("logs", moto_endpoint).describe_log_groups(logGroupNamePrefix="/aws/lambda/")
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups["logGroups"]}
    for key in RESOURCES["functions"]:
        assert retention[f"/aws/lambda/{PREFIX}-{key}"] == 30


def test_schedules_invoke_their_functions(applied, moto_endpoint):
    events = client("events", moto_endpoint)
    scheduled = {k: s for k, s in RESOURCES["functions"].items() if s.get("schedule")}
    assert set(scheduled) == {"cron", "data", "reporter"}
    for key, spec in scheduled.items():
        rule = events.describe_rule(Name=f"{PREFIX}-{key}")
        assert rule["ScheduleExpression"] == spec["schedule"]
        assert rule["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule=f"{PREFIX}-{key}")["Targets"]
        assert target["Arn"].endswith(f":function:{PREFIX}-{key}")
        assert json.loads(target["Input"]) == spec["schedule_payload"]


def test_mail_dns_and_api_are_wired(applied, moto_endpoint):
    ses = client("ses", moto_endpoint)
    assert DOMAIN in ses.list_identities(IdentityType="Domain")["Identities"]
    route53 = client("route53", moto_endpoint)
    (zone,) = [z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == f"{DOMAIN}."]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    kinds = {(r["Name"].rstrip("."), r["Type"]) for r in records}
    for expected in [
        (DOMAIN, "A"),
        (DOMAIN, "AAAA"),
        (DOMAIN, "MX"),
        (DOMAIN, "TXT"),
        (f"api.{DOMAIN}", "A"),
        (f"_amazonses.{DOMAIN}", "TXT"),
        (f"_dmarc.{DOMAIN}", "TXT"),
        (f"mail.{DOMAIN}", "MX"),
        (f"mail.{DOMAIN}", "TXT"),
    ]:
        assert expected in kinds, expected
    assert sum(1 for name, kind in kinds if kind == "CNAME" and "_domainkey" in name) == 3
    assert applied["name_servers"]
    apigateway = client("apigateway", moto_endpoint)
    (api,) = apigateway.get_rest_apis()["items"]
    paths = {r["path"] for r in apigateway.get_resources(restApiId=api["id"])["items"]}
    from app import app

    assert set(app.routes) <= paths
    mappings = apigateway.get_base_path_mappings(domainName=f"api.{DOMAIN}")["items"]
    assert [m["restApiId"] for m in mappings] == [api["id"]]
    topics = client("sns", moto_endpoint).list_subscriptions()["Subscriptions"]
    assert any(s["Endpoint"].endswith(f":function:{PREFIX}-bounces") for s in topics)


def makefile_variable(name: str) -> list[str]:
    """The words of one `NAME := value` line of the Makefile."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        key, separator, value = line.partition(":=")
        if separator and key.strip() == name:
            return value.split()
    raise AssertionError(f"the Makefile defines no {name}")


def test_make_dns_zone_prints_the_name_servers(workspace, moto_endpoint, applied):
    """README step 1: the targeted apply of `make dns-zone`, then its output, on a fresh state.

    Terraform drops an output whose dependencies are not all targeted and still exits 0
    ("No outputs found"), so the command must be run to be trusted.
    """
    variables = tf_vars(moto_endpoint, emulator_gaps=True)
    variables[variables.index(f"domain_name={DOMAIN}")] = "domain_name=zone-only.test"
    state = "-state=dns-zone.tfstate"
    targets = makefile_variable("DNS_ZONE_TARGETS")
    terraform("apply", "-auto-approve", state, *targets, *variables, cwd=workspace)
    answer = terraform("output", state, "-json", "name_servers", cwd=workspace)
    servers = json.loads(answer.stdout)
    assert len(servers) == 4, servers
    route53 = client("route53", moto_endpoint)
    zones = route53.list_hosted_zones()["HostedZones"]
    (zone,) = [z for z in zones if z["Name"] == "zone-only.test."]
    delegation = route53.get_hosted_zone(Id=zone["Id"])["DelegationSet"]["NameServers"]
    assert sorted(servers) == sorted(delegation)


def test_data_function_runs_against_the_provisioned_resources(applied, moto_endpoint, monkeypatch):
    """Invoke the data handler in-process with the environment Terraform gave the function."""
    config = client("lambda", moto_endpoint).get_function_configuration(
        FunctionName=f"{PREFIX}-data"
    )
    for name in list(os.environ):
        if name.startswith("SSLNOTIFY_"):
            monkeypatch.delenv(name)
    for name, value in config["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    from chalicelib import aws
    from chalicelib.config import reset_settings

    reset_settings()
    aws.reset_clients()
    try:
        from lambdas.data import handler

        answer = handler({"action": "counts"}, None)
        assert answer == {"response": {"subscriptions": 0, "pending": 0, "suppressed": 0}}
        answer = handler({"action": "backup"}, None)
        assert "response" in answer, answer
        bucket, key = answer["response"]["bucket"], answer["response"]["key"]
        assert bucket == config["Environment"]["Variables"]["SSLNOTIFY_BACKUP_BUCKET"]
        body = client("s3", moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
        assert json.loads(body)
    finally:
        reset_settings()
        aws.reset_clients()


def test_check_now_reaches_the_deployed_functions(applied, moto_endpoint, monkeypatch):
    """A check-now request as API Gateway delivers it, with the deployed wiring and settings.

    moto's server has no execute-api data plane and runs Lambda code only in Docker, so
    the gateway's hop is read from the imported API (the route's integration names the
    api function), the api function runs in this process with the environment Terraform
    gave it, and its invocations of data reach the real handler through the local Lambda
    API, over the tables Terraform created. 192.0.2.1 is refused after the rate limit is
    counted, so nothing leaves the machine.
    """
    from local.lambda_api import LambdaServer, LambdaService

    lambda_ = client("lambda", moto_endpoint)
    api_config = lambda_.get_function_configuration(FunctionName=f"{PREFIX}-api")
    apigateway = client("apigateway", moto_endpoint)
    (rest_api,) = apigateway.get_rest_apis()["items"]
    (resource,) = [
        r
        for r in apigateway.get_resources(restApiId=rest_api["id"], limit=500)["items"]
        if r["path"] == "/check/{host}"
    ]
    integration = apigateway.get_integration(
        restApiId=rest_api["id"], resourceId=resource["id"], httpMethod="GET"
    )
    assert integration["type"].upper() == "AWS_PROXY"  # moto keeps the document's case
    assert api_config["FunctionArn"] in integration["uri"]
    for name in list(os.environ):
        if name.startswith("SSLNOTIFY_"):
            monkeypatch.delenv(name)
    for name, value in api_config["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    # The local Lambda API runs data's handler in this process, with this environment:
    # data's secret is added to it (the api function itself has none).
    data_config = lambda_.get_function_configuration(FunctionName=f"{PREFIX}-data")
    monkeypatch.setenv(
        "SSLNOTIFY_SECRET", data_config["Environment"]["Variables"]["SSLNOTIFY_SECRET"]
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    from chalicelib import aws
    from chalicelib.config import get_settings, reset_settings

    reset_settings()
    aws.reset_clients()
    service = LambdaService(get_settings())
    server = LambdaServer(("127.0.0.1", 0), service)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
    aws.reset_clients()
    try:
        from chalice.test import Client

        from app import app

        with Client(app) as test_client:
            response = test_client.http.get(
                "/check/192.0.2.1", headers={"Origin": f"https://{DOMAIN}"}
            )
        assert response.status_code == 403, response.body
        assert json.loads(response.body)["Code"] == "ForbiddenError"
        assert response.headers["Access-Control-Allow-Origin"] == f"https://{DOMAIN}"
        counted = client("dynamodb", moto_endpoint).scan(TableName=f"{PREFIX}-ratelimits")
        assert any(item["key"]["S"].startswith("check:") for item in counted["Items"])
    finally:
        service.stop()
        server.shutdown()
        server.server_close()
        reset_settings()
        aws.reset_clients()


def test_frontend_publishes_with_its_config(applied, moto_endpoint, tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import deploy_frontend
    finally:
        sys.path.remove(str(ROOT / "tools"))
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    result = deploy_frontend.publish(applied, tmp_path / "site", session)
    assert result["files"] > 3 and result["invalidation"]
    s3 = client("s3", moto_endpoint)
    config = s3.get_object(Bucket=applied["frontend_bucket"], Key="config.js")["Body"].read()
    assert f'"apiUrl": "https://api.{DOMAIN}"' in config.decode()
    index = s3.head_object(Bucket=applied["frontend_bucket"], Key="index.html")
    assert index["ContentType"].startswith("text/html")


# ---------------------------------------------------------------- alarms


def test_alarms_reach_the_operator(applied, moto_endpoint):
    """Each alarm watches its metric and notifies the topic the operator's address subscribes to."""
    sns = client("sns", moto_endpoint)
    (topic,) = [
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(":sslnotify-tf-alarms")
    ]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", OPERATOR)]
    cloudwatch = client("cloudwatch", moto_endpoint)
    alarms = {
        alarm["AlarmName"]: alarm
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=PREFIX)
        for alarm in page["MetricAlarms"]
    }

    def watched(name: str) -> tuple:
        alarm = alarms.pop(name)
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["ActionsEnabled"] is True
        dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        return (
            alarm["Namespace"],
            alarm["MetricName"],
            dimensions,
            alarm["Statistic"],
            alarm["ComparisonOperator"],
            alarm["Threshold"],
        )

    assert watched(f"{PREFIX}-dead-letters") == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": f"{PREFIX}-dead-letter"},
        "Maximum",
        "GreaterThanThreshold",
        0,
    )
    for key in RESOURCES["functions"]:
        for kind, metric in (("errors", "Errors"), ("throttles", "Throttles")):
            assert watched(f"{PREFIX}-{key}-{kind}") == (
                "AWS/Lambda",
                metric,
                {"FunctionName": f"{PREFIX}-{key}"},
                "Sum",
                "GreaterThanThreshold",
                0,
            )
    from chalicelib.metrics import NAMESPACE, SWEEP_UNFINISHED

    assert watched(f"{PREFIX}-sweep-unfinished") == (
        NAMESPACE,
        SWEEP_UNFINISHED,
        {"Stage": PREFIX},
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert watched(f"{PREFIX}-ses-bounce-rate") == (
        "AWS/SES",
        "Reputation.BounceRate",
        {},
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        0.04,
    )
    assert watched(f"{PREFIX}-ses-complaint-rate") == (
        "AWS/SES",
        "Reputation.ComplaintRate",
        {},
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        0.0008,
    )
    assert alarms == {}, f"alarms the test does not know: {sorted(alarms)}"


COMPARISONS = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
}


def test_the_sweep_alarm_fires_when_the_sweep_did_not_finish(applied, moto_endpoint):
    """The 07:00 report's metric line names the alarm's metric; only "unfinished" breaches.

    moto stores alarms without evaluating them, so the alarm's own comparison is applied
    here to the value CloudWatch would extract from the report's log line (EMF).
    """
    from chalicelib.metrics import sweep_document

    cloudwatch = client("cloudwatch", moto_endpoint)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[f"{PREFIX}-sweep-unfinished"])["MetricAlarms"]
    breaches = COMPARISONS[alarm["ComparisonOperator"]]
    for finished, fires in ((False, True), (True, False)):
        document = sweep_document(PREFIX, finished=finished)
        (definition,) = document["_aws"]["CloudWatchMetrics"]
        assert definition["Namespace"] == alarm["Namespace"]
        assert [m["Name"] for m in definition["Metrics"]] == [alarm["MetricName"]]
        dimensions = {name: document[name] for name in definition["Dimensions"][0]}
        assert dimensions == {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert breaches(document[alarm["MetricName"]], alarm["Threshold"]) is fires
    # No line at all (the report did not run) is no breach: the reporter's errors alarm covers it.
    assert alarm["TreatMissingData"] == "notBreaching"


def test_mail_records_stay_out_of_a_zone_that_has_its_own(workspace, moto_endpoint, applied):
    """An existing zone's mail is kept: no apex MX, no DMARC, and the existing SPF is merged."""
    existing = ["google-site-verification=abc123", "v=spf1 include:_spf.google.com ~all"]
    terraform(
        "plan",
        "-refresh=false",
        "-out=mail.plan",
        *tf_vars(moto_endpoint, emulator_gaps=True),
        "-var=receive_mail=false",
        "-var=manage_dmarc=false",
        f"-var=existing_apex_txt={json.dumps(existing)}",
        cwd=workspace,
    )
    mail_plan = json.loads(terraform("show", "-json", "mail.plan", cwd=workspace).stdout)
    actions = {c["address"]: c["change"]["actions"] for c in mail_plan["resource_changes"]}
    for address in (
        "aws_route53_record.inbound_mx[0]",
        "aws_route53_record.dmarc[0]",
        "aws_ses_receipt_rule.store[0]",
        "aws_ses_receipt_rule_set.inbound[0]",
        "aws_ses_active_receipt_rule_set.inbound[0]",
    ):
        assert actions[address] == ["delete"], address
    (txt,) = [
        resource["values"]
        for resource in mail_plan["planned_values"]["root_module"]["resources"]
        if resource["address"] == "aws_route53_record.apex_spf[0]"
    ]
    assert txt["allow_overwrite"] is True  # takes the existing record set over
    assert sorted(txt["records"]) == [
        "google-site-verification=abc123",
        "v=spf1 include:_spf.google.com include:amazonses.com ~all",
    ]


# ---------------------------------------------------------------- least privilege


def test_each_role_grants_exactly_what_its_code_calls(plan):
    used = function_actions()
    policies = planned_resources(plan, "aws_iam_role_policy")
    assert set(policies) == set(RESOURCES["functions"])
    for key in RESOURCES["functions"]:
        listed = {a for s in PERMISSIONS["functions"].get(key, []) for a in s["actions"]}
        assert listed == used[key], (
            f"{key}: permissions.json lists {sorted(listed)}, the code calls {sorted(used[key])}"
        )
        document = json.loads(policies[key]["policy"])
        granted = set()
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            granted.update(actions)
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            assert resources, f"{key}: a statement without resources"
            if "*" in resources:
                unscoped = set(PERMISSIONS["unscoped"])
                assert set(actions) <= unscoped, f"{key}: Resource * for {actions}"
            for resource in resources:
                assert resource == "*" or PREFIX in resource or ":ses:" in resource, resource
        runtime = {
            action
            for statement in PERMISSIONS["runtime"]
            if key not in statement.get("except", [])
            for action in statement["actions"]
        }
        assert granted == listed | runtime, key


def test_functions_invoke_only_the_functions_they_call(plan):
    policies = planned_resources(plan, "aws_iam_role_policy")
    for key, spec in RESOURCES["functions"].items():
        document = json.loads(policies[key]["policy"])
        invokable = set()
        for statement in document["Statement"]:
            actions = statement["Action"]
            if "lambda:InvokeFunction" in ([actions] if isinstance(actions, str) else actions):
                resources = statement["Resource"]
                resources = [resources] if isinstance(resources, str) else resources
                invokable |= {arn.rpartition(":function:")[2] for arn in resources}
        assert invokable == {f"{PREFIX}-{target}" for target in spec["invokes"]}, key


def test_the_real_settings_change_only_what_the_emulator_lacks(plan):
    """Over the emulated state, the real settings touch only the resources they concern."""
    expected = {
        "aws_cloudfront_response_headers_policy.security[0]",  # enable_response_headers_policy
        "aws_cloudfront_distribution.site",  # ... which the distribution then names
        "aws_ses_configuration_set.main",  # ses_require_tls
        "aws_sns_topic_policy.bounces",  # names the configuration set: document read at apply
        'aws_s3_bucket_policy.bucket["backups"]',  # deny_insecure_transport
        'aws_s3_bucket_policy.bucket["frontend"]',
        'aws_s3_bucket_policy.bucket["inbound"]',
        "aws_api_gateway_rest_api.api",  # openapi_file
        "aws_api_gateway_deployment.api",
        "aws_api_gateway_stage.api",
    }
    changed = set()
    for change in plan["resource_changes"]:
        if change["mode"] != "managed" or change["change"]["actions"] == ["no-op"]:
            continue
        before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
        differing = {key for key in {*before, *after} if before.get(key) != after.get(key)}
        # moto omits dead_letter_config when it describes a function (the plan is checked below)
        if change["type"] == "aws_lambda_function" and differing <= {"dead_letter_config"}:
            continue
        changed.add(change["address"])
    assert changed <= expected, f"unexpected changes (drift?): {sorted(changed - expected)}"


def test_what_the_emulator_lacks_is_in_the_real_plan(plan):
    (policy,) = planned_resources(plan, "aws_cloudfront_response_headers_policy").values()
    config = policy["security_headers_config"][0]
    expected = {
        name: value.replace("{api_origin}", f"https://api.{DOMAIN}")
        for name, value in {**SECURITY_HEADERS["headers"], **SECURITY_HEADERS["https_only"]}.items()
    }
    served = {
        "Content-Security-Policy": config["content_security_policy"][0]["content_security_policy"],
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": config["frame_options"][0]["frame_option"],
        "Referrer-Policy": config["referrer_policy"][0]["referrer_policy"],
    }
    hsts = config["strict_transport_security"][0]
    served["Strict-Transport-Security"] = (
        f"max-age={hsts['access_control_max_age_sec']}"
        + ("; includeSubDomains" if hsts["include_subdomains"] else "")
        + ("; preload" if hsts["preload"] else "")
    )
    for item in (
        policy["custom_headers_config"][0]["items"] if policy["custom_headers_config"] else []
    ):
        served[item["header"]] = item["value"]
    assert served == expected
    assert "unsafe-inline" not in served["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in served["Content-Security-Policy"]
    (distribution,) = planned_resources(plan, "aws_cloudfront_distribution").values()
    assert (
        distribution["default_cache_behavior"][0]["viewer_protocol_policy"] == "redirect-to-https"
    )
    assert distribution["viewer_certificate"][0]["minimum_protocol_version"] == "TLSv1.2_2021"
    assert distribution["is_ipv6_enabled"] is True
    (configuration_set,) = planned_resources(plan, "aws_ses_configuration_set").values()
    assert configuration_set["delivery_options"] == [{"tls_policy": "Require"}]
    functions = planned_resources(plan, "aws_lambda_function")  # moto omits dead-letter queues
    assert functions["api"]["dead_letter_config"] == []  # API Gateway invokes synchronously
    for key, function in functions.items():
        if key != "api":
            (dead_letter,) = function["dead_letter_config"]
            assert dead_letter["target_arn"].endswith(f":{PREFIX}-dead-letter")
    tls_only = {  # read during the plan: moto is plain HTTP, so the test apply leaves it out
        resource["index"]: json.loads(resource["values"]["json"])
        for resource in plan["prior_state"]["values"]["root_module"]["resources"]
        if resource["address"].startswith("data.aws_iam_policy_document.tls_only")
    }
    assert set(tls_only) == set(RESOURCES["buckets"])
    for document in tls_only.values():
        (statement,) = document["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    (rest_api,) = planned_resources(plan, "aws_api_gateway_rest_api").values()
    body = json.loads(rest_api["body"])
    assert "mock://" not in rest_api["body"] and "@@" not in rest_api["body"]
    assert body["openapi"].startswith("3.")
    preflight_origins = {
        operation["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"][
            "method.response.header.Access-Control-Allow-Origin"
        ]
        for methods in body["paths"].values()
        for operation in methods.values()
        if operation["x-amazon-apigateway-integration"]["type"] == "mock"
    }
    assert preflight_origins == {f"'https://{DOMAIN}'"}  # CORS admits only the site


def test_api_gateways_own_errors_reach_the_page(plan):
    """API Gateway's own 4xx/5xx (stage throttle, 29 s timeout, throttled Lambda) allow the site.

    Without Access-Control-Allow-Origin the browser reports status 0, and the page's
    "too many requests" branch never runs. The API function must also stop before the
    gateway's 29 s integration timeout gives up on it.
    """
    (rest_api,) = planned_resources(plan, "aws_api_gateway_rest_api").values()
    responses = json.loads(rest_api["body"])["x-amazon-apigateway-gateway-responses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        parameters = responses[kind]["responseParameters"]
        origin = parameters["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert origin == f"'https://{DOMAIN}'", kind
        template = json.loads(
            responses[kind]["responseTemplates"]["application/json"].replace(
                "$context.error.messageString", '"message"'
            )
        )
        assert set(template) == {"Code", "Message"}  # the app's own error shape
    functions = planned_resources(plan, "aws_lambda_function")
    assert functions["api"]["timeout"] < 29


def test_missing_pages_get_the_sites_404(applied, moto_endpoint):
    """S3 answers a missing key with 403 AccessDenied XML; CloudFront serves /404.html instead."""
    cloudfront = client("cloudfront", moto_endpoint)
    distribution = cloudfront.get_distribution_config(Id=applied["cloudfront_distribution_id"])
    errors = distribution["DistributionConfig"]["CustomErrorResponses"]["Items"]
    served = {int(e["ErrorCode"]): (e["ResponsePagePath"], str(e["ResponseCode"])) for e in errors}
    assert served == {403: ("/404.html", "404"), 404: ("/404.html", "404")}
    assert (ROOT / "frontend" / "pages" / "404.html").is_file()  # the page the path names


def test_the_mailer_may_send_to_a_verified_recipient_in_the_sandbox(plan):
    """SES's sandbox authorizes the recipient's identity too: the account's, own From only."""
    (policy,) = [
        json.loads(values["policy"])
        for key, values in planned_resources(plan, "aws_iam_role_policy").items()
        if key == "mailer"
    ]
    recipients = [
        statement
        for statement in policy["Statement"]
        if statement["Resource"] == f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/*"
    ]
    (statement,) = recipients
    assert statement["Action"] == "ses:SendRawEmail"
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": f"noreply@{DOMAIN}"}}


# ---------------------------------------------------------------- what the code calls


# boto3 conveniences that are not API operations, and the operation they perform.
CONVENIENCES = {
    "dynamodb": {"batch_writer": "BatchWriteItem"},
    "s3": {"upload_file": "PutObject", "upload_fileobj": "PutObject"},
}
# Where the IAM action is not named like the API operation.
IAM_NAMES = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
}
IAM_PREFIX = {"sesv2": "ses"}


@cache
def operations(service: str) -> dict[str, str]:
    """Map boto3 method names to API operation names for a service."""
    model = botocore.session.get_session().get_service_model(service)
    names = {xform_name(op): op for op in model.operation_names}
    return names | CONVENIENCES.get(service, {})


def module_path(name: str) -> Path | None:
    for candidate in (ROOT / f"{name.replace('.', '/')}.py", ROOT / name / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def closure(module: str) -> set[str]:
    """Every first-party module reachable from one by imports (lazy ones too)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.extend([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return {name for name in seen if name.split(".")[0] in {"chalicelib", "lambdas", "app"}}


def module_actions(path: Path) -> set[str]:
    """IAM actions of the boto3 calls a module makes on clients from chalicelib.aws.

    The services are those the module asks aws.client()/aws.table() for; the calls are
    every method call (and paginator) named like one of those services' operations.
    """
    services: set[str] = set()
    called: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        called.add(node.func.attr)
        is_aws = isinstance(node.func.value, ast.Name) and node.func.value.id == "aws"
        if is_aws and node.func.attr == "table":
            services.add("dynamodb")
        literal = (
            node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        )
        if is_aws and node.func.attr == "client" and literal:
            services.add(literal)
        if node.func.attr == "get_paginator" and literal:
            called.add(literal)
    actions = set()
    for service in services:
        for method in called:
            operation = operations(service).get(method)
            if operation:
                default = f"{IAM_PREFIX.get(service, service)}:{operation}"
                actions.add(IAM_NAMES.get((service, operation), default))
    return actions


def function_actions() -> dict[str, set[str]]:
    """The actions each function of resources.json can call, from its handler's imports."""
    result = {}
    for key, spec in RESOURCES["functions"].items():
        actions: set[str] = set()
        for name in closure(spec["handler"].rpartition(".")[0]):
            found = module_actions(module_path(name))
            # chalicelib.invoke serves both sides: its Lambda client is used only by
            # functions that call others (resources.json "invokes"); dispatch() needs nothing.
            if name == "chalicelib.invoke" and not spec["invokes"]:
                found.discard("lambda:InvokeFunction")
            actions |= found
        result[key] = actions
    return result


def functions_using_secret() -> set[str]:
    """The functions whose code can call Settings.require_secret()."""
    return {
        key
        for key, spec in RESOURCES["functions"].items()
        if any(
            "require_secret(" in module_path(name).read_text()
            for name in closure(spec["handler"].rpartition(".")[0])
            if name != "chalicelib.config"
        )
    }


def test_the_code_analysis_sees_known_calls():
    """The analysis itself: it finds the calls it must (or the checks above prove nothing)."""
    used = function_actions()
    assert "lambda:InvokeFunction" in used["cron"]
    assert "lambda:InvokeFunction" not in used["data"]
    assert {"dynamodb:GetItem", "s3:PutObject"} <= used["data"]
    assert any(action.startswith("ses:Send") for action in used["mailer"])
    assert "data" in functions_using_secret()
