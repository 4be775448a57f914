//! The `confab` binary: parse the command line, start logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use confab::{
    App,
    cli::{AdminAction, Cli, Command, MigrateAction},
    config::LogFormat,
    db,
    error::{BoxError, ErrorChain},
    service::users,
};
use migration::{Migrator, MigratorTrait};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.opts.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %ErrorChain(err.as_ref()), "confab failed");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: coloured only when it is a terminal (never escape codes in
/// a file or a pipe), or one JSON object per line for log shippers.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let command = cli.command.unwrap_or(Command::Serve);
    let config = cli.opts.into_config();
    match command {
        Command::Serve => {
            let bind_addr = config.bind_addr;
            let signal = confab::app::shutdown_signal()?;
            let app = App::build(config).await?;
            let listener = tokio::net::TcpListener::bind(bind_addr).await?;
            tracing::info!(address = %listener.local_addr()?, "listening; GraphiQL at http://{}/", listener.local_addr()?);
            app.serve(listener, signal).await?;
        }
        Command::Schema => {
            use std::io::Write;
            std::io::stdout().write_all(confab::graphql::sdl().as_bytes())?;
        }
        Command::Migrate { action } => {
            let conn = db::connect(&config.database_url).await?;
            match action {
                MigrateAction::Up => db::migrate(&conn).await?,
                MigrateAction::Down { all: true, .. } => Migrator::reset(&conn).await?,
                MigrateAction::Down { steps, .. } => Migrator::down(&conn, Some(steps)).await?,
                MigrateAction::Status => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    for m in Migrator::get_migration_with_status(&conn).await? {
                        writeln!(out, "{}\t{}", m.status(), m.name())?;
                    }
                }
            }
        }
        Command::Admin { action } => {
            let conn = db::connect(&config.database_url).await?;
            db::migrate(&conn).await?;
            let (username, official) = match action {
                AdminAction::Verify { username } => (username, true),
                AdminAction::Unverify { username } => (username, false),
            };
            let user = users::set_official(&conn, &username, official).await?;
            tracing::info!(username = %user.username, is_official = user.is_official, "updated");
        }
    }
    Ok(())
}
