"""Hand-made Ethernet frames for the red-team suite (root in a lab namespace).

  frames.py arp IFACE DST_MAC OP SENDER_MAC SENDER_IP TARGET_MAC TARGET_IP [SRC_MAC]
      one ARP frame (OP: request or reply) from SENDER_MAC's point of view; the frame's
      source MAC is SENDER_MAC unless SRC_MAC is given
  frames.py ping IFACE SRC_MAC DST_MAC SRC_IP DST_IP TAGS
      one ICMP echo request, wrapped in the VLAN tags TAGS ("-" none; "8100:20" or
      "88a8:30,8100:20" outermost first); prints "reply" when an echo reply with its id
      comes back untagged within 2 s, else "none"

Only the standard library: AF_PACKET raw sockets.
"""

import os
import socket
import struct
import sys
import time


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def ip(text):
    return socket.inet_aton(text)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def raw(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    return s


def arp(iface, dst, op, sha, spa, tha, tpa, src=None):
    code = {"request": 1, "reply": 2}[op]
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, code) + mac(sha) + ip(spa) + mac(tha) + ip(tpa)
    frame = mac(dst) + mac(src or sha) + struct.pack("!H", 0x0806) + body
    raw(iface).send(frame.ljust(60, b"\0"))


def ping(iface, src_mac, dst_mac, src_ip, dst_ip, tags):
    ident = os.getpid() & 0xFFFF
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"portcullis-redteam"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0, 64, 1, 0, ip(src_ip), ip(dst_ip))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    vlan = b""
    for tag in [] if tags == "-" else tags.split(","):
        tpid, vid = tag.split(":")
        vlan += struct.pack("!HH", int(tpid, 16), int(vid))
    frame = mac(dst_mac) + mac(src_mac) + vlan + struct.pack("!H", 0x0800) + header + icmp
    s = raw(iface)
    s.settimeout(0.2)
    s.send(frame)
    until = time.time() + 2
    while time.time() < until:
        try:
            got = s.recv(2048)
        except socket.timeout:
            continue
        if got[12:14] != b"\x08\x00" or got[23] != 1:
            continue
        ihl = (got[14] & 0x0F) * 4
        kind, _, _, rid = struct.unpack("!BBHH", got[14 + ihl : 14 + ihl + 6])
        if kind == 0 and rid == ident:
            print("reply")
            return
    print("none")


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    {"arp": arp, "ping": ping}[what](*args)
