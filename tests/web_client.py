"""An aiohttp test client on the inbox's own app (real HTTP over loopback), for tests that
drive the web pages and the API without a browser."""
import asyncio

from aiohttp.test_utils import TestClient, TestServer


def run(box, scenario):
    """scenario(client) run against box.app(); returns what it returns."""
    async def main():
        async with TestClient(TestServer(box.app())) as client:
            return await scenario(client)
    return asyncio.run(main())
