"""MemoryJtiStore: seen twice, expiry after retention, bounded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ssf import JtiStore, MemoryJtiStore
from tests.ssf.helpers import NOW

DAY = timedelta(days=1)


def test_is_a_jti_store() -> None:
    assert isinstance(MemoryJtiStore(), JtiStore)


def test_seen_twice() -> None:
    async def main() -> None:
        store = MemoryJtiStore()
        assert await store.seen_or_add("iss-a", "j1", now=NOW, retention=DAY) is False
        assert await store.seen_or_add("iss-a", "j1", now=NOW, retention=DAY) is True
        assert await store.seen_or_add("iss-a", "j1", now=NOW + DAY / 2, retention=DAY) is True
        # Another issuer's jti is another pair.
        assert await store.seen_or_add("iss-b", "j1", now=NOW, retention=DAY) is False

    asyncio.run(main())


def test_expires_after_retention() -> None:
    async def main() -> None:
        store = MemoryJtiStore()
        await store.seen_or_add("iss", "j1", now=NOW, retention=DAY)
        assert await store.seen_or_add("iss", "j1", now=NOW + DAY, retention=DAY) is False
        assert await store.seen_or_add("iss", "j1", now=NOW + DAY, retention=DAY) is True
        assert len(store) == 1

    asyncio.run(main())


def test_expired_entries_are_purged() -> None:
    async def main() -> None:
        store = MemoryJtiStore()
        for i in range(100):
            await store.seen_or_add("iss", f"j{i}", now=NOW, retention=timedelta(minutes=5))
        await store.seen_or_add("iss", "late", now=NOW + timedelta(minutes=6), retention=DAY)
        assert len(store) == 1

    asyncio.run(main())


def test_bounded() -> None:
    async def main() -> None:
        store = MemoryJtiStore(max_entries=10)
        for i in range(25):
            assert await store.seen_or_add("iss", f"j{i}", now=NOW, retention=DAY) is False
        assert len(store) == 10
        assert await store.seen_or_add("iss", "j24", now=NOW, retention=DAY) is True
        # The oldest were evicted to stay bounded.
        assert await store.seen_or_add("iss", "j0", now=NOW, retention=DAY) is False

    asyncio.run(main())


def test_concurrent_callers_see_one_first_delivery() -> None:
    async def main() -> list[bool]:
        store = MemoryJtiStore()
        return list(
            await asyncio.gather(
                *(store.seen_or_add("iss", "dup", now=NOW, retention=DAY) for _ in range(50))
            )
        )

    assert sorted(asyncio.run(main())) == [False] + [True] * 49
