"""The answer cache's journal: WAL where it works, the rollback journal on network file systems."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge import cache as cache_module
from slim_leakage.judge.cache import AnswerCache, journal_for, mount_type

# The format of Linux's /proc/mounts (proc(5)): device, mount point, type, options, 0 0; spaces
# in a mount point written as \040.
MOUNTS = textwrap.dedent(
    r"""
    overlay / overlay rw,relatime 0 0
    proc /proc proc rw,nosuid 0 0
    fileserver:/export/home /home nfs4 rw,relatime,vers=4.2 0 0
    /dev/sdb1 /home/alice/local\040disk ext4 rw 0 0
    //nas/share /mnt/nas cifs rw 0 0
    """
)


def journal_of(path) -> str:
    with sqlite3.connect(str(path)) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def put(cache: AnswerCache, key: str, text: str = "t") -> None:
    cache.put(key, backend="b", model="m", stage="s", version="v1", text=text)


def test_mount_type_reads_the_longest_matching_mount_point(tmp_path):
    assert mount_type("/home/alice/.cache/slim-leakage/judge-cache.sqlite3", MOUNTS) == "nfs4"
    assert mount_type("/home/alice/local disk/cache.sqlite3", MOUNTS) == "ext4"
    assert mount_type("/mnt/nas/x/y.sqlite3", MOUNTS) == "cifs"
    assert mount_type("/homework/cache.sqlite3", MOUNTS) == "overlay"  # not under /home
    assert mount_type("/tmp/x", "") is None


def test_the_journal_follows_the_file_system_and_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIM_CACHE_JOURNAL", raising=False)
    monkeypatch.setattr(cache_module, "mount_type", lambda path: "nfs4")
    assert journal_for(tmp_path / "c.sqlite3") == "delete"
    monkeypatch.setattr(cache_module, "mount_type", lambda path: "ext4")
    assert journal_for(tmp_path / "c.sqlite3") == "wal"
    monkeypatch.setenv("SLIM_CACHE_JOURNAL", "delete")
    assert journal_for(tmp_path / "c.sqlite3") == "delete"
    monkeypatch.setenv("SLIM_CACHE_JOURNAL", "journal")
    with pytest.raises(ConfigError, match="SLIM_CACHE_JOURNAL='journal'"):
        journal_for(tmp_path / "c.sqlite3")


def test_a_cache_on_a_local_disk_uses_wal(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIM_CACHE_JOURNAL", raising=False)
    monkeypatch.setattr(cache_module, "mount_type", lambda path: "ext4")
    cache = AnswerCache(tmp_path / "c.sqlite3")
    put(cache, "k")
    assert cache.journal_mode == "wal" and journal_of(tmp_path / "c.sqlite3") == "wal"
    cache.close()


def test_a_cache_on_a_network_file_system_uses_the_rollback_journal(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIM_CACHE_JOURNAL", raising=False)
    path = tmp_path / "c.sqlite3"
    monkeypatch.setattr(cache_module, "mount_type", lambda p: "ext4")
    first = AnswerCache(path)  # written in WAL mode on a local disk ...
    put(first, "old", "kept")
    first.close()
    monkeypatch.setattr(cache_module, "mount_type", lambda p: "nfs4")
    cache = AnswerCache(path)  # ... then opened from a network home folder
    assert cache.journal_mode == "delete" and journal_of(path) == "delete"
    assert cache.get("old")["text"] == "kept"
    put(cache, "new")
    assert len(cache) == 2
    cache.close()
    assert not (tmp_path / "c.sqlite3-wal").exists()


def test_wal_refused_by_sqlite_falls_back_to_the_rollback_journal(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIM_CACHE_JOURNAL", raising=False)
    monkeypatch.setattr(cache_module, "mount_type", lambda p: "ext4")

    class Refusing(AnswerCache):
        # SQLite answers ``PRAGMA journal_mode=WAL`` with the mode it kept when it cannot
        # switch (or fails setting up the shared memory): both mean the rollback journal.
        def _execute_when_free(self, statement, wait=30.0):
            if statement == "PRAGMA journal_mode=WAL":
                raise sqlite3.OperationalError("disk I/O error")
            return super()._execute_when_free(statement, wait)

    cache = Refusing(tmp_path / "c.sqlite3")
    put(cache, "k")
    assert cache.journal_mode == "delete" and journal_of(tmp_path / "c.sqlite3") == "delete"
    cache.close()


def test_several_processes_share_a_rollback_journal_cache(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys
        from slim_leakage.judge.cache import AnswerCache
        cache = AnswerCache(sys.argv[1])
        assert cache.journal_mode == "delete", cache.journal_mode
        for i in range(40):
            key = f"{os.getpid()}-{i}"
            cache.put(key, backend="b", model="m", stage="s", version="v1", text="t")
            assert cache.get(key)["text"] == "t"
        print("ok")
        """
    )
    import os

    env = {**os.environ, "SLIM_CACHE_JOURNAL": "delete", "PYTHONPATH": os.pathsep.join(sys.path)}
    path = tmp_path / "cache.sqlite3"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err[-1500:]
    assert len(AnswerCache(path)) == 120
