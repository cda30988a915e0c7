//! `gridtwin cloud --broker mqtt://HOST:PORT|mqtts://HOST:PORT [--ca FILE] --username U --password P
//! [--db sqlite:FILE | --db postgres://...]
//! [--http ADDR]`: the cloud service (see the `gridtwin-cloud` crate); `gridtwin serve OUT_DIR`: the same
//! dashboard over a finished run's output directory, without a broker.

use super::CliError;
use crate::bridge::parse_broker_url;
use clap::Args;
use std::path::PathBuf;

/// Who may log in: `--users FILE` (hashed passwords) and/or `--user NAME:GROUP:PASSWORD[:lmu=N][:account=X]`.
#[derive(Args, Debug, Clone)]
pub struct UserArgs {
    /// Users file: `NAME GROUP ARGON2_HASH [lmu=N] [account=NAME]` per line (groups: operator, customer, producer).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// A user given inline (hashed at start-up): NAME:GROUP:PASSWORD[:lmu=N][:account=NAME]. Repeatable.
    #[arg(long = "user")]
    pub user: Vec<String>,
}

/// Arguments of `gridtwin cloud`.
#[derive(Args, Debug)]
pub struct CloudArgs {
    /// The broker: mqtt://HOST:PORT, or mqtts://HOST:PORT (over TLS, with --ca).
    #[arg(long, required_unless_present = "print_hash")]
    pub broker: Option<String>,
    #[command(flatten)]
    pub tls: super::bridge::TlsArgs,
    /// MQTT user name.
    #[arg(long)]
    pub username: Option<String>,
    /// MQTT password.
    #[arg(long)]
    pub password: Option<String>,
    /// Database: sqlite:FILE or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(long, default_value = "sqlite:cloud.db")]
    pub db: String,
    /// Dashboard and API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// MQTT client id (the persistent session's name at the broker).
    #[arg(long, default_value = "gridtwin-cloud")]
    pub client_id: String,
    /// A run's output directory whose mesh, fault and market tables the dashboard also shows.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub users: UserArgs,
    /// Print the Argon2id hash of this password (for a users file) and exit.
    #[arg(long)]
    pub print_hash: Option<String>,
}

/// Arguments of `gridtwin serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A run's output directory (summary.json, readings.csv, ...).
    pub dir: PathBuf,
    /// Dashboard and API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    #[command(flatten)]
    pub users: UserArgs,
}

fn users(a: &UserArgs) -> Result<gridtwin_cloud::auth::Users, String> {
    let mut u = gridtwin_cloud::auth::Users::new();
    if let Some(f) = &a.users {
        let text = std::fs::read_to_string(f).map_err(|e| format!("--users {}: {e}", f.display()))?;
        u.add_file(&f.display().to_string(), &text)?;
    }
    for s in &a.user {
        u.add_spec(s)?;
    }
    if u.is_empty() {
        tracing::warn!("no users given (--users FILE or --user NAME:GROUP:PASSWORD): nobody can log in");
    }
    Ok(u)
}

fn addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| format!("--http `{s}`: expected an address such as 127.0.0.1:8080"))
}

/// Runs `gridtwin cloud`.
pub fn run_cloud(a: &CloudArgs) -> Result<(), CliError> {
    if let Some(p) = &a.print_hash {
        println!("{}", gridtwin_cloud::auth::hash_password(p)?);
        return Ok(());
    }
    let broker = parse_broker_url(a.broker.as_deref().unwrap_or("")).map_err(|e| format!("--broker: {e}"))?;
    let tls = crate::bridge::tls_files(
        &broker,
        a.tls.ca.as_deref(),
        a.tls.client_cert.as_deref(),
        a.tls.client_key.as_deref(),
    )
    .map_err(CliError::usage)?;
    let opts = gridtwin_cloud::CloudOptions {
        host: broker.host,
        port: broker.port,
        username: a.username.clone(),
        password: a.password.clone(),
        client_id: a.client_id.clone(),
        db: a.db.clone(),
        http: addr(&a.http)?,
        run_dir: a.run_dir.clone(),
        tls,
    };
    gridtwin_cloud::run_cloud(opts, users(&a.users)?).map_err(|e| CliError::failed(format!("cloud: {e}")))
}

/// Runs `gridtwin serve`.
pub fn run_serve(a: &ServeArgs) -> Result<(), CliError> {
    gridtwin_cloud::serve_dir(&a.dir, addr(&a.http)?, users(&a.users)?)
        .map_err(|e| CliError::failed(format!("serve: {e}")))
}
