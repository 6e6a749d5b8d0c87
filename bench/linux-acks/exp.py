# Linux ACK behaviour for podnet's programs' patterns (bench/linux-acks/run.sh runs it in two namespaces).
import socket, sys, time, os
mode, role = sys.argv[1], sys.argv[2]
ADDR = ('10.99.0.2', 8080)
def recv_until(s, n):
    got = b''
    while len(got) < n:
        d = s.recv(65536)
        if not d: break
        got += d
    return got
if role == 'server':
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(ADDR); l.listen(16)
    c, _ = l.accept()
    if mode == 'http' or mode == 'http2' or mode.startswith('httpdelay'):
        reqs = 2 if mode == 'http2' else 1
        for i in range(reqs):
            recv_until(c, 80)
            if mode.startswith('httpdelay'): time.sleep(0.1)
            c.sendall(b'x' * 200)
        while c.recv(65536): pass
        if mode == 'httpdelayclose': time.sleep(0.1)
        c.close()
    elif mode.startswith('echo'):
        n = int(mode[4:])
        got = 0
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
        c.close()
    elif mode.startswith('upload'):
        while c.recv(65536): pass
        c.close()
    elif mode == 'connect':
        while c.recv(65536): pass
        c.close()
else:
    s = socket.socket(); s.connect(ADDR)
    if mode in ('http', 'http2') or mode.startswith('httpdelay'):
        reqs = 2 if mode == 'http2' else 1
        for i in range(reqs):
            s.sendall(b'r' * 80); recv_until(s, 200)
        s.close()
    elif mode.startswith('echo'):
        n = int(mode[4:])
        s.sendall(b'e' * n); recv_until(s, n); s.close()
    elif mode.startswith('upload'):
        n = int(mode[6:])
        s.sendall(b'u' * n); s.shutdown(socket.SHUT_WR)
        while s.recv(65536): pass
        s.close()
    elif mode == 'connect':
        s.close()
