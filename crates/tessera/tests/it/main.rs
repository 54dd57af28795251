//! Tessera's integration tests: one binary, every test against a real server on port 0 with
//! its own fresh database — a SQLite file, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` is set (`scripts/test` runs the whole binary both ways).

#![allow(clippy::unwrap_used, reason = "a test that cannot go on should stop loudly")]

mod helpers;

mod activity;
mod auth;
mod browser;
mod cli;
mod clients;
mod console;
mod contract_bird;
mod contract_jitsudo;
mod contract_replyke;
mod contract_stack_auth;
mod contract_zenml;
mod deletion;
mod deployment;
mod docs;
mod email;
mod federation;
mod fields;
mod hook;
mod isolation;
mod me;
mod oauth;
mod oidc;
mod ops;
mod passkeys;
mod reliability;
mod secrets;
mod server_api;
mod smtp;
mod validation;
mod webhook_outages;
mod webhooks;
