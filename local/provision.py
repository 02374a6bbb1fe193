"""Create the tables, buckets, SES identities and log groups of resources.json in (emulated) AWS.

The local stack and the tests call this; Terraform reads the same resources.json.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from email.utils import parseaddr

from chalicelib import aws
from chalicelib.config import Settings, resources


def provision(settings: Settings) -> None:
    """Create every resource sslnotify needs, skipping those that already exist."""
    # One thread per service: moto builds each service's backend on its first request,
    # which is most of the local stack's start-up time.
    steps = (_tables, _buckets, _ses, _log_groups, _dead_letter_queue)
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for done in [pool.submit(step, settings) for step in steps]:
            done.result()


def _tables(settings: Settings) -> None:
    dynamodb = aws.client("dynamodb")
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for key, spec in resources()["tables"].items():
        name = settings.table_name(key)
        if name in existing:
            continue
        schema = [{"AttributeName": spec["hash_key"], "KeyType": "HASH"}]
        attributes = [{"AttributeName": spec["hash_key"], "AttributeType": "S"}]
        if "range_key" in spec:
            schema.append({"AttributeName": spec["range_key"], "KeyType": "RANGE"})
            attributes.append({"AttributeName": spec["range_key"], "AttributeType": "S"})
        dynamodb.create_table(
            TableName=name,
            KeySchema=schema,
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
        )
        if "ttl_attribute" in spec:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["ttl_attribute"]},
            )


def _dead_letter_queue(settings: Settings) -> None:
    from chalicelib.dead_letters import queue_name

    # create_queue is idempotent for the same attributes (14 days, as Terraform's).
    aws.client("sqs").create_queue(
        QueueName=queue_name(settings.prefix), Attributes={"MessageRetentionPeriod": "1209600"}
    )


def _buckets(settings: Settings) -> None:
    s3 = aws.client("s3")
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for name in (settings.backup_bucket, settings.inbound_bucket):
        if name not in existing:
            s3.create_bucket(Bucket=name)


def _ses(settings: Settings) -> None:
    ses = aws.client("ses")
    for address in {settings.sender, settings.operator_email, settings.feedback_email}:
        ses.verify_email_identity(EmailAddress=parseaddr(address)[1])
    domain = parseaddr(settings.sender)[1].rpartition("@")[2]
    ses.verify_domain_identity(Domain=domain)
    if settings.ses_configuration_set:
        names = {
            item["Name"] for item in ses.list_configuration_sets().get("ConfigurationSets", [])
        }
        if settings.ses_configuration_set not in names:
            ses.create_configuration_set(ConfigurationSet={"Name": settings.ses_configuration_set})


def _log_groups(settings: Settings) -> None:
    logs = aws.client("logs")
    existing = {
        group["logGroupName"]
        for group in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/").get(
            "logGroups", []
        )
    }
    for key in resources()["functions"]:
        name = f"/aws/lambda/{settings.function_name(key)}"
        if name not in existing:
            logs.create_log_group(logGroupName=name)
