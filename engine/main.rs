//! The `rb6` command: a thin layer over the rb6 library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
