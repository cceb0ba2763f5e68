//! The `socv` binary: parse, set up diagnostics, run, exit with the documented code.

use clap::Parser;

fn main() {
    let cli = socv::cli::Cli::parse();
    socv::init_tracing();
    match socv::run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("socv: error: {err}");
            std::process::exit(err.exit_code());
        }
    }
}
