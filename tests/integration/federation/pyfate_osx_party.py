"""One party of the pyfate "osx" federation test; runs in FATE 2.2's own environment, not ours.

Usage: python pyfate_osx_party.py ROLE PARTY_ID PEER_ROLE PEER_PARTY_ID FEDERATION_ID ADDRESS DATA_DIR

Builds pyfate's standalone computing session and its own ``OSXFederation`` pointed at our gateway's
PTP endpoint (ADDRESS: ``127.0.0.1:PORT``, or ``unix:/dir/name:PORT``), exactly as a FATE task with ``federation: {type: osx}`` would, then:
the guest sends an object, a large object (split by pyfate into a table) and a multi-partition
table to the host, which checks them and sends its own back. Prints one JSON line and exits 0 on
success; any mismatch or federation error exits non-zero with the traceback.
"""

from __future__ import annotations

import json
import sys
import time


def expected_object(sender: str) -> dict[str, object]:
    """The small object ``sender`` sends."""
    return {"from": sender, "weights": [0.5, -1.25, 3.0], "nested": {"n": 42, "s": "é ünïcode"}}


def expected_blob(sender: str) -> bytes:
    """A 3 MB object: larger than pyfate's 1 MB message size, so it travels as a sliced table."""
    return (sender.encode() * 1024)[:1024] * 3072


def expected_rows(sender: str) -> list[tuple[int, str]]:
    """The table ``sender`` sends: a few hundred rows."""
    return [(i, f"{sender}-row-{i}-" + "x" * (i % 17)) for i in range(400)]


def main() -> int:
    """Run one side of the exchange."""
    role, party_id, peer_role, peer_id, federation_id, address, data_dir = sys.argv[1:8]
    # FATE's osx config is a host and an integer port, which pyfate joins as "host:port"; a unix
    # socket whose name ends in ":<port>" is reached the same way (unix:/dir/gw + ":" + 9390).
    host, _, port = address.rpartition(":")
    from fate.arch.computing.backends.standalone import CSession
    from fate.arch.context import Context
    from fate.arch.federation.backends.osx import OSXFederation

    start = time.monotonic()
    computing = CSession(
        session_id=f"{federation_id}_{role}_{party_id}", data_dir=data_dir, options={"task_cores": 2}
    )
    # pyfate's standalone computing forks its worker processes on first use, and gRPC breaks in a
    # process forked after the parent used it ("Socket operation on non-socket"). A FATE task
    # touches its input tables before it federates; do the same, so the workers exist first.
    warm = computing.parallelize([(i, i) for i in range(8)], include_key=True, partition=4)
    assert warm.mapValues(lambda v: v + 1).count() == 8
    me, peer = (role, party_id), (peer_role, peer_id)
    parties = [me, peer] if role == "guest" else [peer, me]
    federation = OSXFederation.from_conf(
        federation_session_id=federation_id,
        computing_session=computing,
        party=me,
        parties=parties,
        host=host,
        port=int(port),
    )
    ctx = Context(computing=computing, federation=federation)
    other = ctx.hosts[0] if role == "guest" else ctx.guest

    def send() -> None:
        other.put("obj", expected_object(role))
        other.put("blob", expected_blob(role))
        other.put("table", ctx.computing.parallelize(expected_rows(role), include_key=True, partition=4))

    def receive() -> None:
        obj = other.get("obj")
        assert obj == expected_object(peer_role), obj
        blob = other.get("blob")
        assert blob == expected_blob(peer_role), len(blob)
        table = other.get("table")
        assert table.num_partitions == 4, table.num_partitions
        assert sorted(table.collect()) == expected_rows(peer_role)

    # The guest sends first, the host answers: both directions, each waiting on the other.
    if role == "guest":
        send()
        receive()
    else:
        receive()
        send()
    ctx.destroy()  # pyfate's release of the federation session
    print(
        json.dumps({"party": f"{role}:{party_id}", "ok": True, "seconds": round(time.monotonic() - start, 2)})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
