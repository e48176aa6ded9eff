"""Off-site copies of the backups in S3-compatible object storage, encrypted before upload.

Configured from the environment (read at call time, so a worker needs no restart to change it):

    BACKUP_S3_BUCKET        enables off-site copies
    BACKUP_S3_ENDPOINT_URL  e.g. https://s3.eu-central-1.amazonaws.com, a MinIO or R2 endpoint
    BACKUP_S3_PREFIX        key prefix (default "inventory/")
    BACKUP_S3_REGION        (default us-east-1)
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   boto3's own variables
    BACKUP_ENCRYPTION_KEY   required with a bucket: nothing leaves the machine unencrypted
    BACKUP_REMOTE_RETENTION good copies kept in the bucket (default BACKUP_RETENTION)

A copy counts only once it was read back from the bucket and its SHA-256 equals the one computed
while encrypting; local pruning never deletes a backup whose copy is not verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from operations import crypto
from operations.models import BackupRecord, RemoteStatus

log = logging.getLogger(__name__)


class OffsiteError(Exception):
    pass


@dataclass(frozen=True)
class OffsiteConfig:
    bucket: str
    endpoint_url: str | None
    prefix: str
    region: str
    key: bytes
    retention: int

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10),
        )

    def object_key(self, file_name: str) -> str:
        return f"{self.prefix}{file_name}{crypto.SUFFIX}"


def offsite_config() -> OffsiteConfig | None:
    """None when no bucket is configured; raises OffsiteError when it is, but incompletely."""
    bucket = os.environ.get("BACKUP_S3_BUCKET", "").strip()
    if not bucket:
        return None
    try:
        key = crypto.key_from_env()
    except ValueError as err:
        raise OffsiteError(str(err)) from None
    if key is None:
        raise OffsiteError("BACKUP_S3_BUCKET is set but BACKUP_ENCRYPTION_KEY is not")
    prefix = os.environ.get("BACKUP_S3_PREFIX", "inventory/")
    return OffsiteConfig(
        bucket=bucket,
        endpoint_url=os.environ.get("BACKUP_S3_ENDPOINT_URL") or None,
        prefix=prefix if not prefix or prefix.endswith("/") else prefix + "/",
        region=os.environ.get("BACKUP_S3_REGION", "us-east-1"),
        key=key,
        retention=int(os.environ.get("BACKUP_REMOTE_RETENTION", settings.BACKUP_RETENTION)),
    )


def _read_back_sha256(client, bucket: str, key: str) -> tuple[str, int]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def offsite_upload(record: BackupRecord, local: Path, config: OffsiteConfig) -> BackupRecord:
    """Encrypt `local` next to it, upload, read back and compare. Records the outcome on the
    record and raises OffsiteError when the copy is not verified."""
    encrypted = local.with_name(local.name + crypto.SUFFIX + ".partial")
    key = config.object_key(record.file_name)
    record.remote_key = key
    try:
        sha = crypto.encrypt_file(local, encrypted, config.key)
        size = encrypted.stat().st_size
        client = config.client()
        # upload_file streams from disk (multipart above 8 MiB); the metadata lets the monitor
        # compare without downloading.
        client.upload_file(
            str(encrypted),
            config.bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": sha, "plain-sha256": record.sha256}},
        )
        remote_sha, remote_size = _read_back_sha256(client, config.bucket, key)
        if (remote_sha, remote_size) != (sha, size):
            raise OffsiteError(
                f"read-back differs: {remote_size} bytes sha256 {remote_sha[:16]}… "
                f"instead of {size} bytes {sha[:16]}…"
            )
    except Exception as err:
        record.remote_status = RemoteStatus.FAILED
        record.remote_error = f"upload to s3://{config.bucket}/{key} failed: {err}"[:5000]
        record.save(update_fields=["remote_key", "remote_status", "remote_error"])
        log.error("off-site copy: %s", record.remote_error)
        raise OffsiteError(record.remote_error) from err
    finally:
        encrypted.unlink(missing_ok=True)
    record.remote_status, record.remote_error = RemoteStatus.VERIFIED, ""
    record.remote_size, record.remote_sha256 = size, sha
    record.remote_verified_at = timezone.now()
    record.save(
        update_fields=[
            "remote_key",
            "remote_status",
            "remote_error",
            "remote_size",
            "remote_sha256",
            "remote_verified_at",
        ]
    )
    return record


def offsite_prune(config: OffsiteConfig) -> list[str]:
    """Keep the newest `retention` verified copies in the bucket; delete older ones."""
    old = list(
        BackupRecord.objects.filter(remote_status=RemoteStatus.VERIFIED).order_by("-started_at")[
            config.retention :
        ]
    )
    if not old:
        return []
    client = config.client()
    removed = []
    for record in old:
        client.delete_object(Bucket=config.bucket, Key=record.remote_key)
        record.remote_status = RemoteStatus.PRUNED
        record.save(update_fields=["remote_status"])
        removed.append(record.remote_key)
    return removed


def offsite_check(record: BackupRecord, config: OffsiteConfig) -> tuple[bool, str]:
    """The monitor's look at the remote copy: verified, present with the size and checksum
    recorded, and encrypted with the key configured now (a rotated key is a failure too)."""
    if record.remote_status != RemoteStatus.VERIFIED:
        return False, (
            f"off-site copy of {record.file_name} is not verified: "
            f"{record.remote_error or record.remote_status or 'never uploaded'}"
        )[:500]
    try:
        client = config.client()
        head = client.head_object(Bucket=config.bucket, Key=record.remote_key)
        start = client.get_object(
            Bucket=config.bucket, Key=record.remote_key, Range=f"bytes=0-{crypto.HEADER.size - 1}"
        )["Body"].read()
    except Exception as err:
        return False, f"off-site copy s3://{config.bucket}/{record.remote_key}: {err}"[:500]
    if head["ContentLength"] != record.remote_size:
        return False, (
            f"off-site copy {record.remote_key} is {head['ContentLength']} bytes, "
            f"{record.remote_size} were uploaded"
        )
    if head.get("Metadata", {}).get("sha256") != record.remote_sha256:
        return False, f"off-site copy {record.remote_key} has another checksum than uploaded"
    if len(start) < crypto.HEADER.size or start[20:28] != crypto.key_id(config.key):
        return False, (
            f"off-site copy {record.remote_key} is not readable with the configured "
            "BACKUP_ENCRYPTION_KEY (wrong key)"
        )
    return True, f"off-site copy {record.remote_key} verified ({record.remote_size} bytes)"


def offsite_download(record: BackupRecord, target: Path, config: OffsiteConfig) -> None:
    """Download the encrypted copy, check its SHA-256, and decrypt it into `target`."""
    encrypted = target.with_name(target.name + crypto.SUFFIX)
    try:
        config.client().download_file(config.bucket, record.remote_key, str(encrypted))
        digest = hashlib.sha256()
        with encrypted.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if record.remote_sha256 and digest.hexdigest() != record.remote_sha256:
            raise OffsiteError(f"downloaded copy of {record.file_name} has another checksum")
        crypto.decrypt_file(encrypted, target, config.key)
    finally:
        encrypted.unlink(missing_ok=True)


# --- files without a BackupRecord: base backups and WAL segments (operations/wal_archive.py) ----


def object_put_verified(config: OffsiteConfig, local: Path, key: str, *, client=None) -> dict:
    """Encrypt `local` next to it, upload it as `key`, read it back and compare its SHA-256:
    returns {"key", "sha256", "size"} only for a verified copy, raises OffsiteError otherwise
    (and deletes a copy that does not match, so the bucket never holds a bad one by that name)."""
    client = client or config.client()
    encrypted = local.with_name(local.name + crypto.SUFFIX + ".partial")
    try:
        sha = crypto.encrypt_file(local, encrypted, config.key)
        size = encrypted.stat().st_size
        client.upload_file(
            str(encrypted), config.bucket, key, ExtraArgs={"Metadata": {"sha256": sha}}
        )
        remote_sha, remote_size = _read_back_sha256(client, config.bucket, key)
        if (remote_sha, remote_size) != (sha, size):
            client.delete_object(Bucket=config.bucket, Key=key)
            raise OffsiteError(f"read-back of s3://{config.bucket}/{key} differs")
    except OffsiteError:
        raise
    except Exception as err:
        raise OffsiteError(f"upload to s3://{config.bucket}/{key} failed: {err}"[:2000]) from err
    finally:
        encrypted.unlink(missing_ok=True)
    return {"key": key, "sha256": sha, "size": size}


def object_get_decrypted(config: OffsiteConfig, key: str, target: Path, *, client=None) -> None:
    """Download `key`, check it against the SHA-256 recorded at upload, decrypt into `target`."""
    client = client or config.client()
    encrypted = target.with_name(target.name + crypto.SUFFIX)
    try:
        client.download_file(config.bucket, key, str(encrypted))
        expected = (
            client.head_object(Bucket=config.bucket, Key=key).get("Metadata", {}).get("sha256")
        )
        digest = hashlib.sha256()
        with encrypted.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if expected and digest.hexdigest() != expected:
            raise OffsiteError(f"downloaded s3://{config.bucket}/{key} has another checksum")
        crypto.decrypt_file(encrypted, target, config.key)
    finally:
        encrypted.unlink(missing_ok=True)


def object_keys(config: OffsiteConfig, under: str, *, client=None) -> list[str]:
    """Every key below `config.prefix + under`, sorted (paged listing)."""
    client = client or config.client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=config.bucket, Prefix=config.prefix + under
    ):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def objects_delete(config: OffsiteConfig, keys: list[str], *, client=None) -> None:
    client = client or config.client()
    for start in range(0, len(keys), 1000):  # S3's limit per request
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        client.delete_objects(Bucket=config.bucket, Delete={"Objects": batch, "Quiet": True})
