"""Off-site copies (issue 13.1) against a real S3 endpoint (moto's server on localhost):
encrypted before upload, read back and compared, retention in the bucket, nothing deleted
locally before its copy is verified, and every failure seen by the monitor and /health."""

from __future__ import annotations

import io
import os

import pytest

from operations import crypto
from operations.backups import backup_create, backups_monitor
from operations.models import BackupRecord
from operations.offsite import OffsiteError, offsite_config, offsite_download
from tests.operations.s3server import new_key, object_keys
from tests.operations.s3server import offsite as offsite  # noqa: F401  (fixtures)
from tests.operations.s3server import s3_endpoint as s3_endpoint  # noqa: F401


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.mark.django_db
def test_it_uploads_an_encrypted_copy_and_verifies_it(backup_dir, offsite, tmp_path):
    record = backup_create()
    record.refresh_from_db()
    assert record.status == "ok" and record.remote_status == "verified"
    assert record.remote_key == f"inv/{record.file_name}.enc" and record.remote_verified_at
    assert object_keys(offsite) == [record.remote_key]
    stored = offsite.get_object(Bucket=offsite.bucket, Key=record.remote_key)["Body"].read()
    import hashlib

    assert len(stored) == record.remote_size and hashlib.sha256(stored).hexdigest() == record.remote_sha256
    plain = (backup_dir / record.file_name).read_bytes()
    assert plain.startswith(b"PGDMP") and not stored.startswith(b"PGDMP")
    assert plain[:4096] not in stored  # no plaintext leaves the machine
    # No encrypted leftovers next to the dump.
    assert sorted(p.name for p in backup_dir.iterdir()) == [record.file_name]
    restored = tmp_path / "restored.dump"
    offsite_download(record, restored, offsite_config())
    assert restored.read_bytes() == plain


@pytest.mark.django_db
def test_it_refuses_a_wrong_key_and_a_flipped_byte(backup_dir, offsite, tmp_path, monkeypatch):
    record = backup_create()
    stored = offsite.get_object(Bucket=offsite.bucket, Key=record.remote_key)["Body"].read()
    key = offsite_config().key
    with pytest.raises(crypto.DecryptError, match="wrong key"):
        crypto.decrypt_stream(io.BytesIO(stored), io.BytesIO(), os.urandom(32))
    for position in (10, crypto.HEADER.size + 40, len(stored) // 2, len(stored) - 1):
        tampered = bytearray(stored)
        tampered[position] ^= 0x01
        with pytest.raises(crypto.DecryptError):
            crypto.decrypt_stream(io.BytesIO(bytes(tampered)), io.BytesIO(), key)
    with pytest.raises(crypto.DecryptError, match="truncated"):
        crypto.decrypt_stream(io.BytesIO(stored[:-30]), io.BytesIO(), key)
    # Through the download: a wrong key configured leaves no decrypted file behind.
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", new_key())
    target = tmp_path / "out.dump"
    with pytest.raises(crypto.DecryptError, match="wrong key"):
        offsite_download(record, target, offsite_config())
    assert list(tmp_path.glob("out.dump*")) == []


def test_it_refuses_a_truncation_at_a_frame_boundary(tmp_path):
    source = tmp_path / "plain"
    source.write_bytes(os.urandom(3 * 1000 + 7))
    key = os.urandom(32)
    crypto.encrypt_file(source, tmp_path / "enc", key, chunk_size=1000)
    data = (tmp_path / "enc").read_bytes()
    frame = 4 + 1000 + crypto.TAG
    with pytest.raises(crypto.DecryptError, match="frame 2 fails"):
        crypto.decrypt_stream(io.BytesIO(data[: crypto.HEADER.size + 3 * frame]), io.BytesIO(), key)
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(data), out, key)
    assert out.getvalue() == source.read_bytes()


@pytest.mark.django_db
def test_it_applies_the_retention_in_the_bucket(backup_dir, offsite, settings, monkeypatch):
    settings.BACKUP_RETENTION = 2
    monkeypatch.setenv("BACKUP_REMOTE_RETENTION", "2")
    records = [backup_create() for _ in range(3)]
    assert object_keys(offsite) == sorted(f"inv/{r.file_name}.enc" for r in records[1:])
    records[0].refresh_from_db()
    assert records[0].status == "pruned" and records[0].remote_status == "pruned"


@pytest.mark.django_db
def test_a_refused_upload_deletes_nothing_locally_and_fails_monitor_and_health(
    backup_dir, offsite, settings, monkeypatch, api
):
    from operations.tasks import worker_heartbeat

    worker_heartbeat()
    settings.BACKUP_RETENTION = 1
    first = backup_create()
    monkeypatch.setenv("BACKUP_S3_BUCKET", "no-such-bucket-h15")
    with pytest.raises(OffsiteError, match="NoSuchBucket"):
        backup_create()
    with pytest.raises(OffsiteError):
        backup_create()
    failed = list(BackupRecord.objects.filter(remote_status="failed"))
    assert len(failed) == 2 and all(r.status == "ok" for r in failed)
    # Retention 1, but the two unverified backups stay on disk; the verified one was pruned.
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(r.file_name for r in failed)
    first.refresh_from_db()
    assert first.status == "pruned"
    result = backups_monitor()
    assert not result.ok and "not verified" in result.message and "NoSuchBucket" in result.message
    response = api.get("/health")
    assert response.status_code == 503 and response.json()["failing"] == ["backups"]
    assert "off-site copy not verified" in response.json()["backups"]["message"]


@pytest.mark.django_db
def test_the_monitor_checks_the_remote_copy(backup_dir, offsite, monkeypatch, api):
    from operations.tasks import worker_heartbeat

    worker_heartbeat()
    record = backup_create()
    result = backups_monitor()
    assert result.ok and f"off-site copy {record.remote_key} verified" in result.message
    assert api.get("/health").json()["backups"]["remote"]["status"] == "verified"
    # A rotated (wrong) key: the copy can no longer be read back.
    good_key = os.environ["BACKUP_ENCRYPTION_KEY"]
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", new_key())
    result = backups_monitor()
    assert not result.ok and "wrong key" in result.message
    response = api.get("/health")
    assert response.status_code == 503 and "wrong key" in response.json()["backups"]["message"]
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", good_key)
    # A copy replaced in the bucket (another size) and then one deleted.
    offsite.put_object(Bucket=offsite.bucket, Key=record.remote_key, Body=b"x")
    assert "is 1 bytes" in backups_monitor().message
    offsite.delete_object(Bucket=offsite.bucket, Key=record.remote_key)
    result = backups_monitor()
    assert not result.ok and "Not Found" in result.message
    assert api.get("/health").status_code == 503


@pytest.mark.django_db
def test_a_bucket_without_a_key_uploads_nothing(backup_dir, offsite, monkeypatch):
    monkeypatch.delenv("BACKUP_ENCRYPTION_KEY")
    with pytest.raises(OffsiteError, match="BACKUP_ENCRYPTION_KEY is not"):
        backup_create()
    record = BackupRecord.objects.get()
    assert record.status == "ok" and record.remote_status == "failed"
    assert object_keys(offsite) == []
    assert (backup_dir / record.file_name).exists()
    assert not backups_monitor().ok
