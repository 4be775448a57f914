//! The one integration test binary (every extra tests/*.rs relinks everything).
//! Run with `cargo test`; set TEST_DATABASE_URL=postgres://… for PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod chat;
mod http_protocol;
mod migrations;
mod schema;
mod subscriptions;
mod unit;
mod ws;
