//! Confab: a GraphQL API server for a chat and social app.
//!
//! Dependencies point one way: `http`/`ws` → `graphql` → `service` → `entity`;
//! `service` → `realtime`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod realtime;
pub mod service;
pub mod ws;

pub use app::{App, AppState};
pub use config::Config;
