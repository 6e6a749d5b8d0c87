//! podnet scenario files: a YAML stream of real Kubernetes objects (what
//! `kubectl get pod,svc,endpointslice,netpol -o yaml` prints) plus the podnet kinds `Cluster`,
//! `Traffic` and `Fault`, loaded into plain data ([`Scenario`]) and built into a
//! [`podnet::Cluster`].
//!
//! ```
//! let yaml = r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, labels: {app: web}}
//! spec: {nodeName: node-b, containers: [{name: web, image: nginx}]}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: client}
//! spec: {nodeName: node-a, containers: [{name: c, image: curlimages/curl}]}
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata: {name: web}
//! spec: {selector: {app: web}, ports: [{port: 80}]}
//! ---
//! apiVersion: podnet.dev/v1alpha1
//! kind: Traffic
//! metadata: {name: get-web}
//! spec: {from: client, to: "web:80", count: 3}
//! "#;
//! let loaded = podnet_scenario::load_str("demo.yaml", yaml).unwrap();
//! let (mut cluster, index) = podnet_scenario::build(&loaded.scenario).unwrap();
//! assert!(cluster.run_until_done(podnet::Duration::from_secs(10)));
//! let records = index.records(&cluster, 0);
//! assert!(records.iter().all(|r| r.outcome == podnet::Outcome::Ok));
//! ```
//!
//! Every error names `file:line:column: what is wrong`; unknown kinds and unsupported details
//! are warnings; nothing in here panics on any input.
//!
//! # How names and defaults resolve
//!
//! - **Nodes**: `Cluster.spec.nodes` when given; else the `Node` objects of the stream (name,
//!   `status.addresses` InternalIP, `spec.podCIDR`); else the nodes the pods name in
//!   `spec.nodeName`, in order of first appearance, at 192.168.1.100, .101, ...; else two nodes,
//!   `node-a` 192.168.1.100 and `node-b` 192.168.1.101. A node without a `podCIDR` gets the /24
//!   of the cluster range holding its pods' `status.podIP` (so a kubectl dump keeps its
//!   addresses), or the next free /24.
//! - **Pods**: `spec.nodeName`, else the node whose pod CIDR holds `status.podIP`, else
//!   round-robin over the nodes in file order. `status.podIP`, else allocated by the cluster.
//!   `hostNetwork` pods and finished pods are skipped with a warning. Pod names are global in
//!   the core: a name used twice (across namespaces) becomes `NAME.NAMESPACE` there.
//! - **Deployments**: `replicas` (default 1) pods `NAME-0..N-1` from the template, replica `i`
//!   on node `i mod nodes`, unless the stream holds pods owned by one of its ReplicaSets
//!   (`NAME-HASH`): then those are its replicas.
//! - **Services**: endpoints from the EndpointSlices labelled `kubernetes.io/service-name`
//!   (ready ones, matched to pods by `targetRef` or address), else from the selector over the
//!   pods of the namespace; a named `targetPort` is looked up in each backend's containerPorts.
//! - **Traffic `from`**: `NS/POD`, a pod name (in the Traffic's namespace, else unique
//!   anywhere), a Deployment (one client per replica) or an external host.
//! - **Traffic `to`**: `IP:PORT`; `SVC.NS.svc.cluster.local`, `SVC.NS.svc` or `SVC.NS`; a short
//!   Service name in the client's namespace; a pod; a node (for NodePorts); an external host.
//!   The port may be a Service port name (or a container port name for a pod). A Service name
//!   is looked up over DNS by the client pod when DNS pods (`coredns/coredns`, `podnet/dns`)
//!   run behind a Service on UDP port 53 (`kube-system/kube-dns` first); otherwise, and for
//!   the other targets, names resolve statically (the ClusterIP, or a headless Service's first
//!   endpoint), as DNS would answer.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod build;
mod cnp;
mod de;
pub mod diff;
pub mod k8s;
mod kinds;
mod load;
pub mod matrix;
mod model;
mod netpol;
mod node;
mod resolve;
mod resolve_expect;
mod resolve_flow;
mod resolve_net;
mod resolve_nodes;
mod resolve_pods;
mod run;
#[cfg(feature = "schema")]
pub mod schema;
pub mod session;
pub mod units;
mod yaml;

use std::fmt;

pub use build::{build, build_observed, FlowIndex, Index};
pub use de::At;
pub use model::*;
pub use resolve_flow::OUTCOMES;
pub use run::{apply_fault, check_faults, fault_events, replicas, run, FaultEvent, FaultStep};

/// A problem with the input: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Where (`None`: not about one place, like an unreadable file).
    pub loc: Option<Loc>,
    /// What is wrong.
    pub message: String,
}

impl Error {
    /// An error at `loc`.
    pub fn at(loc: &Loc, message: impl Into<String>) -> Self {
        Error {
            loc: Some(loc.clone()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Something skipped or approximated; the scenario still loads.
pub type Warning = Error;

/// A loaded scenario and what was skipped on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// Warnings, in file order.
    pub warnings: Vec<Warning>,
}

/// Loads and resolves a scenario from several sources (`(file name, text)`), read in order as
/// one stream.
pub fn load(sources: &[(&str, &str)]) -> Result<Loaded, Error> {
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    for (name, text) in sources {
        let (objs, warns) = load::parse(name, text)?;
        objects.extend(objs);
        warnings.extend(warns);
    }
    let scenario = resolve::resolve(&objects, &mut warnings)?;
    Ok(Loaded { scenario, warnings })
}

/// Loads and resolves a scenario from one text.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Error> {
    load(&[(name, text)])
}

/// Reads and loads scenario files.
pub fn load_files<P: AsRef<std::path::Path>>(paths: &[P]) -> Result<Loaded, Error> {
    let mut texts = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let bytes = std::fs::read(p).map_err(|e| Error {
            loc: None,
            message: format!("{}: cannot read: {e}", p.display()),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error {
            loc: None,
            message: format!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                p.display(),
                e.utf8_error().valid_up_to()
            ),
        })?;
        texts.push((p.display().to_string(), text));
    }
    let sources: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    load(&sources)
}
