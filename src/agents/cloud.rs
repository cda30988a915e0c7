//! The cloud end of the simulation: an MQTT broker agent with a time-series store behind it.
//!
//! The broker speaks real MQTT (the firmware codec, 3.1.1 or 5.0 as the client's CONNECT says):
//! it checks user name and password (a refusal is CONNACK 4 / 0x86, counted, and the connection closed),
//! authorises by user name (publish only to `grid/{user}/events`, subscribe only under `grid/{user}/cmd/`;
//! refusals are counted, with the readings of a refused batch), keeps persistent sessions (subscriptions and
//! unacknowledged command messages survive a reconnect and are retransmitted), answers PINGREQ and runs the
//! QoS 1/2 flows. Accepted batches are decoded ([`gridtwin_firmware::gateway::batch`]) and every reading is
//! stored once, keyed by (LMU id, sequence number), with its generated and received timestamps.
//!
//! Operator commands (the scenario's `gateway.commands`) are published at their time on
//! `grid/{gateway_id}/cmd/{lmu}` at QoS 1 to every session subscribed to it; with an operator key
//! ([`OperatorSigner`], the scenario's `security.operator`) each is signed first
//! ([`gridtwin_firmware::gateway::signed`]). A compromised broker ([`crate::security::broker`]) may sit on
//! that path: it alters and captures the operator's commands as they pass and publishes its own and replayed
//! ones on its timers.

use super::Msg;
use super::gateway::GwMsg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime, class};
use crate::twin::cellular::Outage;
use gridtwin_firmware::gateway::batch;
use gridtwin_firmware::gateway::command::Command;
use gridtwin_firmware::mqtt::{ConnAck, MqttError, Packet, Publish, QoS, Version, topic_matches};
use gridtwin_firmware::report::ReportRepr;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const TIMER_COMMAND: u64 = 1;
const TIMER_OUTAGE: u64 = 2;
const TIMER_INJECT: u64 = 3;
const TIMER_REPLAY: u64 = 4;
/// Most command messages a session queues while its client is away.
const MAX_SESSION_QUEUE: usize = 1024;
/// Largest packet the broker accepts, bytes.
const MAX_PACKET: usize = 1 << 20;

/// One stored reading.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    pub reading: ReportRepr,
    pub received: SimTime,
}

/// Broker and store counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloudStats {
    pub connects: u64,
    pub auth_refused: u64,
    pub publishes: u64,
    pub publish_refused: u64,
    /// Readings in batches refused by authorisation.
    pub refused_readings: u64,
    pub subscribe_refused: u64,
    pub batches: u64,
    pub batches_malformed: u64,
    pub duplicates: u64,
    pub protocol_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub commands_issued: u64,
    /// Commands with no subscribed session to deliver to.
    pub commands_undeliverable: u64,
}

#[derive(Default)]
struct Session {
    subs: Vec<String>,
    queue: VecDeque<(String, Vec<u8>, u64)>,
    inflight: BTreeMap<u16, (String, Vec<u8>, u64)>,
    incoming_qos2: BTreeSet<u16>,
    next_pid: u16,
}

struct Conn {
    id: u64,
    rx: Vec<u8>,
    version: Version,
    client_id: Option<String>,
    user: String,
}

/// A command the cloud issued: id, when, and when its PUBLISH was acknowledged by the gateway.
#[derive(Clone, Copy, Debug)]
pub struct Issued {
    pub command: Command,
    pub at: SimTime,
    pub acked: Option<SimTime>,
}

/// The operator's command signing: key, the next counter, and how long a command stays valid.
pub struct OperatorSigner {
    pub key: gridtwin_firmware::gateway::signed::SigningKey,
    pub counter: u32,
    pub lifetime: SimDuration,
}

/// The broker and store.
pub struct CloudAgent {
    /// Signs the operator's commands (none: they go as plain text).
    pub signer: Option<OperatorSigner>,
    /// The broker is compromised (none: it is honest).
    pub attack: Option<crate::security::broker::BrokerAttack>,
    gateway: AgentId,
    gateway_id: String,
    users: Vec<(String, String)>,
    core_latency: SimDuration,
    conn: Option<Conn>,
    sessions: BTreeMap<String, Session>,
    schedule: Vec<(SimTime, Command)>,
    next_command: usize,
    outages: Vec<Outage>,
    seen: BTreeSet<(u32, u32)>,
    pub rows: Vec<Stored>,
    pub issued: Vec<Issued>,
    pub stats: CloudStats,
}

impl CloudAgent {
    pub fn new(
        gateway: AgentId,
        gateway_id: &str,
        users: Vec<(String, String)>,
        core_latency: SimDuration,
        mut schedule: Vec<(SimTime, Command)>,
        outages: Vec<Outage>,
    ) -> Self {
        schedule.sort_by_key(|c| (c.0, c.1.id));
        CloudAgent {
            signer: None,
            attack: None,
            gateway,
            gateway_id: gateway_id.into(),
            users,
            core_latency,
            conn: None,
            sessions: BTreeMap::new(),
            schedule,
            next_command: 0,
            outages,
            seen: BTreeSet::new(),
            rows: Vec::new(),
            issued: Vec::new(),
            stats: CloudStats::default(),
        }
    }

    /// Readings stored (each once).
    pub fn readings_stored(&self) -> u64 {
        self.rows.len() as u64
    }

    fn down(&self, t: SimTime) -> bool {
        self.outages.iter().any(|o| o.start <= t && t < o.end)
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>, p: Packet<'_>) {
        let Some(c) = &self.conn else { return };
        let mut b = Vec::new();
        if p.encode(c.version, &mut b).is_err() {
            return;
        }
        self.stats.bytes_out += b.len() as u64;
        ctx.send(self.gateway, self.core_latency, Msg::Gw(GwMsg::FromBroker { conn: c.id, bytes: b }));
    }

    /// A command message at QoS 1 (`dup` on a retransmission after the client reconnected).
    fn send_command(&mut self, ctx: &mut Ctx<'_, Msg>, pid: u16, topic: &str, payload: &[u8], dup: bool) {
        let p = Publish { dup, qos: QoS::AtLeastOnce, retain: false, topic, pid: Some(pid), payload };
        self.send(ctx, Packet::Publish(p));
    }

    fn close(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(c) = self.conn.take() {
            ctx.send(self.gateway, self.core_latency, Msg::Gw(GwMsg::Closed(c.id)));
        }
    }

    fn on_bytes(&mut self, conn: u64, bytes: Vec<u8>, ctx: &mut Ctx<'_, Msg>) {
        if self.down(ctx.now()) {
            return;
        }
        self.stats.bytes_in += bytes.len() as u64;
        if self.conn.as_ref().is_none_or(|c| c.id != conn) {
            // A new connection replaces the old one (the session, if any, lives on).
            self.conn =
                Some(Conn { id: conn, rx: Vec::new(), version: Version::V311, client_id: None, user: String::new() });
        }
        let Some(c) = self.conn.as_mut() else { return };
        c.rx.extend_from_slice(&bytes);
        // Each packet consumes at least 2 bytes; the loop ends with the buffer.
        loop {
            let Some(c) = self.conn.as_mut() else { return };
            let rx = std::mem::take(&mut c.rx);
            let version = c.version;
            let r = Packet::decode(&rx, version, MAX_PACKET);
            let used = match r {
                Ok(Some((p, n))) => {
                    self.on_packet(p, ctx);
                    n
                }
                Ok(None) => {
                    if let Some(c) = self.conn.as_mut() {
                        c.rx = rx;
                    }
                    return;
                }
                Err(_) => {
                    self.stats.protocol_errors += 1;
                    self.close(ctx);
                    return;
                }
            };
            match self.conn.as_mut() {
                Some(c) if c.id == conn => c.rx = rx[used..].to_vec(),
                _ => return,
            }
        }
    }

    fn on_packet(&mut self, p: Packet<'_>, ctx: &mut Ctx<'_, Msg>) {
        let Some(c) = self.conn.as_ref() else { return };
        let authed = c.client_id.is_some();
        match p {
            Packet::Connect(k) if !authed => {
                self.stats.connects += 1;
                if let Some(c) = self.conn.as_mut() {
                    c.version = k.version;
                }
                let user = k.username.unwrap_or("");
                let ok = self.users.iter().any(|(u, pw)| u == user && Some(pw.as_bytes()) == k.password);
                if !ok {
                    self.stats.auth_refused += 1;
                    let code = if k.version == Version::V5 { 0x86 } else { 4 };
                    self.send(ctx, Packet::ConnAck(ConnAck { session_present: false, code }));
                    self.close(ctx);
                    return;
                }
                if k.clean_start {
                    self.sessions.remove(k.client_id);
                }
                let present = self.sessions.contains_key(k.client_id);
                self.sessions
                    .entry(k.client_id.to_string())
                    .or_insert_with(|| Session { next_pid: 1, ..Default::default() });
                if let Some(c) = self.conn.as_mut() {
                    c.client_id = Some(k.client_id.to_string());
                    c.user = user.to_string();
                }
                self.send(ctx, Packet::ConnAck(ConnAck { session_present: present, code: 0 }));
                // Retransmit unacknowledged command messages, then send the queued ones.
                let id = k.client_id.to_string();
                let resend: Vec<(u16, String, Vec<u8>)> =
                    self.sessions[&id].inflight.iter().map(|(p, (t, b, _))| (*p, t.clone(), b.clone())).collect();
                for (pid, topic, payload) in resend {
                    self.send_command(ctx, pid, &topic, &payload, true);
                }
                self.drain_queue(&id, ctx);
            }
            _ if !authed => {
                self.stats.protocol_errors += 1;
                self.close(ctx);
            }
            Packet::Publish(p) => self.on_publish(p, ctx),
            Packet::PubRel(pid, _) => {
                if let Some(s) = self.session_mut() {
                    s.incoming_qos2.remove(&pid);
                }
                self.send(ctx, Packet::PubComp(pid, 0));
            }
            Packet::PubAck(pid, _) => {
                let now = ctx.now();
                if let Some(s) = self.session_mut()
                    && let Some((_, _, idx)) = s.inflight.remove(&pid)
                    && let Some(i) = self.issued.get_mut(idx as usize)
                    && i.acked.is_none()
                {
                    i.acked = Some(now);
                }
                let id = self.conn.as_ref().and_then(|c| c.client_id.clone()).unwrap_or_default();
                self.drain_queue(&id, ctx);
            }
            Packet::Subscribe(s) => {
                let (user, v5) = match &self.conn {
                    Some(c) => (c.user.clone(), c.version == Version::V5),
                    None => return,
                };
                let prefix = format!("grid/{user}/cmd/");
                let mut codes = Vec::new();
                let mut granted = Vec::new();
                for (f, q) in s.filters() {
                    if f.starts_with(&prefix) {
                        codes.push((q as u8).min(1));
                        granted.push(f.to_string());
                    } else {
                        self.stats.subscribe_refused += 1;
                        codes.push(if v5 { 0x87 } else { 0x80 });
                    }
                }
                if let Some(sess) = self.session_mut() {
                    for g in granted {
                        if !sess.subs.contains(&g) && sess.subs.len() < 64 {
                            sess.subs.push(g);
                        }
                    }
                }
                self.send(ctx, Packet::SubAck(s.pid, &codes));
            }
            Packet::PingReq => self.send(ctx, Packet::PingResp),
            Packet::Disconnect(_) => self.conn = None,
            Packet::PubRec(..) | Packet::PubComp(..) => {}
            _ => {
                self.stats.protocol_errors += 1;
                self.close(ctx);
            }
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        let id = self.conn.as_ref()?.client_id.clone()?;
        self.sessions.get_mut(&id)
    }

    fn on_publish(&mut self, p: Publish<'_>, ctx: &mut Ctx<'_, Msg>) {
        self.stats.publishes += 1;
        let (user, v5) = match &self.conn {
            Some(c) => (c.user.clone(), c.version == Version::V5),
            None => return,
        };
        let allowed = p.topic == format!("grid/{user}/events");
        let refuse = if v5 { 0x87 } else { 0 };
        if !allowed {
            self.stats.publish_refused += 1;
            self.stats.refused_readings += batch::reader(p.payload).map_or(0, |r| r.len() as u64);
        }
        match (p.qos, p.pid) {
            (QoS::AtMostOnce, _) => {
                if allowed {
                    self.store(p.payload, ctx.now());
                }
            }
            (QoS::AtLeastOnce, Some(pid)) => {
                if allowed {
                    self.store(p.payload, ctx.now());
                }
                self.send(ctx, Packet::PubAck(pid, if allowed { 0 } else { refuse }));
            }
            (QoS::ExactlyOnce, Some(pid)) => {
                let first =
                    self.session_mut().is_some_and(|s| s.incoming_qos2.len() < 1024 && s.incoming_qos2.insert(pid));
                if allowed && first {
                    self.store(p.payload, ctx.now());
                }
                self.send(ctx, Packet::PubRec(pid, if allowed { 0 } else { refuse }));
            }
            _ => {
                let _ = MqttError::BadPacketId;
                self.stats.protocol_errors += 1;
                self.close(ctx);
            }
        }
    }

    fn store(&mut self, payload: &[u8], now: SimTime) {
        match batch::decode(payload) {
            Ok(rs) => {
                self.stats.batches += 1;
                for r in rs {
                    if self.seen.insert((r.lmu_id, r.seq)) {
                        self.rows.push(Stored { reading: r, received: now });
                    } else {
                        self.stats.duplicates += 1;
                    }
                }
            }
            Err(_) => self.stats.batches_malformed += 1,
        }
    }

    /// Sends queued command messages of session `id` if its client is connected now.
    fn drain_queue(&mut self, id: &str, ctx: &mut Ctx<'_, Msg>) {
        let connected = self.conn.as_ref().is_some_and(|c| c.client_id.as_deref() == Some(id));
        if !connected {
            return;
        }
        // At most 16 unacknowledged command messages per session.
        let mut out = Vec::new();
        if let Some(s) = self.sessions.get_mut(id) {
            while s.inflight.len() < 16 {
                let Some((topic, payload, idx)) = s.queue.pop_front() else { break };
                let mut pid = s.next_pid.max(1);
                while s.inflight.contains_key(&pid) {
                    pid = pid.checked_add(1).unwrap_or(1);
                }
                s.next_pid = pid.checked_add(1).unwrap_or(1);
                s.inflight.insert(pid, (topic.clone(), payload.clone(), idx));
                out.push((pid, topic, payload));
            }
        }
        for (pid, topic, payload) in out {
            self.send_command(ctx, pid, &topic, &payload, false);
        }
    }

    fn issue(&mut self, command: Command, ctx: &mut Ctx<'_, Msg>) {
        self.stats.commands_issued += 1;
        let idx = self.issued.len() as u64;
        self.issued.push(Issued { command, at: ctx.now(), acked: None });
        let payload = match &mut self.signer {
            Some(s) => {
                s.counter = s.counter.saturating_add(1);
                let expires_ns = ctx.now().saturating_add(s.lifetime).as_nanos();
                let signed =
                    gridtwin_firmware::gateway::signed::SignedCommand::sign(&s.key, command, s.counter, expires_ns);
                signed.to_text().into_bytes()
            }
            None => command.to_text().into_bytes(),
        };
        let payload = match &mut self.attack {
            Some(a) => a.pass(ctx.now(), command.lmu_id, payload),
            None => payload,
        };
        self.publish_command(command.lmu_id, payload, idx, ctx);
    }

    /// Queues a command message on every session subscribed to its topic and sends what the window allows.
    fn publish_command(&mut self, lmu: u32, payload: Vec<u8>, idx: u64, ctx: &mut Ctx<'_, Msg>) {
        let topic = format!("grid/{}/cmd/{}", self.gateway_id, lmu);
        let mut targets = Vec::new();
        for (id, s) in &mut self.sessions {
            if s.subs.iter().any(|f| topic_matches(f, &topic)) {
                if s.queue.len() < MAX_SESSION_QUEUE {
                    s.queue.push_back((topic.clone(), payload.clone(), idx));
                }
                targets.push(id.clone());
            }
        }
        if targets.is_empty() && idx != u64::MAX {
            self.stats.commands_undeliverable += 1;
        }
        for id in targets {
            self.drain_queue(&id, ctx);
        }
    }
}

impl Agent<Msg> for CloudAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(&(t, _)) = self.schedule.first() {
            ctx.schedule_at(t, class::DEFAULT, Msg::Timer(TIMER_COMMAND));
        }
        for o in self.outages.clone() {
            ctx.schedule_at(o.start, class::DEFAULT, Msg::Timer(TIMER_OUTAGE));
        }
        if let Some(a) = &self.attack {
            if let Some(e) = a.inject_every {
                ctx.schedule_at(a.start.saturating_add(e), class::DEFAULT, Msg::Timer(TIMER_INJECT));
            }
            if let Some(e) = a.replay_every {
                ctx.schedule_at(a.start.saturating_add(e), class::DEFAULT, Msg::Timer(TIMER_REPLAY));
            }
        }
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Gw(GwMsg::ToBroker { conn, bytes }) => self.on_bytes(conn, bytes, ctx),
            Msg::Gw(GwMsg::Closed(conn)) if self.conn.as_ref().is_some_and(|c| c.id == conn) => self.conn = None,
            Msg::Timer(TIMER_COMMAND) => {
                let now = ctx.now();
                // Bounded by the schedule's length.
                while let Some(&(t, c)) = self.schedule.get(self.next_command) {
                    if t > now {
                        ctx.schedule_at(t, class::DEFAULT, Msg::Timer(TIMER_COMMAND));
                        break;
                    }
                    self.next_command += 1;
                    self.issue(c, ctx);
                }
            }
            Msg::Timer(TIMER_OUTAGE) => self.close(ctx),
            Msg::Timer(tag @ (TIMER_INJECT | TIMER_REPLAY)) => {
                let now = ctx.now();
                let Some(a) = self.attack.as_mut().filter(|a| a.active(now)) else { return };
                let (every, msg) =
                    if tag == TIMER_INJECT { (a.inject_every, a.inject(now)) } else { (a.replay_every, a.replay()) };
                if let Some(e) = every {
                    ctx.schedule_at(now.saturating_add(e), class::DEFAULT, Msg::Timer(tag));
                }
                if let Some((lmu, payload)) = msg {
                    // Not an operator command: no entry in `issued`.
                    self.publish_command(lmu, payload, u64::MAX, ctx);
                }
            }
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "cloud"
    }
}
