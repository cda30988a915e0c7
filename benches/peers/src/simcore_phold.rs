//! PHOLD-ns on SimCore 0.1 (callback mode): one component per LP, events carry no payload.
//!
//! SimCore's clock is an `f64`; we use nanoseconds as its unit. Every time in these runs is an integer below
//! 2^53, so `clock + delay` is exact and the event times (hence the checksum) are the same integers as in the
//! integer-time engines.

use crate::common::{Stamp, Stream, Timing};
use gridtwin::engine::phold::{PholdConfig, PholdResult};
use simcore::{Event, EventHandler, Simulation, SimulationContext};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, serde::Serialize)]
struct Token;

struct Lp {
    ctx: SimulationContext,
    rng: Stream,
    lps: u32,
    lookahead_ns: u64,
    mean_ns: f64,
    count: u64,
    checksum: u64,
}

impl EventHandler for Lp {
    fn on(&mut self, event: Event) {
        let t = event.time as u64;
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(t);
        let dest = self.rng.dest(self.lps);
        let d = self.rng.delay_ns(self.lookahead_ns, self.mean_ns);
        // Component ids are assigned in registration order, so LP `dest` has id `dest`.
        self.ctx.emit(Token, dest, d as f64);
    }
}

/// Builds the model, then runs it; returns the result and the timing.
pub fn run(cfg: &PholdConfig) -> (PholdResult, Timing) {
    let t0 = Stamp::now();
    let mut sim = Simulation::new(cfg.seed);
    let mean = cfg.mean_ns as f64;
    let mut lps = Vec::with_capacity(cfg.lps as usize);
    for i in 0..cfg.lps {
        let name = format!("lp{i}");
        let ctx = sim.create_context(&name);
        assert_eq!(ctx.id(), i, "SimCore assigns component ids in registration order");
        let mut rng = Stream::for_lp(cfg.seed, i);
        for _ in 0..cfg.events_per_lp {
            ctx.emit_self(Token, rng.delay_ns(cfg.lookahead_ns, mean) as f64);
        }
        let lp = Rc::new(RefCell::new(Lp {
            ctx,
            rng,
            lps: cfg.lps,
            lookahead_ns: cfg.lookahead_ns,
            mean_ns: mean,
            count: 0,
            checksum: 0,
        }));
        sim.add_handler(&name, lp.clone());
        lps.push(lp);
    }
    let t1 = Stamp::now();
    sim.step_until_time(cfg.end_ns as f64);
    let t2 = Stamp::now();
    let mut r = PholdResult { events: 0, checksum: 0 };
    for lp in &lps {
        let lp = lp.borrow();
        r.events += lp.count;
        r.checksum = r.checksum.wrapping_add(lp.checksum);
    }
    (r, Timing::from_stamps(t0, t1, t2))
}
