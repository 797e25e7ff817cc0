//! The `sgmrl` command-line tool. Errors are printed as one line (`error: …`) and the
//! process exits with 2 for a command-line usage error, 1 for any other failure.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sgmrl_host::cli::{Cli, clap_one_line, run};
use sgmrl_host::config::one_line;

fn main() -> ExitCode {
    sgmrl_host::memory::keep_freed_memory();
    // A panic is a bug, not an input error; still report it on one line.
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: internal error (please report): {}",
            one_line(&info.to_string())
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let text = e.to_string();
                    let usage = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Usage: "))
                        .unwrap_or("sgmrl <COMMAND>");
                    eprintln!("error: a subcommand is required: {usage} (see --help)");
                    ExitCode::from(2)
                }
                _ => {
                    eprintln!("error: {}", clap_one_line(&e));
                    ExitCode::from(2)
                }
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
