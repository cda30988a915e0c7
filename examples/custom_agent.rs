//! Adding a new agent kind without touching the engine: a street-light controller that switches at dusk and
//! dawn and counts its operations, added to the world built from the default scenario.
//!
//! Run with `cargo run --example custom_agent`.

use gridtwin::agents::Msg;
use gridtwin::engine::{Agent, Ctx, Event, SimDuration, SimTime};
use gridtwin::scenario::Loaded;

/// The custom message: carried in `Msg::Custom`, so the engine and `Msg` need no edit.
#[derive(Debug)]
enum LightCmd {
    On,
    Off,
}

/// Street lights on one feeder: on at 18:00, off at 06:00, with a seeded jitter of up to 10 minutes.
struct StreetLights {
    on: bool,
    switchings: u32,
    lit_s: f64,
    last_change: SimTime,
}

impl Agent<Msg> for StreetLights {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.schedule(SimDuration::from_secs(18 * 3600), Msg::Custom(Box::new(LightCmd::On)));
    }

    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let Msg::Custom(any) = e.msg else { return };
        let Ok(cmd) = any.downcast::<LightCmd>() else { return };
        use rand::RngExt;
        let jitter = SimDuration::from_secs(ctx.rng("dusk-jitter").random_range(0..600));
        if self.on {
            self.lit_s += ctx.now().saturating_since(self.last_change).as_secs_f64();
        }
        self.last_change = ctx.now();
        self.switchings += 1;
        ctx.digest(self.switchings as u64);
        match *cmd {
            LightCmd::On => {
                self.on = true;
                ctx.schedule(SimDuration::from_secs(12 * 3600) + jitter, Msg::Custom(Box::new(LightCmd::Off)));
            }
            LightCmd::Off => {
                self.on = false;
                ctx.schedule(SimDuration::from_secs(12 * 3600) + jitter, Msg::Custom(Box::new(LightCmd::On)));
            }
        }
    }

    fn kind(&self) -> &'static str {
        "street-lights"
    }
}

fn main() -> Result<(), String> {
    let loaded = Loaded::default_embedded();
    let mut world =
        gridtwin::world::build(&loaded, 7, Some(SimDuration::from_secs(3 * 86_400))).map_err(|e| e.to_string())?;
    let id = world
        .sim
        .add_agent(Box::new(StreetLights { on: false, switchings: 0, lit_s: 0.0, last_change: SimTime::ZERO }))
        .map_err(|e| e.to_string())?;
    world.run(1, |_| {})?;
    let lights: &StreetLights = world.sim.agent(id).ok_or("street lights agent missing")?;
    println!(
        "street lights switched {} times, lit {:.1} h over 3 days; run digest {}",
        lights.switchings,
        lights.lit_s / 3600.0,
        world.sim.digest().hex()
    );
    Ok(())
}
