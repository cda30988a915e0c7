//! The gateway firmware: from LMU readings arriving over the coordinator's UART to MQTT batches, and from
//! MQTT commands back down to the LMUs. `no_std` + `alloc`, sans-IO.
//!
//! - **Aggregation by LMU id**: readings (48-byte report frames, [`crate::report`]) collect in an open batch.
//!   The batch closes when every expected LMU has a reading in it, when `wait_all` has passed since its first
//!   reading, or when it holds `max_batch_readings`. A reading that arrives after its interval's batch closed
//!   goes into the next batch: nothing is dropped for being late.
//! - **Batch payload**: [`batch`] (documented there, with its bytes per reading), published on
//!   `grid/{gateway_id}/events` at the configured QoS.
//! - **Store and forward**: closed batches wait in a bounded queue (`store_batches`) while the uplink is down
//!   or the MQTT in-flight window is full; when the queue is full the oldest batch is dropped and its readings
//!   counted (`dropped_store_overflow`).
//! - **Commands**: messages on `grid/{gateway_id}/cmd/#` are parsed ([`command`]); a command for a known LMU
//!   becomes a mesh command frame in a bounded downlink queue for the coordinator; a malformed payload or an
//!   unknown LMU is refused and counted. A command signed by the operator ([`signed`]) is forwarded with its
//!   signature, unverified: the LMU that switches verifies it.
//! - **Broker refusals**: when the broker refuses the credentials, or (MQTT 5) refuses a publish, the
//!   readings concerned are dropped and counted (`dropped_refused`).
//!
//! The host owns the transport: it opens one when [`Gateway::wants_transport`], reports
//! [`Gateway::transport_up`]/[`Gateway::transport_down`], feeds [`Gateway::input`], sends
//! [`Gateway::take_output`], and calls [`Gateway::poll`] at the returned deadline.

pub mod batch;
pub mod command;
pub mod signed;

use crate::mqtt::{Client, ClientConfig, ClientEvent, QoS, SendError, State};
use crate::report::{ReportPacket, ReportRepr};
use crate::time::{Duration, Instant};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use command::Command;

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Topic segment: batches go to `grid/{gateway_id}/events`, commands come from `grid/{gateway_id}/cmd/#`.
    pub gateway_id: String,
    /// The LMUs this gateway serves (a batch is complete when all have reported; commands for others are refused).
    pub lmus: BTreeSet<u32>,
    /// How long a batch stays open after its first reading.
    pub wait_all: Duration,
    /// Most readings per batch (1..=`batch::MAX_READINGS`).
    pub max_batch_readings: usize,
    /// Closed batches the store-and-forward queue holds.
    pub store_batches: usize,
    /// QoS of batch publishes.
    pub qos: QoS,
    /// Most command frames waiting for the coordinator.
    pub downlink_queue: usize,
    pub mqtt: ClientConfig,
}

impl GatewayConfig {
    pub fn events_topic(&self) -> String {
        alloc::format!("grid/{}/events", self.gateway_id)
    }
    pub fn command_filter(&self) -> String {
        alloc::format!("grid/{}/cmd/#", self.gateway_id)
    }
}

/// Counters; reading counts obey `readings_in = open + stored + in flight + delivered + dropped_*` (see
/// [`Gateway::readings_held`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Report frames accepted.
    pub readings_in: u64,
    /// UART payloads that were not valid report or command frames.
    pub frames_bad: u64,
    pub batches_closed: u64,
    /// Batches closed because every expected LMU had reported.
    pub batches_complete: u64,
    /// PUBLISH packets of batches handed to the client (first transmissions).
    pub messages_published: u64,
    pub payload_bytes_published: u64,
    /// Batches (QoS 1/2: acknowledged; QoS 0: sent) and their readings and payload bytes.
    pub batches_delivered: u64,
    pub readings_delivered: u64,
    pub payload_bytes_delivered: u64,
    /// MQTT bytes of those PUBLISH packets (first transmissions).
    pub publish_packet_bytes: u64,
    pub dropped_store_overflow: u64,
    /// Readings dropped because the broker refused the credentials.
    pub dropped_refused: u64,
    /// Readings in batches the broker refused (MQTT 5 PUBACK/PUBREC reason >= 0x80).
    pub dropped_publish_refused: u64,
    pub commands_received: u64,
    pub commands_forwarded: u64,
    pub commands_malformed: u64,
    pub commands_unknown_lmu: u64,
    pub commands_queue_full: u64,
}

#[derive(Clone, Debug)]
struct Stored {
    payload: Vec<u8>,
    readings: u32,
}

/// A command accepted for forwarding: the command, the operator's signature if it came signed, and when it
/// arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downlink {
    pub command: Command,
    pub signed: Option<signed::SignedCommand>,
    pub received_at: Instant,
}

impl Downlink {
    /// The mesh frame: the signed frame when the command came signed (forwarded as is: the gateway holds no
    /// key and cannot change a signed command without the LMU noticing), else the plain one.
    pub fn frame(&self) -> Vec<u8> {
        match &self.signed {
            Some(s) => s.to_frame().to_vec(),
            None => self.command.to_frame().to_vec(),
        }
    }
}

/// The gateway firmware.
#[derive(Clone, Debug)]
pub struct Gateway {
    cfg: GatewayConfig,
    events_topic: String,
    command_filter: String,
    client: Client,
    open: BTreeMap<(u32, u32), ReportRepr>,
    open_lmus: BTreeSet<u32>,
    open_since: Option<Instant>,
    store: VecDeque<Stored>,
    inflight: BTreeMap<u64, Stored>,
    next_tag: u64,
    downlink: VecDeque<Downlink>,
    refused: bool,
    pub stats: GatewayStats,
}

/// Why a configuration is unusable (the field and what is wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError(pub &'static str, pub &'static str);

impl Gateway {
    pub fn new(mut cfg: GatewayConfig) -> Result<Self, ConfigError> {
        if cfg.gateway_id.is_empty() || cfg.gateway_id.contains(['/', '+', '#', '\0']) {
            return Err(ConfigError("gateway_id", "must be non-empty without '/', '+', '#'"));
        }
        if !(1..=batch::MAX_READINGS).contains(&cfg.max_batch_readings) {
            return Err(ConfigError("max_batch_readings", "must be in 1..=65535"));
        }
        if cfg.store_batches == 0 {
            return Err(ConfigError("store_batches", "must be at least 1"));
        }
        cfg.downlink_queue = cfg.downlink_queue.max(1);
        let client = Client::new(cfg.mqtt.clone());
        Ok(Gateway {
            events_topic: cfg.events_topic(),
            command_filter: cfg.command_filter(),
            cfg,
            client,
            open: BTreeMap::new(),
            open_lmus: BTreeSet::new(),
            open_since: None,
            store: VecDeque::new(),
            inflight: BTreeMap::new(),
            next_tag: 1,
            downlink: VecDeque::new(),
            refused: false,
            stats: GatewayStats::default(),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// Readings held: (in the open batch, in the store, in flight awaiting acknowledgement).
    pub fn readings_held(&self) -> (u64, u64, u64) {
        (
            self.open.len() as u64,
            self.store.iter().map(|s| s.readings as u64).sum(),
            self.inflight.values().map(|s| s.readings as u64).sum(),
        )
    }
    /// Sets the LMUs this gateway serves.
    pub fn set_lmus(&mut self, lmus: BTreeSet<u32>) {
        self.cfg.lmus = lmus;
    }
    /// Closed batches waiting in the store.
    pub fn stored_batches(&self) -> usize {
        self.store.len()
    }
    /// The broker refused the credentials: the gateway drops what it would publish.
    pub fn is_refused(&self) -> bool {
        self.refused
    }

    /// A payload from the UART (a report frame).
    pub fn on_frame(&mut self, now: Instant, payload: &[u8]) {
        let Ok(p) = ReportPacket::new_checked(payload) else {
            self.stats.frames_bad += 1;
            return;
        };
        let r = ReportRepr::parse(&p);
        self.stats.readings_in += 1;
        if self.open_since.is_none() {
            self.open_since = Some(now);
        }
        self.open.insert((r.lmu_id, r.seq), r);
        self.open_lmus.insert(r.lmu_id);
        let complete = !self.cfg.lmus.is_empty() && self.cfg.lmus.iter().all(|l| self.open_lmus.contains(l));
        if complete || self.open.len() >= self.cfg.max_batch_readings {
            self.close_batch(complete);
        }
        self.service(now);
    }

    /// Closes the open batch now (e.g. before shutting down).
    pub fn flush(&mut self, now: Instant) {
        self.close_batch(false);
        self.service(now);
    }

    fn close_batch(&mut self, complete: bool) {
        self.open_since = None;
        if self.open.is_empty() {
            return;
        }
        let readings: Vec<ReportRepr> = core::mem::take(&mut self.open).into_values().collect();
        self.open_lmus.clear();
        self.stats.batches_closed += 1;
        if complete {
            self.stats.batches_complete += 1;
        }
        let n = readings.len() as u32;
        if self.refused {
            self.stats.dropped_refused += n as u64;
            return;
        }
        let mut payload = Vec::new();
        // At most max_batch_readings <= MAX_READINGS: encoding cannot fail.
        let _ = batch::encode(&readings, &mut payload);
        if self.store.len() >= self.cfg.store_batches
            && let Some(old) = self.store.pop_front()
        {
            self.stats.dropped_store_overflow += old.readings as u64;
        }
        self.store.push_back(Stored { payload, readings: n });
    }

    /// The transport is up (TCP, and TLS if any, established).
    pub fn transport_up(&mut self, now: Instant) {
        self.client.transport_up(now);
        self.service(now);
    }
    /// The transport went down.
    pub fn transport_down(&mut self, now: Instant) {
        self.client.transport_down(now);
        self.service(now);
    }
    /// Whether the host should open a transport now.
    pub fn wants_transport(&self, now: Instant) -> bool {
        self.client.wants_transport(now)
    }
    /// Bytes from the broker. Returns false if the connection must be closed (protocol error, or the
    /// broker's DISCONNECT or refusal).
    pub fn input(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let ok = self.client.handle_input(now, bytes).is_ok();
        self.service(now);
        ok && matches!(self.client.state(), State::Connected | State::Connecting { .. })
    }
    /// Bytes for the broker.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.client.take_output()
    }
    /// The next command to forward to the coordinator.
    pub fn pop_downlink(&mut self) -> Option<Downlink> {
        self.downlink.pop_front()
    }
    /// Sends DISCONNECT (the session ends).
    pub fn disconnect(&mut self, now: Instant) {
        self.client.disconnect(now);
    }

    /// When the open batch closes on its timeout, if a batch is open.
    pub fn batch_deadline(&self) -> Option<Instant> {
        self.open_since.map(|t| t + self.cfg.wait_all)
    }

    /// Runs timers (batch timeout, keepalive, reconnect) and returns the next deadline. A deadline at or before
    /// `now` means the client wants a transport (see [`Gateway::wants_transport`]).
    pub fn poll(&mut self, now: Instant) -> Instant {
        if let Some(t) = self.open_since
            && now >= t + self.cfg.wait_all
        {
            self.close_batch(false);
        }
        self.service(now);
        let mut next = self.client.poll(now);
        self.service(now);
        if let Some(t) = self.open_since {
            next = next.min(t + self.cfg.wait_all);
        }
        next
    }

    fn service(&mut self, now: Instant) {
        // Bounded: each event is handled once; the client queues at most a few per input.
        while let Some(e) = self.client.pop_event() {
            match e {
                ClientEvent::Connected { .. } => {
                    let filter = self.command_filter.clone();
                    let _ = self.client.subscribe(now, &filter, QoS::AtLeastOnce);
                }
                ClientEvent::Refused(_) => {
                    if matches!(self.client.state(), State::Refused(_)) {
                        self.refused = true;
                        let dropped: u64 = self.store.drain(..).map(|s| s.readings as u64).sum::<u64>()
                            + core::mem::take(&mut self.inflight).values().map(|s| s.readings as u64).sum::<u64>();
                        self.stats.dropped_refused += dropped;
                    }
                }
                ClientEvent::Delivered { tag, reason } => {
                    if let Some(s) = self.inflight.remove(&tag) {
                        if reason >= 0x80 {
                            self.stats.dropped_publish_refused += s.readings as u64;
                        } else {
                            self.delivered(&s);
                        }
                    }
                }
                ClientEvent::Message { payload, .. } => self.on_command(now, &payload),
                ClientEvent::SubAck { .. } | ClientEvent::Lost => {}
            }
        }
        // Publish stored batches while the window allows (bounded by the store's length).
        while !self.refused && self.client.is_connected() && !self.store.is_empty() {
            if self.cfg.qos != QoS::AtMostOnce && !self.client.can_publish() {
                break;
            }
            let Some(s) = self.store.pop_front() else { break };
            let tag = self.next_tag;
            match self.client.publish(now, &self.events_topic.clone(), &s.payload, self.cfg.qos, tag) {
                Ok(_) => {
                    self.next_tag += 1;
                    self.stats.messages_published += 1;
                    self.stats.payload_bytes_published += s.payload.len() as u64;
                    let v = self.client.config().version;
                    self.stats.publish_packet_bytes +=
                        crate::mqtt::publish_len(v, self.events_topic.len(), self.cfg.qos, s.payload.len()) as u64;
                    if self.cfg.qos == QoS::AtMostOnce {
                        self.delivered(&s);
                    } else {
                        self.inflight.insert(tag, s);
                    }
                }
                Err(SendError::WindowFull | SendError::NotConnected) => {
                    self.store.push_front(s);
                    break;
                }
                Err(SendError::Codec(_)) => {
                    // A payload the codec cannot carry (over 268 MB): impossible with bounded batches.
                    self.stats.dropped_refused += s.readings as u64;
                }
            }
        }
    }

    fn delivered(&mut self, s: &Stored) {
        self.stats.batches_delivered += 1;
        self.stats.readings_delivered += s.readings as u64;
        self.stats.payload_bytes_delivered += s.payload.len() as u64;
    }

    fn on_command(&mut self, now: Instant, payload: &[u8]) {
        self.stats.commands_received += 1;
        let parsed = if signed::SignedCommand::is_signed_text(payload) {
            signed::SignedCommand::parse(payload).map(|s| (s.command, Some(s)))
        } else {
            Command::parse(payload).map(|c| (c, None))
        };
        let Ok((c, signed)) = parsed else {
            self.stats.commands_malformed += 1;
            return;
        };
        if !self.cfg.lmus.contains(&c.lmu_id) {
            self.stats.commands_unknown_lmu += 1;
            return;
        }
        if self.downlink.len() >= self.cfg.downlink_queue {
            self.stats.commands_queue_full += 1;
            return;
        }
        self.stats.commands_forwarded += 1;
        self.downlink.push_back(Downlink { command: c, signed, received_at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{ConnAck, Connect, Packet, Publish, Version};

    fn cfg(qos: QoS) -> GatewayConfig {
        let mut m = ClientConfig::new("gw-1");
        m.username = Some("gw-1".into());
        m.password = Some(b"pw".to_vec());
        GatewayConfig {
            gateway_id: "gw-1".into(),
            lmus: [1, 2, 3].into_iter().collect(),
            wait_all: Duration::from_secs(30),
            max_batch_readings: 100,
            store_batches: 2,
            qos,
            downlink_queue: 4,
            mqtt: m,
        }
    }
    fn frame(id: u32, seq: u32) -> [u8; 48] {
        ReportRepr { lmu_id: id, seq, taken_at_ms: 1000 * seq as u64, ..Default::default() }.to_bytes()
    }
    fn broker_says(g: &mut Gateway, now: Instant, p: Packet<'_>) -> bool {
        let mut b = Vec::new();
        p.encode(Version::V311, &mut b).unwrap();
        g.input(now, &b)
    }
    fn decode_all(bytes: &[u8]) -> Vec<Packet<'_>> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((p, n)) = Packet::decode(&bytes[at..], Version::V311, 1 << 20).unwrap() {
            out.push(p);
            at += n;
        }
        out
    }

    #[test]
    fn batches_complete_or_timeout_store_overflow_and_qos1_delivery() {
        let mut g = Gateway::new(cfg(QoS::AtLeastOnce)).unwrap();
        let t = Instant(0);
        for id in [1, 2, 3] {
            g.on_frame(t, &frame(id, 0));
        }
        assert_eq!(g.stats.batches_complete, 1);
        g.on_frame(t, &frame(1, 1));
        // The client has no transport yet: poll says "now"; the batch closes on its timeout.
        assert_eq!(g.poll(Instant(1)), Instant(0));
        assert_eq!(g.batch_deadline(), Some(Instant(30_000_000_000)));
        g.poll(Instant(30_000_000_000));
        g.on_frame(t, &frame(2, 2));
        g.poll(Instant(61_000_000_000));
        // Three batches, store of two: the oldest (3 readings) was dropped.
        assert_eq!(g.stats.batches_closed, 3);
        assert_eq!(g.stats.dropped_store_overflow, 3);
        assert_eq!(g.readings_held(), (0, 2, 0));
        // Connect: CONNECT goes out; CONNACK brings SUBSCRIBE and both batches.
        assert!(g.wants_transport(Instant(61_000_000_000)));
        g.transport_up(Instant(62_000_000_000));
        let out = g.take_output();
        assert!(matches!(decode_all(&out)[..], [Packet::Connect(Connect { username: Some("gw-1"), .. })]));
        assert!(broker_says(
            &mut g,
            Instant(62_000_000_000),
            Packet::ConnAck(ConnAck { session_present: false, code: 0 })
        ));
        let out = g.take_output();
        let ps = decode_all(&out);
        assert_eq!(ps.len(), 3);
        assert!(matches!(ps[0], Packet::SubscribeOne(_) | Packet::Subscribe(_)));
        let Packet::Publish(Publish { pid: Some(pid), topic, payload, .. }) = ps[1] else { panic!() };
        assert_eq!(topic, "grid/gw-1/events");
        assert_eq!(batch::decode(payload).unwrap().len(), 1);
        assert_eq!(g.readings_held(), (0, 0, 2));
        broker_says(&mut g, Instant(62_000_000_000), Packet::PubAck(pid, 0));
        assert_eq!(g.stats.readings_delivered, 1);
        // A command for a known LMU is forwarded; an unknown LMU and garbage are refused and counted.
        for (i, m) in [&b"open 2 id=5"[..], b"open 99", b"\xFF\x00"].iter().enumerate() {
            let p = Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "grid/gw-1/cmd/x",
                pid: Some(100 + i as u16),
                payload: m,
            };
            broker_says(&mut g, Instant(63_000_000_000), Packet::Publish(p));
        }
        assert_eq!(g.pop_downlink().map(|d| (d.command.lmu_id, d.command.id)), Some((2, 5)));
        assert_eq!((g.stats.commands_unknown_lmu, g.stats.commands_malformed), (1, 1));
        // Every command publish was acknowledged.
        assert_eq!(decode_all(&g.take_output()).iter().filter(|p| matches!(p, Packet::PubAck(..))).count(), 3);
    }

    #[test]
    fn refused_credentials_drop_and_count() {
        let mut g = Gateway::new(cfg(QoS::AtLeastOnce)).unwrap();
        g.on_frame(Instant(0), &frame(1, 0));
        g.flush(Instant(0));
        g.transport_up(Instant(1));
        g.take_output();
        assert!(!broker_says(&mut g, Instant(2), Packet::ConnAck(ConnAck { session_present: false, code: 5 })));
        assert!(g.is_refused());
        assert_eq!(g.stats.dropped_refused, 1);
        assert!(!g.wants_transport(Instant(1_000_000_000_000)));
    }
}
