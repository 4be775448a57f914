//! The one integration test binary (every extra tests/*.rs relinks everything).
//! Run with `cargo test`; set TEST_DATABASE_URL=postgres://… for PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

mod auth;
mod chat;
mod chat_events;
mod cli;
mod faults;
mod hardening;
mod http_protocol;
mod layers;
mod metrics;
mod migrations;
mod props;
mod schema;
mod shared_renders;
mod social;
mod sockets;
mod subscriptions;
mod unit;
mod ws;
