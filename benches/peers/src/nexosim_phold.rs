//! PHOLD-ns on NeXosim 1.0: one model per LP, on a single executor thread.
//!
//! NeXosim models talk through connected ports and can schedule only their own inputs. An LP handling an event
//! at `t` therefore sends the delivery time `t + delay` right away to the destination's `arrive` input, and the
//! destination schedules its own `fire` at that time. To address a random destination without a broadcast,
//! each LP owns one output per destination, each connected to one LP (N^2 outputs: the fastest routing NeXosim
//! offers at run time, paid for in setup time and memory).

use crate::common::{Stamp, Stream, Timing};
use gridtwin::engine::phold::{PholdConfig, PholdResult};
use nexosim::model::{Context, Model, schedulable};
use nexosim::ports::{EventSinkReader, EventSource, Output, SinkState, event_queue};
use nexosim::simulation::{Mailbox, SimInit};
use nexosim::time::MonotonicTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
pub struct Lp {
    rng: Stream,
    lps: u32,
    events_per_lp: u32,
    lookahead_ns: u64,
    mean_ns: f64,
    count: u64,
    checksum: u64,
    /// `to[j]` reaches LP `j`'s `arrive` input; the payload is the delivery time in ns.
    to: Vec<Output<u64>>,
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
        self.to[dest as usize].send(t_ns.wrapping_add(d)).await;
    }

    /// Sends this LP's (count, checksum) to its `totals` output.
    pub async fn report(&mut self) {
        self.totals.send((self.count, self.checksum)).await;
    }
}

/// Builds the bench, then runs it on one thread; returns the result and the timing.
pub fn run(cfg: &PholdConfig) -> (PholdResult, Timing) {
    let t0 = Stamp::now();
    let n = cfg.lps as usize;
    let mboxes: Vec<Mailbox<Lp>> = (0..n).map(|_| Mailbox::new()).collect();
    let (sink, mut totals_rx) = event_queue(SinkState::Enabled);
    let mut bench = SimInit::with_num_threads(1);
    let mut report = EventSource::new();
    let mut lps = Vec::with_capacity(n);
    for i in 0..n {
        let to = (0..n)
            .map(|j| {
                let mut o = Output::default();
                o.connect(Lp::arrive, &mboxes[j]);
                o
            })
            .collect();
        let mut totals = Output::default();
        totals.connect_sink(sink.clone());
        report = report.connect(Lp::report, &mboxes[i]);
        lps.push(Lp {
            rng: Stream::for_lp(cfg.seed, i as u32),
            lps: cfg.lps,
            events_per_lp: cfg.events_per_lp,
            lookahead_ns: cfg.lookahead_ns,
            mean_ns: cfg.mean_ns as f64,
            count: 0,
            checksum: 0,
            to,
            totals,
        });
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
