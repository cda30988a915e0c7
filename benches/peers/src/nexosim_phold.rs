//! PHOLD-ns on NeXosim 1.0: one model per LP, on a single executor thread.
//!
//! NeXosim models talk through connected ports and can schedule only their own inputs. An LP handling an event
//! at `t` therefore sends the delivery time `t + delay` right away toward the destination's `arrive` input, and
//! the destination schedules its own `fire` at that time. Ports are wired before the run and an output
//! broadcasts to everything connected to it, so addressing a random destination takes one of two shapes:
//! - [`Routing::Direct`]: each LP owns one output per destination (N^2 outputs; one hop, but for N = 1024 a
//!   million ports, about 1 GB, which the run pays for in cache misses);
//! - [`Routing::Router`]: each LP has one output to a router model that owns one output per LP (2N ports;
//!   one extra message per event).
//!
//! `run.sh` times `Direct` (engine `nexosim`), the faster of the two on config A here; engine `nexosim-router`
//! times the other.

use crate::common::{Stamp, Stream, Timing};
use gridtwin::engine::phold::{PholdConfig, PholdResult};
use nexosim::model::{Context, Model, schedulable};
use nexosim::ports::{EventSinkReader, EventSource, Output, SinkState, event_queue};
use nexosim::simulation::{Mailbox, SimInit};
use nexosim::time::MonotonicTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How LPs reach a random destination (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    Direct,
    Router,
}

#[derive(Serialize, Deserialize)]
pub struct Lp {
    rng: Stream,
    lps: u32,
    events_per_lp: u32,
    lookahead_ns: u64,
    mean_ns: f64,
    count: u64,
    checksum: u64,
    /// Direct routing: `to[j]` reaches LP `j`'s `arrive` input; the payload is the delivery time in ns.
    to: Vec<Output<u64>>,
    /// Router routing: (destination, delivery time in ns) to the router.
    via: Output<(u32, u64)>,
    /// Where `report` sends (count, checksum).
    totals: Output<(u64, u64)>,
}

fn at(ns: u64) -> MonotonicTime {
    MonotonicTime::EPOCH + Duration::from_nanos(ns)
}

fn ns(t: MonotonicTime) -> u64 {
    let d = t.duration_since(MonotonicTime::EPOCH);
    d.as_secs() * 1_000_000_000 + d.subsec_nanos() as u64
}

#[Model]
impl Lp {
    #[nexosim(init)]
    async fn init(&mut self, cx: &Context<Self>) {
        for _ in 0..self.events_per_lp {
            let d = self.rng.delay_ns(self.lookahead_ns, self.mean_ns);
            self.arrive(d, cx).await;
        }
    }

    /// An event for this LP, to be handled at `at_ns`.
    pub async fn arrive(&mut self, at_ns: u64, cx: &Context<Self>) {
        if at_ns > ns(cx.time()) {
            cx.schedule_event(at(at_ns), schedulable!(Self::fire), at_ns).expect("delivery time is in the future");
        } else {
            // A zero delay: NeXosim only schedules strictly in the future, so handle it now.
            self.fire(at_ns).await;
        }
    }

    /// Handles one event at the current time.
    #[nexosim(schedulable)]
    async fn fire(&mut self, t_ns: u64) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(t_ns);
        let dest = self.rng.dest(self.lps);
        let d = self.rng.delay_ns(self.lookahead_ns, self.mean_ns);
        let at_ns = t_ns.wrapping_add(d);
        match self.to.get_mut(dest as usize) {
            Some(out) => out.send(at_ns).await,
            None => self.via.send((dest, at_ns)).await,
        }
    }

    /// Sends this LP's (count, checksum) to its `totals` output.
    pub async fn report(&mut self) {
        self.totals.send((self.count, self.checksum)).await;
    }
}

/// Forwards (destination, time) to LP `destination`.
#[derive(Serialize, Deserialize)]
pub struct Router {
    to: Vec<Output<u64>>,
}

#[Model]
impl Router {
    pub async fn route(&mut self, (dest, at_ns): (u32, u64)) {
        self.to[dest as usize].send(at_ns).await;
    }
}

/// Builds the bench, then runs it on one thread; returns the result and the timing.
pub fn run(cfg: &PholdConfig, routing: Routing) -> (PholdResult, Timing) {
    let t0 = Stamp::now();
    let n = cfg.lps as usize;
    let mboxes: Vec<Mailbox<Lp>> = (0..n).map(|_| Mailbox::new()).collect();
    let (sink, mut totals_rx) = event_queue(SinkState::Enabled);
    let mut bench = SimInit::with_num_threads(1);
    let mut report = EventSource::new();
    let mut lps = Vec::with_capacity(n);
    let to_all = || -> Vec<Output<u64>> {
        mboxes
            .iter()
            .map(|mbox| {
                let mut o = Output::default();
                o.connect(Lp::arrive, mbox);
                o
            })
            .collect()
    };
    let router_mbox = Mailbox::new();
    for (i, mbox) in mboxes.iter().enumerate() {
        let mut via = Output::default();
        let to = match routing {
            Routing::Direct => to_all(),
            Routing::Router => {
                via.connect(Router::route, &router_mbox);
                Vec::new()
            }
        };
        let mut totals = Output::default();
        totals.connect_sink(sink.clone());
        report = report.connect(Lp::report, mbox);
        lps.push(Lp {
            rng: Stream::for_lp(cfg.seed, i as u32),
            lps: cfg.lps,
            events_per_lp: cfg.events_per_lp,
            lookahead_ns: cfg.lookahead_ns,
            mean_ns: cfg.mean_ns as f64,
            count: 0,
            checksum: 0,
            to,
            via,
            totals,
        });
    }
    if routing == Routing::Router {
        bench = bench.add_model(Router { to: to_all() }, router_mbox, "router");
    }
    let report = report.register(&mut bench);
    for (i, (lp, mbox)) in lps.into_iter().zip(mboxes).enumerate() {
        bench = bench.add_model(lp, mbox, &format!("lp{i}"));
    }
    let mut simu = bench.init(MonotonicTime::EPOCH).expect("NeXosim bench initialises");
    let t1 = Stamp::now();
    simu.step_until(at(cfg.end_ns)).expect("NeXosim run");
    let t2 = Stamp::now();
    simu.process_event(&report, ()).expect("NeXosim report");
    let mut r = PholdResult { events: 0, checksum: 0 };
    let mut reports = 0;
    while let Some((count, checksum)) = totals_rx.try_read() {
        r.events += count;
        r.checksum = r.checksum.wrapping_add(checksum);
        reports += 1;
    }
    assert_eq!(reports, n, "every LP reports once");
    (r, Timing::from_stamps(t0, t1, t2))
}
