"""`learnflow serve --workers 2`: two processes on one port, both answering, one projector
leading among every process on the database (issue 13)."""

from __future__ import annotations

import asyncio

import grpc

from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.server_process import children_of, server_process
from tests.support import Caller


async def test_two_workers_share_the_port_and_read_their_writes(settings: Settings) -> None:
    async with server_process(settings, "--workers", "2") as server:
        assert len(children_of(server.pid)) >= 2  # the workers (and spawn's helper, if any)
        # Separate connections: the kernel spreads connections over the workers.
        channels = [
            grpc.aio.insecure_channel(
                server.target, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(6)
        ]
        try:
            for i, channel in enumerate(channels):
                who = await Caller.register(channel, name=f"Worker reader {i}")
                # Read-your-writes on whichever worker answers, every time.
                read = channels[(i + 1) % len(channels)]
                me = await identity_pb2_grpc.ProfileServiceStub(read).GetCurrentUser(
                    identity_pb2.GetCurrentUserRequest(),
                    metadata=who.metadata(who.consistency_token),
                    timeout=10,
                )
                assert me.user.display_name == f"Worker reader {i}"
        finally:
            await asyncio.gather(*(channel.close(None) for channel in channels))
