"""Publish the website: build it with its config.js, upload it, invalidate CloudFront.

    python tools/deploy_frontend.py [--terraform-dir terraform] [--site-dir build/deploy-site]

Reads the bucket, the distribution and the API's URL from `terraform output`, so it
needs nothing but a finished apply (make deploy runs it after one).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
# HTML and config.js change with every deploy; the rest may be cached a day at the edge.
SHORT_LIVED = {".html", ".js", ".json"}
TYPES = {".js": "text/javascript", ".svg": "image/svg+xml", ".woff2": "font/woff2"}


def terraform_outputs(directory: Path) -> dict[str, Any]:
    """Return the outputs of the applied configuration."""
    answer = subprocess.run(
        ["terraform", f"-chdir={directory}", "output", "-json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {name: item["value"] for name, item in json.loads(answer.stdout).items()}


def build_site(site_dir: Path, api_url: str) -> None:
    """Assemble the pages with a config.js that points them at the API."""
    builder = [sys.executable, str(ROOT / "frontend" / "build.py")]
    subprocess.run([*builder, "--out", str(site_dir), "--api-url", api_url], check=True)


def content_type(path: Path) -> str:
    """Return the Content-Type of a site file."""
    guessed = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    kind = guessed or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def upload(site_dir: Path, bucket: str, s3: Any) -> list[str]:
    """Upload every file of the site; return the keys written."""
    keys = []
    for path in sorted(p for p in site_dir.rglob("*") if p.is_file()):
        key = path.relative_to(site_dir).as_posix()
        max_age = 60 if path.suffix in SHORT_LIVED else 86400
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content_type(path),
            CacheControl=f"public, max-age={max_age}",
        )
        keys.append(key)
    return keys


def invalidate(distribution_id: str, cloudfront: Any) -> str:
    """Ask CloudFront to drop every cached file; return the invalidation's id."""
    answer = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]},
            "CallerReference": f"sslnotify-{time.time_ns()}",
        },
    )
    return answer["Invalidation"]["Id"]


def publish(outputs: dict[str, Any], site_dir: Path, session: Any | None = None) -> dict[str, Any]:
    """Build, upload and invalidate; return what was done."""
    session = session or boto3.session.Session()
    build_site(site_dir, outputs["api_url"])
    keys = upload(site_dir, outputs["frontend_bucket"], session.client("s3"))
    invalidation = invalidate(outputs["cloudfront_distribution_id"], session.client("cloudfront"))
    return {"bucket": outputs["frontend_bucket"], "files": len(keys), "invalidation": invalidation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terraform-dir", type=Path, default=ROOT / "terraform")
    parser.add_argument("--site-dir", type=Path, default=ROOT / "build" / "deploy-site")
    args = parser.parse_args(argv)
    result = publish(terraform_outputs(args.terraform_dir), args.site_dir)
    print(f"uploaded {result['files']} files to s3://{result['bucket']}/, ", end="")
    print(f"CloudFront invalidation {result['invalidation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
