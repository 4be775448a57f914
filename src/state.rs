//! What every request may need, built once by `app`. Imports nothing above it.

use std::sync::{Arc, atomic::AtomicU64};

use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, watch};

use crate::{
    auth::{Keys, LoginLimiter, Passwords, rate::RateLimits},
    config::Config,
    metrics::Metrics,
    realtime::Broker,
    service::{room_stream::LiveRooms, typing::Typing},
};

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    pub keys: Keys,
    pub passwords: Passwords,
    pub login_limiter: LoginLimiter,
    /// Request rates per client IP and per user, socket caps.
    pub rate_limits: Arc<RateLimits>,
    /// One permit per open WebSocket.
    pub ws_connections: Arc<Semaphore>,
    pub config: Arc<Config>,
    /// Typing indicators: announced to every instance, throttled per user and place.
    pub typing: Typing,
    /// This instance's live rooms: one reader per room, shared by its subscribers.
    pub live_rooms: LiveRooms,
    /// Flips to true when the server is shutting down; live sockets close.
    pub shutdown: watch::Receiver<bool>,
    /// Field errors that reached a response without `extensions.code`: each
    /// one is a bug in a resolver (logged where it happens). Tests assert zero.
    pub uncoded_errors: Arc<AtomicU64>,
    /// This app's Prometheus registry and series (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}
