"""The FastAGI header reader over real sockets: mutated AGI headers (the snippet's own header,
cut, flipped, spliced with hostile tokens), one connection each, never put an exception into
the server's connection loop, and the next real AGI session is still served."""
from __future__ import annotations

import asyncio
import random

from pbx_textback.core.pbx import dialplan_vars as dv
from tests.fuzz.targets import mutate
from tests.integration.test_fastagi import (H, T0, Clock, Pbx, add_call, agi_header, agi_vars,  # noqa: F401
                                            asterisk_agi, features, run, store)


def test_mutated_agi_headers_never_reach_the_connection_loop(store):   # noqa: F811
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()
    loop_errors: list[dict] = []

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: loop_errors.append(ctx))
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        seeds = [agi_header(dv.FEATURE_CALLBACK, port), agi_header(dv.FEATURE_TEXTAGAIN, port)]
        rng = random.Random(20261129)
        for _ in range(80):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(mutate(rng, seeds))
            await w.drain()
            w.write_eof()                                 # then hang up, as a dying channel does
            await asyncio.wait_for(r.read(), 5)
            w.close()
        add_call("c-2", "+13105550102", T0 + 0.5 * H)
        cmds = await asyncio.wait_for(asterisk_agi(port, dv.FEATURE_CALLBACK, endpoint="101"), 5)
        await fc.drain()
        await fc.stop()
        return cmds

    cmds = run(go())
    assert loop_errors == []
    assert agi_vars(cmds)[dv.VAR_RESULT] == dv.RESULT_CALLING        # c-2 (or c-1): still served
