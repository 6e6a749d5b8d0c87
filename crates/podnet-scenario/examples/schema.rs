//! Prints a JSON Schema of `podnet_scenario::schema` (`report.schema.json` or
//! `scenario.schema.json`), as `cargo xtask schema` writes it into `book/src/schema/`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    match podnet_scenario::schema::file_text(&name) {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "usage: schema NAME, NAME one of {}",
                podnet_scenario::schema::FILES.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
