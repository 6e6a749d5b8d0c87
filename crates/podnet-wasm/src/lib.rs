//! podnet in WebAssembly: a thin wasm-bindgen layer over [`podnet_scenario::session`].
//!
//! `API.md` (beside this crate's `Cargo.toml`) is the contract; the TypeScript declarations of
//! the package are generated from the types in [`api`] (tsify) and the methods of [`Sim`].
//! Every method returns `Result<_, JsError>`: bad input throws a JavaScript `Error` whose
//! message is the text the `podnet` command prints; nothing traps.
//!
//! The logic lives in [`sim::SimCore`], plain Rust tested natively; [`Sim`] only converts.

pub mod api;
pub mod conn_index;
pub mod examples;
pub mod packet;
pub mod sim;
pub mod topology;

use podnet_scenario::diff::Diff;
use podnet_scenario::session::{Failure, Flow, NodeReport, Report};
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use api::*;
use sim::SimCore;

fn js(f: Failure) -> JsError {
    JsError::new(&f.message)
}

fn ts<T: Tsify + serde::Serialize>(v: &T) -> Result<Ts<T>, JsError> {
    v.into_ts().map_err(|e| JsError::new(&e.to_string()))
}

/// A panic is a bug (every input error is a `JsError`): should one happen anyway, its message
/// goes to the console rather than only "unreachable".
fn panic_hook() {
    #[cfg(target_arch = "wasm32")]
    console_error_panic_hook::set_once();
}

/// Every bundled example scenario (`examples/*.yaml` of the repository).
#[wasm_bindgen]
pub fn examples() -> Result<Vec<Ts<Example>>, JsError> {
    panic_hook();
    examples::examples().iter().map(ts).collect()
}

/// Loads and builds `yaml` and returns the error (if any) and the warnings; never throws.
#[wasm_bindgen]
pub fn check(yaml: &str) -> Result<Vec<Ts<Diagnostic>>, JsError> {
    panic_hook();
    sim::check(yaml, sim::DEFAULT_FILE).iter().map(ts).collect()
}

/// What an edit changes (`podnet diff`): both texts loaded (errors name `scenario.yaml`, as
/// `check` does), the probes of the NetworkPolicy matrix and the Traffic run in both worlds
/// with the before text's seed, and the probes and connections whose outcome differs, each
/// with the verdict (the deciding rule) on both sides.
#[wasm_bindgen(js_name = whatIf)]
pub fn what_if(before: &str, after: &str) -> Result<Ts<Diff>, JsError> {
    panic_hook();
    ts(&sim::what_if(before, after, sim::DEFAULT_FILE).map_err(js)?)
}

/// The package's version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A scenario being simulated in virtual time. Time travel is by replay: a new `Sim` of the
/// same text run to `t` is in the same state every time.
#[wasm_bindgen]
pub struct Sim {
    core: SimCore,
}

#[wasm_bindgen]
impl Sim {
    /// Loads and builds the scenario; throws the first error's text.
    #[wasm_bindgen(constructor)]
    pub fn new(yaml: &str, options: Option<Ts<SimOptions>>) -> Result<Sim, JsError> {
        panic_hook();
        let opts = match options {
            Some(o) => o
                .to_rust()
                .map_err(|e| JsError::new(&format!("options: {e}")))?,
            None => SimOptions::default(),
        };
        Ok(Sim {
            core: SimCore::new(yaml, &opts).map_err(js)?,
        })
    }

    /// The scenario's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.core.name()
    }

    /// Nodes, pods, Services, external hosts, links and flows, now.
    pub fn topology(&self) -> Result<Ts<Topology>, JsError> {
        ts(&self.core.topology())
    }

    /// Virtual time now, µs.
    pub fn now(&self) -> f64 {
        self.core.now()
    }

    /// When the next engine event or fault change is due (µs), `null` when none.
    #[wasm_bindgen(js_name = nextEventTime, unchecked_return_type = "number | null")]
    pub fn next_event_time(&self) -> JsValue {
        self.core
            .next_event_time()
            .map_or(JsValue::NULL, JsValue::from_f64)
    }

    /// Processes one engine event (faults at their times); false when nothing is left.
    pub fn step(&mut self) -> Result<bool, JsError> {
        self.core.step().map_err(js)
    }

    /// Advances virtual time to `us` (faults at their times), whether or not clients finished.
    #[wasm_bindgen(js_name = runUntil)]
    pub fn run_until(&mut self, us: f64) -> Result<(), JsError> {
        self.core.run_until(us).map_err(js)
    }

    /// Runs like `podnet run` (at most `limitUs` more, default 30 s); true when every client
    /// finished.
    #[wasm_bindgen(js_name = runToEnd)]
    pub fn run_to_end(
        &mut self,
        #[wasm_bindgen(js_name = "limitUs")] limit_us: Option<f64>,
    ) -> Result<bool, JsError> {
        self.core.run_to_end(limit_us).map_err(js)
    }

    /// Whether every client has finished.
    pub fn finished(&self) -> bool {
        self.core.finished()
    }

    /// The number one past the last event kept: events are numbered from 0 at the moment
    /// recording began (`recordingSince`); 0 while not recording.
    #[wasm_bindgen(js_name = eventCount)]
    pub fn event_count(&self) -> f64 {
        self.core.event_count()
    }

    /// The number of the first event still kept (the oldest go past `windowEvents`).
    #[wasm_bindgen(js_name = eventBase)]
    pub fn event_base(&self) -> f64 {
        self.core.event_base()
    }

    /// Turns recording on (from now; numbering starts at 0 again) or off (kept events go).
    #[wasm_bindgen(js_name = setRecording)]
    pub fn set_recording(&mut self, on: bool) {
        self.core.set_recording(on)
    }

    /// When recording began (µs), `null` while not recording.
    #[wasm_bindgen(js_name = recordingSince, unchecked_return_type = "number | null")]
    pub fn recording_since(&self) -> JsValue {
        self.core
            .recording_since()
            .map_or(JsValue::NULL, JsValue::from_f64)
    }

    /// Frames delivered so far (each interface that took a frame in counts it once), counted
    /// whether or not events are recorded.
    #[wasm_bindgen(js_name = framesDelivered)]
    pub fn frames_delivered(&self) -> f64 {
        self.core.frames_delivered()
    }

    /// Starts a new span of deliveries: `deliveriesSinceMark()` then tells when the first and
    /// the last frame after this call were delivered.
    #[wasm_bindgen(js_name = markDeliveries)]
    pub fn mark_deliveries(&mut self) {
        self.core.mark_deliveries();
    }

    /// `[first, last]`: when (virtual µs) the first and the last frame since
    /// `markDeliveries()` were delivered; undefined when none was. Counted whether or not
    /// events are recorded.
    #[wasm_bindgen(js_name = deliveriesSinceMark)]
    pub fn deliveries_since_mark(&self) -> Option<Vec<f64>> {
        self.core.deliveries_since_mark().map(Vec::from)
    }

    /// Kept events numbered `[from, to)` in order (`to` defaults to the end; clamped to the
    /// kept ones, `eventBase()` to `eventCount()`). With `connections` false, every event's
    /// `conn` is null: much cheaper the first time after many connections finished (finding
    /// them indexes every connection finished so far).
    pub fn events(
        &mut self,
        from: f64,
        to: Option<f64>,
        connections: Option<bool>,
    ) -> Result<Vec<Ts<SimEvent>>, JsError> {
        self.core
            .events_with(from, to, connections.unwrap_or(true))
            .iter()
            .map(ts)
            .collect()
    }

    /// The frames on the wires at `us`, from the kept events (what the page draws): each
    /// frame sent at most `maxFlightUs` before `us` (among the last `maxEvents` events up to
    /// it) and received after it (among the kept events at most `maxFlightUs` after the last
    /// one up to `us`, and at most `maxEvents` of them), paired by its bytes on the link's two
    /// ends; and the last drops among the events looked at (their `conn` null).
    pub fn flights(
        &mut self,
        us: f64,
        #[wasm_bindgen(js_name = "maxFlightUs")] max_flight_us: f64,
        #[wasm_bindgen(js_name = "maxEvents")] max_events: u32,
    ) -> Result<Ts<Flights>, JsError> {
        ts(&self.core.flights(us, max_flight_us, max_events as usize))
    }

    /// The frames on the wires now, as the simulation holds them (their arrival times
    /// known, their `received` events not yet happened: null), each with the kept event of
    /// its sending among the last `maxEvents` (frames sent before are left out); and the last
    /// drops among those events. What flights() gives at the time now, without recording
    /// past it.
    #[wasm_bindgen(js_name = flightsNow)]
    pub fn flights_now(
        &mut self,
        #[wasm_bindgen(js_name = "maxEvents")] max_events: u32,
    ) -> Result<Ts<Flights>, JsError> {
        ts(&self.core.flights_now(max_events as usize))
    }

    /// The report, exactly as `podnet run --json` (built once per moment).
    pub fn report(&mut self) -> Result<Ts<Report>, JsError> {
        ts(self.core.report())
    }

    /// The human summary of `podnet run`.
    pub fn summary(&self) -> String {
        self.core.summary()
    }

    /// Each node's part of the report alone (`report().nodes`, much cheaper with many
    /// connections).
    #[wasm_bindgen(js_name = nodeReports)]
    pub fn node_reports(&self) -> Result<Vec<Ts<NodeReport>>, JsError> {
        self.core.node_reports().iter().map(ts).collect()
    }

    /// The report's flows with only the connections that ended with `outcome` (when given)
    /// and got HTTP status `httpStatus` (when given); flows left with none are left out.
    #[wasm_bindgen(js_name = connectionsWith)]
    pub fn connections_with(
        &mut self,
        outcome: Option<String>,
        #[wasm_bindgen(js_name = httpStatus)] http_status: Option<u16>,
    ) -> Result<Vec<Ts<Flow>>, JsError> {
        self.core
            .connections_with(outcome.as_deref(), http_status)
            .iter()
            .map(ts)
            .collect()
    }

    /// The number of the first kept event later than `us` (`eventCount()` when none is, the
    /// first kept one's when all are): a binary search in the module, no events read.
    #[wasm_bindgen(js_name = countAt)]
    pub fn count_at(&self, us: f64) -> f64 {
        self.core.count_at(us)
    }

    /// `podnet trace --flow F --conn N`.
    #[wasm_bindgen(js_name = traceText)]
    pub fn trace_text(&self, flow: &str, conn: u32) -> Result<String, JsError> {
        self.core.trace_text(flow, conn).map_err(js)
    }

    /// `podnet explain` of connection `conn` of `flow`: its walk with routes, rules and NAT,
    /// and the NetworkPolicy verdict.
    pub fn explain(&self, flow: &str, conn: u32) -> Result<String, JsError> {
        self.core.explain(flow, conn).map_err(js)
    }

    /// Node `node`'s conntrack entries now.
    pub fn conntrack(&self, node: &str) -> Result<Vec<Ts<ConntrackEntry>>, JsError> {
        self.core
            .conntrack(node)
            .map_err(js)?
            .iter()
            .map(ts)
            .collect()
    }

    /// Node `node`'s conntrack table now, `conntrack -L` text.
    #[wasm_bindgen(js_name = conntrackText)]
    pub fn conntrack_text(&self, node: &str) -> Result<String, JsError> {
        self.core.conntrack_text(node).map_err(js)
    }

    /// How many entries node `node`'s conntrack table lists now, the first `limit` lines of
    /// its `conntrack -L`, and the lines of the entries whose original or reply tuple is one
    /// of `selected` (`SRC:SPORT>DST:DPORT`); only those lines are formatted, which is cheap
    /// with a full table.
    #[wasm_bindgen(js_name = conntrackHead)]
    pub fn conntrack_head(
        &self,
        node: &str,
        limit: u32,
        selected: Option<Vec<String>>,
    ) -> Result<Ts<ConntrackHead>, JsError> {
        let selected = selected.unwrap_or_default();
        ts(&self
            .core
            .conntrack_head(node, limit as usize, &selected)
            .map_err(js)?)
    }

    /// Node `node`'s rules: `iptables-save`, or `nft list ruleset` (nftables).
    pub fn rules(&self, node: &str) -> Result<String, JsError> {
        self.core.rules(node).map_err(js)
    }

    /// tcpdump lines of `iface` (`any`, `HOST` or `HOST/IFACE`) matching `filter`, of the
    /// kept events up to `untilUs` (all of them without).
    pub fn tcpdump(
        &self,
        iface: &str,
        filter: &str,
        #[wasm_bindgen(js_name = "untilUs")] until_us: Option<f64>,
    ) -> Result<Vec<String>, JsError> {
        self.core.tcpdump(iface, filter, until_us).map_err(js)
    }

    /// tcpdump() of which only the last `last` lines come back, and how many there are in all
    /// (cheaper for a big window: the page shows the last few hundred).
    #[wasm_bindgen(js_name = tcpdumpTail)]
    pub fn tcpdump_tail(
        &self,
        iface: &str,
        filter: &str,
        #[wasm_bindgen(js_name = "untilUs")] until_us: Option<f64>,
        last: u32,
    ) -> Result<Ts<TcpdumpTail>, JsError> {
        ts(&self
            .core
            .tcpdump_tail(iface, filter, until_us, last as usize)
            .map_err(js)?)
    }

    /// The pcap of `iface`: `any` (Linux cooked, every interface) or `HOST/IFACE` (Ethernet),
    /// of the kept events up to `untilUs` (all of them without).
    pub fn pcap(
        &self,
        iface: &str,
        #[wasm_bindgen(js_name = "untilUs")] until_us: Option<f64>,
    ) -> Result<Vec<u8>, JsError> {
        self.core.pcap(iface, until_us).map_err(js)
    }

    /// Every interface (`node-a/eth0`, `client/eth0`, ...).
    pub fn interfaces(&self) -> Vec<String> {
        self.core.interfaces()
    }
}
