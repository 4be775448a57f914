//! The server's Prometheus metrics: one `Registry` per application (no
//! globals: two apps in one test process count apart), rendered by
//! `GET /metrics` in the Prometheus text format.
//!
//! Everything here is cheap to call from a hot path (atomic adds, a
//! histogram bucket); the database pool is read only when scraped.
//! Imports nothing of the crate, so every layer may count.

use std::{
    fmt::{self, Write as _},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
        prometheus_text,
    },
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use sea_orm::DatabaseConnection;

/// The `Content-Type` of what `render` writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The kind of a GraphQL operation; `unknown` when the document did not
/// parse or does not name an operation it holds.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Operation {
    Query,
    Mutation,
    Subscription,
    Unknown,
}

impl Operation {
    const KNOWN: [Self; 3] = [Self::Query, Self::Mutation, Self::Subscription];

    fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
            Self::Unknown => "unknown",
        }
    }
}

impl EncodeLabelValue for Operation {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// How a GraphQL request went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Executed without errors.
    Ok,
    /// Executed, with at least one error in the response.
    Error,
    /// Never executed: the document did not parse or validate.
    Rejected,
}

impl Outcome {
    const ALL: [Self; 3] = [Self::Ok, Self::Error, Self::Rejected];

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Rejected => "rejected",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: Operation,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

/// 0.5 ms to ~16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 1 to 4096 events, doubling.
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// The application's metrics. Shared as `Arc<Metrics>` in `AppState`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    websockets: Gauge,
    subscriptions: Gauge,
    events_delivered: Counter,
    events_shared: Counter,
    feed_resyncs: Counter,
    feed_lagged: Counter,
    feed_lag_events: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry; the pool series read `db`'s pool at scrape time.
    pub fn new(db: &DatabaseConnection) -> Self {
        let mut registry = Registry::with_prefix("confab");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "graphql_requests",
            "GraphQL operations by type and outcome (ok, error: executed with errors, rejected: did not parse or validate)",
            requests.clone(),
        );
        let latency: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "graphql_request_duration_seconds",
            "Time to execute a query or mutation, by operation type",
            latency.clone(),
        );
        // Every combination shows from the start (as 0), so rates have a base.
        for operation in Operation::KNOWN {
            for outcome in Outcome::ALL {
                requests.get_or_create_owned(&RequestLabels { operation, outcome });
            }
            if operation != Operation::Subscription {
                latency.get_or_create_owned(&OperationLabels { operation });
            }
        }
        requests.get_or_create_owned(&RequestLabels {
            operation: Operation::Unknown,
            outcome: Outcome::Rejected,
        });
        let websockets = Gauge::default();
        registry.register(
            "websockets_open",
            "Open WebSocket connections on /graphql/ws",
            websockets.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions_live",
            "Subscriptions running on WebSockets",
            subscriptions.clone(),
        );
        let events_delivered = Counter::default();
        registry.register(
            "subscription_events_delivered",
            "Subscription results (next/data frames) written to WebSockets",
            events_delivered.clone(),
        );
        let events_shared = Counter::default();
        registry.register(
            "subscription_events_shared",
            "Subscription results sent from a render shared by identical subscriptions (counted in delivered too)",
            events_shared.clone(),
        );
        let feed_resyncs = Counter::default();
        registry.register(
            "feed_resyncs",
            "Live-feed re-reads of their window after missing events (lag or a dropped LISTEN connection)",
            feed_resyncs.clone(),
        );
        let feed_lagged = Counter::default();
        registry.register(
            "feed_lagged",
            "Live-feed wake-ups that found the feed had fallen behind its event buffer",
            feed_lagged.clone(),
        );
        let feed_lag_events = lag_histogram();
        registry.register(
            "feed_lag_events",
            "Events a lagging live feed skipped, per lagged wake-up",
            feed_lag_events.clone(),
        );
        registry.register_collector(Box::new(PoolCollector { db: db.clone() }));
        Self {
            registry,
            requests,
            latency,
            websockets,
            subscriptions,
            events_delivered,
            events_shared,
            feed_resyncs,
            feed_lagged,
            feed_lag_events,
        }
    }

    /// Counts one GraphQL request; `elapsed` (queries and mutations) goes to the latency histogram.
    pub fn graphql_request(
        &self,
        operation: Operation,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        self.requests
            .get_or_create(&RequestLabels { operation, outcome })
            .inc();
        if let Some(elapsed) = elapsed {
            self.latency
                .get_or_create(&OperationLabels { operation })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Counts an open WebSocket until the guard drops.
    pub fn websocket_opened(&self) -> GaugeGuard {
        GaugeGuard::new(&self.websockets)
    }

    /// Counts a live WebSocket operation until the guard drops.
    pub fn subscription_started(&self) -> GaugeGuard {
        GaugeGuard::new(&self.subscriptions)
    }

    /// One subscription result written to a socket; `shared`: rendered once for its group.
    pub fn event_delivered(&self, shared: bool) {
        self.events_delivered.inc();
        if shared {
            self.events_shared.inc();
        }
    }

    /// A live feed re-reads its window because it may have missed events.
    pub fn feed_resync(&self) {
        self.feed_resyncs.inc();
    }

    /// A live feed fell behind its event buffer and `skipped` events were dropped for it.
    pub fn feed_lagged(&self, skipped: u64) {
        self.feed_lagged.inc();
        self.feed_lag_events.observe(skipped as f64);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Adds one to a gauge while it lives.
#[must_use = "the gauge goes back down when the guard drops"]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The database pool, read at scrape time.
struct PoolCollector {
    db: DatabaseConnection,
}

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

/// Connections open, idle and allowed.
struct PoolState {
    size: u32,
    idle: usize,
    max: u32,
}

impl PoolCollector {
    fn state(&self) -> Option<PoolState> {
        use sea_orm::DatabaseConnectionType as Inner;
        // Matched on the connection itself: a closed one has no backend to ask.
        match &self.db.inner {
            Inner::SqlxPostgresPoolConnection(_) => {
                let pool = self.db.get_postgres_connection_pool();
                Some(PoolState {
                    size: pool.size(),
                    idle: pool.num_idle(),
                    max: pool.options().get_max_connections(),
                })
            }
            Inner::SqlxSqlitePoolConnection(_) => {
                let pool = self.db.get_sqlite_connection_pool();
                Some(PoolState {
                    size: pool.size(),
                    idle: pool.num_idle(),
                    max: pool.options().get_max_connections(),
                })
            }
            _ => None,
        }
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(pool) = self.state() else {
            return Ok(());
        };
        let idle = i64::try_from(pool.idle).unwrap_or(i64::MAX);
        let size = i64::from(pool.size);
        let series = [
            (
                "db_pool_connections_in_use",
                "Database connections checked out of the pool.",
                (size - idle).max(0),
            ),
            (
                "db_pool_connections_idle",
                "Open database connections waiting in the pool.",
                idle,
            ),
            (
                "db_pool_connections",
                "Open database connections (in use + idle).",
                size,
            ),
            (
                "db_pool_connections_max",
                "The pool's connection limit.",
                i64::from(pool.max),
            ),
        ];
        for (name, help, value) in series {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
