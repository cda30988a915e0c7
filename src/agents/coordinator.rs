//! The coordinator agent: the mesh's root, wired to the gateway by a full-duplex UART.
//!
//! Upward, it takes LMU report frames (from the mesh, or straight from LMUs in mesh-less scenarios), drops
//! duplicates (the mesh MAC may deliver a frame twice when an acknowledgement is lost; a per-LMU window of the
//! last 64 sequence numbers catches them), frames each reading for the UART ([`gridtwin_firmware::link`]) and
//! queues it on the line twin ([`crate::twin::uart`]). Downward, it decodes the gateway's command frames from
//! its own UART receiver and sends each down the mesh to the named LMU (or straight to the LMU agent).

use super::Msg;
use super::gateway::GwMsg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimRng};
use crate::mesh::{DeliveryKind, MeshDelivery, MeshDest, MeshMsg, MeshSend, TxClass};
use crate::twin::uart::{UartLine, UartSettings};
use gridtwin_firmware::gateway::signed::read_any;
use gridtwin_firmware::link::{self, FrameDecoder};
use gridtwin_firmware::report::ReportPacket;
use std::collections::BTreeMap;

const TIMER_UART_UP_DONE: u64 = 1;

/// Where commands go from the coordinator.
#[derive(Clone, Debug, Default)]
pub enum CommandRoute {
    /// No LMUs to command.
    #[default]
    None,
    /// Down the mesh from the coordinator's node.
    Mesh { mesh: AgentId, node: u32 },
    /// Straight to LMU agents (mesh-less scenarios), by LMU id.
    Direct(BTreeMap<u32, AgentId>),
}

/// Counters of the coordinator.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoordinatorStats {
    /// Report frames that reached the coordinator, duplicates excluded.
    pub readings_arrived: u64,
    pub duplicates: u64,
    /// Payloads that were not report frames.
    pub frames_bad: u64,
    pub commands_received: u64,
    pub commands_sent_down: u64,
    pub command_frames_bad: u64,
}

/// The coordinator.
pub struct Coordinator {
    gateway: AgentId,
    pub up: UartLine,
    rx_down: FrameDecoder,
    route: CommandRoute,
    seen: BTreeMap<u32, (u32, u64)>,
    rng: Option<SimRng>,
    pub stats: CoordinatorStats,
}

impl Coordinator {
    pub fn new(uart: UartSettings, max_frame_bytes: usize, gateway: AgentId) -> Self {
        Coordinator {
            gateway,
            up: UartLine::new(uart),
            rx_down: FrameDecoder::new(max_frame_bytes),
            route: CommandRoute::None,
            seen: BTreeMap::new(),
            rng: None,
            stats: CoordinatorStats::default(),
        }
    }

    /// Sets where commands go (the world knows only after placing LMUs and the mesh).
    pub fn set_route(&mut self, route: CommandRoute) {
        self.route = route;
    }

    /// Whether (lmu, seq) is new; remembers it. A window of 64 sequence numbers per LMU.
    fn fresh(&mut self, lmu: u32, seq: u32) -> bool {
        let e = self.seen.entry(lmu).or_insert((seq, 0));
        let (top, mask) = *e;
        if *e == (seq, 0) && mask == 0 {
            *e = (seq, 1);
            return true;
        }
        let ahead = seq.wrapping_sub(top);
        if ahead != 0 && ahead < 1 << 31 {
            let shifted = if ahead >= 64 { 0 } else { mask << ahead };
            *e = (seq, shifted | 1);
            return true;
        }
        let behind = top.wrapping_sub(seq);
        if behind >= 64 || mask & (1 << behind) != 0 {
            return false;
        }
        e.1 |= 1 << behind;
        true
    }

    fn uplink(&mut self, payload: Vec<u8>, ctx: &mut Ctx<'_, Msg>) {
        let Ok(p) = ReportPacket::new_checked(&payload[..]) else {
            self.stats.frames_bad += 1;
            return;
        };
        if !self.fresh(p.lmu_id(), p.seq()) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.readings_arrived += 1;
        let mut wire = Vec::with_capacity(link::encoded_len(payload.len()));
        link::encode(&payload, &mut wire);
        self.up.offer(wire);
        self.start_line(ctx);
    }

    fn start_line(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(t) = self.up.start() {
            ctx.schedule(t, Msg::Timer(TIMER_UART_UP_DONE));
        }
    }

    fn downlink(&mut self, bytes: &[u8], ctx: &mut Ctx<'_, Msg>) {
        let mut commands = Vec::new();
        self.stats.command_frames_bad +=
            self.rx_down.feed(bytes, |p| commands.push(read_any(p).map(|(c, _)| (c, p.to_vec()))));
        for c in commands {
            // A signed frame goes down as it came (the LMU verifies it); the coordinator only reads the address.
            let Ok((c, frame)) = c else {
                self.stats.command_frames_bad += 1;
                continue;
            };
            self.stats.commands_received += 1;
            match &self.route {
                CommandRoute::None => continue,
                CommandRoute::Mesh { mesh, node } => {
                    let send = MeshSend {
                        node: *node,
                        to: MeshDest::Node(c.lmu_id),
                        payload: frame,
                        class: TxClass::Normal,
                        replaces: None,
                    };
                    ctx.send(*mesh, SimDuration::ZERO, Msg::Mesh(MeshMsg::Send(Box::new(send))));
                }
                CommandRoute::Direct(map) => {
                    let Some(&lmu) = map.get(&c.lmu_id) else { continue };
                    let d = MeshDelivery {
                        node: c.lmu_id,
                        from: u32::MAX,
                        kind: DeliveryKind::Down,
                        payload: frame,
                        sent_at: ctx.now(),
                        hops: 0,
                        broadcast: false,
                    };
                    ctx.send(lmu, SimDuration::ZERO, Msg::Mesh(MeshMsg::Deliver(Box::new(d))));
                }
            }
            self.stats.commands_sent_down += 1;
        }
    }
}

impl Agent<Msg> for Coordinator {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.rng = Some(ctx.rng("uart-up"));
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Gw(GwMsg::Uplink(frame)) => self.uplink(frame, ctx),
            // A report that crossed the radio mesh to this coordinator's node.
            Msg::Mesh(MeshMsg::Deliver(d)) => self.uplink(d.payload, ctx),
            Msg::Gw(GwMsg::UartDown(bytes)) => self.downlink(&bytes, ctx),
            Msg::Timer(TIMER_UART_UP_DONE) => {
                let rng = self.rng.get_or_insert_with(|| ctx.rng("uart-up"));
                let bytes = self.up.finish(rng);
                ctx.send(self.gateway, SimDuration::ZERO, Msg::Gw(GwMsg::UartUp(bytes)));
                self.start_line(ctx);
            }
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "coordinator"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::uart::OverflowPolicy;

    #[test]
    fn duplicate_window() {
        let s = UartSettings {
            baud: 9600,
            buffer_bytes: 100,
            policy: OverflowPolicy::DropNewest,
            bit_error_rate: 0.0,
            framing_error_rate: 0.0,
        };
        let mut c = Coordinator::new(s, 512, AgentId(0));
        assert!(c.fresh(3, 0));
        assert!(!c.fresh(3, 0));
        assert!(c.fresh(3, 2));
        assert!(c.fresh(3, 1));
        assert!(!c.fresh(3, 1));
        assert!(c.fresh(3, 100));
        assert!(!c.fresh(3, 2));
        assert!(c.fresh(4, 2));
    }
}
