//! The repository's example scenarios, bundled at build time (see `build.rs`).

use crate::api::Example;

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The first sentence of a scenario's leading `#` comment (its title), else its name.
pub fn title(name: &str, yaml: &str) -> String {
    let text: Vec<&str> = yaml
        .lines()
        .map_while(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect();
    let text = text.join(" ");
    let mut depth = 0i32;
    let mut end = text.len();
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'.' | b':' | b';' if depth <= 0 && bytes.get(i + 1).is_none_or(|n| *n == b' ') => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let title = text[..end].trim();
    if title.is_empty() {
        name.to_string()
    } else {
        title.to_string()
    }
}

/// Every bundled example.
pub fn examples() -> Vec<Example> {
    EXAMPLES
        .iter()
        .map(|(name, yaml)| Example {
            name: name.to_string(),
            title: title(name, yaml),
            yaml: yaml.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_file_is_bundled() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_str().unwrap().to_string();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        on_disk.sort();
        let bundled: Vec<(String, String)> =
            examples().into_iter().map(|e| (e.name, e.yaml)).collect();
        assert!(on_disk.len() >= 10);
        assert_eq!(bundled, on_disk);
    }

    #[test]
    fn titles_are_first_sentences() {
        let t: Vec<String> = examples().iter().map(|e| e.title.clone()).collect();
        assert!(
            t.contains(&String::from("The seed document, exactly")),
            "{t:?}"
        );
        assert!(t.contains(&String::from("Cluster DNS")), "{t:?}");
        assert_eq!(title("x", "kind: Pod"), "x");
    }
}
