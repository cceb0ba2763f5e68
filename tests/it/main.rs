//! socv's integration tests, one binary (`cargo test --test it`): one module per area, and
//! `support`, the simulated lab they share. Real servers (telnetd, ser2net, Redis, Prefect, TLS)
//! come from the test kit (`socv-testkit`, tests/kit); the simulated lab stays here because it
//! is socv's own `socv::sim`.
//!
//! One test: `cargo test --test it -- sim::the_written_boards_yaml_loads`; one area:
//! `cargo test --test it -- telnet_real::`.

mod support;

mod batch;
mod cli_board;
mod cli_leases;
mod generated_files;
mod history;
mod history_prefect;
mod power;
mod run;
mod sim;
mod telnet_real;
mod tls;
