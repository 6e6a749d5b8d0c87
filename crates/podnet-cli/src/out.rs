//! Standard output that ends quietly when its reader goes away.
//!
//! `podnet run --json | head -1` closes the pipe while podnet still writes; Rust ignores
//! SIGPIPE, so `print!` would panic. `out!` and `outln!` write through [`write()`], which
//! exits at once with 141 (128 + SIGPIPE, what the shell reports for a command killed by a
//! broken pipe) and prints nothing more, and turns any other write error into a message and
//! exit code 2.

use std::io::{ErrorKind, Write};

/// Writes `args` to standard output (see the module).
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("podnet: writing to standard output: {e}");
        std::process::exit(2);
    }
}

/// `print!` that ends quietly on a closed pipe.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::write(format_args!($($t)*)) };
}

/// `println!` that ends quietly on a closed pipe.
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($t)*))) };
}
