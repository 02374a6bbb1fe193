"""The dead-letter queue of failed asynchronous invocations: its name and how deep it is.

In AWS, Lambda puts an event here after an asynchronous invocation failed three times
(the body is the event, the attributes say why); the local stack does the same
(local/lambda_api.py). `sslnotify trigger redrive` replays it (local/redrive.py).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws


def queue_name(prefix: str) -> str:
    """Return the queue's name for a deployment prefix (Terraform's aws_sqs_queue.dead_letter)."""
    return f"{prefix}-dead-letter"


def queue_url(sqs: Any, prefix: str) -> str | None:
    """Return the queue's URL, or None when it does not exist."""
    try:
        return sqs.get_queue_url(QueueName=queue_name(prefix))["QueueUrl"]
    except ClientError as error:
        if "NonExistentQueue" in error.response.get("Error", {}).get("Code", ""):
            return None
        raise


def depth(prefix: str, sqs: Any = None) -> int | None:
    """Return how many events wait in the queue (None when there is no queue)."""
    sqs = sqs or aws.client("sqs")
    url = queue_url(sqs, prefix)
    if url is None:
        return None
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def dead_letter_attributes(request_id: str, error: BaseException) -> dict[str, Any]:
    """Return the message attributes Lambda gives a dead letter."""
    return {
        "RequestID": {"DataType": "String", "StringValue": request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": str(error)[:1000] or "error"},
    }
