"""`sslnotify restore BACKUP`: load a backup (a local file or s3://bucket/key) into the tables.

It talks to the tables of the deployment the environment names (SSLNOTIFY_PREFIX,
SSLNOTIFY_SECRET, AWS credentials and endpoints), as the data function would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chalicelib import backup
from chalicelib.errors import BadInput, NotFound, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the restore command's arguments."""
    parser.add_argument("backup", metavar="BACKUP", help="a backup file, or s3://bucket/key")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that the backup is whole and belongs to this deployment; write nothing",
    )


def read_backup(location: str, table_backup: backup.TableBackup) -> bytes:
    """Return the bytes of a backup given as a local path or s3://bucket/key."""
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        if not bucket or not key:
            raise UsageError("an S3 backup is written s3://bucket/key")
        return table_backup.fetch(bucket, key)
    path = Path(location)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no backup file at {location}") from None
    except OSError as error:
        raise BadInput(f"cannot read {location}: {error.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """Check the backup whole, then (unless --check) write its items; return the exit status."""
    table_backup = backup.from_settings()
    body = read_backup(args.backup, table_backup)
    tables = backup.parse(body, table_backup.fingerprint)
    counts = ", ".join(f"{name} {len(items)}" for name, items in tables.items())
    if args.check:
        print(f"{args.backup}: a whole sslnotify backup of this deployment ({counts})")
        return 0
    summary = table_backup.restore(tables)
    print(f"restored {summary.to_dict()['items']} item(s) from {args.backup} ({counts})")
    return 0
