"""A real MCP client (the official Python SDK) for Hakiri's end-to-end tests.

    mcp_python_client.py http  URL TOKEN CALLS_JSON
    mcp_python_client.py stdio BIN TOKEN CALLS_JSON

Connects (streamable HTTP with `Authorization: Bearer TOKEN`, or `BIN mcp
--token TOKEN` over stdio; an empty TOKEN sends none), lists tools, makes each
call in CALLS_JSON (`[["tool", {args}], ...]`) and prints one JSON object:
{"tools": [...], "calls": [{"is_error": bool, "structured": ..., "text": [...]}]}.
A refused connection prints {"refused": "<error>"} and exits 3.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


async def run_session(streams, calls):
    read, write = streams[0], streams[1]
    async with ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        out = {"tools": sorted(t.name for t in listed.tools), "calls": []}
        for name, args in calls:
            # As on the wire (camelCase), whatever the SDK's attribute names.
            result = (await session.call_tool(name, args)).model_dump(by_alias=True)
            out["calls"].append(
                {
                    "is_error": bool(result.get("isError")),
                    "structured": result.get("structuredContent"),
                    "text": [c["text"] for c in result.get("content") or [] if "text" in c],
                }
            )
        return out


async def main(mode, target, token, calls):
    if mode == "http":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(target, http_client=http) as streams:
                return await run_session(streams, calls)
    # The token travels in the environment, never in argv (visible in ps).
    env = dict(os.environ)
    if token:
        env["HAKIRI_TOKEN"] = token
    args = ["mcp"] if token else ["mcp", "--trust-local"]
    params = StdioServerParameters(command=target, args=args, env=env)
    async with stdio_client(params) as streams:
        return await run_session(streams, calls)


if __name__ == "__main__":
    mode, target, token, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    try:
        print(json.dumps(asyncio.run(main(mode, target, token, calls))))
    except BaseException as e:  # the SDK wraps transport errors in exception groups
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        print(json.dumps({"refused": repr(e)}))
        sys.exit(3)
