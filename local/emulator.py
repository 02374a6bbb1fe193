"""Emulated AWS on loopback (moto's server, in this process) and its state kept on disk.

moto keeps everything in memory, so the DynamoDB items and S3 objects are saved
through boto3 (scan / list + get) to JSON files under the state directory, every
`SAVE_PERIOD` seconds and on a clean stop, and put back after provisioning at start.
Log events and sent mail are not saved: the outbox keeps its own .eml files.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from waitress.server import create_server

from chalicelib import aws
from chalicelib.config import Settings, resources
from local import fast_dynamodb

SAVE_PERIOD = 10.0  # seconds: what a kill -9 can lose at most
STATE_VERSION = 1
THREADS = 16  # emulated AWS requests answered at once
MAX_BODY = 512 * 2**20  # bytes: backups go to S3 in one request


class CachingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves each host."""

    # moto finds the backend of every request under one global lock, listing its package
    # directory and trying hundreds of URL patterns; the answer for a host never changes.
    def __init__(self, create_app: Any):
        super().__init__(create_app)
        self._backend_for: dict[Any, Any] = {}

    def get_backend_for_host(self, host: Any) -> Any:
        """Return the backend for a host, found once."""
        if host not in self._backend_for:
            self._backend_for[host] = super().get_backend_for_host(host)
        return self._backend_for[host]


class Emulator:
    """moto's server on a loopback port, serving every AWS service but Lambda."""

    # Served by waitress rather than moto's own werkzeug server: werkzeug closes every
    # connection after one request (so each AWS call paid for a new socket and a new
    # thread), and waits 10 ms after each answer for a body nobody sends. waitress keeps
    # HTTP/1.1 connections alive, turns Nagle's algorithm off, and answers from a fixed
    # pool of threads.
    def __init__(self, port: int, host: str = "127.0.0.1", threads: int = THREADS):
        fast_dynamodb.install()
        # Built here, not in the thread, so a busy port fails at once with OSError.
        self._server = create_server(
            CachingDispatcher(create_backend_app),
            host=host,
            port=port,
            threads=threads,
            connection_limit=1000,
            channel_timeout=300,
            max_request_body_size=MAX_BODY,
            ident="moto",
        )
        self.url = f"http://{host}:{self._server.effective_port}"
        self._thread = threading.Thread(target=self._serve, name="moto", daemon=True)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the listening socket was closed by stop()
            self._server.run()

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.close()
        self._server.task_dispatcher.shutdown(timeout=1)


class StateStore:
    """Save and restore the tables' items and the buckets' objects as JSON files."""

    def __init__(self, settings: Settings, directory: Path):
        self.settings = settings
        self.directory = directory
        self._lock = threading.Lock()
        self._saved_listing: str | None = None

    @property
    def _tables_file(self) -> Path:
        return self.directory / "dynamodb.json"

    @property
    def _buckets_file(self) -> Path:
        return self.directory / "s3.json"

    def _bucket_names(self) -> list[str]:
        names = [self.settings.backup_bucket, self.settings.inbound_bucket]
        return [name for name in names if name]

    def save(self) -> None:
        """Write every item and object to the state directory (atomically per file)."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_json(
                self._tables_file, {"version": STATE_VERSION, "tables": self._dump_tables()}
            )
            self._save_buckets()

    def restore(self) -> dict[str, int]:
        """Load saved items and objects back; return how many of each were restored."""
        counts = {"items": 0, "objects": 0}
        if self._tables_file.exists():
            saved = json.loads(self._tables_file.read_text())
            for key, items in saved.get("tables", {}).items():
                if key in resources()["tables"]:
                    counts["items"] += self._load_table(self.settings.table_name(key), items)
        if self._buckets_file.exists():
            saved = json.loads(self._buckets_file.read_text())
            known = set(self._bucket_names())
            for bucket, objects in saved.get("buckets", {}).items():
                if bucket in known:
                    counts["objects"] += self._load_bucket(bucket, objects)
        return counts

    def _dump_tables(self) -> dict[str, list[dict[str, Any]]]:
        dynamodb = aws.client("dynamodb")
        dump: dict[str, list[dict[str, Any]]] = {}
        for key in resources()["tables"]:
            items: list[dict[str, Any]] = []
            pages = dynamodb.get_paginator("scan").paginate(TableName=self.settings.table_name(key))
            for page in pages:
                items.extend(page.get("Items", []))
            dump[key] = items
        return dump

    def _load_table(self, name: str, items: list[dict[str, Any]]) -> int:
        dynamodb = aws.client("dynamodb")
        for start in range(0, len(items), 25):  # BatchWriteItem's limit
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            dynamodb.batch_write_item(RequestItems={name: requests})
        return len(items)

    def _listing(self) -> dict[str, list[dict[str, Any]]]:
        s3 = aws.client("s3")
        listing: dict[str, list[dict[str, Any]]] = {}
        for bucket in self._bucket_names():
            listing[bucket] = [
                entry
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for entry in page.get("Contents", [])
            ]
        return listing

    def _save_buckets(self) -> None:
        # Backups pile up hourly: download the objects again only when the listing changed.
        listing = self._listing()
        signature = json.dumps(
            {
                bucket: [(e["Key"], e["ETag"], e["Size"]) for e in entries]
                for bucket, entries in listing.items()
            },
            sort_keys=True,
        )
        if signature == self._saved_listing and self._buckets_file.exists():
            return
        dump = self._dump_buckets(listing)
        _write_json(self._buckets_file, {"version": STATE_VERSION, "buckets": dump})
        self._saved_listing = signature

    def _dump_buckets(
        self, listing: dict[str, list[dict[str, Any]]]
    ) -> dict[str, list[dict[str, str]]]:
        s3 = aws.client("s3")
        dump: dict[str, list[dict[str, str]]] = {}
        for bucket, entries in listing.items():
            dump[bucket] = []
            for entry in entries:
                answer = s3.get_object(Bucket=bucket, Key=entry["Key"])
                dump[bucket].append(
                    {
                        "key": entry["Key"],
                        "content_type": answer.get("ContentType", "binary/octet-stream"),
                        "body": base64.b64encode(answer["Body"].read()).decode(),
                    }
                )
        return dump

    def _load_bucket(self, bucket: str, objects: list[dict[str, str]]) -> int:
        s3 = aws.client("s3")
        for entry in objects:
            s3.put_object(
                Bucket=bucket,
                Key=entry["key"],
                Body=base64.b64decode(entry["body"]),
                ContentType=entry.get("content_type", "binary/octet-stream"),
            )
        return len(objects)


class PeriodicSaver:
    """Save the state every period in a background thread, and once more when stopped."""

    def __init__(self, store: StateStore, period: float = SAVE_PERIOD, on_error=None):
        self.store = store
        self.period = period
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-saver", daemon=True)

    def start(self) -> None:
        """Start saving periodically."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._save()

    def _save(self) -> None:
        try:
            self.store.save()
        except Exception as error:  # keep saving next period; report, do not die
            if self._on_error:
                self._on_error(error)

    def stop(self, save: bool = True) -> None:
        """Stop the thread and, unless told not to, save a last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if save:
            self._save()


def _write_json(path: Path, data: Any) -> None:
    # Write then rename, so a crash mid-write leaves the previous file intact.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
