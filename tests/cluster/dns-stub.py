"""The test cluster's DNS: answers every query at once with "no such name".

Pods have no route off the machine, so the machine's resolver is out of their
reach, and a lookup of a name outside the cluster (Codex looks up its
telemetry, plugin and login hosts on every run) would wait out the C
library's timeout, five seconds a try. A cluster's DNS answers at once; so
does this one, for every name, without anything leaving the machine.

Usage: python3 dns-stub.py ADDRESS [PORT]
"""

import socket
import struct
import sys

IP_FREEBIND = 15  # Linux: bind before the pod bridge (and its address) exists.
NXDOMAIN = 3


def answer(query: bytes) -> bytes | None:
    """The NXDOMAIN reply to a query, or None for what is not a query."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack(">HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    # The question: labels up to the root, then type and class.
    end = 12
    while end < len(query) and query[end] != 0:
        end += 1 + query[end]
    end += 5
    if end > len(query):
        return None
    opcode_rd = flags & 0x7900
    reply_flags = 0x8000 | opcode_rd | 0x0080 | NXDOMAIN
    return struct.pack(">HHHHHH", ident, reply_flags, 1, 0, 0, 0) + query[12:end]


def main() -> None:
    address = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 53
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((address, port))
    print(f"dns-stub: answering NXDOMAIN on {address}:{port}", flush=True)
    while True:
        query, peer = sock.recvfrom(4096)
        reply = answer(query)
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
