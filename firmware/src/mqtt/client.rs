//! The MQTT client session as a sans-IO state machine.
//!
//! The host owns the transport (a TCP socket on a board or in the live bridge, the cellular twin in the
//! simulator). It tells the client when the transport comes up ([`Client::transport_up`]) or goes down
//! ([`Client::transport_down`]), feeds received bytes to [`Client::handle_input`], sends whatever
//! [`Client::take_output`] returns, reads [`ClientEvent`]s, and calls [`Client::poll`] at the deadline it
//! returns. The client never reads a clock.
//!
//! What it does: CONNECT with username/password (Clean Session/Start off by default: a persistent session),
//! honours CONNACK codes (credential refusals are final; others retry), keepalive with PINGREQ and a dead-peer
//! timeout, SUBSCRIBE, PUBLISH at QoS 0/1/2 with the full flows in both directions (PUBACK; PUBREC, PUBREL,
//! PUBCOMP), a bounded in-flight window, retransmission of unacknowledged PUBLISH (DUP set) and PUBREL after
//! reconnect, and reconnection with exponential backoff. Every queue is bounded.

use super::codec::{ConnAck, Connect, MqttError, Packet, Publish, QoS, SubscribeOne, Version};
use crate::time::{Duration, Instant};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

/// Session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    pub version: Version,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub keep_alive_s: u16,
    /// Clean Session / Clean Start. `false` keeps the session (and the in-flight messages) across reconnects.
    pub clean_start: bool,
    /// Most QoS 1/2 publishes awaiting acknowledgement at once (1..=65535).
    pub max_inflight: u16,
    /// Largest packet accepted from the broker, bytes.
    pub max_packet_bytes: usize,
    /// How long to wait for CONNACK, or for PINGRESP after a PINGREQ, before declaring the connection dead.
    pub response_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl ClientConfig {
    /// Defaults for a gateway: MQTT 3.1.1, keepalive 60 s, persistent session, 16 in flight.
    pub fn new(client_id: &str) -> Self {
        ClientConfig {
            version: Version::V311,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive_s: 60,
            clean_start: false,
            max_inflight: 16,
            max_packet_bytes: 64 * 1024,
            response_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No transport. The host may open one at or after `retry_at`.
    Disconnected {
        retry_at: Instant,
    },
    /// CONNECT sent, waiting for CONNACK.
    Connecting {
        since: Instant,
    },
    Connected,
    /// The broker refused the credentials (CONNACK code); the client will not retry.
    Refused(u8),
    /// The host closed the session with DISCONNECT.
    Closed,
}

/// Something the host should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// CONNACK accepted.
    Connected { session_present: bool },
    /// CONNACK refused with this code (3.1.1 return code or 5.0 reason code).
    Refused(u8),
    /// A QoS 1/2 publish with this tag completed its flow (PUBACK or PUBCOMP), or was refused by the broker
    /// with a 5.0 reason code >= 0x80 (`reason`).
    Delivered { tag: u64, reason: u8 },
    /// A message arrived on a subscription (delivered once: QoS 2 duplicates are suppressed).
    Message { topic: String, payload: Vec<u8>, qos: QoS },
    /// SUBACK: per-filter granted QoS or failure code (0x80+).
    SubAck { pid: u16, codes: Vec<u8> },
    /// The connection must be closed (protocol error, timeout, or DISCONNECT from the broker); the host
    /// closes its transport and calls `transport_down`.
    Lost,
}

/// Why a publish or subscribe was not accepted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    NotConnected,
    /// The in-flight window is full: wait for a `Delivered` event.
    WindowFull,
    Codec(MqttError),
}

#[derive(Clone, Debug)]
/// Which acknowledgement an outgoing publish waits for.
enum Stage {
    Ack,
    Rec,
    Comp,
}

#[derive(Clone, Debug)]
struct Inflight {
    /// The encoded PUBLISH (DUP is set in place on retransmission).
    packet: Vec<u8>,
    stage: Stage,
    tag: u64,
}

/// Packet and byte counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connects: u64,
    pub publishes_sent: u64,
    pub retransmissions: u64,
    pub pings: u64,
    pub messages_received: u64,
    pub duplicates_dropped: u64,
    pub protocol_errors: u64,
    pub events_dropped: u64,
}

const MAX_EVENTS: usize = 4096;
/// Most incoming QoS 2 packet ids remembered while awaiting PUBREL.
const MAX_INCOMING_QOS2: usize = 1024;

/// One MQTT client session.
#[derive(Clone, Debug)]
pub struct Client {
    cfg: ClientConfig,
    state: State,
    out: Vec<u8>,
    rx: Vec<u8>,
    next_pid: u16,
    inflight: BTreeMap<u16, Inflight>,
    incoming_qos2: BTreeSet<u16>,
    events: VecDeque<ClientEvent>,
    last_tx: Instant,
    ping_sent: Option<Instant>,
    backoff: Duration,
    pub stats: ClientStats,
}

impl Client {
    pub fn new(mut cfg: ClientConfig) -> Self {
        cfg.max_inflight = cfg.max_inflight.max(1);
        cfg.max_packet_bytes = cfg.max_packet_bytes.max(16);
        let backoff = cfg.backoff_min;
        Client {
            cfg,
            state: State::Disconnected { retry_at: Instant::ZERO },
            out: Vec::new(),
            rx: Vec::new(),
            next_pid: 1,
            inflight: BTreeMap::new(),
            incoming_qos2: BTreeSet::new(),
            events: VecDeque::new(),
            last_tx: Instant::ZERO,
            ping_sent: None,
            backoff,
            stats: ClientStats::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }
    /// QoS 1/2 publishes awaiting acknowledgement.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }
    /// Tags of the publishes awaiting acknowledgement, in packet-id order.
    pub fn inflight_tags(&self) -> impl Iterator<Item = u64> + '_ {
        self.inflight.values().map(|f| f.tag)
    }
    /// Whether the client waits for the broker: CONNACK, PINGRESP, or an acknowledgement of a publish.
    pub fn awaiting_response(&self) -> bool {
        match self.state {
            State::Connecting { .. } => true,
            State::Connected => self.ping_sent.is_some() || !self.inflight.is_empty(),
            _ => false,
        }
    }
    /// Whether another QoS 1/2 publish fits the window now.
    pub fn can_publish(&self) -> bool {
        self.is_connected() && self.inflight.len() < self.cfg.max_inflight as usize
    }
    /// Whether the host should open a transport now.
    pub fn wants_transport(&self, now: Instant) -> bool {
        matches!(self.state, State::Disconnected { retry_at } if now >= retry_at)
    }

    fn push_event(&mut self, e: ClientEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }
    pub fn pop_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
    /// Bytes to send on the transport (taken: the caller must send them).
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }
    /// Bytes waiting to be taken.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    fn send(&mut self, now: Instant, p: &Packet<'_>) -> Result<usize, MqttError> {
        let n = p.encode(self.cfg.version, &mut self.out)?;
        self.stats.bytes_sent += n as u64;
        self.last_tx = now;
        Ok(n)
    }

    fn alloc_pid(&mut self) -> u16 {
        // At most 65,535 ids; the window bound keeps this loop short.
        for _ in 0..=u16::MAX {
            let p = self.next_pid;
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
            if p != 0 && !self.inflight.contains_key(&p) {
                return p;
            }
        }
        1
    }

    /// The transport is up: sends CONNECT.
    pub fn transport_up(&mut self, now: Instant) {
        if matches!(self.state, State::Refused(_) | State::Closed) {
            return;
        }
        self.out.clear();
        self.rx.clear();
        self.ping_sent = None;
        self.state = State::Connecting { since: now };
        self.stats.connects += 1;
        let (id, user, pass) = (self.cfg.client_id.clone(), self.cfg.username.clone(), self.cfg.password.clone());
        let c = Connect {
            version: self.cfg.version,
            client_id: &id,
            keep_alive_s: self.cfg.keep_alive_s,
            clean_start: self.cfg.clean_start,
            username: user.as_deref(),
            password: pass.as_deref(),
        };
        let _ = self.send(now, &Packet::Connect(c));
    }

    /// The transport went down (or the host closed it after `Lost`): keeps the session's in-flight messages
    /// and schedules a reconnect after the current backoff.
    pub fn transport_down(&mut self, now: Instant) {
        self.out.clear();
        self.rx.clear();
        self.ping_sent = None;
        if matches!(self.state, State::Refused(_) | State::Closed) {
            return;
        }
        self.state = State::Disconnected { retry_at: now + self.backoff };
        self.backoff =
            Duration::from_nanos((self.backoff.as_nanos().saturating_mul(2)).min(self.cfg.backoff_max.as_nanos()));
        if self.cfg.clean_start {
            self.incoming_qos2.clear();
        }
    }

    /// Sends DISCONNECT and closes the session for good.
    pub fn disconnect(&mut self, now: Instant) {
        if self.is_connected() {
            let _ = self.send(now, &Packet::Disconnect(0));
        }
        self.state = State::Closed;
    }

    /// Publishes `payload` on `topic`. QoS 0 is sent and forgotten (returns `None`); QoS 1/2 returns the packet
    /// id and later a `Delivered { tag }` event.
    pub fn publish(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        tag: u64,
    ) -> Result<Option<u16>, SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        if qos == QoS::AtMostOnce {
            let p = Publish { dup: false, qos, retain: false, topic, pid: None, payload };
            self.send(now, &Packet::Publish(p)).map_err(SendError::Codec)?;
            self.stats.publishes_sent += 1;
            return Ok(None);
        }
        if self.inflight.len() >= self.cfg.max_inflight as usize {
            return Err(SendError::WindowFull);
        }
        let pid = self.alloc_pid();
        let p = Publish { dup: false, qos, retain: false, topic, pid: Some(pid), payload };
        let mut packet = Vec::new();
        Packet::Publish(p).encode(self.cfg.version, &mut packet).map_err(SendError::Codec)?;
        self.out.extend_from_slice(&packet);
        self.stats.bytes_sent += packet.len() as u64;
        self.stats.publishes_sent += 1;
        self.last_tx = now;
        let stage = if qos == QoS::AtLeastOnce { Stage::Ack } else { Stage::Rec };
        self.inflight.insert(pid, Inflight { packet, stage, tag });
        Ok(Some(pid))
    }

    /// Subscribes to one filter; the SUBACK comes back as an event.
    pub fn subscribe(&mut self, now: Instant, filter: &str, qos: QoS) -> Result<u16, SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        let pid = self.alloc_pid();
        self.send(now, &Packet::SubscribeOne(SubscribeOne { pid, filter, qos })).map_err(SendError::Codec)?;
        Ok(pid)
    }

    /// Bytes from the transport. A protocol error yields `Lost` (and the error): the host closes the transport.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), MqttError> {
        if !matches!(self.state, State::Connecting { .. } | State::Connected) {
            return Ok(());
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.rx.extend_from_slice(bytes);
        let mut used = 0;
        // Each iteration consumes at least 2 bytes, so this ends.
        loop {
            let rx = core::mem::take(&mut self.rx);
            let step = match Packet::decode(&rx[used..], self.cfg.version, self.cfg.max_packet_bytes) {
                Ok(Some((p, n))) => {
                    let r = self.on_packet(now, p);
                    used += n;
                    r.map(|_| true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            };
            self.rx = rx;
            match step {
                Ok(true) => {
                    if !matches!(self.state, State::Connecting { .. } | State::Connected) {
                        self.rx.clear();
                        return Ok(());
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    self.stats.protocol_errors += 1;
                    self.rx.clear();
                    self.push_event(ClientEvent::Lost);
                    return Err(e);
                }
            }
        }
        self.rx.drain(..used);
        Ok(())
    }

    fn on_packet(&mut self, now: Instant, p: Packet<'_>) -> Result<(), MqttError> {
        let connecting = matches!(self.state, State::Connecting { .. });
        match p {
            Packet::ConnAck(ConnAck { session_present, code }) if connecting => {
                if code != 0 {
                    let a = ConnAck { session_present, code };
                    if a.is_auth_failure() {
                        self.state = State::Refused(code);
                    } else {
                        self.state = State::Disconnected { retry_at: now + self.backoff };
                    }
                    self.push_event(ClientEvent::Refused(code));
                    return Ok(());
                }
                self.state = State::Connected;
                self.backoff = self.cfg.backoff_min;
                self.push_event(ClientEvent::Connected { session_present });
                // Retransmit the session's unacknowledged messages, oldest packet id first.
                let pids: Vec<u16> = self.inflight.keys().copied().collect();
                for pid in pids {
                    let Some(f) = self.inflight.get_mut(&pid) else { continue };
                    let bytes = match f.stage {
                        Stage::Ack | Stage::Rec => {
                            f.packet[0] |= 0x08;
                            f.packet.clone()
                        }
                        Stage::Comp => {
                            let mut b = Vec::new();
                            Packet::PubRel(pid, 0).encode(self.cfg.version, &mut b)?;
                            b
                        }
                    };
                    self.stats.retransmissions += 1;
                    self.stats.bytes_sent += bytes.len() as u64;
                    self.out.extend_from_slice(&bytes);
                    self.last_tx = now;
                }
                Ok(())
            }
            _ if connecting => Err(MqttError::Malformed),
            Packet::PubAck(pid, reason) => {
                if matches!(self.inflight.get(&pid), Some(Inflight { stage: Stage::Ack, .. }))
                    && let Some(f) = self.inflight.remove(&pid)
                {
                    self.push_event(ClientEvent::Delivered { tag: f.tag, reason });
                }
                Ok(())
            }
            Packet::PubRec(pid, reason) => {
                match self.inflight.get_mut(&pid) {
                    Some(f) if reason >= 0x80 => {
                        let tag = f.tag;
                        self.inflight.remove(&pid);
                        self.push_event(ClientEvent::Delivered { tag, reason });
                    }
                    Some(f) => {
                        f.stage = Stage::Comp;
                        self.send(now, &Packet::PubRel(pid, 0))?;
                    }
                    // 5.0: "packet identifier not found".
                    None => {
                        let code = if self.cfg.version == Version::V5 { 0x92 } else { 0 };
                        self.send(now, &Packet::PubRel(pid, code))?;
                    }
                }
                Ok(())
            }
            Packet::PubComp(pid, reason) => {
                if matches!(self.inflight.get(&pid), Some(Inflight { stage: Stage::Comp, .. }))
                    && let Some(f) = self.inflight.remove(&pid)
                {
                    self.push_event(ClientEvent::Delivered { tag: f.tag, reason });
                }
                Ok(())
            }
            Packet::Publish(p) => {
                match (p.qos, p.pid) {
                    (QoS::AtMostOnce, _) => self.deliver(&p),
                    (QoS::AtLeastOnce, Some(pid)) => {
                        self.deliver(&p);
                        self.send(now, &Packet::PubAck(pid, 0))?;
                    }
                    (QoS::ExactlyOnce, Some(pid)) => {
                        if self.incoming_qos2.contains(&pid) {
                            self.stats.duplicates_dropped += 1;
                        } else if self.incoming_qos2.len() < MAX_INCOMING_QOS2 {
                            self.incoming_qos2.insert(pid);
                            self.deliver(&p);
                        } else {
                            // Refuse rather than grow without bound: 5.0 "receive maximum exceeded".
                            return Err(MqttError::TooLarge);
                        }
                        self.send(now, &Packet::PubRec(pid, 0))?;
                    }
                    _ => return Err(MqttError::BadPacketId),
                }
                Ok(())
            }
            Packet::PubRel(pid, _) => {
                self.incoming_qos2.remove(&pid);
                self.send(now, &Packet::PubComp(pid, 0))?;
                Ok(())
            }
            Packet::SubAck(pid, codes) => {
                self.push_event(ClientEvent::SubAck { pid, codes: codes.to_vec() });
                Ok(())
            }
            Packet::PingResp => {
                self.ping_sent = None;
                Ok(())
            }
            Packet::Disconnect(_) => {
                self.push_event(ClientEvent::Lost);
                self.state = State::Disconnected { retry_at: now + self.backoff };
                Ok(())
            }
            // A client never receives CONNECT, SUBSCRIBE, PINGREQ, or a second CONNACK.
            _ => Err(MqttError::Malformed),
        }
    }

    fn deliver(&mut self, p: &Publish<'_>) {
        self.stats.messages_received += 1;
        self.push_event(ClientEvent::Message { topic: p.topic.into(), payload: p.payload.to_vec(), qos: p.qos });
    }

    /// Timers: sends PINGREQ when the link was idle for the keepalive, declares the connection lost when
    /// CONNACK or PINGRESP is overdue. Returns the next deadline (`Instant::MAX` if none).
    pub fn poll(&mut self, now: Instant) -> Instant {
        match self.state {
            State::Connecting { since } => {
                let due = since + self.cfg.response_timeout;
                if now >= due {
                    self.push_event(ClientEvent::Lost);
                    self.transport_down(now);
                    return self.poll(now);
                }
                due
            }
            State::Connected => {
                if let Some(sent) = self.ping_sent {
                    let due = sent + self.cfg.response_timeout;
                    if now >= due {
                        self.push_event(ClientEvent::Lost);
                        self.transport_down(now);
                        return self.poll(now);
                    }
                    return due;
                }
                if self.cfg.keep_alive_s == 0 {
                    return Instant::MAX;
                }
                let due = self.last_tx + Duration::from_secs(self.cfg.keep_alive_s as u64);
                if now >= due {
                    let _ = self.send(now, &Packet::PingReq);
                    self.stats.pings += 1;
                    self.ping_sent = Some(now);
                    return now + self.cfg.response_timeout;
                }
                due
            }
            State::Disconnected { retry_at } => retry_at,
            State::Refused(_) | State::Closed => Instant::MAX,
        }
    }
}
