//! The `tessera` binary's library half: configuration, wiring, background jobs and the CLI.
//! Integration tests start servers through `server::start`, exactly as `tessera serve` does.

pub mod cli;
pub mod config;
pub mod server;
