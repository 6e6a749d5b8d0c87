//! NetworkPolicy objects in scenario files are converted and enforced.

use podnet::{Duration, Outcome};
use podnet_scenario::{build, load_str};

const SEED: &str = include_str!("fixtures/seed.yaml");

const POLICIES: &str = r#"
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-c
  labels: {app: other}
spec:
  nodeName: node-a
  containers:
    - name: curl
      image: curlimages/curl:8.7.1
status:
  podIP: 10.244.0.6
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-clients
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - podSelector:
            matchExpressions:
              - {key: app, operator: In, values: [client]}
      ports:
        - {port: http}
---
apiVersion: podnet.dev/v1alpha1
kind: Traffic
metadata:
  name: other
spec:
  from: pod-c
  to: web:80
  protocol: TCP
  count: 2
  timeout: 2s
  expect: {outcome: denied}
"#;

#[test]
fn network_policies_are_enforced_from_scenarios() {
    let text = format!("{SEED}{POLICIES}");
    let loaded = load_str("policies.yaml", &text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sc = &loaded.scenario;
    assert_eq!(sc.network_policies.len(), 2);
    let (mut cluster, index) = build(sc).unwrap();
    assert_eq!(cluster.network_policies().len(), 2);
    assert!(cluster.run_until_done(Duration::from_secs(30)));
    let allowed = index.records(&cluster, 0);
    assert_eq!(allowed.len(), 10);
    assert!(
        allowed.iter().all(|r| r.outcome == Outcome::Ok),
        "{allowed:?}"
    );
    let denied = index.records(&cluster, 1);
    assert_eq!(denied.len(), 2);
    for r in &denied {
        assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
        let err = r.error.as_deref().unwrap_or("");
        assert!(err.contains("default/default-deny"), "{err}");
    }
}

#[test]
fn bad_network_policies_are_errors() {
    let bad = r#"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
spec:
  podSelector: {}
  ingress:
    - from:
        - ipBlock: {cidr: 10.0.0.0/40}
"#;
    let text = format!("{SEED}{bad}");
    let err = load_str("bad.yaml", &text).unwrap_err().to_string();
    assert!(err.contains("ipBlock.cidr"), "{err}");
}
