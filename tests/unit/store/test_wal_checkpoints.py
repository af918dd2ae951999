"""The write-ahead log is copied back beside the bot's writes, not inside a commit."""

from __future__ import annotations

import time

from bot.store.database import Storage
from bot.store.wal_checkpoints import SAFETY_PAGES, WalCheckpointer
from tests.imagine_helpers import eventually


async def test_commits_leave_the_copy_to_the_checkpointer(tmp_path) -> None:
    path = tmp_path / "seedream.db"
    storage = await Storage.open(path)
    try:
        rows = await storage.fetchall("PRAGMA wal_autocheckpoint")
        assert rows[0][0] == SAFETY_PAGES  # a commit copies the log only far past SQLite's 1,000 pages
        checkpointer = storage._backend.checkpointer
        await checkpointer.stop()  # hold the copies back: the writes below must not copy anything themselves
        size = path.stat().st_size
        for n in range(400):
            await storage.set_meta(f"filler:{n}", "x" * 3000)  # ~1,500 pages of log: past SQLite's own line
        assert path.stat().st_size == size and (tmp_path / "seedream.db-wal").stat().st_size > 4_000_000

        checkpointer.start()
        await eventually(lambda: checkpointer.checkpoints > 0, timeout=5)
        assert path.stat().st_size > size + 1_000_000  # the pages are in the database file now
    finally:
        await storage.close()


async def test_stopping_waits_for_a_checkpoint_under_way_before_closing_its_connection(tmp_path, monkeypatch) -> None:
    """Closing a connection while a worker thread still checkpoints on it crashed the process (a segfault)."""
    storage = await Storage.open(tmp_path / "seedream.db")
    checkpointer = storage._backend.checkpointer
    await checkpointer.stop()
    events: list[str] = []
    real = WalCheckpointer._checkpoint

    def slow_checkpoint(self) -> None:
        events.append("started")
        time.sleep(0.3)
        real(self)
        events.append("finished")

    monkeypatch.setattr(WalCheckpointer, "_checkpoint", slow_checkpoint)
    checkpointer._interval = 0.01
    checkpointer.start()
    await eventually(lambda: events == ["started"], timeout=5)
    await storage.close()
    events.append("closed")
    assert events == ["started", "finished", "closed"]
