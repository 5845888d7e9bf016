"""``python -m harness.relay.clients DRIVER PLAN.json``: run the plan's cases through one client
library, side by side in one process, one JSON line per event on stdout (see ``base.Recorder``).

One process per library keeps its imports, threads, logging and event-loop habits out of the
harness's process, and its import time (LiveKit's is seconds) is paid once for all its cases.
"""

from __future__ import annotations

import asyncio
import json
import sys

from harness.relay.clients import load_driver
from harness.relay.clients.base import Case, Recorder, read_audio


async def run_case(driver, case: Case) -> None:  # noqa: ANN001 - any Driver
    rec = Recorder(case.case_id, sys.stdout, secret=case.api_key)
    try:
        read_audio(case.wav, 0.1)  # a bad fixture is the harness's fault, not the library's
    except (OSError, ValueError) as exc:
        rec.end("driver_error", f"the case's audio {case.wav}: {exc}")
        return
    try:
        await asyncio.wait_for(driver.run(case, rec), case.timeout_s)
    except TimeoutError:
        rec.end("timeout", f"the driver's deadline of {case.timeout_s:g} s passed")
    except Exception as exc:  # noqa: BLE001 - the batch goes on; the harness sees what broke
        rec.end("driver_error", f"{type(exc).__name__}: {exc}")


async def main(name: str, plan_path: str) -> int:
    driver = load_driver(name)
    with open(plan_path, encoding="utf-8") as f:
        cases = [Case.from_dict(c) for c in json.load(f)]
    await asyncio.gather(*(run_case(driver, c) for c in cases))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m harness.relay.clients DRIVER PLAN.json")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
