//! The scenario's `gateway` section: the coordinator's UART, the gateway's batching and MQTT session, the
//! cellular backhaul, the cloud broker, outages and operator commands. Every field but the first four has a
//! default, so `gateway: (uart_baud: 115200, report_every: "15min", wait_all_timeout: "30s")` is a full section.

use crate::scenario::Dur;
use crate::twin::uart::OverflowPolicy;
use serde::{Deserialize, Serialize};

/// Scenario section: coordinator, UART, gateway, backhaul and cloud.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// UART line rate between coordinator and gateway (8N1: 10 line bits per byte).
    pub uart_baud: u32,
    /// The coordinator's UART transmit buffer, in 53-byte report frames (bytes = 53 x this).
    #[serde(default = "default_uart_buffer_frames")]
    pub uart_buffer_frames: usize,
    /// What a full UART buffer discards.
    #[serde(default)]
    pub uart_overflow: OverflowPolicy,
    /// Bit errors per data bit on the UART (both directions).
    #[serde(default)]
    pub uart_bit_error_rate: f64,
    /// Framing errors (lost bytes) per byte on the UART.
    #[serde(default)]
    pub uart_framing_error_rate: f64,
    /// How often LMUs report (the gateway's batching interval).
    pub report_every: Dur,
    /// How long the gateway keeps a batch open after its first reading, waiting for the other LMUs.
    pub wait_all_timeout: Dur,
    /// One-way latency from the cell to the broker (core network and internet), added to the radio's.
    #[serde(default = "default_uplink_latency")]
    pub uplink_latency: Dur,
    /// Gateway hardware model (`models/NAME.ron`: buffers, store-and-forward capacity, board power).
    #[serde(default = "default_model")]
    pub model: String,
    /// Cellular modem model (`models/NAME.ron`).
    #[serde(default = "default_modem")]
    pub modem: String,
    /// The gateway's id: topics `grid/{gateway_id}/events` and `grid/{gateway_id}/cmd/#`.
    #[serde(default = "default_gateway_id")]
    pub gateway_id: String,
    /// TLS on the backhaul connection (none: plain TCP).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The gateway's MQTT session.
    #[serde(default)]
    pub mqtt: MqttSettings,
    /// The cloud broker's accounts (none: the broker accepts the gateway's own credentials).
    #[serde(default)]
    pub broker: Option<BrokerSettings>,
    /// Coverage outages of the cellular network.
    #[serde(default)]
    pub outages: Vec<OutageSpec>,
    /// Random coverage outages, on top of the scheduled ones.
    #[serde(default)]
    pub random_outages: Option<RandomOutages>,
    /// Times the broker is down.
    #[serde(default)]
    pub broker_outages: Vec<OutageSpec>,
    /// Operator commands sent from the cloud.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
}

/// TLS on the backhaul.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Handshake bytes, client + server (about 1,000 with an ECDSA P-256 certificate, 1,600 with RSA-2048).
    #[serde(default = "default_tls_handshake")]
    pub handshake_bytes: u32,
}

/// MQTT protocol version.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum MqttVersion {
    #[default]
    V311,
    V5,
}

/// The gateway's MQTT session settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    #[serde(default)]
    pub version: MqttVersion,
    /// QoS of the batch publishes: 0, 1 or 2.
    #[serde(default = "default_qos")]
    pub qos: u8,
    #[serde(default = "default_keep_alive")]
    pub keep_alive: Dur,
    /// User name (default: the gateway id).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "default_password")]
    pub password: String,
    /// Clean Session / Clean Start (false keeps a persistent session across reconnects).
    #[serde(default)]
    pub clean_session: bool,
    /// Most QoS 1/2 publishes in flight.
    #[serde(default = "default_inflight")]
    pub max_inflight: u16,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            version: MqttVersion::V311,
            qos: default_qos(),
            keep_alive: default_keep_alive(),
            username: None,
            password: default_password(),
            clean_session: false,
            max_inflight: default_inflight(),
        }
    }
}

/// One broker account. A client may publish only to `grid/{username}/events` and subscribe only under
/// `grid/{username}/cmd/` (mosquitto's `pattern write grid/%u/events`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrokerUser {
    pub username: String,
    pub password: String,
}

/// The cloud broker's accounts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub users: Vec<BrokerUser>,
}

/// An outage: from `at` for `duration`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutageSpec {
    pub at: Dur,
    pub duration: Dur,
}

/// Random outages: exponential gaps with mean `mean_every` between outages of exponential length
/// `mean_duration`, from the gateway's `outages` stream.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RandomOutages {
    pub mean_every: Dur,
    pub mean_duration: Dur,
}

/// What an operator command does at the LMU.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum CommandAction {
    /// Open the contactor and hold it open.
    Open,
    /// Close the contactor and hold it closed.
    Close,
    /// Hand the contactor back to protection and FLISR.
    Auto,
    /// Change the LMU's reporting period.
    ReportEvery(Dur),
}

/// An operator command: at `at`, the cloud publishes it on `grid/{gateway_id}/cmd/{lmu}`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub at: Dur,
    pub lmu: u32,
    pub action: CommandAction,
}

/// The gateway hardware model (`models/gateway-*.ron`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayModel {
    /// Longest stuffed UART frame the receiver buffers, bytes.
    pub max_frame_bytes: usize,
    /// Closed batches the store-and-forward queue holds.
    pub store_batches: usize,
    /// Most readings per batch.
    pub max_batch_readings: usize,
    /// Command frames waiting for the coordinator.
    pub downlink_queue: usize,
    /// Board power without the modem, mW.
    pub board_mw: f64,
}

impl GatewayModel {
    pub fn validate(&self) -> Result<(), String> {
        if !(64..=65_536).contains(&self.max_frame_bytes) {
            return Err("max_frame_bytes: must be in 64..=65536".into());
        }
        if !(1..=1_000_000).contains(&self.store_batches) {
            return Err("store_batches: must be in 1..=1000000".into());
        }
        if !(1..=65_535).contains(&self.max_batch_readings) {
            return Err("max_batch_readings: must be in 1..=65535".into());
        }
        if !(1..=65_536).contains(&self.downlink_queue) {
            return Err("downlink_queue: must be in 1..=65536".into());
        }
        if !(self.board_mw.is_finite() && self.board_mw >= 0.0) {
            return Err("board_mw: must be a non-negative number".into());
        }
        Ok(())
    }
}

fn default_uart_buffer_frames() -> usize {
    256
}
fn default_uplink_latency() -> Dur {
    Dur(crate::engine::SimDuration::from_millis(20))
}
fn default_model() -> String {
    "gateway-v1".into()
}
fn default_modem() -> String {
    "modem-lte-cat1".into()
}
fn default_gateway_id() -> String {
    "gw-000001".into()
}
fn default_tls_handshake() -> u32 {
    1000
}
fn default_qos() -> u8 {
    1
}
/// 20 minutes: longer than the usual reporting period, so a cellular gateway does not wake its modem only to ping.
fn default_keep_alive() -> Dur {
    Dur(crate::engine::SimDuration::from_secs(1200))
}
fn default_password() -> String {
    "gridtwin-gateway".into()
}
fn default_inflight() -> u16 {
    16
}

impl GatewayConfig {
    /// The MQTT user name the gateway logs in with.
    pub fn username(&self) -> &str {
        self.mqtt.username.as_deref().unwrap_or(&self.gateway_id)
    }

    /// Checks ranges; errors name the field (relative to the section).
    pub fn validate(&self) -> Result<(), (String, String)> {
        use crate::engine::SimDuration as D;
        let e = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if !(300..=4_000_000).contains(&self.uart_baud) {
            return Err(("uart_baud".into(), format!("{} is outside 300..=4000000 baud", self.uart_baud)));
        }
        if !(1..=1 << 20).contains(&self.uart_buffer_frames) {
            return e("uart_buffer_frames", "must be between 1 and 1048576");
        }
        for (f, r) in [
            ("uart_bit_error_rate", self.uart_bit_error_rate),
            ("uart_framing_error_rate", self.uart_framing_error_rate),
        ] {
            if !(0.0..=0.5).contains(&r) {
                return e(f, "must be a probability in 0..=0.5");
            }
        }
        if self.report_every.0 < D::from_secs(1) {
            return e("report_every", "must be at least 1s");
        }
        if self.wait_all_timeout.0 >= self.report_every.0 {
            return e("wait_all_timeout", "must be shorter than report_every");
        }
        if self.uplink_latency.0 > D::from_secs(60) {
            return e("uplink_latency", "must be at most 60s");
        }
        if self.gateway_id.is_empty() || self.gateway_id.len() > 64 || self.gateway_id.contains(['/', '+', '#', '\0']) {
            return e("gateway_id", "must be 1-64 characters without '/', '+', '#'");
        }
        if self.mqtt.qos > 2 {
            return e("mqtt.qos", "must be 0, 1 or 2");
        }
        if self.mqtt.keep_alive.0 > D::from_secs(65_535)
            || !self.mqtt.keep_alive.0.as_nanos().is_multiple_of(1_000_000_000)
        {
            return e("mqtt.keep_alive", "must be whole seconds up to 65535s (0 disables keepalive)");
        }
        if self.mqtt.max_inflight == 0 {
            return e("mqtt.max_inflight", "must be at least 1");
        }
        if self.mqtt.password.len() > 65_535 || self.username().len() > 65_535 {
            return e("mqtt.password", "user name and password must be shorter than 65536 bytes");
        }
        if let Some(t) = self.tls
            && !(100..=100_000).contains(&t.handshake_bytes)
        {
            return e("tls.handshake_bytes", "must be in 100..=100000");
        }
        if let Some(r) = self.random_outages
            && (r.mean_every.0 < D::from_secs(1) || r.mean_duration.0 == D::ZERO)
        {
            return e("random_outages", "mean_every must be at least 1s and mean_duration positive");
        }
        for (name, list) in [("outages", &self.outages), ("broker_outages", &self.broker_outages)] {
            for (i, o) in list.iter().enumerate() {
                if o.duration.0 == D::ZERO {
                    return Err((format!("{name}[{i}].duration"), "must be positive".into()));
                }
            }
        }
        if self.commands.len() > 100_000 {
            return e("commands", "at most 100000 commands");
        }
        for (i, c) in self.commands.iter().enumerate() {
            if let CommandAction::ReportEvery(d) = c.action
                && !(D::from_secs(1)..=D::from_secs(86_400)).contains(&d.0)
            {
                return Err((format!("commands[{i}].action"), "ReportEvery needs 1s..=24h".into()));
            }
        }
        Ok(())
    }
}
