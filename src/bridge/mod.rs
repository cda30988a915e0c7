//! The live bridge: runs a scenario with its gateway connected to a real MQTT broker over TCP, or over TLS
//! (`mqtts://`, rustls: the broker's certificate must chain to the CA given, a client certificate may be
//! presented).
//!
//! The simulated gateway's firmware MQTT client is the same one the simulation uses; the bridge only carries
//! its bytes: what the client writes goes to the socket, what the socket yields is injected into the run as
//! events at the current simulated time. The broker's commands on `grid/{gateway_id}/cmd/#` therefore travel
//! down the simulated UART and mesh to the named LMU's contactor.
//!
//! Pacing lives only here: `--speed 1` keeps simulated time in step with the wall clock, `--speed 10` runs
//! ten times faster, `--speed max` as fast as the run goes. Whatever the speed, while the client waits for the
//! broker (CONNACK, PUBACK/PUBREC/PUBCOMP, PINGRESP) simulated time does not advance, so acknowledgements
//! arrive "at once" in simulated time, and the run's MQTT exchange is the one a real gateway would have.
//! At the end, the gateway closes its open batch, publishes what it stores, waits for the acknowledgements and
//! sends DISCONNECT.

use crate::agents::GwMsg;
use crate::agents::Msg;
use crate::agents::gateway::GatewayAgent;
use crate::engine::{AgentId, SimDuration, SimTime, Stop, class};
use crate::scenario::Loaded;
use crate::world::World;
use gridtwin_firmware::Instant as FwInstant;
use gridtwin_firmware::mqtt::State;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How fast simulated time runs against the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Simulated seconds per wall-clock second.
    Factor(f64),
    /// As fast as possible.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1e6 => Ok(Speed::Factor(f)),
            _ => Err(format!("`{s}` is not a speed: give a factor such as 1 or 10, or `max`")),
        }
    }
}

/// Where the broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: MQTT over TLS.
    pub tls: bool,
}

/// Parses `mqtt://HOST[:PORT]` (port 1883 by default) or `mqtts://HOST[:PORT]` (TLS, port 8883 by default).
/// Other schemes are refused with the reason.
pub fn parse_broker_url(url: &str) -> Result<BrokerUrl, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("broker URL `{url}` has no scheme: write mqtt://HOST:PORT or mqtts://HOST:PORT"));
    };
    let tls = scheme.eq_ignore_ascii_case("mqtts") || scheme.eq_ignore_ascii_case("ssl");
    if !tls && !scheme.eq_ignore_ascii_case("mqtt") && !scheme.eq_ignore_ascii_case("tcp") {
        return Err(format!(
            "broker URL `{url}`: unsupported scheme `{scheme}://` (MQTT over TCP: mqtt://HOST:PORT; over TLS: mqtts://HOST:PORT)"
        ));
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(format!("broker URL `{url}`: expected mqtt://HOST:PORT with no path or user part"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port =
                p.parse::<u16>().map_err(|_| format!("broker URL `{url}`: port `{p}` is not a number in 1..=65535"))?;
            if port == 0 {
                return Err(format!("broker URL `{url}`: port 0 is not a broker port"));
            }
            (h.trim_start_matches('[').trim_end_matches(']').to_string(), port)
        }
        _ => (rest.to_string(), if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(format!("broker URL `{url}`: the host is empty"));
    }
    Ok(BrokerUrl { host, port, tls })
}

/// The TLS files for `url`: required (`--ca`) with `mqtts://`, refused with `mqtt://`; a client certificate
/// needs its key and the other way round. Errors name the option.
pub fn tls_files(
    url: &BrokerUrl,
    ca: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<gridtwin_cloud::tls::TlsFiles>, String> {
    if !url.tls {
        if ca.is_some() || cert.is_some() || key.is_some() {
            return Err("--ca, --client-cert and --client-key need a TLS broker URL (mqtts://HOST:PORT)".into());
        }
        return Ok(None);
    }
    let Some(ca) = ca else {
        return Err("mqtts:// needs --ca FILE (the PEM certificate of the CA that signed the broker's)".into());
    };
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c.to_path_buf(), k.to_path_buf())),
        (None, None) => None,
        (Some(_), None) => return Err("--client-cert needs --client-key".into()),
        (None, Some(_)) => return Err("--client-key needs --client-cert".into()),
    };
    Ok(Some(gridtwin_cloud::tls::TlsFiles { ca: ca.to_path_buf(), client }))
}

/// Bridge settings.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    pub broker: BrokerUrl,
    pub username: Option<String>,
    pub password: Option<String>,
    pub speed: Speed,
    /// Longest wall-clock wait for a broker response before the bridge gives up.
    pub response_timeout: Duration,
    /// MQTT over TLS (with `mqtts://`).
    pub tls: Option<gridtwin_cloud::tls::TlsFiles>,
}

/// The scenario with the bridge's credentials in its gateway section.
pub fn with_credentials(loaded: &Loaded, o: &BridgeOptions) -> Result<Loaded, String> {
    let mut l = loaded.clone();
    let Some(g) = l.scenario.gateway.as_mut() else {
        return Err(format!(
            "{}: the scenario has no `gateway` section; the bridge needs a gateway to connect",
            loaded.file
        ));
    };
    if let Some(u) = &o.username {
        g.mqtt.username = Some(u.clone());
    }
    if let Some(p) = &o.password {
        g.mqtt.password = p.clone();
    }
    Ok(l)
}

/// The connection to the broker: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        self.tcp().set_nonblocking(on)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(d)
    }
    fn shutdown(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

struct Link {
    stream: Stream,
    conn: u64,
}

fn gw(world: &mut World, id: AgentId) -> Result<&mut GatewayAgent, String> {
    world.sim.agent_mut::<GatewayAgent>(id).ok_or_else(|| "the gateway agent is missing".to_string())
}

fn inject(world: &mut World, id: AgentId, msg: GwMsg) -> Result<(), String> {
    let now = world.sim.now();
    world.sim.schedule(id, id, now, class::DEFAULT, Msg::Gw(msg)).map_err(|e| e.to_string())?;
    world.sim.run(Stop::at(now)).map_err(|e| format!("simulation stopped: {e}"))?;
    Ok(())
}

fn refused_error(world: &mut World, id: AgentId, o: &BridgeOptions) -> Result<(), String> {
    let g = gw(world, id)?;
    if let State::Refused(code) = g.fw.client().state() {
        let what = match code {
            4 => "bad user name or password",
            5 => "not authorised",
            0x86 => "bad user name or password",
            0x87 => "not authorised",
            _ => "refused",
        };
        return Err(format!(
            "the broker at {}:{} refused the connection for user `{}`: CONNACK code {code} ({what})",
            o.broker.host,
            o.broker.port,
            o.username.as_deref().unwrap_or(g.fw.config().mqtt.username.as_deref().unwrap_or(""))
        ));
    }
    Ok(())
}

/// Sends what the gateway wrote; reads what the broker sent (waiting up to `wait` for something when the
/// client awaits a response) and injects it. Returns false when the connection closed.
fn exchange(world: &mut World, id: AgentId, link: &mut Link, wait: Duration) -> Result<bool, String> {
    let out = gw(world, id)?.take_external();
    if !out.is_empty() {
        link.stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        link.stream.write_all(&out).map_err(|e| format!("writing to the broker: {e}"))?;
    }
    let awaiting = gw(world, id)?.fw.client().awaiting_response();
    // Not awaiting anything: only look (non-blocking; a short read timeout would sleep a scheduler tick,
    // milliseconds, at every step of a `--speed max` run).
    link.stream.set_nonblocking(!awaiting).map_err(|e| e.to_string())?;
    if awaiting {
        link.stream.set_read_timeout(Some(wait.max(Duration::from_micros(1)))).map_err(|e| e.to_string())?;
    }
    let mut buf = [0u8; 16 * 1024];
    match link.stream.read(&mut buf) {
        Ok(0) => {
            inject(world, id, GwMsg::Closed(link.conn))?;
            Ok(false)
        }
        Ok(n) => {
            inject(world, id, GwMsg::Rx { conn: link.conn, bytes: buf[..n].to_vec() })?;
            Ok(true)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            if awaiting {
                return Err(format!("the broker did not answer within {} s", wait.as_secs_f64()));
            }
            Ok(true)
        }
        Err(e) => Err(format!("reading from the broker: {e}")),
    }
}

/// Connects to the broker, over TLS when the options say so (the handshake completes here, so a certificate
/// the CA did not sign, or a name it does not carry, is an error before any MQTT byte).
fn connect(o: &BridgeOptions) -> Result<Stream, String> {
    let tcp = connect_tcp(o)?;
    let Some(files) = &o.tls else { return Ok(Stream::Plain(tcp)) };
    let cfg = gridtwin_cloud::tls::client_config(files)?;
    let name = rustls::pki_types::ServerName::try_from(o.broker.host.clone())
        .map_err(|e| format!("broker host `{}` is not a TLS server name: {e}", o.broker.host))?;
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| format!("TLS: {e}"))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.sock.set_read_timeout(Some(o.response_timeout)).map_err(|e| e.to_string())?;
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("TLS handshake with the broker at {}:{} failed: {e}", o.broker.host, o.broker.port))?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

fn connect_tcp(o: &BridgeOptions) -> Result<TcpStream, String> {
    let addr = format!("{}:{}", o.broker.host, o.broker.port);
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve broker `{addr}`: {e}"))?.collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => {
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("cannot connect to the broker at {addr}: {last}"))
}

/// Runs `world` (built with an external backhaul) against the broker. Most reconnects before giving up: 20.
pub fn run(world: &mut World, o: &BridgeOptions, mut progress: impl FnMut(f64)) -> Result<(), String> {
    let id = world.gateway.ok_or("the scenario has no gateway")?;
    let until = world.until;
    let wall0 = Instant::now();
    let mut link: Option<Link> = None;
    let mut connects = 0u32;
    let step = match o.speed {
        Speed::Max => SimDuration::from_secs(10),
        Speed::Factor(_) => SimDuration::from_millis(100),
    };
    loop {
        refused_error(world, id, o)?;
        let now = world.sim.now();
        if link.is_none() && gw(world, id)?.external_wants_connect() {
            connects += 1;
            if connects > 20 {
                return Err("the connection to the broker failed 20 times; giving up".into());
            }
            let stream = connect(o)?;
            inject(world, id, GwMsg::ExternalUp)?;
            link = Some(Link { stream, conn: gw(world, id)?.conn() });
        }
        if let Some(l) = link.as_mut() {
            // Answer everything the client waits for before time moves on (bounded: each round either
            // reads bytes or ends).
            for _ in 0..100_000 {
                if !exchange(world, id, l, o.response_timeout)? {
                    link = None;
                    break;
                }
                let g = gw(world, id)?;
                if !g.fw.client().awaiting_response() && g.external_pending() == 0 {
                    break;
                }
            }
            if link.is_some() && !gw(world, id)?.link_up() {
                // The client closed the connection (timeout or protocol error).
                link = None;
            }
        }
        refused_error(world, id, o)?;
        if now >= until {
            break;
        }
        let target = match o.speed {
            Speed::Max => now.saturating_add(step),
            Speed::Factor(k) => {
                let wall = wall0.elapsed().as_secs_f64() * k;
                let t = SimTime::from_nanos((wall * 1e9) as u64);
                if t <= now {
                    // Wait a little for the broker (commands) before checking the clock again.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                t.min(now.saturating_add(step))
            }
        };
        let target = target.min(until);
        world.sim.run(Stop::at(target)).map_err(|e| format!("simulation stopped at {}: {e}", world.sim.now()))?;
        progress(target.as_secs_f64() / until.as_secs_f64().max(1e-9));
    }
    // Wrap up: publish what is left, wait for the acknowledgements, say goodbye.
    let Some(mut l) = link else {
        return Ok(());
    };
    l.stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let now = FwInstant(world.sim.now().as_nanos());
    gw(world, id)?.fw.flush(now);
    for _ in 0..100_000 {
        let g = gw(world, id)?;
        let mut out = g.take_external();
        out.extend(g.fw.take_output());
        if !out.is_empty() {
            l.stream.write_all(&out).map_err(|e| format!("writing to the broker: {e}"))?;
        }
        if !g.fw.client().awaiting_response() && g.fw.stored_batches() == 0 {
            break;
        }
        if !g.fw.client().is_connected() {
            return Err("the connection to the broker ended before every publish was acknowledged".into());
        }
        l.stream.set_read_timeout(Some(o.response_timeout)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16 * 1024];
        match l.stream.read(&mut buf) {
            Ok(0) => return Err("the broker closed the connection before acknowledging every publish".into()),
            Ok(n) => {
                if !gw(world, id)?.fw.input(now, &buf[..n]) {
                    return Err("the broker's answer was not valid MQTT".into());
                }
            }
            Err(e) => return Err(format!("waiting for acknowledgements: {e}")),
        }
    }
    let g = gw(world, id)?;
    g.fw.disconnect(now);
    let out = g.fw.take_output();
    let _ = l.stream.write_all(&out);
    let _ = l.stream.flush();
    l.stream.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = |h: &str, port, tls| BrokerUrl { host: h.into(), port, tls };
        assert_eq!(parse_broker_url("mqtt://127.0.0.1:1884"), Ok(u("127.0.0.1", 1884, false)));
        assert_eq!(parse_broker_url("mqtt://broker.local"), Ok(u("broker.local", 1883, false)));
        assert_eq!(parse_broker_url("mqtt://[::1]:1883"), Ok(u("::1", 1883, false)));
        assert_eq!(parse_broker_url("mqtts://broker.local"), Ok(u("broker.local", 8883, true)));
        let tls = u("h", 8883, true);
        assert!(tls_files(&tls, None, None, None).unwrap_err().contains("--ca"));
        let p = std::path::Path::new("x.pem");
        assert!(tls_files(&tls, Some(p), Some(p), None).unwrap_err().contains("--client-key"));
        assert!(tls_files(&u("h", 1883, false), Some(p), None, None).unwrap_err().contains("mqtts://"));
        let e = parse_broker_url("http://x:1").unwrap_err();
        assert!(e.contains("unsupported scheme `http://`"), "{e}");
        assert!(parse_broker_url("localhost:1883").unwrap_err().contains("no scheme"));
        assert!(parse_broker_url("mqtt://x:99999").unwrap_err().contains("port"));
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10".parse::<Speed>(), Ok(Speed::Factor(10.0)));
        assert!("fast".parse::<Speed>().is_err());
    }
}
