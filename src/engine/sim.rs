//! The simulation core: the event queue, the agent table, the delivery loop and the handler context.

use super::digest::Digest;
use super::rng::{SimRng, stream};
use super::time::{SimDuration, SimTime};
use std::any::Any;
use std::cmp::Ordering;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeSet, BinaryHeap};

/// Event classes: at equal time, lower classes are delivered first. Physics changes (class `GRID`) land
/// before the measurements and messages that observe them; reports come last.
pub mod class {
    /// Changes of the physical state (switching, fault onset, profile steps).
    pub const GRID: u8 = 16;
    /// Sensor sampling and protection decisions that observe the physical state.
    pub const SENSE: u8 = 64;
    /// Ordinary messages and timers.
    pub const DEFAULT: u8 = 128;
    /// Periodic reports and statistics.
    pub const REPORT: u8 = 240;
}

/// Most agents one simulation holds (the source id takes 24 bits of the ordering key).
pub const MAX_AGENTS: usize = 1 << 24;
/// Most pending events; beyond it the run stops with [`EngineError::QueueFull`] rather than eat all memory.
pub const DEFAULT_MAX_PENDING: usize = 1 << 28;

/// Index of an agent in its simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AgentId(pub u32);

impl AgentId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Names a scheduled event so it can be cancelled: (source agent, per-source sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

/// A delivered event as an agent's handler sees it.
#[derive(Debug)]
pub struct Event<M> {
    pub time: SimTime,
    pub src: AgentId,
    pub class: u8,
    pub msg: M,
}

/// An active part of the system. Handlers are synchronous and must not block or read a clock.
///
/// `Any` is a supertrait so a finished run can hand its agents back by concrete type
/// ([`Simulation::agent`]) for reporting.
pub trait Agent<M: 'static>: Any {
    /// Called once when the run starts (or when the agent is added to a running simulation), at `ctx.now()`.
    fn start(&mut self, _ctx: &mut Ctx<'_, M>) {}
    /// Handles one event addressed to this agent.
    fn handle(&mut self, event: Event<M>, ctx: &mut Ctx<'_, M>);
    /// A short kind name for logs and reports.
    fn kind(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// When a run stops (whichever comes first). Events at exactly `until` are still delivered.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    pub until: SimTime,
    pub max_events: u64,
}

impl Stop {
    pub const fn at(until: SimTime) -> Self {
        Stop { until, max_events: u64::MAX }
    }
    pub const fn never() -> Self {
        Stop { until: SimTime::MAX, max_events: u64::MAX }
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("event queue full ({0} pending events): an agent is scheduling without bound")]
    QueueFull(usize),
    #[error("too many agents (limit {MAX_AGENTS})")]
    TooManyAgents,
    #[error("agent {0:?} sent to agent {1} which does not exist")]
    NoSuchAgent(AgentId, u32),
}

/// Counters of a run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub delivered: u64,
    pub scheduled: u64,
    pub cancelled: u64,
    pub pending: usize,
    pub pending_max: usize,
}

struct Entry<M> {
    time: u64,
    /// class (8 bits) | source (24 bits) | per-source sequence (32 bits).
    order: u64,
    dst: u32,
    msg: M,
}

impl<M> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.order == other.order
    }
}
impl<M> Eq for Entry<M> {}
impl<M> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Entry<M> {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest event.
    #[inline(always)]
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.order).cmp(&(self.time, self.order))
    }
}

/// Everything but the agents: split out so a handler can borrow it while its own agent is borrowed too.
pub struct Core<M> {
    now: SimTime,
    queue: BinaryHeap<Entry<M>>,
    seqs: Vec<u32>,
    cancelled: BTreeSet<u64>,
    digest: Digest,
    stats: RunStats,
    master_seed: u64,
    stop_requested: bool,
    error: Option<EngineError>,
    max_pending: usize,
}

/// What a handler can do: the time, its own id, sending, scheduling, cancelling, randomness, the digest.
pub struct Ctx<'a, M> {
    me: AgentId,
    core: &'a mut Core<M>,
}

impl<M> Ctx<'_, M> {
    /// The current simulation time (the time of the event being handled).
    #[inline(always)]
    pub fn now(&self) -> SimTime {
        self.core.now
    }
    /// This agent's id.
    #[inline(always)]
    pub fn me(&self) -> AgentId {
        self.me
    }
    /// The master seed of the run.
    pub fn master_seed(&self) -> u64 {
        self.core.master_seed
    }
    /// How many agents the simulation holds.
    pub fn agent_count(&self) -> usize {
        self.core.seqs.len()
    }
    /// Sends `msg` to `dst`, delivered `delay` from now with class [`class::DEFAULT`].
    #[inline(always)]
    pub fn send(&mut self, dst: AgentId, delay: SimDuration, msg: M) -> EventId {
        let at = self.core.now.saturating_add(delay);
        self.core.push(self.me, dst, at, class::DEFAULT, msg)
    }
    /// Sends `msg` to `dst` at absolute time `at` (clamped to now: nothing is delivered in the past).
    #[inline(always)]
    pub fn send_at(&mut self, dst: AgentId, at: SimTime, class: u8, msg: M) -> EventId {
        let at = at.max(self.core.now);
        self.core.push(self.me, dst, at, class, msg)
    }
    /// Schedules `msg` to this agent itself after `delay` (a timer).
    #[inline(always)]
    pub fn schedule(&mut self, delay: SimDuration, msg: M) -> EventId {
        let at = self.core.now.saturating_add(delay);
        self.core.push(self.me, self.me, at, class::DEFAULT, msg)
    }
    /// Schedules `msg` to this agent itself at absolute time `at` with a class.
    #[inline(always)]
    pub fn schedule_at(&mut self, at: SimTime, class: u8, msg: M) -> EventId {
        let at = at.max(self.core.now);
        self.core.push(self.me, self.me, at, class, msg)
    }
    /// Cancels a pending event. Cancelling one already delivered or cancelled is a no-op.
    pub fn cancel(&mut self, id: EventId) {
        self.core.cancelled.insert(id.0);
    }
    /// A fresh random stream for (master seed, this agent, `purpose`). Agents normally make their streams
    /// once in [`Agent::start`] and keep them.
    pub fn rng(&self, purpose: &str) -> SimRng {
        stream(self.core.master_seed, self.me.0 as u64, purpose)
    }
    /// Folds an observable output (a decision, a measurement's bits) into the run digest.
    #[inline(always)]
    pub fn digest(&mut self, word: u64) {
        self.core.digest.fold(word);
    }
    /// Asks the run to stop after this event.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }
}

impl<M> Core<M> {
    #[inline(always)]
    fn push(&mut self, src: AgentId, dst: AgentId, at: SimTime, class: u8, msg: M) -> EventId {
        let s = &mut self.seqs[src.index()];
        let seq = *s;
        // Wraps after 2^32 events from one source; only FIFO order among same-time, same-class events from
        // that source could then invert, and deterministically so.
        *s = seq.wrapping_add(1);
        let order = ((class as u64) << 56) | ((src.0 as u64) << 32) | seq as u64;
        if dst.index() >= self.seqs.len() {
            self.fail(EngineError::NoSuchAgent(src, dst.0));
        } else if self.queue.len() >= self.max_pending {
            self.fail(EngineError::QueueFull(self.queue.len()));
        } else {
            self.queue.push(Entry { time: at.0, order, dst: dst.0, msg });
            self.stats.scheduled += 1;
        }
        EventId(order & 0x00FF_FFFF_FFFF_FFFF)
    }
    #[cold]
    fn fail(&mut self, e: EngineError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.stop_requested = true;
    }
}

/// One run: agents plus the queue. Build it, add agents, [`Simulation::run`], then read agents back.
pub struct Simulation<M: 'static> {
    core: Core<M>,
    agents: Vec<Box<dyn Agent<M>>>,
    started: usize,
}

impl<M: 'static> Simulation<M> {
    /// An empty simulation whose random streams derive from `master_seed`.
    pub fn new(master_seed: u64) -> Self {
        Simulation {
            core: Core {
                now: SimTime::ZERO,
                queue: BinaryHeap::new(),
                seqs: Vec::new(),
                cancelled: BTreeSet::new(),
                digest: Digest::default(),
                stats: RunStats::default(),
                master_seed,
                stop_requested: false,
                error: None,
                max_pending: DEFAULT_MAX_PENDING,
            },
            agents: Vec::new(),
            started: 0,
        }
    }

    /// Limits the number of pending events (default 2^28).
    pub fn set_max_pending(&mut self, limit: usize) {
        self.core.max_pending = limit.max(1);
    }

    /// Reserves room for `n` pending events (avoids regrowth on big runs).
    pub fn reserve_events(&mut self, n: usize) {
        self.core.queue.reserve(n);
    }

    /// Adds an agent; it starts when the run (re)starts. Ids are dense and assigned in order.
    pub fn add_agent(&mut self, agent: Box<dyn Agent<M>>) -> Result<AgentId, EngineError> {
        if self.agents.len() >= MAX_AGENTS {
            return Err(EngineError::TooManyAgents);
        }
        let id = AgentId(self.agents.len() as u32);
        self.agents.push(agent);
        self.core.seqs.push(0);
        Ok(id)
    }

    /// The id the next added agent will get.
    pub fn next_agent_id(&self) -> AgentId {
        AgentId(self.agents.len() as u32)
    }

    /// Schedules an event from outside any agent (the source is `src`, e.g. the agent itself for an initial timer).
    /// Both agents must exist already.
    pub fn schedule(
        &mut self,
        src: AgentId,
        dst: AgentId,
        at: SimTime,
        class: u8,
        msg: M,
    ) -> Result<EventId, EngineError> {
        if src.index() >= self.agents.len() || dst.index() >= self.agents.len() {
            return Err(EngineError::NoSuchAgent(src, dst.0));
        }
        let at = at.max(self.core.now);
        let id = self.core.push(src, dst, at, class, msg);
        match self.core.error.take() {
            Some(e) => {
                self.core.stop_requested = false;
                Err(e)
            }
            None => Ok(id),
        }
    }

    pub fn now(&self) -> SimTime {
        self.core.now
    }
    pub fn digest(&self) -> Digest {
        self.core.digest
    }
    pub fn stats(&self) -> RunStats {
        RunStats { pending: self.core.queue.len(), ..self.core.stats }
    }
    pub fn master_seed(&self) -> u64 {
        self.core.master_seed
    }
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// The agent `id` as its concrete type, if it is one.
    pub fn agent<T: Agent<M>>(&self, id: AgentId) -> Option<&T> {
        let a: &dyn Any = self.agents.get(id.index())?.as_ref();
        a.downcast_ref::<T>()
    }
    /// Mutable access to agent `id` as its concrete type.
    pub fn agent_mut<T: Agent<M>>(&mut self, id: AgentId) -> Option<&mut T> {
        let a: &mut dyn Any = self.agents.get_mut(id.index())?.as_mut();
        a.downcast_mut::<T>()
    }
    /// Every agent, in id order.
    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &dyn Agent<M>)> {
        self.agents.iter().enumerate().map(|(i, a)| (AgentId(i as u32), a.as_ref()))
    }

    fn start_new_agents(&mut self) {
        while self.started < self.agents.len() {
            let i = self.started;
            self.started += 1;
            let mut ctx = Ctx { me: AgentId(i as u32), core: &mut self.core };
            self.agents[i].start(&mut ctx);
        }
    }

    /// Delivers events until `stop` says so, the queue empties or an agent asks to stop.
    /// Returns the stats. The clock ends at `until` unless the event budget, the predicate or an agent stopped
    /// the run earlier (then it stays at the last delivered event).
    pub fn run(&mut self, stop: Stop) -> Result<RunStats, EngineError> {
        self.run_while(stop, |_| true)
    }

    /// Like [`Simulation::run`], and also stops before an event for which `keep_going(time)` is false.
    pub fn run_while<F: FnMut(SimTime) -> bool>(
        &mut self,
        stop: Stop,
        mut keep_going: F,
    ) -> Result<RunStats, EngineError> {
        self.core.stop_requested = false;
        self.start_new_agents();
        let budget_end = self.core.stats.delivered.saturating_add(stop.max_events);
        let mut ran_dry = true;
        while !self.core.stop_requested {
            let Some(top) = self.core.queue.peek_mut() else { break };
            if top.time > stop.until.0 {
                break; // the clock advances to `until` below
            }
            if self.core.stats.delivered >= budget_end || !keep_going(SimTime(top.time)) {
                ran_dry = false;
                break;
            }
            let Entry { time, order, dst, msg } = PeekMut::pop(top);
            let depth = self.core.queue.len() + 1;
            if depth > self.core.stats.pending_max {
                self.core.stats.pending_max = depth;
            }
            if !self.core.cancelled.is_empty() && self.core.cancelled.remove(&(order & 0x00FF_FFFF_FFFF_FFFF)) {
                self.core.stats.cancelled += 1;
                continue;
            }
            self.core.now = SimTime(time);
            self.core.digest.fold(time);
            self.core.digest.fold(order ^ ((dst as u64) << 8));
            self.core.stats.delivered += 1;
            let event = Event {
                time: SimTime(time),
                src: AgentId(((order >> 32) & 0xFF_FFFF) as u32),
                class: (order >> 56) as u8,
                msg,
            };
            let mut ctx = Ctx { me: AgentId(dst), core: &mut self.core };
            self.agents[dst as usize].handle(event, &mut ctx);
        }
        if ran_dry && !self.core.stop_requested && stop.until != SimTime::MAX {
            self.core.now = self.core.now.max(stop.until);
        }
        if let Some(e) = self.core.error.take() {
            return Err(e);
        }
        Ok(self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it receives; on start, sends `fanout` messages to the next agent at equal times.
    struct Echo {
        seen: Vec<(u64, u32, u8, u32)>,
        fanout: u32,
    }
    impl Agent<u32> for Echo {
        fn start(&mut self, ctx: &mut Ctx<'_, u32>) {
            let next = AgentId((ctx.me().0 + 1) % ctx.agent_count() as u32);
            for k in 0..self.fanout {
                ctx.send_at(next, SimTime(10), if k % 2 == 0 { class::DEFAULT } else { class::GRID }, k);
            }
        }
        fn handle(&mut self, e: Event<u32>, ctx: &mut Ctx<'_, u32>) {
            self.seen.push((e.time.0, e.src.0, e.class, e.msg));
            if e.msg == 1000 {
                ctx.stop();
            }
        }
    }

    struct Bad;
    impl Agent<u32> for Bad {
        fn handle(&mut self, _: Event<u32>, ctx: &mut Ctx<'_, u32>) {
            ctx.send(AgentId(9), SimDuration::ZERO, 0);
        }
    }

    fn two(fanout: u32) -> Simulation<u32> {
        let mut sim = Simulation::new(1);
        for _ in 0..2 {
            sim.add_agent(Box::new(Echo { seen: vec![], fanout })).unwrap();
        }
        sim
    }

    #[test]
    fn delivers_in_time_class_source_sequence_order() {
        let mut sim = two(4);
        sim.run(Stop::never()).unwrap();
        let a: &Echo = sim.agent(AgentId(1)).unwrap();
        // From agent 0: GRID class (k = 1, 3) before DEFAULT (k = 0, 2), each in send order.
        assert_eq!(a.seen.iter().map(|s| s.3).collect::<Vec<_>>(), vec![1, 3, 0, 2]);
        assert_eq!(sim.stats().delivered, 8);
    }

    #[test]
    fn cancel_stop_and_until() {
        let mut sim = two(0);
        let e1 = sim.schedule(AgentId(0), AgentId(1), SimTime(5), class::DEFAULT, 7).unwrap();
        sim.schedule(AgentId(0), AgentId(1), SimTime(6), class::DEFAULT, 8).unwrap();
        sim.schedule(AgentId(0), AgentId(1), SimTime(20), class::DEFAULT, 9).unwrap();
        sim.core.cancelled.insert(e1.0);
        let st = sim.run(Stop::at(SimTime(10))).unwrap();
        assert_eq!((st.delivered, st.cancelled, st.pending), (1, 1, 1));
        assert_eq!(sim.now(), SimTime(10));
        sim.schedule(AgentId(0), AgentId(1), SimTime(15), class::DEFAULT, 1000).unwrap();
        sim.run(Stop::never()).unwrap();
        assert_eq!(sim.now(), SimTime(15), "stop() halts before the event at 20");
        assert_eq!(sim.agent::<Echo>(AgentId(1)).unwrap().seen.len(), 2);
    }

    #[test]
    fn bad_destination_and_queue_limit_are_errors() {
        let mut sim = two(0);
        assert_eq!(
            sim.schedule(AgentId(0), AgentId(9), SimTime(1), class::DEFAULT, 1),
            Err(EngineError::NoSuchAgent(AgentId(0), 9))
        );
        sim.add_agent(Box::new(Bad)).unwrap();
        sim.schedule(AgentId(2), AgentId(2), SimTime(1), class::DEFAULT, 1).unwrap();
        assert_eq!(sim.run(Stop::never()), Err(EngineError::NoSuchAgent(AgentId(2), 9)));
        let mut sim = two(100);
        sim.set_max_pending(10);
        assert!(matches!(sim.run(Stop::never()), Err(EngineError::QueueFull(_))));
    }

    #[test]
    fn digest_depends_on_order_and_is_reproducible() {
        let run = |f| {
            let mut s = two(f);
            s.run(Stop::never()).unwrap();
            s.digest()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
