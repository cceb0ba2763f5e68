//! The `socv` binary: parse, set up diagnostics, run, exit with the documented code.

use clap::Parser;

fn main() {
    let cli = socv::cli::Cli::parse();
    socv::init_tracing();
    if let Err(err) = socv::run(cli) {
        eprintln!("socv: error: {err}");
        std::process::exit(err.exit_code());
    }
}
