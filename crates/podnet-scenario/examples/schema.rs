//! Prints a JSON Schema of `podnet_scenario::schema` (`report.schema.json` or
//! `scenario.schema.json`), as `cargo xtask schema` writes it into `book/src/schema/`; with no
//! argument, the names of the files, one per line.

use std::process::ExitCode;

use podnet_scenario::schema::{file_text, FILES};

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        for f in FILES {
            println!("{f}");
        }
        return ExitCode::SUCCESS;
    };
    match file_text(&name) {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: schema [NAME], NAME one of {}", FILES.join(", "));
            ExitCode::from(2)
        }
    }
}
