"""A typed LearnFlow client: `pip install learnflow` (no server extras) gives `learnflow.v1`.

python examples/typed_client.py 127.0.0.1:50051 student@learnflow.dev learn-demo-pass
"""

import asyncio
import sys

import grpc

from learnflow.v1 import identity_pb2, identity_pb2_grpc


async def main(target: str, email: str, password: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        session = await identity.CreateSession(
            identity_pb2.CreateSessionRequest(email=email, password=password)
        )
        # The session's consistency token makes the read wait (bounded) until the read models
        # include everything written up to this login: never an older profile.
        auth = (
            ("authorization", f"Bearer {session.access_token}"),
            ("x-consistency-token", session.consistency_token),
        )
        profiles = identity_pb2_grpc.ProfileServiceStub(channel)
        me = await profiles.GetCurrentUser(identity_pb2.GetCurrentUserRequest(), metadata=auth)
        print(me.user.display_name, me.user.email)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
