//! Attacker agents: a rogue radio that forges FLISR frames and replays captured ones to the LMUs in its radio
//! range.
//!
//! The rogue radio knows the feeder (which LMU neighbours which: the worst case, an insider's drawing) but
//! not the network key. Each forging tick it picks the next LMU in range round robin, claims to be one of its
//! neighbours and sends it `Open` (trip your contactor) or `Block` (hold your trip), alternately in clear and
//! sealed under a key it guessed (a fresh random key with the network's key index and a random frame counter).
//! It overhears every FLISR frame sent by an LMU in its range (at most [`CAPTURE_MAX`] kept, oldest dropped)
//! and each replay tick sends the oldest captured frame again, unchanged, to the LMU it was addressed to, if
//! that LMU is in range. Units: m, ns.

use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimRng, SimTime, class};
use crate::twin::LmuMsg;
use gridtwin_firmware::lmu::flisr::PeerMsg;
use gridtwin_firmware::sec::{KEY_LEN, SecurityLevel, seal_with};
use rand::RngExt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most frames the rogue radio keeps for replay.
pub const CAPTURE_MAX: usize = 256;
/// Most distinct forged or replayed frames remembered for scoring (further ones are still counted).
pub const LOG_MAX: usize = 100_000;

const TAG_FORGE: u64 = 1;
const TAG_REPLAY: u64 = 2;

/// An LMU the rogue radio can reach: peer id, agent, neighbours (upstream first).
#[derive(Clone, Debug)]
pub struct Target {
    pub peer: u16,
    pub agent: AgentId,
    pub upstream: Option<u16>,
    pub downstream: Vec<u16>,
}

/// The rogue radio.
pub struct RogueRadio {
    targets: Vec<Target>,
    by_peer: BTreeMap<u16, AgentId>,
    start: SimTime,
    stop: SimTime,
    forge_every: Option<SimDuration>,
    replay_every: Option<SimDuration>,
    guess_key: bool,
    pan: u16,
    level: SecurityLevel,
    rng: SimRng,
    next_target: usize,
    tick: u64,
    captured: VecDeque<(u16, u16, Vec<u8>)>,
    pub frames_forged: u64,
    pub frames_replayed: u64,
    pub frames_captured: u64,
    /// Bytes of what it forged and replayed (for scoring what the LMUs accepted).
    pub forged: BTreeSet<Vec<u8>>,
    pub replayed: BTreeSet<Vec<u8>>,
}

impl RogueRadio {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        targets: Vec<Target>,
        start: SimTime,
        stop: SimTime,
        forge_every: Option<SimDuration>,
        replay_every: Option<SimDuration>,
        guess_key: bool,
        pan: u16,
        level: SecurityLevel,
        rng: SimRng,
    ) -> Self {
        let by_peer = targets.iter().map(|t| (t.peer, t.agent)).collect();
        RogueRadio {
            targets,
            by_peer,
            start,
            stop,
            forge_every,
            replay_every,
            guess_key,
            pan,
            level,
            rng,
            next_target: 0,
            tick: 0,
            captured: VecDeque::new(),
            frames_forged: 0,
            frames_replayed: 0,
            frames_captured: 0,
            forged: BTreeSet::new(),
            replayed: BTreeSet::new(),
        }
    }

    /// LMUs in range.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    fn forge(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.targets.is_empty() {
            return;
        }
        let t = self.targets[self.next_target % self.targets.len()].clone();
        self.next_target = self.next_target.wrapping_add(1);
        let tick = self.tick;
        self.tick += 1;
        // Open is taken from any neighbour; Block only from a downstream one.
        let (claim, msg) = match (tick % 2, t.downstream.first(), t.upstream) {
            (1, Some(&d), _) => (d, PeerMsg::Block { graded: false }),
            (_, _, Some(u)) => (u, PeerMsg::Open { section: t.peer }),
            (_, Some(&d), None) => (d, PeerMsg::Open { section: t.peer }),
            _ => return,
        };
        let plain = msg.encode();
        let bytes = if self.guess_key && (tick / 2) % 2 == 1 {
            let mut key = [0u8; KEY_LEN];
            self.rng.fill(&mut key[..]);
            let counter: u32 = self.rng.random();
            match seal_with(&key, 0, self.pan, claim, t.peer, 2, self.level, counter, &plain) {
                Ok(b) => b,
                Err(_) => return,
            }
        } else {
            plain.to_vec()
        };
        self.frames_forged += 1;
        if self.forged.len() < LOG_MAX {
            self.forged.insert(bytes.clone());
        }
        ctx.send(t.agent, SimDuration::from_millis(2), Msg::Lmu(LmuMsg::Frame { from: claim, bytes }));
    }

    fn replay(&mut self, ctx: &mut Ctx<'_, Msg>) {
        while let Some((from, to, bytes)) = self.captured.pop_front() {
            let Some(&agent) = self.by_peer.get(&to) else { continue };
            self.frames_replayed += 1;
            if self.replayed.len() < LOG_MAX {
                self.replayed.insert(bytes.clone());
            }
            ctx.send(agent, SimDuration::from_millis(2), Msg::Lmu(LmuMsg::Frame { from, bytes }));
            return;
        }
    }
}

impl Agent<Msg> for RogueRadio {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.forge_every.is_some() {
            ctx.schedule_at(self.start, class::GRID, Msg::Timer(TAG_FORGE));
        }
        if self.replay_every.is_some() {
            ctx.schedule_at(self.start, class::GRID, Msg::Timer(TAG_REPLAY));
        }
    }

    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        match ev.msg {
            Msg::Lmu(LmuMsg::Overheard { from, to, bytes }) => {
                self.frames_captured += 1;
                if self.captured.len() >= CAPTURE_MAX {
                    self.captured.pop_front();
                }
                self.captured.push_back((from, to, bytes));
            }
            Msg::Timer(TAG_FORGE) if now < self.stop => {
                self.forge(ctx);
                if let Some(e) = self.forge_every {
                    ctx.schedule(e, Msg::Timer(TAG_FORGE));
                }
            }
            Msg::Timer(TAG_REPLAY) if now < self.stop => {
                self.replay(ctx);
                if let Some(e) = self.replay_every {
                    ctx.schedule(e, Msg::Timer(TAG_REPLAY));
                }
            }
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "rogue-radio"
    }
}
