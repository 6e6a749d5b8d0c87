//! The upstream Kubernetes NetworkPolicy e2e cases (tests/netpol, see its README): every case
//! runs on the suite's model (`podnet run tests/netpol/cluster.yaml tests/netpol/CASE.yaml`)
//! and each of its ConnectivityExpectations holds.

mod common;

use common::{podnet, root, EditedCopy};

/// The case files of tests/netpol (all but cluster.yaml). A deleted or added file changes the
/// count: update it with tests/netpol/README.md.
const CASES: usize = 46;

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/netpol"))
        .expect("tests/netpol")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "cluster.yaml")
        .collect();
    names.sort();
    names
}

/// The names of the ConnectivityExpectation objects of a case file.
fn expectations(text: &str) -> Vec<String> {
    text.split("\n---")
        .filter(|doc| {
            doc.lines()
                .any(|l| l.trim() == "kind: ConnectivityExpectation")
        })
        .map(|doc| {
            let meta = doc
                .lines()
                .find(|l| l.starts_with("metadata:"))
                .expect("metadata line");
            let name = meta
                .split("name:")
                .nth(1)
                .expect("metadata.name")
                .trim()
                .trim_end_matches('}')
                .trim();
            name.to_string()
        })
        .collect()
}

#[test]
fn every_upstream_case_holds() {
    let names = cases();
    assert_eq!(names.len(), CASES, "case files of tests/netpol: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let path = format!("tests/netpol/{name}");
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        assert!(
            text.lines().next().is_some_and(|l| l.starts_with("# ")),
            "{path}: starts with a comment naming the case"
        );
        let wanted = expectations(&text);
        assert!(
            !wanted.is_empty(),
            "{path}: holds no ConnectivityExpectation"
        );
        let (code, out, err) = podnet(&["run", "tests/netpol/cluster.yaml", &path, "-q"]);
        if code != 0 {
            failures.push(format!("{path}: exit {code}\n{err}"));
            continue;
        }
        for e in &wanted {
            let head = format!("connectivity {e}: ");
            match out.lines().find(|l| l.starts_with(&head)) {
                Some(l) if l.ends_with("all as expected") => {}
                Some(l) => failures.push(format!("{path}: {l}")),
                None => failures.push(format!("{path}: no report of {e}\n{out}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_wrong_cell_in_a_case_fails_it() {
    let wrong = EditedCopy::new(
        "netpol-upstream",
        "tests/netpol/default-deny-ingress.yaml",
        "    y/a     X    X    -    -    .",
        "    y/a     .    X    -    -    .",
    );
    let (code, _, err) = podnet(&["run", "tests/netpol/cluster.yaml", wrong.path(), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ConnectivityExpectation default-deny-ingress-tcp-80: 1 of 12 cells differ"),
        "{err}"
    );
}
