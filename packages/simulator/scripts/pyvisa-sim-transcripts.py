#!/usr/bin/env python3
"""Regenerate the reference transcripts in test/fixtures/transcripts from pyvisa-sim itself.

pyvisa-sim and stringparser are not part of labwire: put their sources on PYTHONPATH, e.g.

    git clone https://github.com/pyvisa/pyvisa-sim /tmp/pyvisa-sim && git -C /tmp/pyvisa-sim checkout 0.5.1
    curl -o /tmp/pvsim/stringparser.py https://raw.githubusercontent.com/hgrecco/stringparser/master/stringparser.py
    PYVISA_SIM_VERSION=0.5.1 PYTHONPATH=/tmp/pyvisa-sim:/tmp/pvsim \
        /usr/bin/python3 packages/simulator/scripts/pyvisa-sim-transcripts.py

(Debian's python3-pyvisa provides pyvisa.) Every scenario of test/fixtures/scenarios.json is
played against pyvisa-sim's Device in process: each message is written with the query
terminator of the scenario's resource, then every byte the device produced is read back.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures")


def latin1(data: bytes) -> str:
    return data.decode("latin-1")


def drain(device) -> bytes:
    out = bytearray()
    while True:
        got = device.read()
        if isinstance(got, tuple):
            got = got[0]
        if not got:
            return bytes(out)
        out.extend(got)


def find_device(devices, resource):
    from pyvisa.rname import to_canonical_name

    wanted = to_canonical_name(resource)
    for name in devices.list_resources():
        if name == resource or to_canonical_name(name) == wanted:
            return devices[name]
    raise KeyError(resource)


def main() -> int:
    try:
        import pyvisa_sim
        from pyvisa_sim.parser import get_devices
    except ImportError as e:
        print("pyvisa-sim is not importable (%s); see this script's docstring" % e, file=sys.stderr)
        return 2
    # pyvisa-sim 0.5 has no __version__: name the checked-out release in PYVISA_SIM_VERSION.
    version = os.environ.get("PYVISA_SIM_VERSION") or getattr(pyvisa_sim, "__version__", "unknown")
    with open(os.path.join(FIXTURES, "scenarios.json"), encoding="utf-8") as fp:
        scenarios = json.load(fp)
    # PYVISA_SIM_COMPAT=0.7 writes to transcripts-0.7/ (later releases differ in a few places).
    compat = os.environ.get("PYVISA_SIM_COMPAT", "0.5")
    out_dir = os.path.join(FIXTURES, "transcripts" if compat == "0.5" else "transcripts-" + compat)
    os.makedirs(out_dir, exist_ok=True)
    for scenario in scenarios:
        devices = get_devices(os.path.join(FIXTURES, scenario["file"]), False)
        device = find_device(devices, scenario["resource"])
        query_eom = device._query_eom
        steps = []
        for message in scenario["messages"]:
            step = {"send": message}
            try:
                for byte in message.encode("utf-8") + query_eom:
                    device.write(bytes([byte]))
            except Exception as e:  # pyvisa-sim raised: the rest of that message is dropped
                step["error"] = type(e).__name__
                device._input_buffer = bytearray()
            step["reply"] = latin1(drain(device))
            steps.append(step)
        out = {
            "generator": "scripts/pyvisa-sim-transcripts.py",
            "pyvisaSim": version,
            "file": scenario["file"],
            "resource": scenario["resource"],
            "eom": scenario["eom"],
            "queryTerminator": latin1(query_eom),
            "responseTerminator": latin1(device._response_eom),
            "steps": steps,
        }
        out["compat"] = compat
        path = os.path.join(out_dir, scenario["name"] + ".json")
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(out, fp, indent=1, ensure_ascii=True)
            fp.write("\n")
        print("wrote", os.path.relpath(path), len(steps), "steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
