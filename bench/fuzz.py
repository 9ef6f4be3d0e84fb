"""The JSON fuzz of tests/security/test_json_fuzz.py at scale: 100,000 cases by default.

Starts the server of the fuzz test (``tests/security/fuzz_support.py``: ``bi serve``'s app with a local
agent, on a loopback port) and runs random (not derandomised) cases over every JSON route and
websocket message type, nine HTTP cases for each websocket case. Prints cases per second for each
part and, for any failure, the case Hypothesis shrank it to; the exit status is 1 on a failure.

    python bench/fuzz.py [--cases 100000] [--seed N]     (as root: the agent sandboxes kernels)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.security.fuzz_support import (
    LiveServer,
    Tally,
    http_case,
    make_fixtures,
    routes,
    ws_case,
)


def run(name: str, cases: int, case: Callable[[st.DataObject], None], tally: Tally, chosen_seed: int) -> bool:
    @seed(chosen_seed)
    @settings(max_examples=cases, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(st.data())
    def one(data: st.DataObject) -> None:
        case(data)

    started = time.perf_counter()
    try:
        one()
        failed = False
    except Exception:  # noqa: BLE001 - any failure is reported, then the other part runs
        traceback.print_exc()
        failed = True
    seconds = time.perf_counter() - started
    print(f"{name}: {tally.cases} cases in {seconds:.1f} s, {tally.cases / seconds:.0f} cases/s, "
          f"{tally.valid / max(tally.cases, 1):.0%} valid, {'FAILED' if failed else 'no failure'}", flush=True)
    return not failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        server = LiveServer(Path(data_dir))
        try:
            fixtures = make_fixtures(server)
            assert fixtures.sockets is not None
            all_routes, http_tally, ws_tally = routes(fixtures), Tally(), Tally()
            ok = run("http", args.cases * 9 // 10,
                     lambda data: http_case(server, fixtures, all_routes, http_tally, data), http_tally, args.seed)
            ok = run("websockets", args.cases // 10,
                     lambda data: ws_case(server, fixtures.sockets, ws_tally, data), ws_tally, args.seed) and ok
        finally:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
