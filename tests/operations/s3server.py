"""A real S3 endpoint for the off-site backup tests: moto's standalone server in a subprocess on
a free localhost port (boto3 talks HTTP to it, as it would to AWS, MinIO or R2)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def offsite(s3_endpoint, monkeypatch, request):
    """A fresh bucket per test and the environment that turns off-site copies on."""
    import boto3

    bucket = f"bk-{os.getpid()}-{abs(hash(request.node.name)) % 10**8}"
    env = {
        "BACKUP_S3_BUCKET": bucket,
        "BACKUP_S3_ENDPOINT_URL": s3_endpoint,
        "BACKUP_S3_PREFIX": "inv/",
        "BACKUP_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "BACKUP_ENCRYPTION_KEY": new_key(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    return client


def object_keys(client) -> list[str]:
    listing = client.list_objects_v2(Bucket=client.bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))
