"""The real RPyC peer for labwire's registry interop tests (run with /usr/bin/python3).

  rpyc_peer.py server udp|tcp PRUNE_SECONDS   RPyC's own UDP/TCPRegistryServer on 127.0.0.1, port 0;
                                              prints the port, then serves until killed
  rpyc_peer.py client udp|tcp PORT JSON       runs RPyC's UDP/TCPRegistryClient(ip='127.0.0.1') actions,
                                              prints a JSON list of their results
  rpyc_peer.py service udp|tcp PORT           an RPyC ThreadedServer (SlaveService: name SLAVE)         
                                              on 127.0.0.1 port 0 with auto_register to the registry
                                              at 127.0.0.1:PORT; prints its port; SIGINT stops it
                                              (and it unregisters)
  rpyc_peer.py brine JSON                     brine.dump of each tagged-JSON value, as hex
  rpyc_peer.py load HEX...                    brine.load of each hex payload, as tagged JSON

Loopback and explicit addresses only: never a broadcast.
"""
import json
import sys

from rpyc.core import brine
from rpyc.utils.registry import (TCPRegistryClient, TCPRegistryServer,
                                 UDPRegistryClient, UDPRegistryServer)


def from_json(v):
    if isinstance(v, list):
        return tuple(from_json(x) for x in v)
    if isinstance(v, dict):
        if "b" in v:
            return bytes.fromhex(v["b"])
        if "f" in v:
            return float(v["f"])
        if "i" in v:
            return int(v["i"])
    return v


def to_json(v):
    if isinstance(v, (tuple, list, frozenset)):
        return [to_json(x) for x in v]
    if isinstance(v, bytes):
        return {"b": v.hex()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        return {"f": repr(v)}
    if isinstance(v, int):
        return {"i": str(v)}
    return repr(v)


def main():
    cmd = sys.argv[1]
    if cmd == "server":
        mode, prune = sys.argv[2], float(sys.argv[3])
        cls = UDPRegistryServer if mode == "udp" else TCPRegistryServer
        server = cls(host="127.0.0.1", port=0, pruning_timeout=prune, allow_listing=True)
        print(server.port, flush=True)
        server.start()
    elif cmd == "client":
        mode, port, actions = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
        if mode == "udp":
            client = UDPRegistryClient(ip="127.0.0.1", port=port, timeout=2)
        else:
            client = TCPRegistryClient("127.0.0.1", port=port, timeout=2)
        out = []
        for action in actions:
            name, args = action[0], action[1:]
            if name == "register":
                out.append(client.register(tuple(args[0]), args[1]))
            elif name == "unregister":
                out.append(client.unregister(args[0]))
            elif name == "discover":
                out.append([list(x) for x in client.discover(args[0])])
            elif name == "list":
                r = client.list()
                out.append(None if r is None else list(r))
        print(json.dumps(out), flush=True)
    elif cmd == "service":
        import logging
        from rpyc.core.service import SlaveService
        from rpyc.utils.server import ThreadedServer
        logging.basicConfig(level=logging.ERROR)
        mode, port = sys.argv[2], int(sys.argv[3])
        if mode == "udp":
            registrar = UDPRegistryClient(ip="127.0.0.1", port=port, timeout=2)
        else:
            registrar = TCPRegistryClient("127.0.0.1", port=port, timeout=2)
        server = ThreadedServer(SlaveService, hostname="127.0.0.1", port=0,
                                registrar=registrar, auto_register=True)
        print(server.port, flush=True)
        server.start()
    elif cmd == "brine":
        values = json.loads(sys.argv[2])
        print(json.dumps([brine.dump(from_json(v)).hex() for v in values]))
    elif cmd == "load":
        print(json.dumps([to_json(brine.load(bytes.fromhex(h))) for h in sys.argv[2:]]))


main()
