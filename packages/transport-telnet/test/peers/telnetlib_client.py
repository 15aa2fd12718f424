"""Python's stdlib telnetlib as a client of labwire's TelnetServer: argv = port. Reads the banner
and prompt, sends two commands, prints one JSON line with what it read (Latin-1 text)."""
import json
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import telnetlib

port = int(sys.argv[1])
seen = []


def option_callback(sock, cmd, opt):
    # Record what the server negotiates; answer like telnetlib's default (refuse everything).
    seen.append([cmd[0], opt[0]] if opt else [cmd[0]])
    if cmd in (telnetlib.DO, telnetlib.DONT):
        sock.sendall(telnetlib.IAC + telnetlib.WONT + opt)
    elif cmd in (telnetlib.WILL, telnetlib.WONT):
        sock.sendall(telnetlib.IAC + telnetlib.DONT + opt)


tn = telnetlib.Telnet()
tn.set_option_negotiation_callback(option_callback)
tn.open("127.0.0.1", port, timeout=5)
out = {}
out["banner"] = tn.read_until(b"> ", timeout=5).decode("latin-1")
tn.write(b"*idn?\r\n")
out["idn"] = tn.read_until(b"> ", timeout=5).decode("latin-1")
tn.write(b"bin \xff\xfe\r\n")  # 0xFF doubled by telnetlib's write
out["bin"] = tn.read_until(b"> ", timeout=5).decode("latin-1")
out["negotiation"] = seen
tn.close()
print(json.dumps(out), flush=True)
