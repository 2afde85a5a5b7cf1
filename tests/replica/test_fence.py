"""The write fence: WAL positions of recent writes, in-process or shared through Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from keel.platform.replica import WriteFence, parse_lsn
from tests.servers import free_port


def test_lsn_parses_to_an_integer_that_orders_like_the_lsn() -> None:
    assert parse_lsn("0/16B3748") == 0x16B3748
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")


async def test_in_process_fence_keeps_the_newest_position_per_user_and_overall() -> None:
    fence = WriteFence(None)
    user = uuid.uuid4()
    assert await fence.user_lsn(user) == 0
    await fence.record(user_id=user, lsn=50)
    await fence.record(user_id=None, lsn=70)
    await fence.record(user_id=user, lsn=40)  # an older commit reported late
    assert await fence.user_lsn(user) == 50
    assert await fence.newest() == 70


async def test_an_unreachable_redis_reads_as_unknown_never_as_fresh() -> None:
    redis = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    fence = WriteFence(redis)
    try:
        await fence.record(user_id=uuid.uuid4(), lsn=10)  # logged, not raised
        assert await fence.user_lsn(uuid.uuid4()) is None
        assert await fence.newest() is None
    finally:
        await redis.aclose()
