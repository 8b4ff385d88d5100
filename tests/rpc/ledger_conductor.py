"""A conductor of the ledger in a process of its own, over RabbitMQ.

    python ledger_conductor.py RABBIT_URL STORE_URL EXCHANGE TOPIC

Serves TOPIC of EXCHANGE with a conductor on the store at STORE_URL (its
tables already made), prints ``ready`` once it takes calls, and runs until
its standard input closes (then stops cleanly and prints ``stopped``) or it
is killed, which is what tests/rpc/test_conductor_faults.py does to it.

Each reply leaves :data:`REPLY_DELAY` seconds after the call committed, as
over a slow network: a kill then often lands after a commit and before its
reply, the case where a retry would apply a call twice without the
conductor's request records.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_domain import LEDGER, open_ledger

from rollsafe.rpc import Conductor
from rollsafe.rpc.messaging import OsloMessagingTransport

#: Seconds between a call's commit and its reply.
REPLY_DELAY = 0.02


def main(rabbit_url: str, store_url: str, exchange: str, topic: str) -> None:
    """Serve until standard input closes."""
    store = open_ledger(store_url)
    transport = OsloMessagingTransport(rabbit_url, exchange=exchange)
    conductor = Conductor(transport, LEDGER, topic=topic, store=store, purge_interval=None)

    def handle_slowly(message: dict[str, Any]) -> Any:
        reply = conductor.handle(message)
        time.sleep(REPLY_DELAY)
        return reply

    server = transport.serve(topic, handle_slowly)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()
    transport.close()
    store.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
