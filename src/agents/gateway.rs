//! The gateway agent: the gateway firmware ([`gridtwin_firmware::gateway`]) on the event queue, with its UART
//! receiver and command transmitter toward the coordinator, and its cellular modem twin
//! ([`crate::twin::cellular`]) toward the broker.
//!
//! Its backhaul is either simulated (bytes cross the modem twin to the cloud broker agent, with promotion,
//! RTT, rates and outages) or external: the live bridge (`src/bridge/`) carries the very same MQTT bytes over a
//! TCP socket to a real broker, injecting what comes back as events.

use super::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, EventId, SimDuration, SimRng, SimTime, class};
use crate::twin::cellular::CellLink;
use crate::twin::uart::{UartLine, UartSettings};
use gridtwin_firmware::Instant;
use gridtwin_firmware::gateway::command::Command;
use gridtwin_firmware::gateway::{Gateway, GatewayConfig as FwConfig};
use gridtwin_firmware::link::{self, FrameDecoder};
use gridtwin_firmware::mqtt::State;

/// Messages on the upstream path.
#[derive(Debug)]
pub enum GwMsg {
    /// A report frame for the coordinator to forward (from an LMU without a mesh).
    Uplink(Vec<u8>),
    /// Bytes that crossed the UART from the coordinator to the gateway.
    UartUp(Vec<u8>),
    /// Bytes that crossed the UART from the gateway to the coordinator.
    UartDown(Vec<u8>),
    /// Gateway's own: connection `conn` is established (TCP, and TLS if any).
    LinkUp(u64),
    /// MQTT bytes reaching the broker on connection `conn`.
    ToBroker { conn: u64, bytes: Vec<u8> },
    /// MQTT bytes from the broker reaching the gateway's cell.
    FromBroker { conn: u64, bytes: Vec<u8> },
    /// MQTT bytes the gateway's modem has received (or, in bridge mode, read from the socket).
    Rx { conn: u64, bytes: Vec<u8> },
    /// Connection `conn` was closed by the other side.
    Closed(u64),
    /// Gateway's own: the broker's close of `conn` reaches the modem, after the bytes the broker sent before it.
    ClosedRx(u64),
    /// Bridge mode: the socket to the real broker is connected.
    ExternalUp,
}

const TIMER_POLL: u64 = 1;
const TIMER_UART_DOWN_DONE: u64 = 2;
const TIMER_OUTAGE: u64 = 3;
const TIMER_RETRY: u64 = 4;

/// Where the gateway's MQTT bytes go.
pub enum Backhaul {
    /// The modem twin and the cloud broker agent.
    Sim { cell: Box<CellLink>, broker: AgentId },
    /// A real broker through the live bridge: bytes wait in `out` for the bridge to send.
    External { out: Vec<u8>, wants_connect: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    Up,
}

/// A command the gateway forwarded: when it arrived from the broker and what it was.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded {
    pub at: SimTime,
    pub command: Command,
}

/// The gateway on the event queue.
pub struct GatewayAgent {
    pub fw: Gateway,
    rx_up: FrameDecoder,
    pub down: UartLine,
    coordinator: AgentId,
    pub backhaul: Backhaul,
    conn: u64,
    link: Link,
    poll_at: Option<(SimTime, EventId)>,
    retry_at: Option<SimTime>,
    rng: Option<SimRng>,
    uart_rng: Option<SimRng>,
    /// Arrival time of every reading at the gateway (for the one-reading-per-publish comparison).
    pub arrivals: Vec<SimTime>,
    pub forwarded: Vec<Forwarded>,
    /// Connections broken by a coverage outage.
    pub outage_breaks: u64,
    publish_bytes_taken: u64,
}

impl GatewayAgent {
    pub fn new(
        fw: FwConfig,
        uart: UartSettings,
        max_frame_bytes: usize,
        coordinator: AgentId,
        backhaul: Backhaul,
    ) -> Result<Self, String> {
        let fw = Gateway::new(fw).map_err(|e| format!("{}: {}", e.0, e.1))?;
        Ok(GatewayAgent {
            fw,
            rx_up: FrameDecoder::new(max_frame_bytes),
            down: UartLine::new(uart),
            coordinator,
            backhaul,
            conn: 0,
            link: Link::Down,
            poll_at: None,
            retry_at: None,
            rng: None,
            uart_rng: None,
            arrivals: Vec::new(),
            forwarded: Vec::new(),
            outage_breaks: 0,
            publish_bytes_taken: 0,
        })
    }

    /// Valid frames and rejected runs the UART receiver saw.
    pub fn uart_rx(&self) -> (u64, u64) {
        (self.rx_up.frames, self.rx_up.errors)
    }

    /// Bridge mode: bytes for the real broker (taken).
    pub fn take_external(&mut self) -> Vec<u8> {
        match &mut self.backhaul {
            Backhaul::External { out, .. } => std::mem::take(out),
            Backhaul::Sim { .. } => Vec::new(),
        }
    }
    /// Bridge mode: bytes waiting for the bridge.
    pub fn external_pending(&self) -> usize {
        match &self.backhaul {
            Backhaul::External { out, .. } => out.len(),
            Backhaul::Sim { .. } => 0,
        }
    }
    /// Bridge mode: whether the firmware wants a connection now.
    pub fn external_wants_connect(&self) -> bool {
        matches!(self.backhaul, Backhaul::External { wants_connect: true, .. })
    }
    /// The connection id in use.
    pub fn conn(&self) -> u64 {
        self.conn
    }
    pub fn link_up(&self) -> bool {
        self.link == Link::Up
    }

    fn close_link(&mut self, ctx: &mut Ctx<'_, Msg>, notify: bool) {
        if self.link == Link::Down {
            return;
        }
        self.link = Link::Down;
        if notify && let Backhaul::Sim { broker, .. } = &self.backhaul {
            ctx.send(*broker, SimDuration::ZERO, Msg::Gw(GwMsg::Closed(self.conn)));
        }
    }

    fn pump(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let fnow = Instant(now.as_nanos());
        let mut next = self.fw.poll(fnow);
        // The client gave up on the connection (timeout, protocol error, refusal): close it.
        if self.link != Link::Down && !matches!(self.fw.client().state(), State::Connected | State::Connecting { .. }) {
            self.close_link(ctx, true);
        }
        if self.link == Link::Down && self.fw.wants_transport(fnow) {
            match &mut self.backhaul {
                Backhaul::Sim { cell, .. } => {
                    if let Some(o) = cell.outage_at(now) {
                        if self.retry_at != Some(o.end) {
                            self.retry_at = Some(o.end);
                            ctx.schedule_at(o.end, class::DEFAULT, Msg::Timer(TIMER_RETRY));
                        }
                    } else {
                        self.conn += 1;
                        self.link = Link::Connecting;
                        let rng = self.rng.get_or_insert_with(|| ctx.rng("cellular"));
                        let t = cell.connect(now, rng);
                        ctx.schedule_at(t, class::DEFAULT, Msg::Gw(GwMsg::LinkUp(self.conn)));
                    }
                }
                Backhaul::External { wants_connect, .. } => *wants_connect = true,
            }
        }
        let out = self.fw.take_output();
        let publish_bytes = (self.fw.stats.publish_packet_bytes - self.publish_bytes_taken) as u32;
        self.publish_bytes_taken = self.fw.stats.publish_packet_bytes;
        if !out.is_empty() {
            match &mut self.backhaul {
                Backhaul::Sim { cell, broker } => {
                    if self.link == Link::Up {
                        let rng = self.rng.get_or_insert_with(|| ctx.rng("cellular"));
                        let at = cell.send_up(now, out.len() as u32, publish_bytes, rng);
                        let msg = Msg::Gw(GwMsg::ToBroker { conn: self.conn, bytes: out });
                        ctx.send_at(*broker, at, class::DEFAULT, msg);
                    }
                }
                Backhaul::External { out: ext, .. } => ext.extend_from_slice(&out),
            }
        }
        while let Some(d) = self.fw.pop_downlink() {
            self.forwarded.push(Forwarded { at: SimTime::from_nanos(d.received_at.as_nanos()), command: d.command });
            let mut wire = Vec::new();
            link::encode(&d.frame(), &mut wire);
            self.down.offer(wire);
        }
        if let Some(t) = self.down.start() {
            ctx.schedule(t, Msg::Timer(TIMER_UART_DOWN_DONE));
        }
        next = next.min(self.fw.poll(fnow));
        // A deadline in the past is the client asking for a transport, which is being opened or waits for the
        // end of an outage (its own timer): only the batch timeout is left to wake up for.
        if next <= fnow {
            next = self.fw.batch_deadline().filter(|&t| t > fnow).unwrap_or(Instant::MAX);
        }
        let next = SimTime::from_nanos(next.as_nanos());
        if next < SimTime::MAX && self.poll_at.is_none_or(|(t, _)| t != next) {
            if let Some((_, id)) = self.poll_at.take() {
                ctx.cancel(id);
            }
            let id = ctx.schedule_at(next, class::DEFAULT, Msg::Timer(TIMER_POLL));
            self.poll_at = Some((next, id));
        }
    }
}

impl Agent<Msg> for GatewayAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Backhaul::Sim { cell, .. } = &self.backhaul {
            let starts: Vec<SimTime> = cell.outages().iter().map(|o| o.start).collect();
            for s in starts {
                ctx.schedule_at(s, class::DEFAULT, Msg::Timer(TIMER_OUTAGE));
            }
        }
        self.pump(ctx);
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let fnow = Instant(now.as_nanos());
        match e.msg {
            Msg::Gw(GwMsg::UartUp(bytes)) => {
                let mut frames = Vec::new();
                self.rx_up.feed(&bytes, |p| frames.push(p.to_vec()));
                for f in frames {
                    let before = self.fw.stats.readings_in;
                    self.fw.on_frame(fnow, &f);
                    if self.fw.stats.readings_in > before {
                        self.arrivals.push(now);
                    }
                }
            }
            Msg::Gw(GwMsg::LinkUp(conn)) => {
                if conn != self.conn || self.link != Link::Connecting {
                    return;
                }
                let in_outage = matches!(&self.backhaul, Backhaul::Sim { cell, .. } if cell.outage_at(now).is_some());
                if in_outage {
                    self.link = Link::Down;
                    self.fw.transport_down(fnow);
                } else {
                    self.link = Link::Up;
                    self.fw.transport_up(fnow);
                }
            }
            Msg::Gw(GwMsg::ExternalUp) => {
                if let Backhaul::External { wants_connect, .. } = &mut self.backhaul {
                    *wants_connect = false;
                }
                self.conn += 1;
                self.link = Link::Up;
                self.fw.transport_up(fnow);
            }
            Msg::Gw(GwMsg::FromBroker { conn, bytes }) => {
                if conn != self.conn || self.link != Link::Up {
                    return;
                }
                if let Backhaul::Sim { cell, .. } = &mut self.backhaul {
                    let rng = self.rng.get_or_insert_with(|| ctx.rng("cellular"));
                    let at = cell.send_down(now, bytes.len() as u32, rng);
                    ctx.schedule_at(at, class::DEFAULT, Msg::Gw(GwMsg::Rx { conn, bytes }));
                }
                return;
            }
            Msg::Gw(GwMsg::Rx { conn, bytes }) => {
                if conn != self.conn || self.link != Link::Up {
                    return;
                }
                if !self.fw.input(fnow, &bytes) {
                    self.fw.transport_down(fnow);
                    self.close_link(ctx, true);
                }
            }
            Msg::Gw(GwMsg::Closed(conn)) => {
                if let Backhaul::Sim { cell, .. } = &self.backhaul {
                    // In order with the broker's last bytes (TCP): FIN after data.
                    let at = cell.down_idle_at().max(now);
                    ctx.schedule_at(at, class::DEFAULT, Msg::Gw(GwMsg::ClosedRx(conn)));
                    return;
                }
                if conn == self.conn && self.link != Link::Down {
                    self.fw.transport_down(fnow);
                    self.close_link(ctx, false);
                }
            }
            Msg::Gw(GwMsg::ClosedRx(conn)) => {
                if conn == self.conn && self.link != Link::Down {
                    self.fw.transport_down(fnow);
                    self.close_link(ctx, false);
                }
            }
            Msg::Timer(TIMER_OUTAGE) => {
                if self.link != Link::Down {
                    self.outage_breaks += 1;
                    if let Backhaul::Sim { cell, .. } = &mut self.backhaul {
                        cell.broken += 1;
                    }
                    self.fw.transport_down(fnow);
                    self.close_link(ctx, true);
                }
            }
            Msg::Timer(TIMER_RETRY) => self.retry_at = None,
            Msg::Timer(TIMER_UART_DOWN_DONE) => {
                let rng = self.uart_rng.get_or_insert_with(|| ctx.rng("uart-down"));
                let bytes = self.down.finish(rng);
                ctx.send(self.coordinator, SimDuration::ZERO, Msg::Gw(GwMsg::UartDown(bytes)));
            }
            Msg::Timer(TIMER_POLL) => self.poll_at = None,
            _ => return,
        }
        self.pump(ctx);
    }

    fn kind(&self) -> &'static str {
        "gateway"
    }
}
