//! The HTTP side: the dashboard's static files (embedded in the binary, no CDN), the JSON API under `/api/`,
//! the live push (`/api/stream`, server-sent events read with `fetch` so the bearer token travels in a header)
//! and operator commands (`POST /api/command`, published with the gateway's command codec).
//!
//! Every `/api/` route but `POST /api/login` needs `Authorization: Bearer TOKEN` (401 without a live token);
//! a user asking for another user's LMU, wallet or plants, or a non-operator asking for operator data or
//! sending a command, gets 403.

use crate::auth::{Group, Sessions, User, Users};
use crate::live::{Live, Update};
use crate::runfiles::RunFiles;
use crate::store::StoreHandle;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gridtwin_firmware::gateway::command::{Action, Command, MAX_REPORT_EVERY_S};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Most readings one `/api/readings` answer holds.
pub const MAX_READINGS_PER_REQUEST: usize = 20_000;

/// Shared service state.
pub struct App {
    pub store: StoreHandle,
    pub live: Arc<Mutex<Live>>,
    pub users: Users,
    pub sessions: Sessions,
    pub updates: broadcast::Sender<Arc<Update>>,
    /// The broker connection for commands (None in `serve` mode).
    pub mqtt: Option<rumqttc::AsyncClient>,
    pub run: RunFiles,
    /// "live" or "serve".
    pub mode: &'static str,
}

/// An API error: status and message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn unauthorized() -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, "log in first (POST /api/login) and send Authorization: Bearer TOKEN".into())
}

fn forbidden(what: &str) -> ApiError {
    ApiError(StatusCode::FORBIDDEN, format!("this user may not {what}"))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

fn user(app: &App, h: &HeaderMap) -> Result<User, ApiError> {
    let token = bearer(h).ok_or_else(unauthorized)?;
    let name = app.sessions.user(token).ok_or_else(unauthorized)?;
    app.users.get(&name).cloned().ok_or_else(unauthorized)
}

fn operator(app: &App, h: &HeaderMap, what: &str) -> Result<User, ApiError> {
    let u = user(app, h)?;
    if u.group != Group::Operator {
        return Err(forbidden(what));
    }
    Ok(u)
}

fn live(app: &App) -> std::sync::MutexGuard<'_, Live> {
    app.live.lock().unwrap_or_else(|p| p.into_inner())
}

type Shared = State<Arc<App>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The router.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { static_file(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/app.js", get(|| async { static_file(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/app.css", get(|| async { static_file(APP_CSS, "text/css; charset=utf-8") }))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api", get(index))
        .route("/api/", get(index))
        .route("/api/me", get(index))
        .route("/api/lmus", get(lmus))
        .route("/api/lmus/{id}", get(lmu))
        .route("/api/readings", get(readings))
        .route("/api/summary", get(summary))
        .route("/api/faults", get(faults))
        .route("/api/mesh", get(mesh))
        .route("/api/market", get(market))
        .route("/api/accounts/{name}", get(account))
        .route("/api/producers/{name}", get(producer))
        .route("/api/stream", get(stream))
        .route("/api/command", post(command))
        .fallback(fallback)
        .with_state(app)
}

fn static_file(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"),
    );
    r
}

async fn fallback(State(app): Shared, uri: axum::http::Uri, h: HeaderMap) -> ApiError {
    if uri.path().starts_with("/api")
        && let Err(e) = user(&app, &h)
    {
        return e;
    }
    ApiError(StatusCode::NOT_FOUND, format!("no such page: {}", uri.path()))
}

#[derive(serde::Deserialize)]
struct LoginReq {
    user: String,
    password: String,
}

async fn login(State(app): Shared, body: Json<LoginReq>) -> ApiResult {
    let (name, pw) = (body.user.clone(), body.password.clone());
    let a = app.clone();
    // Hashing takes tens of milliseconds: off the async workers.
    let u = tokio::task::spawn_blocking(move || a.users.check(&name, &pw).cloned()).await.map_err(internal)?;
    let u = u.ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "wrong user name or password".into()))?;
    let token = app.sessions.create(&u.name).map_err(internal)?;
    Ok(Json(json!({"token": token, "user": u})))
}

async fn logout(State(app): Shared, h: HeaderMap) -> ApiResult {
    user(&app, &h)?;
    if let Some(t) = bearer(&h) {
        app.sessions.remove(t);
    }
    Ok(Json(json!({"ok": true})))
}

async fn index(State(app): Shared, h: HeaderMap) -> ApiResult {
    let u = user(&app, &h)?;
    Ok(Json(json!({
        "service": "gridtwin cloud", "mode": app.mode, "database": app.store.kind(), "user": u,
        "market": app.run.has_market(),
        "endpoints": ["/api/me", "/api/lmus?offset=&limit=", "/api/lmus/{id}", "/api/readings?lmu=&since_ms=&limit=", "/api/summary?per_lmu=0",
            "/api/faults", "/api/mesh", "/api/market", "/api/accounts/{name}", "/api/producers/{name}", "/api/stream",
            "POST /api/command", "POST /api/login", "POST /api/logout"],
    })))
}

#[derive(serde::Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Most LMUs one `/api/lmus` answer holds (page with `offset` and `limit`).
pub const MAX_LMUS_PER_REQUEST: usize = 20_000;

async fn lmus(State(app): Shared, h: HeaderMap, Query(p): Query<Page>) -> ApiResult {
    operator(&app, &h, "list every LMU")?;
    let all = live(&app).lmus();
    let total = all.len();
    let limit = p.limit.unwrap_or(MAX_LMUS_PER_REQUEST).min(MAX_LMUS_PER_REQUEST);
    let page: Vec<_> = all.into_iter().skip(p.offset.unwrap_or(0)).take(limit).collect();
    Ok(Json(json!({"total": total, "lmus": page})))
}

async fn lmu(State(app): Shared, h: HeaderMap, Path(id): Path<u32>) -> ApiResult {
    let u = user(&app, &h)?;
    if !u.may_read_lmu(id) {
        return Err(forbidden("read another customer's LMU"));
    }
    let l = live(&app);
    let v = l.lmu(id);
    if v.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("LMU {id} has not reported")));
    }
    Ok(Json(json!({"lmu": v, "faults": l.faults(Some(id))})))
}

#[derive(serde::Deserialize)]
struct ReadingsQuery {
    lmu: Option<u32>,
    since_ms: Option<u64>,
    limit: Option<usize>,
}

async fn readings(State(app): Shared, h: HeaderMap, Query(q): Query<ReadingsQuery>) -> ApiResult {
    let u = user(&app, &h)?;
    match q.lmu {
        Some(l) if !u.may_read_lmu(l) => return Err(forbidden("read another customer's readings")),
        None if u.group != Group::Operator => return Err(forbidden("read every LMU's readings (give lmu=YOURS)")),
        _ => {}
    }
    let limit = q.limit.unwrap_or(5_000).min(MAX_READINGS_PER_REQUEST);
    let (lmu, since) = (q.lmu, q.since_ms.unwrap_or(0));
    let rows = app.store.call(move |s| s.series(lmu, since, limit)).await.map_err(internal)?;
    Ok(Json(json!({"readings": rows})))
}

#[derive(serde::Deserialize)]
struct SummaryQuery {
    /// `per_lmu=0` leaves out the per-LMU EN 50160 list (the dashboard needs only the counts).
    per_lmu: Option<u8>,
}

async fn summary(State(app): Shared, h: HeaderMap, Query(q): Query<SummaryQuery>) -> ApiResult {
    operator(&app, &h, "read the operator's summary")?;
    let totals = app.store.call(|s| s.totals()).await.map_err(internal)?;
    let l = live(&app);
    let kpis = l.kpis();
    let compliance: Option<Vec<Value>> = (q.per_lmu != Some(0)).then(|| {
        l.lmus()
            .iter()
            .map(|v| json!({"gateway": v.gateway, "lmu": v.lmu, "pq_ok_pct": v.pq_ok_pct, "en50160_ok": v.en50160_ok}))
            .collect()
    });
    Ok(Json(json!({
        "counters": l.counters, "database": {"kind": app.store.kind(), "totals": totals},
        "lmus": kpis.lmus, "saifi": kpis.saifi, "saidi_min": kpis.saidi_min, "kpis": kpis,
        "en50160": compliance, "en50160_compliant": kpis.en50160_compliant,
        "run": app.run.summary, "run_faults": app.run.faults, "demand_response": app.run.market_dr,
    })))
}

async fn faults(State(app): Shared, h: HeaderMap) -> ApiResult {
    operator(&app, &h, "read every LMU's faults")?;
    Ok(Json(json!({"faults": live(&app).faults(None), "run_faults": app.run.faults})))
}

async fn mesh(State(app): Shared, h: HeaderMap) -> ApiResult {
    operator(&app, &h, "read the mesh")?;
    Ok(Json(json!({"nodes": app.run.mesh_nodes})))
}

async fn market(State(app): Shared, h: HeaderMap) -> ApiResult {
    user(&app, &h)?;
    Ok(Json(json!({
        "exists": app.run.has_market(), "prices": app.run.market_prices, "volumes": app.run.market_volumes,
    })))
}

async fn account(State(app): Shared, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    let u = user(&app, &h)?;
    if u.group == Group::Producer || !u.may_read_account(&name) {
        return Err(forbidden("read another customer's wallet"));
    }
    let wallet = app.run.wallets.iter().find(|w| w.get("wallet").and_then(Value::as_str) == Some(name.as_str()));
    Ok(Json(json!({"account": name, "wallet": wallet, "origin": app.run.origin.get(&name)})))
}

async fn producer(State(app): Shared, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    let u = user(&app, &h)?;
    if u.group == Group::Customer || !u.may_read_account(&name) {
        return Err(forbidden("read another producer's sales"));
    }
    let plants: Vec<_> =
        app.run.channels.iter().filter(|c| c.get("owner").and_then(Value::as_str) == Some(name.as_str())).collect();
    Ok(Json(json!({"producer": name, "plants": plants})))
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    /// End the stream after this many seconds (the browser reconnects); default: never.
    max_s: Option<u64>,
}

/// Longest `max_s` a stream may ask for, seconds.
pub const MAX_STREAM_S: u64 = 86_400;

async fn stream(State(app): Shared, h: HeaderMap, Query(q): Query<StreamQuery>) -> Result<Response, ApiError> {
    let u = user(&app, &h)?;
    let mut rx = app.updates.subscribe();
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(64);
    let until = q.max_s.map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs(s.clamp(1, MAX_STREAM_S)));
    tokio::spawn(async move {
        loop {
            let next = match until {
                Some(t) => match tokio::time::timeout_at(t, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => return,
                },
                None => rx.recv().await,
            };
            let up = match next {
                Ok(up) => up,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "a slow dashboard missed updates");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(body) = filtered(&u, &up) else { continue };
            if tx.send(Event::default().event("update").data(body)).await.is_err() {
                return;
            }
        }
    });
    let s = tokio_stream::wrappers::ReceiverStream::new(out).map(Ok::<_, std::convert::Infallible>);
    Ok(Sse::new(s).keep_alive(KeepAlive::default()).into_response())
}

/// What of an update a user may see, as JSON (None: nothing).
fn filtered(u: &User, up: &Update) -> Option<String> {
    match u.group {
        Group::Operator => serde_json::to_string(up).ok(),
        Group::Customer => {
            let mine = |l: u32| u.lmu == Some(l);
            let lmus: Vec<_> = up.lmus.iter().filter(|v| mine(v.lmu)).collect();
            let faults: Vec<_> = up.faults.iter().filter(|f| mine(f.lmu)).collect();
            if lmus.is_empty() && faults.is_empty() {
                return None;
            }
            Some(json!({"lmus": lmus, "faults": faults}).to_string())
        }
        Group::Producer => None,
    }
}

#[derive(serde::Deserialize)]
struct CommandReq {
    lmu: u32,
    action: String,
    seconds: Option<u32>,
    gateway: Option<String>,
    id: Option<u32>,
}

async fn command(State(app): Shared, h: HeaderMap, body: Json<CommandReq>) -> ApiResult {
    operator(&app, &h, "send commands")?;
    let action = match body.action.as_str() {
        "open" => Action::Open,
        "close" => Action::Close,
        "auto" => Action::Auto,
        "report_every" => match body.seconds {
            Some(s) if (1..=MAX_REPORT_EVERY_S).contains(&s) => Action::ReportEvery(s),
            _ => return Err(ApiError(StatusCode::BAD_REQUEST, "report_every needs seconds in 1..=86400".into())),
        },
        a => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown action `{a}` (open, close, auto, report_every)"),
            ));
        }
    };
    let Some(client) = &app.mqtt else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no broker: this is a finished run (gridtwin serve)".into(),
        ));
    };
    let gateway = match &body.gateway {
        Some(g) => g.clone(),
        None => live(&app).gateway_of(body.lmu).ok_or_else(|| {
            ApiError(StatusCode::NOT_FOUND, format!("LMU {} has not reported: name its gateway", body.lmu))
        })?,
    };
    if gateway.is_empty() || gateway.contains(['/', '+', '#']) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`{gateway}` is not a gateway id")));
    }
    let cmd = Command { lmu_id: body.lmu, action, id: body.id.unwrap_or(0) };
    let text = cmd.to_text();
    let topic = format!("grid/{gateway}/cmd/operator");
    client
        .publish(topic.clone(), rumqttc::QoS::AtLeastOnce, false, text.clone().into_bytes())
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("broker: {e}")))?;
    live(&app).counters.commands_sent += 1;
    tracing::info!(%topic, %text, "command sent");
    Ok(Json(json!({"topic": topic, "payload": text})))
}
