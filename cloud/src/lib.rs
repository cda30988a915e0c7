//! gridtwin's cloud service: subscribes to the gateways' event topics on an MQTT broker, decodes each batch with
//! the gateway's own codec ([`gridtwin_firmware::gateway::batch`]), stores every reading (generated and
//! received timestamps) in SQLite or PostgreSQL ([`store`]), and serves the live dashboard and the per-user JSON
//! API ([`web`]). `gridtwin cloud` runs it against a broker; `gridtwin serve` shows a finished run's output
//! directory with the same UI and no broker.
//!
//! Delivery: the subscription is QoS 1 in a persistent session (a fixed client id, clean session off), and a
//! message is acknowledged only after its readings are committed, so a broker reconnect or a killed and
//! restarted service gets unacknowledged batches again; inserts are idempotent, so nothing is stored twice.
//! Malformed payloads are counted and logged, and acknowledged (a redelivery would not mend them).

pub mod auth;
pub mod live;
pub mod runfiles;
pub mod store;
pub mod tls;
pub mod web;

use live::{Live, Update};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Settings of `gridtwin cloud`.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT client id: the persistent session's name at the broker.
    pub client_id: String,
    /// `sqlite:FILE` or `postgres://...`.
    pub db: String,
    pub http: SocketAddr,
    /// A run's output directory whose mesh, fault and market tables the dashboard also shows.
    pub run_dir: Option<std::path::PathBuf>,
    /// MQTT over TLS (`mqtts://`): the CA to trust and an optional client certificate. None: plain TCP.
    pub tls: Option<tls::TlsFiles>,
}

/// Topic filter of the gateways' batches.
pub const EVENTS_FILTER: &str = "grid/+/events";
/// Largest MQTT packet accepted (a full batch of 65,535 readings fits).
pub const MAX_PACKET_BYTES: usize = 4 << 20;
/// Longest pause between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Rebuilds the live state from what the database already holds (after a restart).
async fn rebuild(store: &store::StoreHandle, live: &Mutex<Live>) -> Result<u64, String> {
    let mut since = 0u64;
    let mut n = 0u64;
    const PAGE: usize = 50_000;
    loop {
        let rows = store.call(move |s| s.series(None, since, PAGE)).await.map_err(|e| e.to_string())?;
        let full = rows.len() == PAGE;
        let last = rows.last().map(|r| r.generated_ms);
        // Rows at the page's last millisecond come again on the next page: apply them then.
        let take: Vec<_> = match (full, last) {
            (true, Some(t)) if t > since => rows.into_iter().filter(|r| r.generated_ms < t).collect(),
            _ => rows,
        };
        n += take.len() as u64;
        live.lock().unwrap_or_else(|p| p.into_inner()).apply(&take);
        match (full, last) {
            (true, Some(t)) if t > since => since = t,
            _ => return Ok(n),
        }
    }
}

/// Most readings one transaction takes when several messages wait to be stored.
pub const MAX_READINGS_PER_TX: usize = 100_000;
/// Decoded messages waiting for the store (the broker's in-flight window is smaller).
const PIPELINE: usize = 256;

/// One received message on its way to the store; it is acknowledged after the commit.
struct Received {
    publish: rumqttc::Publish,
    /// The decoded readings, or None for a malformed payload (acknowledged in its turn, never stored).
    readings: Option<Vec<store::Reading>>,
}

/// Stores received messages: everything waiting when the store is free goes in one transaction (up to
/// [`MAX_READINGS_PER_TX`] readings), then each message is acknowledged, in the order received, and the live
/// state and the browsers are updated. Returns on a database error.
async fn write_batches(
    store: store::StoreHandle,
    live: Arc<Mutex<Live>>,
    updates: broadcast::Sender<Arc<Update>>,
    client: rumqttc::AsyncClient,
    mut rx: tokio::sync::mpsc::Receiver<Received>,
) -> Result<(), String> {
    while let Some(first) = rx.recv().await {
        let mut msgs = vec![first];
        let mut n: usize = msgs[0].readings.as_ref().map_or(0, Vec::len);
        while n < MAX_READINGS_PER_TX {
            match rx.try_recv() {
                Ok(m) => {
                    n += m.readings.as_ref().map_or(0, Vec::len);
                    msgs.push(m);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(n);
        let mut malformed = 0u64;
        for m in &mut msgs {
            match m.readings.take() {
                Some(rs) if all.is_empty() => all = rs,
                Some(mut rs) => all.append(&mut rs),
                None => malformed += 1,
            }
        }
        let (new, all) = if all.is_empty() {
            (0, all)
        } else {
            store.call(move |s| s.insert(&all).map(|n| (n, all))).await.map_err(|e| format!("database: {e}"))?
        };
        let up = {
            let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
            l.counters.messages += msgs.len() as u64;
            l.counters.malformed += malformed;
            l.counters.readings_received += all.len() as u64;
            l.counters.readings_inserted += new as u64;
            l.counters.duplicates_ignored += (all.len() - new) as u64;
            l.apply(&all)
        };
        if !all.is_empty() {
            let _ = updates.send(Arc::new(up));
        }
        for m in &msgs {
            client.ack(&m.publish).await.map_err(|e| format!("ack: {e}"))?;
        }
    }
    Ok(())
}

async fn ingest(
    opts: &CloudOptions,
    store: store::StoreHandle,
    live: Arc<Mutex<Live>>,
    updates: broadcast::Sender<Arc<Update>>,
    client: rumqttc::AsyncClient,
    mut ev: rumqttc::EventLoop,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), String> {
    use rumqttc::{ConnectionError, Event, Packet, QoS};
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    let (to_store, rx) = tokio::sync::mpsc::channel::<Received>(PIPELINE);
    let writer = tokio::spawn(write_batches(store, live.clone(), updates, client.clone(), rx));
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                live.lock().unwrap_or_else(|p| p.into_inner()).counters.connects += 1;
                tracing::info!(session_present = ack.session_present, "connected to the broker");
                client.subscribe(EVENTS_FILTER, QoS::AtLeastOnce).await.map_err(|e| format!("subscribe: {e}"))?;
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let readings = match live::decode_event(&p.topic, &p.payload, wall_ms()) {
                    Ok(rs) => Some(rs),
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "malformed message ignored: {e}");
                        None
                    }
                };
                if to_store.send(Received { publish: p, readings }).await.is_err() {
                    return Err(match writer.await {
                        Ok(Err(e)) => e,
                        Ok(Ok(())) => "the store writer stopped".into(),
                        Err(e) => format!("the store writer failed: {e}"),
                    });
                }
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => {
                let why = match code {
                    rumqttc::ConnectReturnCode::BadUserNamePassword => {
                        "bad user name or password; check --username and --password"
                    }
                    rumqttc::ConnectReturnCode::NotAuthorized => {
                        "not authorised (mosquitto's answer to a wrong password too); check --username and --password"
                    }
                    _ => "refused",
                };
                return Err(format!(
                    "the broker at {}:{} refused the connection for user `{}`: {why} ({code:?})",
                    opts.host,
                    opts.port,
                    opts.username.as_deref().unwrap_or("")
                ));
            }
            Err(e) => {
                tracing::warn!("broker connection: {e}; reconnecting in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn serve_http(app: Arc<web::App>, addr: SocketAddr) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!("dashboard on http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    axum::serve(listener, web::router(app)).await.map_err(|e| format!("HTTP server: {e}"))
}

/// Runs the cloud service until the broker refuses it, the database fails or the process is stopped.
pub fn run_cloud(opts: CloudOptions, users: auth::Users) -> Result<(), String> {
    let store = store::StoreHandle::open(&opts.db).map_err(|e| e.to_string())?;
    let run = match &opts.run_dir {
        Some(d) => runfiles::RunFiles::read(d)?,
        None => runfiles::RunFiles::default(),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let live = Arc::new(Mutex::new(Live::default()));
        let n = rebuild(&store, &live).await?;
        if n > 0 {
            tracing::info!(readings = n, "live state rebuilt from the database");
        }
        let mut mo = rumqttc::MqttOptions::new(&opts.client_id, &opts.host, opts.port);
        mo.set_clean_session(false);
        mo.set_keep_alive(Duration::from_secs(30));
        mo.set_manual_acks(true);
        mo.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some(u) = &opts.username {
            mo.set_credentials(u, opts.password.as_deref().unwrap_or(""));
        }
        if let Some(t) = &opts.tls {
            let cfg = tls::client_config(t)?;
            mo.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
        }
        let (client, ev) = rumqttc::AsyncClient::new(mo, 1024);
        let (updates, _) = broadcast::channel(1024);
        let app = Arc::new(web::App {
            store: store.clone(),
            live: live.clone(),
            users,
            sessions: auth::Sessions::default(),
            updates: updates.clone(),
            mqtt: Some(client.clone()),
            run,
            mode: "live",
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let ing = ingest(&opts, store, live, updates, client, ev, ready_tx);
        tokio::pin!(ing);
        // The dashboard starts once the broker has accepted us, so wrong credentials stop before serving.
        tokio::select! {
            r = &mut ing => return r,
            _ = ready_rx => {}
        }
        eprintln!(
            "cloud: subscribed to {EVENTS_FILTER} at {}:{}; database {}; dashboard on http://{}",
            opts.host, opts.port, opts.db, opts.http
        );
        tokio::select! {
            r = &mut ing => r,
            r = serve_http(app, opts.http) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// Serves a finished run's output directory (`readings.csv` loaded into an in-memory SQLite database).
pub fn serve_dir(dir: &std::path::Path, http: SocketAddr, users: auth::Users) -> Result<(), String> {
    let run = runfiles::RunFiles::read(dir)?;
    let gateway = run
        .summary
        .as_ref()
        .and_then(|s| s.get("scenario"))
        .and_then(|s| s.as_str())
        .unwrap_or("run")
        .replace(['/', '+', '#', ' '], "_");
    let readings = runfiles::read_readings(&dir.join("readings.csv"), &gateway)?;
    let store = store::StoreHandle::open("sqlite::memory:").map_err(|e| e.to_string())?;
    let rt = runtime()?;
    rt.block_on(async move {
        let rs = readings.clone();
        let n = store.call(move |s| s.insert(&rs)).await.map_err(|e| e.to_string())?;
        let mut l = Live::default();
        l.counters.readings_received = readings.len() as u64;
        l.counters.readings_inserted = n as u64;
        l.apply(&readings);
        let (updates, _) = broadcast::channel(16);
        let app = Arc::new(web::App {
            store,
            live: Arc::new(Mutex::new(l)),
            users,
            sessions: auth::Sessions::default(),
            updates,
            mqtt: None,
            run,
            mode: "serve",
        });
        eprintln!("serve: {} readings from {}; dashboard on http://{http}", n, dir.display());
        tokio::select! {
            r = serve_http(app, http) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
