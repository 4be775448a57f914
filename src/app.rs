//! The composition root: builds the state, the GraphQL endpoint and the
//! router, and serves them with graceful shutdown. Nothing imports this module.

use std::{
    path::Path,
    sync::{Arc, atomic::AtomicU64},
};

use sea_orm::DbBackend;
use tokio::sync::watch;

use crate::{
    auth::{Keys, LoginLimiter, Passwords, rate::ClientIp, rate::RateLimits, token},
    config::Config,
    db,
    error::BoxError,
    graphql::Endpoint,
    metrics::Metrics,
    realtime::{Broker, MemoryBroker, PgBroker},
    service::{room_stream::LiveRooms, typing::Typing},
    state::AppState,
};

/// A built application: state, schema, and the switch that shuts it down.
#[derive(Clone)]
pub struct App {
    pub state: AppState,
    pub endpoint: Endpoint,
    shutdown: Arc<watch::Sender<bool>>,
}

impl App {
    /// Connects, migrates, and assembles everything `serve` needs.
    pub async fn build(config: Config) -> Result<Self, BoxError> {
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db).await?;
        let described = db::describe(&db, &config.database_url).await?;
        tracing::info!(
            backend = described.backend,
            database = %described.database,
            migration = %described.migration,
            "database ready"
        );
        let secret = match (&config.jwt_secret, db.get_database_backend()) {
            (Some(secret), _) => secret.clone(),
            // Instances behind one load balancer share the database, and so the key.
            (None, DbBackend::Postgres) => {
                let secret = db::shared_secret(&db, "jwt_secret", token::random_secret).await?;
                tracing::warn!("JWT_SECRET not set: using the secret kept in the database");
                secret
            }
            (None, _) => load_or_create_secret(&config.data_dir)?,
        };
        let keys = Keys::new(
            secret.as_bytes(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        )?;
        let passwords = Passwords::new(config.bcrypt_cost).await?;
        let broker: Arc<dyn Broker> = match db.get_database_backend() {
            DbBackend::Postgres => {
                Arc::new(PgBroker::start(db.get_postgres_connection_pool().clone()).await?)
            }
            _ => Arc::new(MemoryBroker::default()),
        };
        if !config.rate_limits {
            tracing::warn!(
                "rate limits and socket caps are OFF (--rate-limits off): for load tests on a trusted network only"
            );
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        let limits = &config.limits;
        let metrics = Arc::new(Metrics::new(&db));
        let state = AppState {
            db,
            typing: Typing::new(broker.clone()),
            broker,
            keys,
            passwords,
            // `--rate-limits off` switches the per-login limit off too.
            login_limiter: LoginLimiter::new(
                if config.rate_limits {
                    limits.login_max_failures
                } else {
                    u32::MAX
                },
                limits.login_window,
            ),
            rate_limits: Arc::new(RateLimits::new(config.rate_limits, limits)),
            ws_connections: Arc::new(tokio::sync::Semaphore::new(limits.ws_connections)),
            config: Arc::new(config),
            live_rooms: LiveRooms::new(metrics.clone()),
            shutdown,
            uncoded_errors: Arc::new(AtomicU64::new(0)),
            metrics,
        };
        Ok(Self {
            endpoint: Endpoint::new(state.clone()),
            state,
            shutdown: Arc::new(shutdown_tx),
        })
    }

    pub fn router(&self) -> axum::Router {
        crate::http::router(self.endpoint.clone())
    }

    /// Tells live WebSockets to close; HTTP requests in flight finish.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Serves on `listener` until `signal` resolves, then drains: live
    /// WebSockets are told to close (1001), HTTP requests in flight finish.
    ///
    /// hyper-util's server builder rather than `axum::serve`, which installs
    /// no header-read timer: a client that dribbles its headers a byte at a
    /// time, or holds a keep-alive connection idle, is cut off after
    /// `Limits::header_read_timeout`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use hyper_util::{
            rt::{TokioExecutor, TokioIo, TokioTimer},
            server::{conn::auto::Builder, graceful::GracefulShutdown},
        };
        let router = self.router();
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.state.config.limits.header_read_timeout);
        let graceful = GracefulShutdown::new();
        tokio::pin!(signal);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%err, "could not set TCP_NODELAY");
            }
            // Each request learns its client's address (rate limits, socket caps).
            let router = router.clone();
            let trusted = self.state.config.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
                let forwarded = request
                    .headers()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                let ip = ClientIp::of(peer.ip(), forwarded, &trusted.trusted_proxies);
                request.extensions_mut().insert(ip);
                tower_service::Service::call(&mut router.clone(), request)
            });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
            });
        }
        tracing::info!("shutting down");
        self.begin_shutdown();
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// The JWT secret kept in the data directory (mode 0600), made on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String, BoxError> {
    let path = data_dir.join("jwt_secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_owned();
        if !secret.is_empty() {
            tracing::warn!(path = %path.display(), "JWT_SECRET not set: using the secret kept in the data directory");
            return Ok(secret);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = token::random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET not set: generated a random secret and kept it in the data directory"
    );
    Ok(secret)
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed before this
/// returns, so a signal that comes right after start-up is not missed (and
/// does not kill the process with the default action).
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static>
{
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %crate::error::ErrorChain(&err), "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        })
    }
}
