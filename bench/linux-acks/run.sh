#!/bin/bash
# The Linux side of crates/podnet/tests/acks.rs: one exchange between two network namespaces
# joined by a veth, captured with tcpdump on the client's side, printed with sequence numbers,
# windows and options left out. Run as root; the namespaces are deleted afterwards.
#
#   bench/linux-acks/run.sh http        # connect, 80-byte request, 200-byte answer, close
#   modes: http http2 httpdelay httpdelayclose connect echo1000 echo10000 upload100000
set -eu
MODE=${1:?mode}
DIR=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp)
cleanup() { ip netns del ackc 2>/dev/null || true; ip netns del acks 2>/dev/null || true; rm -f "$OUT"; }
trap cleanup EXIT
cleanup
ip netns add ackc
ip netns add acks
ip link add ackv0 netns ackc type veth peer name ackv1 netns acks
ip -n ackc addr add 10.99.0.1/24 dev ackv0
ip -n acks addr add 10.99.0.2/24 dev ackv1
for ns in ackc acks; do ip -n $ns link set lo up; done
ip -n ackc link set ackv0 up
ip -n acks link set ackv1 up
sleep 0.1
ip netns exec ackc timeout 15 tcpdump -l -nn -i ackv0 -ttt tcp > "$OUT" 2>/dev/null &
TP=$!
sleep 0.5
ip netns exec acks timeout 10 python3 "$DIR/exp.py" "$MODE" server &
sleep 0.3
ip netns exec ackc timeout 10 python3 "$DIR/exp.py" "$MODE" client
sleep 0.5
kill $TP 2>/dev/null || true
wait $TP 2>/dev/null || true
sed -E 's/seq [0-9:]+, //; s/ack [0-9]+, //; s/options \[[^]]*\], //; s/win [0-9]+, //' "$OUT"
