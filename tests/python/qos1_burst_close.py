# A burst of QoS 1 PUBLISHes written through moat immediately followed by DISCONNECT and a
# half-close: every message must reach a subscriber on the broker. Prints "received N".
# Usage: qos1_burst_close.py BROKER_PORT PROXY_PORT CA [N]
import socket, ssl, sys, time
bport, pport, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rl(n):
    out = b""
    while True:
        b = n % 128; n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def s(x): return len(x).to_bytes(2, "big") + x
def connect(cid): v = s(b"MQTT") + b"\x04\x02\x02\x58" + s(cid); return b"\x10" + rl(len(v)) + v
def recv_exact(sock, n):
    b = b""
    while len(b) < n:
        c = sock.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
sub = socket.create_connection(("127.0.0.1", bport)); sub.sendall(connect(b"repro-sub")); recv_exact(sub, 4)
topic = b"repro/t"
v = b"\x00\x01" + s(topic) + b"\x00"; sub.sendall(b"\x82" + rl(len(v)) + v); recv_exact(sub, 5)
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", pport))
pub = ctx.wrap_socket(raw, server_hostname="localhost")
pub.sendall(connect(b"repro-pub")); recv_exact(pub, 4)
N = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
buf = b""
for i in range(N):
    import os
    if os.environ.get("QOS") == "0":
        body = s(topic) + b"x" * 64; buf += b"\x30" + rl(len(body)) + body
    else:
        body = s(topic) + ((i % 65535) + 1).to_bytes(2, "big") + b"x" * 64
        buf += b"\x32" + rl(len(body)) + body
pub.sendall(buf + (b"" if os.environ.get("NODISC") else b"\xe0\x00"))   # PUBLISHes immediately followed by DISCONNECT
if not os.environ.get("KEEP"): socket.socket.shutdown(pub, socket.SHUT_WR)     # half-close, keep reading PUBACKs (no RST)
acks = 0; pub.settimeout(3.0)
try:
    while True:
        c = pub.recv(65536)
        if not c: break
        acks += len(c) // 4
except Exception as e:
    pass
sub.settimeout(2.0); got = 0; data = b""
try:
    while True:
        c = sub.recv(65536)
        if not c: break
        data += c
except socket.timeout:
    pass
i = 0
while i < len(data):
    h = data[i]; j = i + 1; n = 0; m = 1
    while True:
        b = data[j]; n += (b & 127) * m; m *= 128; j += 1
        if b < 128: break
    if h & 0xF0 == 0x30: got += 1
    i = j + n
print(f"received {got}")
