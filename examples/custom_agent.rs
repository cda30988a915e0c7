//! Adding a new agent kind without touching the engine: a street-light controller that switches at dusk and
//! dawn and counts its operations and lit hours, added to the world built from the default scenario.
//!
//! Three habits worth copying: the agent makes its random stream once, in `start`, and keeps it (a stream
//! made anew for every draw would repeat the same draw); every switch is scheduled at an absolute time of day (18:00 or 06:00 of its
//! day, plus a fresh seeded jitter) rather than relative to the previous switch, so jitter never
//! accumulates; and a quantity integrated over time (hours lit) is closed at the end of the run, so the last
//! on-period counts.
//!
//! Run with `cargo run --example custom_agent`; `cargo test` runs its tests.

use gridtwin::agents::Msg;
use gridtwin::engine::{Agent, Ctx, Event, SimDuration, SimRng, SimTime};
use gridtwin::scenario::Loaded;

/// The custom message: carried in `Msg::Custom`, so the engine and `Msg` need no edit.
#[derive(Debug)]
enum LightCmd {
    On,
    Off,
}

const DAY_S: u64 = 86_400;
const DUSK_S: u64 = 18 * 3600;
const DAWN_S: u64 = 6 * 3600;
/// Jitter of every switching time, seconds (uniform in `0..JITTER_S`).
const JITTER_S: u64 = 600;

/// Street lights on one feeder: on at 18:00, off at 06:00, each switch up to 10 minutes late (seeded).
#[derive(Default)]
struct StreetLights {
    on: bool,
    switchings: u32,
    /// Completed on-periods, in ns.
    lit_ns: u64,
    last_change: SimTime,
    /// (time, on) of every switch, for checking.
    log: Vec<(SimTime, bool)>,
    /// The jitter stream, made once in `start`.
    rng: Option<SimRng>,
}

impl StreetLights {
    /// Schedules `cmd` at `time_of_day_s` on the first day whose time lies after `now`, plus jitter.
    fn schedule_next(&mut self, ctx: &mut Ctx<'_, Msg>, time_of_day_s: u64, cmd: LightCmd) {
        use rand::RngExt;
        let rng = self.rng.get_or_insert_with(|| ctx.rng("dusk-jitter"));
        let now_s = ctx.now().as_nanos() / 1_000_000_000;
        let mut day = now_s / DAY_S;
        if day * DAY_S + time_of_day_s <= now_s {
            day += 1;
        }
        let jitter = SimDuration::from_secs(rng.random_range(0..JITTER_S));
        let at = SimTime::ZERO + SimDuration::from_secs(day * DAY_S + time_of_day_s) + jitter;
        ctx.schedule(at.saturating_since(ctx.now()), Msg::Custom(Box::new(cmd)));
    }

    /// Hours lit up to `end`, the open on-period included.
    fn lit_hours(&self, end: SimTime) -> f64 {
        let open = if self.on { end.saturating_since(self.last_change).as_nanos() } else { 0 };
        (self.lit_ns + open) as f64 / 3.6e12
    }
}

impl Agent<Msg> for StreetLights {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.rng = Some(ctx.rng("dusk-jitter"));
        self.schedule_next(ctx, DUSK_S, LightCmd::On);
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let Msg::Custom(any) = e.msg else { return };
        let Ok(cmd) = any.downcast::<LightCmd>() else { return };
        if self.on {
            self.lit_ns += ctx.now().saturating_since(self.last_change).as_nanos();
        }
        self.last_change = ctx.now();
        self.switchings += 1;
        ctx.digest(self.switchings as u64);
        match *cmd {
            LightCmd::On => {
                self.on = true;
                self.schedule_next(ctx, DAWN_S, LightCmd::Off);
            }
            LightCmd::Off => {
                self.on = false;
                self.schedule_next(ctx, DUSK_S, LightCmd::On);
            }
        }
        self.log.push((ctx.now(), self.on));
    }

    fn kind(&self) -> &'static str {
        "street-lights"
    }
}

/// What a run of the street lights gives: switchings, hours lit, the switch log and the run digest.
type Outcome = (u32, f64, Vec<(SimTime, bool)>, String);

/// Runs the default scenario for `days` with the street lights added.
fn run(days: u64) -> Result<Outcome, String> {
    let loaded = Loaded::default_embedded();
    let until = SimDuration::from_secs(days * DAY_S);
    let mut world = gridtwin::world::build(&loaded, 7, Some(until)).map_err(|e| e.to_string())?;
    let id = world.sim.add_agent(Box::new(StreetLights::default())).map_err(|e| e.to_string())?;
    world.run(1, |_, _| {})?;
    let lights: &StreetLights = world.sim.agent(id).ok_or("street lights agent missing")?;
    let end = SimTime::ZERO + until;
    Ok((lights.switchings, lights.lit_hours(end), lights.log.clone(), world.sim.digest().hex()))
}

fn main() -> Result<(), String> {
    let (switchings, lit_h, _, digest) = run(3)?;
    println!("street lights switched {switchings} times, lit {lit_h:.1} h over 3 days; run digest {digest}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_is_at_its_time_of_day_and_the_last_on_period_counts() {
        let (switchings, lit_h, log, _) = run(3).unwrap();
        // On at dusk on days 0, 1, 2; off at dawn on days 1, 2 (day 3's dawn is after the end).
        assert_eq!(switchings, 5);
        for (k, &(t, on)) in log.iter().enumerate() {
            let s = t.as_nanos() / 1_000_000_000;
            let (day, want) = if on { (k as u64 / 2, DUSK_S) } else { (k as u64 / 2 + 1, DAWN_S) };
            let late = s - (day * DAY_S + want);
            assert!(late < JITTER_S, "switch {k} at {s} s is {late} s after its time: jitter accumulated");
        }
        // Two 12 h nights and a last evening from dusk to the end (6 h), each shifted by under 10 min.
        let exact: u64 = log
            .chunks(2)
            .map(|p| match p {
                [(on, _), (off, _)] => off.saturating_since(*on).as_nanos(),
                [(on, _)] => (SimTime::ZERO + SimDuration::from_secs(3 * DAY_S)).saturating_since(*on).as_nanos(),
                _ => 0,
            })
            .sum();
        assert!((lit_h - exact as f64 / 3.6e12).abs() < 1e-9);
        assert!((lit_h - 30.0).abs() < 0.5, "lit {lit_h} h, want about 30 h");
        // A kept stream gives different jitters (a fresh stream per draw would repeat one).
        let lates: std::collections::BTreeSet<u64> =
            log.iter().map(|(t, _)| t.as_nanos() / 1_000_000_000 % 3600).collect();
        assert!(lates.len() > 1, "every switch has the same jitter: {log:?}");
    }
}
