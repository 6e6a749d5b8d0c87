//! The only `unsafe` of the harness: thin wrappers over the Linux system calls the standard
//! library does not offer. Each function checks its arguments, makes one or two calls and turns
//! `-1` into an `io::Error`; nothing here keeps raw pointers beyond a call.
//!
//! - [`enter_netns`]: `setns(2)` the calling thread into a named network namespace (the file
//!   `ip netns add` bind-mounts in `/run/netns`), returning a guard that switches back.
//! - [`PacketSocket`]: an `AF_PACKET`/`SOCK_RAW` socket bound to one interface: whole Ethernet
//!   frames out (`send`) and in (`recv`, frames the interface received; our own outgoing
//!   copies are ignored by `PACKET_IGNORE_OUTGOING` and checked again by `sll_pkttype`).
//! - [`GsoSender`]: an `AF_PACKET` socket that only sends, each frame after a
//!   `virtio_net_hdr` (`PACKET_VNET_HDR`): a GSO packet handed to the kernel whole.
//! - [`poll_readable`]: `poll(2)` over several sockets.
//! - [`tcp_connect_nowait`]: a non-blocking `connect(2)`, which sends a SYN and returns.
//! - [`children_cpu_seconds`]: `getrusage(RUSAGE_CHILDREN)`, user plus system time.
//! - [`set_tx_checksum`]: the `ethtool -K DEV tx off` ioctl, so that the kernel finishes every
//!   checksum in software before a frame reaches the veth (otherwise frames it builds itself,
//!   like REJECT's TCP resets, would cross the veth with only the pseudo-header sum in place).

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20); not in every libc release.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `sll_pkttype` of frames the interface sent.
const PACKET_OUTGOING: u8 = 4;
/// `PACKET_VNET_HDR` (`linux/if_packet.h`).
const PACKET_VNET_HDR: libc::c_int = 15;
/// `ETH_P_IP` in network byte order.
const ETH_P_IP_BE: u16 = (libc::ETH_P_IP as u16).to_be();
/// `SIOCETHTOOL` and the legacy `ETHTOOL_STXCSUM` command.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// While alive, the calling thread is in another network namespace.
pub struct NetnsGuard {
    home: File,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // SAFETY: `home` is an open namespace file descriptor owned by the guard.
        let ret = unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
        if ret < 0 {
            // Staying in the wrong namespace would make every later step act on it.
            eprintln!(
                "podnet-kdiff: cannot return to the original network namespace: {}",
                io::Error::last_os_error()
            );
            std::process::abort();
        }
    }
}

/// Moves the calling thread into the named namespace (`/run/netns/NAME`) until the guard drops.
pub fn enter_netns(name: &str) -> io::Result<NetnsGuard> {
    enter_netns_path(&format!("/run/netns/{name}"))
}

/// Moves the calling thread into the namespace of file `path` (`/run/netns/NAME`,
/// `/proc/PID/ns/net`) until the guard drops.
pub fn enter_netns_path(path: &str) -> io::Result<NetnsGuard> {
    let home = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(path)?;
    // SAFETY: both are open namespace file descriptors; setns only reads them.
    check(unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(NetnsGuard { home })
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// `ethtool -K NAME tx on|off` on an interface of the calling thread's namespace.
pub fn set_tx_checksum(name: &str, on: bool) -> io::Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: a plain socket call; the descriptor is owned right away.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: `ifr` names the interface and points at `value`, both live for the call.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) })?;
    Ok(())
}

/// An `AF_PACKET` raw socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket on interface `name` of the calling thread's namespace (the socket stays
    /// in that namespace afterwards). Frames queued before the bind are drained.
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        let ifindex = ifindex(name)?;
        let fd = af_packet(ETH_P_ALL_BE, libc::SOCK_NONBLOCK)?;
        let _ = set_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the length given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let s = PacketSocket { fd, ifindex };
        s.drain();
        Ok(s)
    }

    /// Discards every frame waiting.
    pub fn drain(&self) -> usize {
        let mut n = 0;
        while let Ok(Some(_)) = self.recv() {
            n += 1;
        }
        n
    }

    /// Sends one whole Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            match send_ll(&self.fd, self.ifindex, ETH_P_ALL_BE, frame, frame) {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One frame the interface received, if any is waiting (never blocks).
    pub fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536 + 64];
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer, address and length are valid and writable for the call.
            let ret = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut addr as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if ret < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            if addr.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            buf.truncate((ret as usize).min(buf.len()));
            return Ok(Some(buf));
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An `AF_PACKET` socket bound to one interface that only sends (protocol 0: it receives
/// nothing), each frame after a 10-byte `virtio_net_hdr` (`PACKET_VNET_HDR`), as a tap
/// device's user hands the kernel GSO packets.
pub struct GsoSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl GsoSender {
    /// Opens a sender on interface `name` of the calling thread's namespace.
    pub fn open(name: &str) -> io::Result<GsoSender> {
        let ifindex = ifindex(name)?;
        let fd = af_packet(0, 0)?;
        set_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
        Ok(GsoSender { fd, ifindex })
    }

    /// Sends `hdr` (a `virtio_net_hdr`) and the Ethernet frame after it as one packet.
    pub fn send(&self, hdr: &[u8; 10], frame: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(10 + frame.len());
        buf.extend_from_slice(hdr);
        buf.extend_from_slice(frame);
        send_ll(&self.fd, self.ifindex, ETH_P_IP_BE, &buf, frame)
    }
}

/// A new `AF_PACKET`/`SOCK_RAW` socket for `protocol` (network byte order; 0 receives
/// nothing), with these extra `socket(2)` flags.
fn af_packet(protocol: u16, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a plain socket call.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags,
            libc::c_int::from(protocol),
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` of an `int` option.
fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live c_int of the size given.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// `sendto(2)` of `buf` out of interface `ifindex`, to the destination MAC at the start of
/// `frame`, as `protocol` (network byte order).
fn send_ll(fd: &OwnedFd, ifindex: u32, protocol: u16, buf: &[u8], frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
    // SAFETY: the buffer and the address are valid for the lengths given.
    let ret = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout_us` microseconds for any of `socks` to have a frame; the indexes of
/// those that do (empty on timeout).
pub fn poll_readable(socks: &[&PacketSocket], timeout_us: u64) -> io::Result<Vec<usize>> {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.raw(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: (timeout_us / 1_000_000) as libc::time_t,
        tv_nsec: ((timeout_us % 1_000_000) * 1000) as libc::c_long,
    };
    loop {
        // SAFETY: `fds` holds `fds.len()` valid pollfd entries; `ts` is a valid timespec.
        let ret = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(fds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents & libc::POLLIN != 0)
            .map(|(i, _)| i)
            .collect());
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag ([`interrupted`]) so that the replay stops at the next
/// frame and the namespaces are deleted on the way out.
pub fn catch_interrupts() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
    }
}

/// Whether SIGINT, SIGTERM or SIGHUP arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Starts a TCP connection to `ip:port` without waiting for it: a non-blocking socket whose
/// `connect` sends the SYN and returns `EINPROGRESS`. Dropping the socket while in SYN-SENT
/// sends nothing.
pub fn tcp_connect_nowait(ip: [u8; 4], port: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in for the duration of the call, with its size.
    let ret = unsafe {
        libc::connect(
            owned.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(owned)
}

/// The effective user id is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// CPU seconds (user + system) used so far by this process's children that were waited for.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) } < 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}
