"""The least a server can do at a given latency: read the request, sleep, answer a RequestId.

Run by bench/run_bench.py as a baseline for the simulator: python bench/_min_server.py PORT LATENCY
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


def main() -> None:
    port, latency = int(sys.argv[1]), float(sys.argv[2])

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(latency)
        return web.Response(body=b'{"RequestId":"MIN-1"}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
