//! The LMU agent: joins the sensor and contactor twins with the LMU firmware on the event queue.
//!
//! It observes the grid through solved snapshots (its bus voltage and the current into its line), drives
//! its sensor twin in phasor or waveform fidelity, runs the firmware at the deadlines it returns, turns
//! contactor transitions into switch commands for the grid, and carries FLISR frames to its neighbours over
//! a [`PeerLink`], sealed and opened by the firmware's frame security when the scenario enables it (a
//! refused frame is counted and dropped). Units: V, A; bytes; time in ns.

use super::LmuMsg;
use super::contactor::{ContactorTwin, PhaseCurrents};
use super::link::{JamLink, PeerLink};
use super::sensor::{Fidelity, PrimaryState, SensorTwin};
use crate::agents::Msg;
use crate::agents::gateway::GwMsg;
use crate::engine::{Agent, AgentId, Ctx, Event, EventId, SimDuration, SimTime, class};
use crate::grid::GridMsg;
use crate::grid::model::GridSnapshot;
use crate::mesh::{MeshDest, MeshMsg, MeshSend, TxClass};
use gridtwin_firmware::Instant;
use gridtwin_firmware::gateway::signed::CommandVerifier;
use gridtwin_firmware::lmu::Lmu;
use gridtwin_firmware::lmu::flisr::{BROADCAST_PEER, PeerId, PeerMsg};
use gridtwin_firmware::lmu::phasor::{Phasor, sequence};
use gridtwin_firmware::sec::FrameSecurity;
use rand::RngExt;
use std::collections::BTreeMap;

const TAG_DEADLINE: u64 = 1;
const TAG_CONTACT: u64 = 2;
const TAG_SAMPLE: u64 = 3;
const TAG_MEASURE: u64 = 4;
const TAG_REPORT: u64 = 5;
const TAG_INSIDER: u64 = 6;
const TAG_CONTINUITY: u64 = 7;

/// Where an LMU's periodic readings (48-byte report frames) go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uplink {
    /// Straight to the coordinator agent (`GwMsg::Uplink`).
    Direct(AgentId),
    /// Through the radio mesh agent, from the node with the LMU's id up to its coordinator.
    Mesh(AgentId),
}

/// Where an LMU measures and switches in the grid (positions in the network's element vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Bus position of the LMU's VT.
    pub bus: usize,
    /// Line position the contactor and CTs sit on.
    pub line: usize,
    /// The LMU sits at the line's from end (0) or to end (1).
    pub end: usize,
    /// Switch position in the grid model.
    pub switch: usize,
}

/// One LMU on the event queue.
pub struct LmuAgent {
    pub peer: PeerId,
    pub placement: Placement,
    firmware: Lmu,
    sensor: SensorTwin,
    contactor: ContactorTwin,
    grid: AgentId,
    peers: BTreeMap<PeerId, AgentId>,
    link: Box<dyn PeerLink>,
    /// The radio mesh agent that carries peer frames as neighbour frames (`None`: the [`PeerLink`] does).
    peer_mesh: Option<AgentId>,
    deadline: Option<(SimTime, EventId)>,
    contact_timer: Option<(SimTime, EventId)>,
    /// Delay from a change of the grid state to the phasor measurement that reflects it (one DFT window).
    measure_delay: SimDuration,
    /// Main-contact changes: (time, closed).
    pub switching: Vec<(SimTime, bool)>,
    pub frames_sent: u64,
    /// Frames sent by message (index: the message's tag, see `PeerMsg::NAMES`).
    pub frames_by_kind: [u64; PeerMsg::NAMES.len()],
    pub frames_received: u64,
    /// Phase currents of the last snapshot (for the switching device's current zeros).
    phase_currents: PhaseCurrents,
    /// Switch commands go to the grid agent as `GridMsg::SetSwitch` (true) or as `LmuMsg::SetSwitch` to a
    /// custom host (false).
    pub grid_agent_protocol: bool,
    /// (destination, interval, spread of the send offset).
    uplink: Option<(Uplink, SimDuration, SimDuration)>,
    /// Readings sent.
    pub readings_sent: u32,
    /// When the firmware first reported a lost phase or a neutral displacement (open conductor or broken
    /// neutral), if it did.
    pub loss_of_phase_at: Option<SimTime>,
    /// When the firmware first reported its star point displaced (a broken neutral upstream), with the
    /// zero-sequence voltage it measured then (p.u. of its nominal phase voltage).
    pub neutral_displaced_at: Option<(SimTime, f64)>,
    /// Operator commands received (from the gateway, down the mesh): when, and what.
    pub commands: Vec<(SimTime, gridtwin_firmware::gateway::command::Command)>,
    /// Frame security of the peer (FLISR) frames; `None`: frames go in clear.
    pub security: Option<FrameSecurity>,
    /// The continuity-signal receiver, where the protection scheme uses one.
    pub continuity: Option<ContinuityReceiver>,
    /// Peer-frame bytes handed to the link: as encoded, and as sent (sealed).
    pub peer_bytes_plain: u64,
    pub peer_bytes_sent: u64,
    /// Radios that overhear this LMU's transmissions (attackers in range).
    pub eavesdroppers: Vec<AgentId>,
    /// Ground truth for scoring attacks: frames this LMU accepted (authenticated and decoded as FLISR
    /// messages) that did not come from the neighbour they name, (time, bytes); at most
    /// [`IMPOSTOR_LOG_MAX`] kept, the rest counted in `impostor_overflow`.
    pub impostor_accepted: Vec<(SimTime, Vec<u8>)>,
    pub impostor_overflow: u64,
    /// Peer frames refused by frame security.
    pub frames_refused: u64,
    /// Jammers acting on the peer link (`None` without jammers).
    pub jam: Option<JamLink>,
    /// The operator's key provisioned at commissioning: operator commands must carry its signature (`None`:
    /// commands are taken as they come, plain or signed).
    pub verifier: Option<CommandVerifier>,
    /// This LMU is compromised: the attacker runs it (`None`: honest).
    pub insider: Option<crate::security::insider::Insider>,
    /// Ground truth for scoring, not known to the firmware: the compromised LMUs among the peers; when
    /// their `Open` frames were obeyed, and when their frames were refused by frame security.
    pub compromised_peers: std::collections::BTreeSet<PeerId>,
    pub insider_opens_obeyed: Vec<SimTime>,
    pub insider_frames_refused: Vec<SimTime>,
}

/// Most accepted impostor frames an LMU records.
pub const IMPOSTOR_LOG_MAX: usize = 10_000;

/// The security frame type of a FLISR message: 2 for commands that move contactors or hold them (open,
/// restore, block, the graded scheme's query and answer, and their replies), 1 for status reports.
pub fn peer_frame_type(m: &PeerMsg) -> u8 {
    match m {
        PeerMsg::Open { .. }
        | PeerMsg::Opened { .. }
        | PeerMsg::Restore { .. }
        | PeerMsg::Restored { .. }
        | PeerMsg::Block { .. }
        | PeerMsg::BreakerFailure
        | PeerMsg::Query { .. }
        | PeerMsg::Passage { .. }
        | PeerMsg::Beyond => 2,
        _ => 1,
    }
}

impl LmuAgent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        peer: PeerId,
        placement: Placement,
        firmware: Lmu,
        sensor: SensorTwin,
        contactor: ContactorTwin,
        grid: AgentId,
        peers: BTreeMap<PeerId, AgentId>,
        link: Box<dyn PeerLink>,
    ) -> Self {
        let window_ns = 1_000_000_000 / sensor.model().nominal_hz.max(1) as u64;
        LmuAgent {
            peer,
            placement,
            firmware,
            sensor,
            contactor,
            grid,
            peers,
            link,
            peer_mesh: None,
            deadline: None,
            contact_timer: None,
            measure_delay: SimDuration::from_nanos(window_ns),
            switching: Vec::new(),
            frames_sent: 0,
            frames_by_kind: [0; PeerMsg::NAMES.len()],
            frames_received: 0,
            phase_currents: PhaseCurrents::default(),
            grid_agent_protocol: false,
            uplink: None,
            readings_sent: 0,
            loss_of_phase_at: None,
            neutral_displaced_at: None,
            commands: Vec::new(),
            security: None,
            continuity: None,
            peer_bytes_plain: 0,
            peer_bytes_sent: 0,
            eavesdroppers: Vec::new(),
            impostor_accepted: Vec::new(),
            impostor_overflow: 0,
            frames_refused: 0,
            jam: None,
            verifier: None,
            insider: None,
            compromised_peers: std::collections::BTreeSet::new(),
            insider_opens_obeyed: Vec::new(),
            insider_frames_refused: Vec::new(),
        }
    }

    /// Sends a reading to `to` every `every`, each at this LMU's own offset after the interval boundary (drawn
    /// once, uniform in `[0, spread)`, from the agent's `report-offset` stream).
    pub fn set_uplink(&mut self, to: Uplink, every: SimDuration, spread: SimDuration) {
        let every = every.max(SimDuration::from_secs(1));
        self.uplink = Some((to, every, SimDuration::from_nanos(spread.as_nanos().min(every.as_nanos() - 1))));
    }

    /// Changes where readings go, keeping the interval (no effect without an uplink).
    pub fn reroute_uplink(&mut self, to: Uplink) {
        if let Some(u) = &mut self.uplink {
            u.0 = to;
        }
    }

    fn send_reading(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some((to, _, _)) = self.uplink else { return };
        let mut r = self.firmware.reading(self.peer as u32, self.readings_sent, Instant(ctx.now().as_nanos()));
        if let Some(x) = self.insider.as_mut().filter(|x| x.fake_readings && x.active(ctx.now())) {
            r = x.fake(r);
        }
        let payload = r.to_bytes().to_vec();
        self.readings_sent = self.readings_sent.wrapping_add(1);
        let msg = match to {
            Uplink::Direct(a) => (a, Msg::Gw(GwMsg::Uplink(payload))),
            Uplink::Mesh(a) => (
                a,
                Msg::Mesh(MeshMsg::Send(Box::new(MeshSend {
                    node: self.peer as u32,
                    to: MeshDest::Coordinator,
                    payload,
                    class: TxClass::Normal,
                    replaces: None,
                }))),
            ),
        };
        ctx.send(msg.0, SimDuration::ZERO, msg.1);
    }

    /// Sends peer (FLISR) frames through the radio mesh agent `mesh`, as neighbour frames from the node with
    /// this LMU's id, instead of over the [`PeerLink`].
    /// `relayed`: the peers this LMU's radio reaches only over relays (they cannot overhear its broadcasts).
    /// The graded scheme then asks and tells by broadcast where the peers share the channel
    /// ([`gridtwin_firmware::lmu::flisr::FlisrSettings::overhearing`]).
    pub fn carry_peer_frames_on_mesh(&mut self, mesh: AgentId, relayed: &[u32]) {
        self.peer_mesh = Some(mesh);
        let relayed: Vec<PeerId> = relayed.iter().filter_map(|&p| PeerId::try_from(p).ok()).collect();
        self.firmware.flisr_mut().set_shared_channel(relayed);
    }

    /// The LMUs this one sends peer frames to.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    pub fn firmware(&self) -> &Lmu {
        &self.firmware
    }
    pub fn firmware_mut(&mut self) -> &mut Lmu {
        &mut self.firmware
    }
    pub fn contactor(&self) -> &ContactorTwin {
        &self.contactor
    }
    pub fn sensor(&self) -> &SensorTwin {
        &self.sensor
    }

    fn observe(&mut self, now: SimTime, snap: &GridSnapshot) {
        let pl = self.placement;
        let (Some(v), Some(i)) = (snap.v_pu.get(pl.bus), snap.line_i_ka.get(pl.line)) else { return };
        let base_v = snap.bus_vn_kv.get(pl.bus).copied().unwrap_or(0.4) * 1000.0 / 3f64.sqrt();
        let i = i[pl.end.min(1)];
        let state = PrimaryState {
            v: [0, 1, 2].map(|p| Phasor::new(v[p].re * base_v, v[p].im * base_v).finite_or_zero()),
            i: [0, 1, 2].map(|p| Phasor::new(i[p].re * 1000.0, i[p].im * 1000.0).finite_or_zero()),
            // The 4-wire model's neutral current; zero in the sequence model (ideal neutral).
            i_n: snap
                .line_in_ka
                .get(pl.line)
                .map_or(Phasor::ZERO, |n| Phasor::new(n[pl.end.min(1)].re * 1000.0, n[pl.end.min(1)].im * 1000.0))
                .finite_or_zero(),
            v_harmonics: self.sensor.state().v_harmonics.clone(),
            freq_hz: self.sensor.state().freq_hz,
        };
        self.phase_currents = PhaseCurrents { i: state.i.map(|p| (p.re, p.im)), freq_hz: state.freq_hz };
        self.sensor.set_state(now.as_nanos(), state);
    }

    /// Sets the voltage harmonics the waveform twin adds (order, percent, degrees).
    pub fn set_harmonics(&mut self, h: Vec<(u32, f64, f64)>) {
        let mut s = self.sensor.state().clone();
        s.v_harmonics = h;
        self.sensor.set_state(0, s);
    }

    /// Changes what the sensor's primary side carries at `now` (harmonics, frequency) and, in the phasor
    /// model, has the firmware measure it after the usual delay.
    fn change_sensed(&mut self, now: SimTime, ctx: &mut Ctx<'_, Msg>, change: impl FnOnce(&mut PrimaryState)) {
        let mut st = self.sensor.state().clone();
        change(&mut st);
        self.sensor.set_state(now.as_nanos(), st);
        if self.sensor.fidelity() == Fidelity::Phasor {
            ctx.schedule_at(now.saturating_add(self.measure_delay), class::SENSE, Msg::Timer(TAG_MEASURE));
        }
    }

    fn service(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        self.contactor.set_now(now.as_nanos());
        self.contactor.set_phase_currents(self.phase_currents);
        if let Some(j) = &self.jam {
            let jammed = j.jammed(now.as_nanos(), self.peer);
            self.firmware.flisr_mut().set_channel_jammed(jammed);
        }
        let next = self.firmware.poll(Instant(now.as_nanos()), &mut self.contactor);
        if tracing::enabled!(tracing::Level::TRACE) {
            let f = self.firmware.flisr();
            tracing::trace!(t_ns = now.as_nanos(), lmu = self.peer, status = ?self.firmware.protection().status(), report = ?f.reports().last(), "lmu state");
        }
        while let Some((to, msg)) = self.firmware.pop_outgoing() {
            if matches!(msg, PeerMsg::Block { .. } | PeerMsg::Passage { seen: true } | PeerMsg::Beyond)
                && let Some(x) = self.insider.as_mut().filter(|x| x.suppress_block && x.active(now))
            {
                x.blocks_suppressed += 1;
                continue;
            }
            self.transmit(to, msg, ctx);
        }
        let st = self.firmware.protection().status();
        if self.loss_of_phase_at.is_none() && st.loss_of_phase {
            self.loss_of_phase_at = Some(now);
        }
        if self.neutral_displaced_at.is_none() && st.loss_of_phase && st.neutral_displaced {
            let u_nom = self.firmware.protection().settings().u_nominal_v;
            let u0 = self.firmware.last_measurement().map_or(0.0, |m| sequence(&m.v)[0].abs() / u_nom);
            self.neutral_displaced_at = Some((now, u0));
        }
        if let Some(t) = self.contactor.next_transition() {
            let t = SimTime::from_nanos(t.max(now.as_nanos()));
            if self.contact_timer.is_none_or(|(pt, _)| pt != t) {
                if let Some((_, id)) = self.contact_timer.take() {
                    ctx.cancel(id);
                }
                let id = ctx.schedule_at(t, class::SENSE, Msg::Timer(TAG_CONTACT));
                self.contact_timer = Some((t, id));
            }
        }
        let next = SimTime::from_nanos(next.as_nanos());
        if next < SimTime::MAX && self.deadline.is_none_or(|(t, _)| t != next) {
            if let Some((_, id)) = self.deadline.take() {
                ctx.cancel(id);
            }
            let id = ctx.schedule_at(next, class::SENSE, Msg::Timer(TAG_DEADLINE));
            self.deadline = Some((next, id));
        }
    }

    /// Seals (when secured) and sends one FLISR message to peer `to` over the link, copies to eavesdroppers.
    fn transmit(&mut self, to: PeerId, msg: PeerMsg, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        self.frames_sent += 1;
        let broadcast = to == BROADCAST_PEER;
        let dst = match self.peers.get(&to) {
            Some(&dst) => Some(dst),
            None if broadcast && self.peer_mesh.is_some() => None,
            None => return,
        };
        let plain = msg.encode();
        if let Some(c) = self.frames_by_kind.get_mut(plain[0] as usize) {
            *c += 1;
        }
        tracing::debug!(t_ns = now.as_nanos(), from = self.peer, to, msg = ?msg, "flisr frame sent");
        let bytes = match &mut self.security {
            Some(s) => match s.seal_at(Instant(now.as_nanos()), to, peer_frame_type(&msg), &plain) {
                Ok(b) => b,
                Err(_) => return,
            },
            None => plain.to_vec(),
        };
        self.peer_bytes_plain += plain.len() as u64;
        self.peer_bytes_sent += bytes.len() as u64;
        for &e in &self.eavesdroppers {
            ctx.send(e, SimDuration::ZERO, Msg::Lmu(LmuMsg::Overheard { from: self.peer, to, bytes: bytes.clone() }));
        }
        if let Some(mesh) = self.peer_mesh {
            let class = if msg.is_report() { TxClass::Report } else { TxClass::Protection };
            let replaces = msg.latest_value().then_some(plain[0]);
            let dest = if broadcast { MeshDest::Broadcast } else { MeshDest::Neighbor(to as u32) };
            let send = MeshSend { node: self.peer as u32, to: dest, payload: bytes, class, replaces };
            ctx.send(mesh, SimDuration::ZERO, Msg::Mesh(MeshMsg::Send(Box::new(send))));
            return;
        }
        let Some(dst) = dst else { return };
        let mut delivery = self.link.transmit(self.peer, to, bytes.len());
        let mut corrupted = None;
        if let Some(j) = &mut self.jam {
            if delivery.is_some() && !j.survives(now.as_nanos(), self.peer, to, bytes.len()) {
                corrupted = delivery.take();
            }
            j.count(now.as_nanos(), delivery.is_some());
        }
        if let Some(delay) = delivery {
            ctx.send(dst, delay, Msg::Lmu(LmuMsg::Frame { from: self.peer, bytes }));
        } else if let Some(delay) = corrupted {
            ctx.send(dst, delay, Msg::Lmu(LmuMsg::Corrupted));
        }
    }

    /// A peer frame from `from` (`genuine`: it came from that LMU, as the scoring of attacks knows): opened
    /// by frame security when secured, then handed to the firmware.
    fn on_peer_frame(&mut self, from: PeerId, bytes: Vec<u8>, genuine: bool, broadcast: bool, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let fw_now = Instant(now.as_nanos());
        self.frames_received += 1;
        let word = bytes.iter().take(4).enumerate().fold(0u32, |a, (k, &b)| a | (b as u32) << (8 * k));
        ctx.digest(((from as u64) << 32) | word as u64);
        let plain = match &mut self.security {
            Some(s) => match if broadcast {
                s.open_to(fw_now, from, gridtwin_firmware::sec::BROADCAST_ADDR, &bytes)
            } else {
                s.open_at(fw_now, from, &bytes)
            } {
                Ok((_, p)) => p,
                Err(_) => {
                    self.frames_refused += 1;
                    if self.compromised_peers.contains(&from) {
                        self.insider_frames_refused.push(now);
                    }
                    return;
                }
            },
            None => bytes.clone(),
        };
        if PeerMsg::decode(&plain).is_ok() && !genuine {
            tracing::debug!(t_ns = now.as_nanos(), from, to = self.peer, msg = ?PeerMsg::decode(&plain), "impostor frame accepted");
            if self.impostor_accepted.len() < IMPOSTOR_LOG_MAX {
                self.impostor_accepted.push((now, bytes));
            } else {
                self.impostor_overflow += 1;
            }
        }
        let obeyed_before = self.firmware.flisr().opens_obeyed;
        tracing::debug!(t_ns = now.as_nanos(), from, to = self.peer, msg = ?PeerMsg::decode(&plain), "flisr frame received");
        self.firmware.on_frame(fw_now, from, &plain);
        if self.compromised_peers.contains(&from)
            && self.firmware.flisr().opens_obeyed > obeyed_before
            && self.insider_opens_obeyed.len() < IMPOSTOR_LOG_MAX
        {
            self.insider_opens_obeyed.push(now);
        }
    }
}

impl Agent<Msg> for LmuAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.sensor.fidelity() == Fidelity::Waveform {
            ctx.schedule(SimDuration::from_millis(10), Msg::Timer(TAG_SAMPLE));
        }
        if let Some((_, every, spread)) = self.uplink {
            let offset_ns =
                if spread.as_nanos() == 0 { 0 } else { ctx.rng("report-offset").random_range(0..spread.as_nanos()) };
            let first = ctx.now().saturating_add(every).saturating_add(SimDuration::from_nanos(offset_ns));
            ctx.schedule_at(first, class::REPORT, Msg::Timer(TAG_REPORT));
        }
        if let Some(x) = &self.insider {
            ctx.schedule_at(x.start, class::DEFAULT, Msg::Timer(TAG_INSIDER));
        }
        self.service(ctx);
    }

    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        let fw_now = Instant(now.as_nanos());
        match ev.msg {
            Msg::Lmu(LmuMsg::Snapshot(snap)) | Msg::Grid(GridMsg::Solved(snap)) => {
                self.observe(now, &snap);
                if let Some(rx) = &mut self.continuity {
                    rx.hear(snap.islanded_phases(self.placement.bus), now, ctx);
                }
                if self.sensor.fidelity() == Fidelity::Phasor {
                    ctx.schedule_at(now.saturating_add(self.measure_delay), class::SENSE, Msg::Timer(TAG_MEASURE));
                }
                return;
            }
            Msg::Lmu(LmuMsg::Frame { from, bytes }) => {
                let genuine = self.peers.get(&from) == Some(&ev.src);
                self.on_peer_frame(from, bytes, genuine, false, ctx);
            }
            Msg::Lmu(LmuMsg::Corrupted) => {
                if let Some(j) = &mut self.jam {
                    j.note_corrupted(now.as_nanos());
                }
                return;
            }
            Msg::Timer(TAG_INSIDER) => {
                let Some(x) = self.insider.as_mut().filter(|x| x.active(now)) else { return };
                if x.open_own {
                    self.firmware.set_operator_hold(Some(false));
                }
                let every = x.open_every;
                if every.is_some() {
                    // Its FLISR neighbours: the LMUs that take `Open` from it.
                    let f = self.firmware.flisr().settings();
                    let peers: Vec<PeerId> = f.upstream.into_iter().chain(f.downstream.iter().copied()).collect();
                    x.opens_sent += peers.len() as u64;
                    for to in peers {
                        self.transmit(to, PeerMsg::Open { section: self.peer }, ctx);
                    }
                }
                if let Some(e) = every {
                    ctx.schedule_at(now.saturating_add(e), class::DEFAULT, Msg::Timer(TAG_INSIDER));
                }
            }
            Msg::Mesh(MeshMsg::Deliver(d)) if d.kind == crate::mesh::DeliveryKind::Neighbor => {
                // A neighbour frame: a peer's FLISR frame, carried one hop by the mesh (which knows its origin).
                let Ok(from) = PeerId::try_from(d.from) else { return };
                if self.peer_mesh.is_none() || !self.peers.contains_key(&from) {
                    return;
                }
                self.on_peer_frame(from, d.payload, true, d.broadcast, ctx);
            }
            Msg::Mesh(MeshMsg::Deliver(d)) => {
                use gridtwin_firmware::gateway::command::{Action, Command};
                use gridtwin_firmware::gateway::signed::{SignedCommand, read_any};
                // Only operator command frames for this LMU are taken; anything else is ignored. With an
                // operator key provisioned, only a command the operator signed for this LMU, fresh and not
                // expired, is (the verifier counts each refusal by reason).
                if !Command::is_frame(&d.payload) && !SignedCommand::is_frame(&d.payload) {
                    return;
                }
                let c = match &mut self.verifier {
                    Some(v) => match v.check(fw_now, &d.payload) {
                        Ok(c) => c,
                        Err(_) => return,
                    },
                    None => match read_any(&d.payload) {
                        Ok((c, _)) => c,
                        Err(_) => return,
                    },
                };
                if c.lmu_id != self.peer as u32 {
                    return;
                }
                ctx.digest(0x434d_0000_0000 | ((c.lmu_id as u64) << 8) | c.id as u64);
                self.commands.push((now, c));
                match c.action {
                    Action::Open => self.firmware.set_operator_hold(Some(false)),
                    Action::Close => self.firmware.set_operator_hold(Some(true)),
                    Action::Auto => self.firmware.set_operator_hold(None),
                    Action::ReportEvery(s) => {
                        if let Some(u) = &mut self.uplink {
                            u.1 = SimDuration::from_secs(s as u64);
                            u.2 = SimDuration::from_nanos(u.2.as_nanos().min(u.1.as_nanos() - 1));
                        }
                    }
                }
            }
            Msg::Lmu(LmuMsg::Harmonics(h)) => {
                self.change_sensed(now, ctx, |st| st.v_harmonics = h);
                return;
            }
            Msg::Lmu(LmuMsg::Frequency(hz)) => {
                self.change_sensed(now, ctx, |st| st.freq_hz = hz);
                return;
            }
            Msg::Lmu(LmuMsg::Keys(op)) => {
                // A compromised LMU keeps the keys it has: it obeys no removal.
                if self.insider.is_some()
                    && matches!(op, crate::security::KeyOp::Remove(_) | crate::security::KeyOp::Wipe)
                {
                    return;
                }
                if let Some(s) = &mut self.security {
                    op.apply(s);
                }
                return;
            }
            Msg::Lmu(LmuMsg::InjectContactor(f)) => {
                self.contactor.set_now(now.as_nanos());
                self.contactor.inject(f);
            }
            Msg::Timer(TAG_MEASURE) => {
                let _ = self.firmware.read_phasors(fw_now, &mut self.sensor);
            }
            Msg::Timer(TAG_CONTINUITY) => {
                let Some(lost) = self.continuity.as_mut().and_then(|rx| rx.decoded()) else { return };
                self.firmware.set_continuity_lost(lost);
                if self.sensor.fidelity() == Fidelity::Phasor {
                    // The protection judges the new flags with the next cycle measurement.
                    self.sensor.remeasure();
                    let _ = self.firmware.read_phasors(fw_now, &mut self.sensor);
                }
            }
            Msg::Timer(TAG_REPORT) => {
                self.send_reading(ctx);
                if let Some((_, every, _)) = self.uplink {
                    ctx.schedule_at(now.saturating_add(every), class::REPORT, Msg::Timer(TAG_REPORT));
                }
                return;
            }
            Msg::Timer(TAG_SAMPLE) => {
                self.sensor.synthesise_until(now.as_nanos());
                let _ = self.firmware.read_samples(fw_now, &mut self.sensor);
                ctx.schedule(SimDuration::from_millis(10), Msg::Timer(TAG_SAMPLE));
            }
            Msg::Timer(TAG_DEADLINE) => {
                self.deadline = None;
            }
            Msg::Timer(TAG_CONTACT) => {
                self.contact_timer = None;
                self.contactor.set_phase_currents(self.phase_currents);
                if let Some(closed) = self.contactor.advance(now.as_nanos()) {
                    tracing::debug!(t_ns = now.as_nanos(), lmu = self.peer, closed, "contactor");
                    self.switching.push((now, closed));
                    ctx.digest(0x5357_0000 | ((self.peer as u64) << 1) | closed as u64);
                    let switch = self.placement.switch;
                    let msg = if self.grid_agent_protocol {
                        Msg::Grid(GridMsg::SetSwitch { switch, closed })
                    } else {
                        Msg::Lmu(LmuMsg::SetSwitch { switch, closed, lmu: self.peer })
                    };
                    ctx.send_at(self.grid, now, class::GRID, msg);
                }
            }
            _ => return,
        }
        self.service(ctx);
    }

    fn kind(&self) -> &'static str {
        "lmu"
    }
}

/// An LMU's receiver of the continuity signal that the secondary substation injects on every phase conductor
/// (power-line signalling for loss-of-mains detection): the signal reaches a phase only along closed
/// conductors from a source, and generators do not reproduce it. The receiver reports a change once it has
/// decoded it (`decode`: the signal's symbols it needs, lost or found again); the firmware takes a missing
/// signal on a phase that keeps its voltage for an island held up by generators. A de-energised bus reports
/// nothing missing: with no voltage the firmware has no use for the flag, and a section re-energised by a tie
/// then has no stale "missing" to outlive while the receiver decodes the signal's return.
#[derive(Clone, Debug)]
pub struct ContinuityReceiver {
    decode: SimDuration,
    /// Per phase, what the firmware was last told (true: signal missing).
    given: [bool; 3],
    /// A change on the line not yet decoded: the new flags and the timer that reports them.
    pending: Option<([bool; 3], EventId)>,
}

impl ContinuityReceiver {
    pub fn new(decode: SimDuration) -> Self {
        ContinuityReceiver { decode, given: [false; 3], pending: None }
    }

    /// The signal as the grid's state now carries it to this LMU's bus (true: missing on the phase).
    fn hear(&mut self, lost: [bool; 3], now: SimTime, ctx: &mut Ctx<'_, Msg>) {
        match self.pending {
            Some((target, _)) if target == lost => return,
            Some((_, id)) => {
                ctx.cancel(id);
                self.pending = None;
            }
            None => {}
        }
        if lost != self.given {
            let id = ctx.schedule_at(now.saturating_add(self.decode), class::SENSE, Msg::Timer(TAG_CONTINUITY));
            self.pending = Some((lost, id));
        }
    }

    /// The change that its timer reports, now decoded.
    fn decoded(&mut self) -> Option<[bool; 3]> {
        let (lost, _) = self.pending.take()?;
        self.given = lost;
        Some(lost)
    }
}
