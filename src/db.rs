//! Connecting, migrating, and telling the operator which database this is.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

/// How long a request waits for a PostgreSQL connection (opening a new one
/// included) before it fails. A healthy pool hands one out in milliseconds;
/// longer means the database is down or the pool is exhausted, and then
/// failing fast beats a pile-up of waiting requests.
pub const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to `url`. SQLite gets WAL and a single pooled connection, for
/// two reasons:
/// - every write is serialised in-process instead of failing with
///   SQLITE_BUSY when two deferred transactions upgrade at once;
/// - it is what keeps stream positions in commit order on SQLite, which has
///   no row locks: a transaction holds the one connection until it ends, so
///   transactions are serial and a position taken in one commits before the
///   next is taken (on PostgreSQL the room's or user's row lock does this).
///   A larger pool would let a later position commit first.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(dir) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent())
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("creating {}: {e}", dir.display())))?;
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // Waiting for the one in-process connection, never for a network.
        // (SeaORM's `connect_timeout` only sets sqlx's acquire timeout too.)
        opts.acquire_timeout(Duration::from_secs(10))
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
    } else {
        // While the database is unreachable a request fails after
        // PG_ACQUIRE_TIMEOUT with a coded error instead of waiting: sqlx
        // retries a refused connection until the acquire deadline, which
        // also bounds opening a new connection.
        opts.acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .max_connections(20)
            .min_connections(1);
    }
    Database::connect(opts).await
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Applies every pending migration. On PostgreSQL an advisory lock keeps two
/// instances starting at once from migrating over each other.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        const LOCK_KEY: i64 = 0x00c0_0fab;
        let mut conn = db
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(|e| DbErr::Custom(format!("acquiring migration lock connection: {e}")))?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await
            .map_err(|e| DbErr::Custom(format!("taking migration lock: {e}")))?;
        let result = Migrator::up(db, None).await;
        let _ = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await;
        result
    } else {
        Migrator::up(db, None).await
    }
}

/// What the start log says: backend, database name, migration version. Never a password.
#[derive(Debug)]
pub struct Description {
    pub backend: &'static str,
    pub database: String,
    pub migration: String,
}

pub async fn describe(db: &DatabaseConnection, url: &str) -> Result<Description, DbErr> {
    let backend = match db.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    };
    let database = match db.get_database_backend() {
        DbBackend::Postgres => db
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_database() AS name",
            ))
            .await?
            .map(|row| row.try_get::<String>("", "name"))
            .transpose()?
            .unwrap_or_default(),
        _ => sqlite_path(url).unwrap_or(":memory:").to_owned(),
    };
    let migration = Migrator::get_applied_migrations(db)
        .await?
        .last()
        .map(|m| m.name().to_owned())
        .unwrap_or_else(|| "none".to_owned());
    Ok(Description {
        backend,
        database,
        migration,
    })
}

/// The secret called `name` kept in the database, made by `make` and stored
/// by whichever instance asks first: every instance of a deployment on one
/// database gets the same one.
pub async fn shared_secret(
    db: &DatabaseConnection,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
    let table = || Alias::new("server_secrets");
    let insert = Query::insert()
        .into_table(table())
        .columns([
            Alias::new("name"),
            Alias::new("value"),
            Alias::new("created_at"),
        ])
        .values_panic([name.into(), make().into(), Expr::current_timestamp()])
        .on_conflict(
            OnConflict::column(Alias::new("name"))
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    db.execute(&insert).await?;
    let select = Query::select()
        .column(Alias::new("value"))
        .from(table())
        .and_where(Expr::col(Alias::new("name")).eq(name))
        .to_owned();
    let row = db
        .query_one(&select)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("server secret {name}")))?;
    row.try_get::<String>("", "value")
}

/// Ready: the database answers and no migration is pending.
pub async fn ready(db: &DatabaseConnection) -> bool {
    if db.ping().await.is_err() {
        return false;
    }
    matches!(Migrator::get_pending_migrations(db).await, Ok(pending) if pending.is_empty())
}
