//! Confab: a GraphQL API server for a chat and social app.
//!
//! Dependencies point one way (a test in `tests/api/layers.rs` holds them to it):
//!
//! ```text
//! main → app → http → ws → graphql → state → service → {realtime, auth} → error, config, metrics, entity
//! ```
//!
//! `app` is the composition root and nothing imports it; `state` imports
//! nothing above it; `error` knows nothing of GraphQL (`graphql::error` maps it).

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod realtime;
pub mod service;
pub mod state;
pub mod ws;

pub use app::App;
pub use config::Config;
pub use state::AppState;
