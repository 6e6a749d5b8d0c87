//! A pod: a smoltcp [`Interface`] (Ethernet, its own MAC and IP, default route via the node's
//! `cni0` address) with its own [`SocketSet`] and programs, behind its `eth0`.
//!
//! The pod's device is a pair of frame queues: the cluster pushes arriving frames in, and
//! takes the frames smoltcp transmitted out after each [`Pod::service`].

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

use crate::link::Frame;
use crate::program::{client::Client, App, PodEnv, Program};
use crate::rng::SimRng;

/// Ethernet MTU of a pod's `eth0` (IP MTU 1500).
pub const POD_MTU: usize = 1500;

/// The pod's network device: frames in, frames out.
#[derive(Debug, Default)]
pub struct PodDevice {
    rx: VecDeque<Frame>,
    tx: Vec<Frame>,
}

/// Receive token: owns one arriving frame.
pub struct RxToken(Frame);

/// Transmit token: appends one frame to the device's output.
pub struct TxToken<'a>(&'a mut Vec<Frame>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl Device for PodDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = POD_MTU + 14;
        caps
    }
}

/// A pod's network identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodAddrs {
    /// `eth0`'s address with the node's pod prefix.
    pub ip: IpCidr,
    /// `eth0`'s MAC.
    pub mac: EthernetAddress,
    /// The default gateway (the node's `cni0`).
    pub gateway: Ipv4Address,
}

/// One pod.
pub struct Pod {
    name: String,
    addrs: PodAddrs,
    iface: Interface,
    sockets: SocketSet<'static>,
    device: PodDevice,
    apps: Vec<App>,
    ports: BTreeSet<u16>,
    lingering: Vec<(SocketHandle, u16)>,
    rng: SimRng,
    tcp_buffer: usize,
}

impl core::fmt::Debug for Pod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pod").field("name", &self.name).field("addrs", &self.addrs).finish_non_exhaustive()
    }
}

impl Pod {
    /// A pod with its interface configured and its programs started at `now`.
    pub fn new(name: String, addrs: PodAddrs, programs: &[Program], mut rng: SimRng, tcp_buffer: usize, now: Instant) -> Self {
        let mut device = PodDevice::default();
        let mut config = Config::new(HardwareAddress::Ethernet(addrs.mac));
        config.random_seed = rng.next_u64();
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(addrs.ip);
        });
        let _ = iface.routes_mut().add_default_ipv4_route(addrs.gateway);
        let mut pod = Pod {
            name,
            addrs,
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            apps: Vec::new(),
            ports: BTreeSet::new(),
            lingering: Vec::new(),
            rng,
            tcp_buffer,
        };
        for p in programs {
            pod.start(p, now);
        }
        pod
    }

    /// Starts a program.
    pub fn start(&mut self, program: &Program, now: Instant) {
        let app = {
            let mut env = self.env(now);
            App::start(program, &mut env)
        };
        self.apps.push(app);
    }

    fn env(&mut self, now: Instant) -> PodEnv<'_> {
        PodEnv {
            now,
            iface: &mut self.iface,
            sockets: &mut self.sockets,
            rng: &mut self.rng,
            pod_name: &self.name,
            tcp_buffer: self.tcp_buffer,
            ports: &mut self.ports,
            lingering: &mut self.lingering,
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's addresses.
    pub fn addrs(&self) -> &PodAddrs {
        &self.addrs
    }

    /// Queues an arriving frame; [`Pod::service`] processes it.
    pub fn deliver(&mut self, frame: Frame) {
        self.device.rx.push_back(frame);
    }

    /// Runs the stack and the programs at `now`; returns the frames transmitted.
    pub fn service(&mut self, now: Instant) -> Vec<Frame> {
        self.iface.poll_maintenance(now);
        while !self.device.rx.is_empty() {
            self.iface.poll_ingress_single(now, &mut self.device, &mut self.sockets);
            let mut apps = core::mem::take(&mut self.apps);
            {
                let mut env = self.env(now);
                for app in apps.iter_mut() {
                    app.after_ingress(&mut env);
                }
            }
            self.apps = apps;
        }
        self.run_apps(now);
        while self.iface.poll_egress(now, &mut self.device, &mut self.sockets) == smoltcp::iface::PollResult::SocketStateChanged {}
        self.reap();
        core::mem::take(&mut self.device.tx)
    }

    fn run_apps(&mut self, now: Instant) {
        let mut apps = core::mem::take(&mut self.apps);
        {
            let mut env = self.env(now);
            for app in apps.iter_mut() {
                app.step(&mut env);
            }
        }
        self.apps = apps;
    }

    /// Frees sockets that finished TIME-WAIT.
    fn reap(&mut self) {
        let sockets = &mut self.sockets;
        let ports = &mut self.ports;
        self.lingering.retain(|(h, port)| {
            if sockets.get::<tcp::Socket>(*h).state() == tcp::State::Closed {
                sockets.remove(*h);
                ports.remove(port);
                false
            } else {
                true
            }
        });
    }

    /// When the pod next needs [`Pod::service`] without any frame arriving (a time in the
    /// past means now).
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let stack = self.iface.poll_at(now, &self.sockets);
        let apps = self.apps.iter().filter_map(|a| a.next_wake()).min();
        match (stack, apps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The pod's client programs.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.apps.iter().filter_map(|a| a.client())
    }

    /// Open sockets (listening, connected and lingering).
    pub fn socket_count(&self) -> usize {
        self.sockets.iter().count()
    }
}
