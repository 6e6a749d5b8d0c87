//! The bad-input corpus: every file under `tests/bad/` must fail to load (or to build) with
//! `file:LINE:COL: reason`, as its first line announces (`# expect: LINE[:COL]: reason`).

use std::path::Path;

fn load_and_build(path: &str, text: &str) -> Result<(), podnet_scenario::Error> {
    let loaded = podnet_scenario::load_str(path, text)?;
    podnet_scenario::build(&loaded.scenario)?;
    Ok(())
}

#[test]
fn every_bad_file_fails_with_its_line_and_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("bad/{}", path.file_name().unwrap().to_string_lossy());
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: first line must be `# expect: LINE[:COL]: reason`"));
        let (place, reason) = expect
            .split_once(": ")
            .unwrap_or((expect.trim_end_matches(':'), ""));
        let want_prefix = format!("{name}:{place}:");
        checked += 1;
        match load_and_build(&name, &text) {
            Ok(()) => failures.push(format!("{name}: loaded without error")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.starts_with(&want_prefix) || !msg.contains(reason) {
                    failures.push(format!(
                        "{name}: want `{want_prefix} ..{reason}..`, got `{msg}`"
                    ));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} bad files");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
