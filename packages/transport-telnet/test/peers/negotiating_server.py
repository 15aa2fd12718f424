"""A negotiating Telnet server for labwire's client tests (Python stdlib only: socket + telnetlib's constants).

On connect it sends DO TTYPE, WILL ECHO, DO NAWS, SB TTYPE SEND SE and a login prompt, refuses BINARY,
asks for a login and password, shows a shell prompt, answers one command, and closes. It prints
one JSON line on stdout first ({"port": N}) and, at the end, one with every byte the client sent
(hex) so the test can assert them exactly.
"""
import json
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from telnetlib import BINARY, DO, DONT, ECHO, IAC, NAWS, SB, SE, TTYPE, WILL, WONT

USER, PASSWORD = b"lab", b"s3cret"
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
listener.settimeout(10)
conn, _ = listener.accept()
conn.settimeout(10)
received = bytearray()
data = bytearray()  # the client's data bytes (negotiation removed)


def pump():
    """Read one chunk; answer BINARY requests with refusals; collect data bytes."""
    chunk = conn.recv(4096)
    if not chunk:
        raise EOFError
    received.extend(chunk)
    i = 0
    while i < len(chunk):
        b = chunk[i:i + 1]
        if b == IAC and i + 1 < len(chunk):
            verb = chunk[i + 1:i + 2]
            if verb in (DO, DONT, WILL, WONT) and i + 2 < len(chunk):
                opt = chunk[i + 2:i + 3]
                if opt == BINARY and verb == WILL:
                    conn.sendall(IAC + DONT + BINARY)
                elif opt == BINARY and verb == DO:
                    conn.sendall(IAC + WONT + BINARY)
                i += 3
                continue
            if verb == SB:
                end = chunk.find(IAC + SE, i)
                i = end + 2
                continue
            if verb == IAC:
                data.extend(IAC)
            i += 2
            continue
        data.extend(b)
        i += 1


def read_line():
    while b"\n" not in data:
        pump()
    index = data.index(b"\n")
    line = bytes(data[:index + 1])
    del data[:index + 1]
    return line


try:
    conn.sendall(IAC + DO + TTYPE + IAC + WILL + ECHO + IAC + DO + NAWS + IAC + SB + TTYPE + b"\x01" + IAC + SE + b"Welcome to the bench PSU\r\nlogin: ")
    user = read_line()
    conn.sendall(user + b"Password: ")  # echo the name (we said WILL ECHO), not the password
    password = read_line()
    if mode == "reject" or user.strip() != USER or password.strip() != PASSWORD:
        conn.sendall(b"\r\nLogin incorrect\r\nlogin: ")
        try:
            read_line()
        except (EOFError, OSError):
            pass
    else:
        conn.sendall(b"\r\npsu> ")
        command = read_line()
        conn.sendall(command + b"LABWIRE,PSU-1,0,1.0\r\npsu> ")
        try:
            read_line()
        except (EOFError, OSError):
            pass
except (EOFError, OSError):
    pass
finally:
    print(json.dumps({"received": received.hex()}), flush=True)
    conn.close()
    listener.close()
