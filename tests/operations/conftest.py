"""Every operations test gets a WAL archive and a base-backup folder of its own: with archiving
on (the embedded default), var/wal-archive is the development server's real archive, which a
test configuring a bucket would otherwise see as WAL not copied off-site (and could clean up)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_wal_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("WAL_ARCHIVE_DIR", str(tmp_path / "wal-archive"))
    monkeypatch.setenv("PITR_BASE_DIR", str(tmp_path / "base-backups"))
