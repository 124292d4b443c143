"""DNS abuse from a lab guest, for test/redteam/surfaces.test.ts. Prints one JSON line.

  flood SERVER SECONDS            random names over UDP as fast as one process can
  measure SERVER SECONDS RATE     sequential look-ups (half a cached name, half random), latency per query
  slowreader SERVER SECONDS       TCP: queries written without ever reading an answer
  trickle SERVER SECONDS          TCP: one byte of a query every 0.5 s
  tcpconns SERVER COUNT           TCP: how many connections the server keeps open at once
"""
import json, os, random, select, socket, struct, sys, time


def query(name, qid=None):
    qid = random.getrandbits(16) if qid is None else qid
    head = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    qname = b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0'
    return head + qname + struct.pack('>HH', 1, 1)


def rand_name(zone):
    return os.urandom(6).hex() + '.' + zone


def flood(server, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    end = time.time() + seconds
    sent = answered = 0
    while time.time() < end:
        for _ in range(64):
            try:
                s.sendto(query(rand_name('flood.test')), (server, 53))
                sent += 1
            except BlockingIOError:
                break
        try:
            while True:
                s.recv(4096)
                answered += 1
        except BlockingIOError:
            pass
    print(json.dumps({'sent': sent, 'answered': answered, 'seconds': seconds}))


def measure(server, seconds, rate):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lat = []
    cached = []
    timeouts = 0
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        name = 'example.test' if i % 2 == 0 else rand_name('measure.test')
        qid = i & 0xFFFF
        t0 = time.perf_counter()
        s.sendto(query(name, qid), (server, 53))
        got = False
        while True:
            left = 2.0 - (time.perf_counter() - t0)
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            msg = s.recv(4096)
            if struct.unpack('>H', msg[:2])[0] == qid:
                got = True
                break
        ms = (time.perf_counter() - t0) * 1000
        if not got:
            timeouts += 1
            ms = 2000.0
        lat.append(ms)
        if i % 2 == 0:
            cached.append(ms)
        i += 1
        time.sleep(max(0, 1 / rate - ms / 1000))
    lat.sort()
    cached.sort()
    pick = lambda xs, p: round(xs[min(len(xs) - 1, int(len(xs) * p))], 2)
    print(json.dumps({'n': len(lat), 'timeouts': timeouts, 'p50': pick(lat, 0.5), 'p99': pick(lat, 0.99),
                      'max': round(lat[-1], 2), 'cachedP99': pick(cached, 0.99)}))


def slowreader(server, seconds):
    c = socket.create_connection((server, 53))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.setblocking(False)
    q = query('example.test')
    frame = struct.pack('>H', len(q)) + q
    chunk = frame * 1000
    written = 0
    closed = False
    end = time.time() + seconds
    while time.time() < end:
        try:
            written += c.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    print(json.dumps({'queriesWritten': written // len(frame), 'closed': closed, 'seconds': seconds}))


def trickle(server, seconds):
    c = socket.create_connection((server, 53))
    q = query('example.test')
    frame = struct.pack('>H', len(q)) + q
    t0 = time.time()
    i = 0
    closed_after = None
    while time.time() - t0 < seconds:
        try:
            c.send(frame[i % (len(frame) - 1):i % (len(frame) - 1) + 1])
            i += 1
            r, _, _ = select.select([c], [], [], 0.5)
            if r and c.recv(1) == b'':
                closed_after = time.time() - t0
                break
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.time() - t0
            break
    print(json.dumps({'closedAfter': closed_after, 'bytes': i}))


def tcpconns(server, count):
    conns = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection((server, 53), timeout=2))
        except OSError:
            pass
    time.sleep(0.5)
    alive = 0
    q = query('example.test')
    for c in conns:
        try:
            c.settimeout(2)
            c.sendall(struct.pack('>H', len(q)) + q)
            if len(c.recv(2)) == 2:
                alive += 1
        except OSError:
            pass
    print(json.dumps({'opened': len(conns), 'answering': alive}))


cmd, server = sys.argv[1], sys.argv[2]
arg = float(sys.argv[3]) if len(sys.argv) > 3 else 5
if cmd == 'flood':
    flood(server, arg)
elif cmd == 'measure':
    measure(server, arg, float(sys.argv[4]) if len(sys.argv) > 4 else 50)
elif cmd == 'slowreader':
    slowreader(server, arg)
elif cmd == 'trickle':
    trickle(server, arg)
elif cmd == 'tcpconns':
    tcpconns(server, int(arg))
