//! The engine bench's reference: two smoltcp interfaces and two frame queues, nothing else
//! (see `engine.rs`).

use std::collections::VecDeque;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

/// podnet's default TCP buffer, which `engine.rs` checks against `ClusterConfig`.
pub const TCP_BUFFER: usize = 64 * 1024;

type Frame = Vec<u8>;

/// A device over two frame queues: frames come in from `rx`, go out to `tx`.
struct QueueDevice<'a> {
    rx: &'a mut VecDeque<Frame>,
    tx: &'a mut VecDeque<Frame>,
}

struct RxToken(Frame);
struct TxToken<'a>(&'a mut VecDeque<Frame>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl Device for QueueDevice<'_> {
    type RxToken<'b>
        = RxToken
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514; // IP MTU 1500, like a pod's eth0
        caps
    }
}

const CLIENT_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

/// One end: an interface, its sockets, and when it next needs a poll with no frame.
struct Host {
    iface: Interface,
    sockets: SocketSet<'static>,
    wake: Option<Instant>,
}

impl Host {
    fn new(ip: Ipv4Address, seed: u64) -> Self {
        let mut scratch = VecDeque::new();
        let mut dev = QueueDevice {
            rx: &mut VecDeque::new(),
            tx: &mut scratch,
        };
        let o = ip.octets();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
            0x02, 0, o[0], o[1], o[2], o[3],
        ])));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap());
        Host {
            iface,
            sockets: SocketSet::new(Vec::new()),
            wake: Some(Instant::ZERO),
        }
    }

    /// Whether frames wait for it or one of its timers is due at `now`.
    fn due(&self, now: Instant, rx: &VecDeque<Frame>) -> bool {
        !rx.is_empty() || self.wake.is_some_and(|t| t <= now)
    }

    /// Takes in every waiting frame, runs the program, sends what the stack and the program
    /// have to send, and notes when it next needs a poll.
    fn service(
        &mut self,
        now: Instant,
        app: &mut impl App,
        rx: &mut VecDeque<Frame>,
        tx: &mut VecDeque<Frame>,
    ) {
        let mut dev = QueueDevice { rx, tx };
        self.iface.poll_maintenance(now);
        while self
            .iface
            .poll_ingress_single(now, &mut dev, &mut self.sockets)
            != PollIngressSingleResult::None
        {}
        app.step(&mut self.iface, &mut self.sockets);
        while self.iface.poll_egress(now, &mut dev, &mut self.sockets)
            == PollResult::SocketStateChanged
        {}
        self.wake = self.iface.poll_at(now, &self.sockets);
    }
}

fn tcp_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    );
    s.set_congestion_control(tcp::CongestionControl::Reno);
    s
}

/// A program on one host.
trait App {
    fn step(&mut self, iface: &mut Interface, sockets: &mut SocketSet<'static>);
}

/// What a connection sends and expects back.
#[derive(Clone, Copy)]
enum Mode {
    /// An HTTP GET; a `200 OK` with a `Content-Length` body.
    Http,
    /// This many bytes of a pattern, echoed back byte for byte.
    Echo(usize),
}

impl Mode {
    fn port(self) -> u16 {
        match self {
            Mode::Http => 80,
            Mode::Echo(_) => 7,
        }
    }

    /// What a connection sends, built when it opens (as podnet's client does).
    fn payload(self) -> Vec<u8> {
        match self {
            Mode::Http => HTTP_REQUEST.to_vec(),
            Mode::Echo(len) => (0..len)
                .map(|i| (i as u32).wrapping_mul(31) as u8)
                .collect(),
        }
    }
}

/// The request podnet's client sends (same bytes, same length).
const HTTP_REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 10.244.1.2\r\nUser-Agent: podnet\r\nAccept: */*\r\n\r\n";
/// The response podnet's server sends to a pod named "web".
const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: podnet\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nweb\n";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn http_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

/// Opens `count` connections one after another; each sends, reads the whole answer, closes,
/// and is done once in TIME-WAIT (its socket lingers until smoltcp closes it).
struct Client {
    mode: Mode,
    count: u64,
    finished: u64,
    next_port: u16,
    current: Option<Conn>,
    lingering: Vec<SocketHandle>,
}

struct Conn {
    handle: SocketHandle,
    payload: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    closing: bool,
}

impl Client {
    fn open(&mut self, iface: &mut Interface, sockets: &mut SocketSet<'static>) {
        let mut s = tcp_socket(TCP_BUFFER);
        s.connect(
            iface.context(),
            IpEndpoint::new(IpAddress::Ipv4(SERVER_IP), self.mode.port()),
            self.next_port,
        )
        .unwrap();
        self.next_port = if self.next_port == 60999 {
            32768
        } else {
            self.next_port + 1
        };
        self.current = Some(Conn {
            handle: sockets.add(s),
            payload: self.mode.payload(),
            sent: 0,
            received: Vec::new(),
            closing: false,
        });
    }
}

impl App for Client {
    fn step(&mut self, iface: &mut Interface, sockets: &mut SocketSet<'static>) {
        self.lingering.retain(|&h| {
            let closed = sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed;
            if closed {
                sockets.remove(h);
            }
            !closed
        });
        loop {
            if self.current.is_none() {
                if self.finished == self.count {
                    return;
                }
                self.open(iface, sockets);
            }
            let c = self.current.as_mut().unwrap();
            let sock = sockets.get_mut::<tcp::Socket>(c.handle);
            while c.sent < c.payload.len() && sock.can_send() {
                c.sent += sock.send_slice(&c.payload[c.sent..]).unwrap();
            }
            let mut buf = [0u8; 4096];
            while sock.can_recv() {
                let n = sock.recv_slice(&mut buf).unwrap();
                let at = c.received.len();
                c.received.extend_from_slice(&buf[..n]);
                if let Mode::Echo(_) = self.mode {
                    assert_eq!(&c.payload[at..at + n], &buf[..n], "corrupt echo");
                }
            }
            let complete = match self.mode {
                Mode::Http => http_complete(&c.received),
                Mode::Echo(len) => c.received.len() == len,
            };
            if complete && !c.closing {
                sock.close();
                c.closing = true;
            }
            match sock.state() {
                tcp::State::TimeWait | tcp::State::Closed if c.closing => {
                    self.lingering.push(c.handle);
                    self.current = None;
                    self.finished += 1;
                }
                tcp::State::Closed => panic!("bare pair: connection reset or refused"),
                _ => return,
            }
        }
    }
}

/// A server: one listening socket, re-armed whenever it gets a connection.
struct Server {
    mode: Mode,
    port: u16,
    listener: Option<SocketHandle>,
    conns: Vec<(SocketHandle, Vec<u8>)>,
}

impl App for Server {
    fn step(&mut self, _iface: &mut Interface, sockets: &mut SocketSet<'static>) {
        if let Some(h) = self
            .listener
            .filter(|&h| !sockets.get::<tcp::Socket>(h).is_listening())
        {
            self.conns.push((h, Vec::new()));
            self.listener = None;
        }
        if self.listener.is_none() {
            let mut s = tcp_socket(TCP_BUFFER);
            s.listen(self.port).unwrap();
            self.listener = Some(sockets.add(s));
        }
        let mode = self.mode;
        self.conns.retain_mut(|(h, request)| {
            let sock = sockets.get_mut::<tcp::Socket>(*h);
            if sock.state() == tcp::State::Closed {
                sockets.remove(*h);
                return false;
            }
            let mut buf = [0u8; 4096];
            match mode {
                Mode::Http => {
                    while sock.can_recv() {
                        let n = sock.recv_slice(&mut buf).unwrap();
                        request.extend_from_slice(&buf[..n]);
                    }
                    while let Some(end) = find(request, b"\r\n\r\n") {
                        request.drain(..end + 4);
                        assert_eq!(sock.send_slice(HTTP_RESPONSE).unwrap(), HTTP_RESPONSE.len());
                    }
                }
                Mode::Echo(_) => loop {
                    let room = sock.send_capacity() - sock.send_queue();
                    if room == 0 || !sock.can_recv() {
                        break;
                    }
                    let n = sock.recv_slice(&mut buf[..room.min(4096)]).unwrap();
                    sock.send_slice(&buf[..n]).unwrap();
                },
            }
            if !sock.may_recv() && sock.send_queue() == 0 && sock.may_send() {
                sock.close();
            }
            true
        });
    }
}

/// Two hosts and a frame queue in each direction, on a virtual clock.
struct Pair {
    now: Instant,
    client: Host,
    server: Host,
    to_server: VecDeque<Frame>,
    to_client: VecDeque<Frame>,
}

impl Pair {
    fn new() -> Self {
        Pair {
            now: Instant::ZERO,
            client: Host::new(CLIENT_IP, 1),
            server: Host::new(SERVER_IP, 2),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
        }
    }

    /// Runs until the client finished all its connections; returns the wall time it took.
    fn run(&mut self, client: &mut Client, server: &mut Server, limit: Duration) -> StdDuration {
        let start = StdInstant::now();
        let end = self.now + limit;
        let mut same_instant = 0u32;
        loop {
            // At `now`, service each host that has frames waiting or a timer due, until
            // neither has.
            loop {
                let mut ran = false;
                if self.client.due(self.now, &self.to_client) {
                    let (rx, tx) = (&mut self.to_client, &mut self.to_server);
                    self.client.service(self.now, client, rx, tx);
                    ran = true;
                }
                if self.server.due(self.now, &self.to_server) {
                    let (rx, tx) = (&mut self.to_server, &mut self.to_client);
                    self.server.service(self.now, server, rx, tx);
                    ran = true;
                }
                if client.finished == client.count {
                    return start.elapsed();
                }
                if !ran {
                    break;
                }
                same_instant += 1;
                assert!(
                    same_instant < 100_000,
                    "bare pair: a stack keeps asking for now"
                );
            }
            // Jump to the earliest timer of either stack.
            let next = self.client.wake.into_iter().chain(self.server.wake).min();
            let next = next.expect("bare pair: nothing left to do");
            assert!(next <= end, "bare pair: virtual time limit reached");
            self.now = next;
            same_instant = 0;
        }
    }
}

fn run(mode: Mode, count: u64) -> StdDuration {
    let mut pair = Pair::new();
    let mut server = Server {
        mode,
        port: mode.port(),
        listener: None,
        conns: Vec::new(),
    };
    let mut client = Client {
        mode,
        count,
        finished: 0,
        next_port: 32768,
        current: None,
        lingering: Vec::new(),
    };
    pair.run(&mut client, &mut server, Duration::from_secs(60))
}

/// `n` sequential HTTP connections.
pub fn http(n: u64) -> StdDuration {
    run(Mode::Http, n)
}

/// One echo of `len` bytes of a pattern.
pub fn bulk(len: usize) -> StdDuration {
    run(Mode::Echo(len), 1)
}
