#!/bin/sh
# busybox udhcpc event script for lab guests: configure the lease on the interface,
# the default route and the resolver. Runs inside the guest's namespace, where
# /etc/resolv.conf is the guest's own (ip netns exec binds /etc/netns/NAME/).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
