//! The podnet kinds as written (`apiVersion: podnet.dev/v1alpha1`): every field optional, read
//! with its position; defaults and checks are applied in [`crate::resolve`].

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

use crate::de::At;

/// A number or a string, for fields that take either (`loss: 0.1` or `loss: 10%`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NumOrStr {
    Num(f64),
    Str(String),
}

impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Num(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Cluster.spec`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ClusterSpec {
    pub seed: Option<u64>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<At<String>>,
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: Option<At<String>>,
    #[serde(rename = "externalCIDR")]
    pub external_cidr: Option<At<String>>,
    pub cni: Option<At<String>>,
    pub hairpin_mode: Option<bool>,
    pub proxy: Option<At<String>>,
    pub masquerade: Masquerade,
    pub conntrack: Conntrack,
    pub ebpf: Ebpf,
    pub link: Link,
    pub nodes: Option<At<Vec<At<NodeEntry>>>>,
    pub external: Vec<At<ExternalEntry>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Masquerade {
    pub random_fully: Option<bool>,
    pub all: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Conntrack {
    pub max: Option<At<u32>>,
    pub buckets: Option<At<u32>>,
    pub tcp_be_liberal: Option<bool>,
    pub tcp_loose: Option<bool>,
    pub checksum: Option<bool>,
    pub timeouts: BTreeMap<String, At<NumOrStr>>,
}

/// `Cluster.spec.ebpf`, with Cilium's Helm value names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Ebpf {
    #[serde(rename = "socketLB")]
    pub socket_lb: Option<bool>,
    pub load_balancer: EbpfLb,
    pub maglev: EbpfMaglev,
    pub bpf: EbpfMaps,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EbpfLb {
    pub algorithm: Option<At<String>>,
    pub mode: Option<At<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EbpfMaglev {
    pub table_size: Option<At<u32>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct EbpfMaps {
    pub ct_tcp_max: Option<At<u32>>,
    pub ct_any_max: Option<At<u32>>,
    pub nat_max: Option<At<u32>>,
    pub masquerade: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Link {
    pub latency: Option<At<String>>,
    pub bandwidth: Option<At<String>>,
    pub loss: Option<At<NumOrStr>>,
    pub queue_bytes: Option<At<u32>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeEntry {
    pub name: At<String>,
    pub ip: At<String>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<At<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExternalEntry {
    pub name: At<String>,
    pub ip: At<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub ports: Vec<ExternalPort>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExternalPort {
    #[serde(default)]
    pub name: String,
    pub container_port: u16,
    pub protocol: Option<At<String>>,
}

/// `Traffic.spec`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficSpec {
    pub from: At<String>,
    pub to: At<String>,
    pub protocol: Option<At<String>>,
    pub request: Option<At<String>>,
    pub bytes: Option<At<u64>>,
    pub upload: Option<At<u64>>,
    pub count: Option<At<u32>>,
    pub concurrency: Option<At<u32>>,
    pub start: Option<At<String>>,
    pub interval: Option<At<String>>,
    pub timeout: Option<At<String>>,
    pub expect: Option<Expect>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Expect {
    pub outcome: Option<At<String>>,
}

/// `Fault.spec`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct FaultSpec {
    pub at: Option<At<String>>,
    pub until: Option<At<String>>,
    pub link: Option<At<String>>,
    pub loss: Option<At<NumOrStr>>,
    pub latency: Option<At<String>>,
    pub bandwidth: Option<At<String>>,
    pub down: Option<At<bool>>,
    pub delete_pod: Option<At<String>>,
    pub scale: Option<At<Scale>>,
    pub conntrack_flush: Option<At<String>>,
    pub conntrack_max: Option<At<ConntrackMax>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Scale {
    pub deployment: At<String>,
    pub replicas: At<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConntrackMax {
    pub node: At<String>,
    pub max: At<u32>,
}

/// `ConnectivityExpectation.spec`: pairs expected allowed or denied, and/or a truth table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ExpectationSpec {
    pub port: Option<At<u16>>,
    pub protocol: Option<At<String>>,
    pub allowed: Vec<At<PairEntry>>,
    pub denied: Vec<At<PairEntry>>,
    pub matrix: Option<At<String>>,
}

/// One `allowed` / `denied` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PairEntry {
    pub from: Option<At<String>>,
    pub to: Option<At<String>>,
    pub port: Option<At<u16>>,
    pub protocol: Option<At<String>>,
}

/// A podnet object: its `spec` (the rest of the header is read by the loader).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct WithSpec<S> {
    pub spec: S,
}

/// Like [`WithSpec`] for kinds whose spec may be left out.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WithOptionalSpec<S: Default> {
    pub spec: S,
}

/// Turns `10%` or `0.1` into a probability.
pub(crate) fn loss_value(v: &NumOrStr) -> Result<f64, String> {
    let p = match v {
        NumOrStr::Num(n) => *n,
        NumOrStr::Str(s) => match s.trim().strip_suffix('%') {
            Some(pct) => pct
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| format!("invalid loss {s:?} (expected 0.1 or 10%)"))?,
            None => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("invalid loss {s:?} (expected 0.1 or 10%)"))?,
        },
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("loss {p} is outside 0 to 1"));
    }
    Ok(p)
}
