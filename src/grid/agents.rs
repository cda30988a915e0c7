//! The grid and weather agents on the event queue, and the grid's message type [`GridMsg`].
//!
//! [`GridAgent`] owns a [`GridModel`]. It re-solves only when something changed: a profile step (its own
//! timer), a weather sample, a switching command, fault onset or clearing, or a set-point command. Changes
//! arriving at the same instant are coalesced into one solve (a solve timer at class `GRID + 1`, after all
//! `GRID`-class changes of that instant). After each solve it sends `GridMsg::Solved(Arc<GridSnapshot>)`
//! with class `SENSE` to every subscriber; a failed solve sends `GridMsg::SolveFailed` naming the buses.
//! Simulation time 0 is midnight (UTC) of the configured day of year.
//!
//! [`WeatherAgent`] produces irradiance (clear sky times a seeded cloud-cover Markov chain) and wind speed
//! (seeded mean-reverting process) every weather step and sends them to the grid agent.

use super::config::GridConfig;
use super::model::{Fault, GridModel, GridSnapshot, LoadId};
use super::profiles::{GeneratorKind, Household, WeatherSample, clear_sky_ghi, cloudy_ghi, cos_zenith};
use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, NS_PER_S, SimDuration, SimRng, SimTime, class};
use rand::RngExt;
use std::sync::Arc;

/// Messages to and from the grid agent.
#[derive(Clone, Debug)]
pub enum GridMsg {
    /// A solved state (sent by the grid agent after each solve, class `SENSE`).
    Solved(Arc<GridSnapshot>),
    /// The last solve failed; the text names the buses involved.
    SolveFailed(Arc<String>),
    /// Send future snapshots to this agent.
    Subscribe(AgentId),
    /// Open or close the switch at position `switch` (network file switches first, then added ones).
    SetSwitch { switch: usize, closed: bool },
    /// Fault onset.
    FaultOn(Fault),
    /// Fault clearing (removes equal faults).
    FaultOff(Fault),
    /// Set a load's power (MW, Mvar; three-phase total). Overrides the profile until its next step.
    SetLoad { load: LoadId, p_mw: f64, q_mvar: f64 },
    /// Set a generator's output (MW, Mvar).
    SetGeneration { sgen: usize, p_mw: f64, q_mvar: f64 },
    /// A weather sample for the generators.
    Weather(WeatherSample),
    /// Open (`broken`) or restore the neutral conductor of line `line` (file index); the 4-wire model sees it.
    BrokenNeutral { line: i64, broken: bool },
}

const TAG_STEP: u64 = 1;
const TAG_SOLVE: u64 = 2;
const TAG_LOM: u64 = 3;

/// Every generator's loss-of-mains protection (EN 50549-1), see [`super::config::AntiIslanding`].
#[derive(Clone, Debug, Default)]
pub struct Lom {
    trip: SimDuration,
    reconnect: SimDuration,
    /// The fast over-voltage stage U>>: threshold (p.u.) and time.
    ov_pu: f64,
    ov: SimDuration,
    /// By generator position.
    units: Vec<LomUnit>,
    /// Disconnections so far.
    pub trips: u64,
    /// Reconnections so far.
    pub reconnections: u64,
}

#[derive(Clone, Debug, Default)]
struct LomUnit {
    /// Bus position (`None`: a generator on a bus the network does not have, never islanded).
    bus: Option<usize>,
    /// Since when its bus has been islanded on a phase (while connected).
    islanded_since: Option<SimTime>,
    /// Since when a phase of its bus has been above the U>> threshold (while connected).
    over_since: Option<SimTime>,
    /// While disconnected: the set point it resumes (MW, Mvar), kept current by later set-point changes.
    tripped: Option<(f64, f64)>,
    /// While disconnected: since when its bus has had its full supply back.
    back_since: Option<SimTime>,
}

impl LomUnit {
    /// Disconnects: remembers the set point to resume with and forgets the running timers.
    fn disconnect(&mut self, resume: (f64, f64)) {
        self.tripped = Some(resume);
        self.islanded_since = None;
        self.over_since = None;
        self.back_since = None;
    }
}

/// Starts a generator protection timer that is not running yet (`since` = now) and keeps `wake` at the
/// earliest instant a running timer expires.
fn arm(since: &mut Option<SimTime>, now: SimTime, after: SimDuration, wake: &mut Option<SimTime>) {
    if since.is_none() {
        *since = Some(now);
        let at = now.saturating_add(after);
        *wake = Some(wake.map_or(at, |w| w.min(at)));
    }
}

/// Supply voltage a disconnected generator waits for before it counts the reconnection delay (p.u.,
/// EN 50549-1's reconnection range starts at 85 % of nominal).
const LOM_BACK_PU: f64 = 0.85;

/// The grid agent.
pub struct GridAgent {
    pub model: GridModel,
    households: Vec<(LoadId, Household)>,
    household_cfg: Option<(f64, f64)>,
    generators: Vec<(usize, GeneratorKind)>,
    subscribers: Vec<AgentId>,
    step: SimDuration,
    day_of_year: u32,
    weather: WeatherSample,
    solve_pending: bool,
    noise: Option<SimRng>,
    /// The last snapshot (for reports after a run).
    pub last: Option<Arc<GridSnapshot>>,
    pub solves: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Broken neutrals to apply: (time, line file index), in time order.
    pub broken_neutral: Vec<(SimDuration, i64)>,
    /// Largest neutral-point shift of the run (4-wire model): (p.u. of the phase base, bus position, when);
    /// `None` before the first solve.
    pub neutral_shift_max: Option<(f64, usize, SimTime)>,
    /// Generators' loss-of-mains protection (`None`: off).
    pub lom: Option<Lom>,
}

impl GridAgent {
    /// A grid agent for `cfg` (validated) with its network loaded from `scenario_dir`.
    pub fn from_config(cfg: &GridConfig, scenario_dir: &std::path::Path) -> Result<GridAgent, String> {
        cfg.validate()?;
        let net = cfg.load_network(scenario_dir)?;
        let (model, generators) = cfg.build_model(net)?;
        let household_cfg = match cfg.loads {
            super::config::LoadConfig::H0 { annual_kwh, jitter } => Some((annual_kwh, jitter)),
            super::config::LoadConfig::FromNetwork => None,
        };
        let mut agent = GridAgent::new(model, generators, household_cfg, cfg.profile_step()?, cfg.day_of_year);
        agent.plan_broken_neutrals(cfg)?;
        agent.plan_anti_islanding(cfg);
        Ok(agent)
    }

    /// Arms every generator's loss-of-mains protection as `grid.anti_islanding` says (validated).
    pub fn plan_anti_islanding(&mut self, cfg: &GridConfig) {
        let a = &cfg.anti_islanding;
        self.lom = a.enabled.then(|| {
            let s = |x: f64| SimDuration::from_nanos((x * 1e9).round() as u64);
            let units = self.model.sgen_buses().into_iter().map(|bus| LomUnit { bus, ..LomUnit::default() }).collect();
            Lom {
                trip: s(a.trip_s),
                reconnect: s(a.reconnect_s),
                ov_pu: a.overvoltage_pu,
                ov: s(a.overvoltage_s),
                units,
                trips: 0,
                reconnections: 0,
            }
        });
    }

    /// Takes the scenario's broken neutrals (`grid.broken_neutral`): each line must exist.
    pub fn plan_broken_neutrals(&mut self, cfg: &GridConfig) -> Result<(), String> {
        for (k, b) in cfg.broken_neutral.iter().enumerate() {
            let what = format!("grid.broken_neutral[{k}] (line {})", b.line);
            if !self.model.network().lines.iter().any(|l| l.index == b.line) {
                return Err(format!("{what}: the network has no line {}", b.line));
            }
            let at = crate::engine::parse_duration(&b.onset).map_err(|e| format!("{what}: onset: {e}"))?;
            self.broken_neutral.push((at, b.line));
        }
        self.broken_neutral.sort();
        Ok(())
    }

    /// A grid agent around a model. `households = Some((annual_kwh, jitter))` makes every load of the file
    /// follow H0; `step` is the profile step.
    pub fn new(
        model: GridModel,
        generators: Vec<(usize, GeneratorKind)>,
        households: Option<(f64, f64)>,
        step: SimDuration,
        day_of_year: u32,
    ) -> GridAgent {
        GridAgent {
            model,
            households: Vec::new(),
            household_cfg: households,
            generators,
            subscribers: Vec::new(),
            step: if step == SimDuration::ZERO { SimDuration::from_mins(1) } else { step },
            day_of_year,
            weather: WeatherSample::default(),
            solve_pending: false,
            noise: None,
            last: None,
            solves: 0,
            failures: 0,
            last_error: None,
            broken_neutral: Vec::new(),
            neutral_shift_max: None,
            lom: None,
        }
    }

    /// Sets generator `k`'s output, or, while its loss-of-mains protection holds it disconnected, the output
    /// it resumes with.
    fn set_generation(&mut self, k: usize, p_mw: f64, q_mvar: f64) -> Result<(), String> {
        if let Some(u) = self.lom.as_mut().and_then(|l| l.units.get_mut(k))
            && u.tripped.is_some()
        {
            if !p_mw.is_finite() || !q_mvar.is_finite() {
                return Err(format!("sgen {k}: power must be finite"));
            }
            u.tripped = Some((p_mw, q_mvar));
            return Ok(());
        }
        self.model.set_sgen(k, p_mw, q_mvar)
    }

    /// After a solve: starts the disconnection time of generators whose bus an open conductor has just
    /// half-islanded, and the reconnection delay of disconnected ones whose bus has its full supply back.
    fn watch_islanding(&mut self, snap: &GridSnapshot, ctx: &mut Ctx<'_, Msg>) {
        let Some(lom) = &mut self.lom else { return };
        let half = self.model.half_islanded_buses();
        let now = ctx.now();
        let mut wake: Option<SimTime> = None;
        for (k, u) in lom.units.iter_mut().enumerate() {
            let Some(b) = u.bus else { continue };
            if u.tripped.is_none() && !snap.energised.get(b).copied().unwrap_or(true) {
                // Cut off on every phase: the generator stops with its voltage (undervoltage and loss of
                // mains), and like any disconnection waits out the reconnection delay once supply is back.
                u.disconnect(self.model.sgen_set_point(k).unwrap_or((0.0, 0.0)));
                lom.trips += 1;
                ctx.digest((k as u64) << 1);
                // Nothing to re-solve: a generator on a dead bus gives nothing anyway.
                let _ = self.model.set_sgen(k, 0.0, 0.0);
                continue;
            }
            let islanded = half.binary_search(&b).is_ok();
            // U>> is watched where the generators themselves set the voltage (a half-islanded phase, which a
            // current-controlled inverter drives as high as the load there lets it). A shunt fault's swell on
            // the healthy phases, which the grid bounds and the fault's clearing ends, is not modelled as
            // tripping generators.
            let over = islanded && snap.v_pu.get(b).is_some_and(|v| v.iter().any(|x| x.norm() > lom.ov_pu));
            match (u.tripped.is_some(), over) {
                (false, true) => arm(&mut u.over_since, now, lom.ov, &mut wake),
                (_, false) => u.over_since = None,
                (true, true) => {}
            }
            let supplied = !islanded
                && snap.energised.get(b).copied().unwrap_or(false)
                && snap.v_pu.get(b).is_some_and(|v| v.iter().all(|x| x.norm() >= LOM_BACK_PU));
            match (u.tripped.is_some(), islanded) {
                (false, true) => arm(&mut u.islanded_since, now, lom.trip, &mut wake),
                (false, false) => u.islanded_since = None,
                (true, _) if supplied => arm(&mut u.back_since, now, lom.reconnect, &mut wake),
                (true, _) => u.back_since = None,
            }
        }
        if let Some(at) = wake {
            ctx.schedule_at(at, class::GRID, Msg::Timer(TAG_LOM));
        }
    }

    /// Disconnects the generators islanded for the disconnection time and reconnects those supplied for the
    /// reconnection delay; re-solves if any changed.
    fn lom_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(lom) = &mut self.lom else { return };
        let now = ctx.now();
        let mut changed = Vec::new();
        for (k, u) in lom.units.iter_mut().enumerate() {
            let lost_mains = u.islanded_since.is_some_and(|t| now >= t.saturating_add(lom.trip));
            let over = u.over_since.is_some_and(|t| now >= t.saturating_add(lom.ov));
            if u.tripped.is_none() && (lost_mains || over) {
                u.disconnect(self.model.sgen_set_point(k).unwrap_or((0.0, 0.0)));
                lom.trips += 1;
                changed.push((k, (0.0, 0.0)));
            } else if let Some(resume) = u.tripped
                && u.back_since.is_some_and(|t| now >= t.saturating_add(lom.reconnect))
            {
                u.tripped = None;
                u.back_since = None;
                lom.reconnections += 1;
                changed.push((k, resume));
            }
        }
        if changed.is_empty() {
            return;
        }
        for (k, (p, q)) in changed {
            ctx.digest(((k as u64) << 1) | u64::from(p != 0.0 || q != 0.0));
            let _ = self.model.set_sgen(k, p, q);
        }
        self.request_solve(ctx);
    }

    /// Subscribes `agent` to snapshots (before the run; at run time send `GridMsg::Subscribe`).
    pub fn subscribe(&mut self, agent: AgentId) {
        if !self.subscribers.contains(&agent) {
            self.subscribers.push(agent);
        }
    }

    fn day_and_seconds(&self, now: SimTime) -> (u32, f64) {
        let s = now.as_nanos() / NS_PER_S;
        let day = ((self.day_of_year as u64 - 1 + s / 86_400) % 365 + 1) as u32;
        (day, (s % 86_400) as f64 + (now.as_nanos() % NS_PER_S) as f64 * 1e-9)
    }

    /// Applies household profiles and generator outputs at `now`.
    fn apply_profiles(&mut self, now: SimTime) {
        let (day, t) = self.day_and_seconds(now);
        for (id, h) in &self.households {
            let (p, q) = h.power_kw(day, t);
            let _ = self.model.set_load(*id, p / 1000.0, q / 1000.0);
        }
        self.apply_generation();
    }

    fn apply_generation(&mut self) {
        for i in 0..self.generators.len() {
            let (k, kind) = &self.generators[i];
            let noise = match (&mut self.noise, kind) {
                (Some(r), GeneratorKind::Biogas { .. }) => r.random::<f64>(),
                _ => 0.5,
            };
            let (k, p) = (*k, kind.power_kw(&self.weather, noise));
            let _ = self.set_generation(k, p / 1000.0, 0.0);
        }
    }

    fn request_solve(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if !self.solve_pending {
            self.solve_pending = true;
            ctx.schedule_at(ctx.now(), class::GRID + 1, Msg::Timer(TAG_SOLVE));
        }
    }

    fn solve(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.solve_pending = false;
        match self.model.solve() {
            Ok(snap) => {
                self.solves += 1;
                ctx.digest(snap.iterations as u64);
                ctx.digest(snap.slack_s_mva.re.to_bits());
                for &s in &self.subscribers {
                    ctx.send_at(s, ctx.now(), class::SENSE, Msg::Grid(GridMsg::Solved(snap.clone())));
                }
                // The largest neutral-point shift so far (the first bus of the largest, in bus order).
                let mut top = self.neutral_shift_max.unwrap_or((0.0, 0, ctx.now()));
                for (b, v) in snap.v_n_pu.iter().enumerate() {
                    let x = v.norm();
                    if x.is_finite() && x > top.0 {
                        top = (x, b, ctx.now());
                    }
                }
                self.neutral_shift_max = Some(top);
                self.watch_islanding(&snap, ctx);
                self.last = Some(snap);
            }
            Err(e) => {
                self.failures += 1;
                let text = Arc::new(e.to_string());
                tracing::warn!(t = %ctx.now(), "grid solve failed: {text}");
                self.last_error = Some(text.to_string());
                for &s in &self.subscribers {
                    ctx.send_at(s, ctx.now(), class::SENSE, Msg::Grid(GridMsg::SolveFailed(text.clone())));
                }
            }
        }
    }

    fn command(&mut self, msg: GridMsg, ctx: &mut Ctx<'_, Msg>) {
        let res: Result<bool, String> = match msg {
            GridMsg::Subscribe(a) => {
                self.subscribe(a);
                Ok(false)
            }
            GridMsg::SetSwitch { switch, closed } => self.model.set_switch(switch, closed),
            GridMsg::FaultOn(f) => self.model.add_fault(f).map(|_| true),
            GridMsg::FaultOff(f) => Ok(self.model.clear_fault(&f) > 0),
            GridMsg::SetLoad { load, p_mw, q_mvar } => self.model.set_load(load, p_mw, q_mvar).map(|_| true),
            GridMsg::SetGeneration { sgen, p_mw, q_mvar } => self.set_generation(sgen, p_mw, q_mvar).map(|_| true),
            GridMsg::BrokenNeutral { line, broken } => self.model.set_broken_neutral(line, broken),
            GridMsg::Weather(w) => {
                self.weather = w;
                self.apply_generation();
                Ok(true)
            }
            GridMsg::Solved(_) | GridMsg::SolveFailed(_) => Ok(false),
        };
        match res {
            Ok(true) => self.request_solve(ctx),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(t = %ctx.now(), "grid command rejected: {e}");
                self.last_error = Some(e);
            }
        }
    }
}

impl Agent<Msg> for GridAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some((annual_kwh, jitter)) = self.household_cfg {
            let mut rng = ctx.rng("households");
            self.households = self
                .model
                .load_ids()
                .into_iter()
                .map(|(id, _)| (id, Household::draw(annual_kwh, jitter, &mut rng)))
                .collect();
        }
        self.noise = Some(ctx.rng("biogas"));
        ctx.schedule_at(ctx.now(), class::GRID, Msg::Timer(TAG_STEP));
        for &(at, line) in &self.broken_neutral {
            let t = SimTime::ZERO.saturating_add(at);
            ctx.schedule_at(t, class::GRID, Msg::Grid(GridMsg::BrokenNeutral { line, broken: true }));
        }
    }

    fn handle(&mut self, event: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match event.msg {
            Msg::Timer(TAG_STEP) => {
                self.apply_profiles(ctx.now());
                self.request_solve(ctx);
                ctx.schedule_at(ctx.now().saturating_add(self.step), class::GRID, Msg::Timer(TAG_STEP));
            }
            Msg::Timer(TAG_SOLVE) => self.solve(ctx),
            Msg::Timer(TAG_LOM) => self.lom_timer(ctx),
            Msg::Grid(m) => self.command(m, ctx),
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "grid"
    }
}

/// The weather agent: irradiance and wind for the generators, sent to the grid agent every step.
pub struct WeatherAgent {
    grid: AgentId,
    lat_deg: f64,
    lon_deg: f64,
    day_of_year: u32,
    mean_okta: f64,
    wind_mean_m_s: f64,
    step: SimDuration,
    okta: f64,
    wind_m_s: f64,
    rng: Option<SimRng>,
    pub last: WeatherSample,
}

impl WeatherAgent {
    pub fn from_config(cfg: &GridConfig, grid: AgentId) -> Result<WeatherAgent, String> {
        let w = &cfg.weather;
        let step = crate::engine::parse_duration(&w.step).map_err(|e| format!("grid.weather.step: {e}"))?;
        Ok(WeatherAgent {
            grid,
            lat_deg: w.lat_deg,
            lon_deg: w.lon_deg,
            day_of_year: cfg.day_of_year,
            mean_okta: w.mean_okta,
            wind_mean_m_s: w.wind_mean_m_s,
            step: if step == SimDuration::ZERO { SimDuration::from_mins(10) } else { step },
            okta: w.mean_okta,
            wind_m_s: w.wind_mean_m_s,
            rng: None,
            last: WeatherSample::default(),
        })
    }

    fn sample(&mut self, now: SimTime) -> WeatherSample {
        let rng = self.rng.as_mut().expect("started");
        // Cloud cover: mean-reverting random walk on okta (0..8), one step per weather interval.
        let u: f64 = rng.random();
        let drift = 0.2 * (self.mean_okta - self.okta);
        let jump = if u < 0.2 {
            -1.0
        } else if u > 0.8 {
            1.0
        } else {
            0.0
        };
        self.okta = (self.okta + drift + jump).clamp(0.0, 8.0);
        // Wind: AR(1) around the mean with 25 % relative noise, never negative.
        let n: f64 = rng.random::<f64>() * 2.0 - 1.0;
        self.wind_m_s =
            (self.wind_m_s + 0.3 * (self.wind_mean_m_s - self.wind_m_s) + 0.25 * self.wind_mean_m_s * n).max(0.0);
        let s = now.as_nanos() / NS_PER_S;
        let day = ((self.day_of_year as u64 - 1 + s / 86_400) % 365 + 1) as u32;
        let cz = cos_zenith(self.lat_deg, self.lon_deg, day, (s % 86_400) as f64);
        WeatherSample {
            ghi_w_m2: cloudy_ghi(clear_sky_ghi(cz), self.okta),
            okta: self.okta,
            wind_10m_m_s: self.wind_m_s,
        }
    }
}

impl Agent<Msg> for WeatherAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.rng = Some(ctx.rng("weather"));
        ctx.schedule_at(ctx.now(), class::GRID, Msg::Timer(TAG_STEP));
    }

    fn handle(&mut self, event: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        if let Msg::Timer(TAG_STEP) = event.msg {
            let w = self.sample(ctx.now());
            self.last = w;
            ctx.send_at(self.grid, ctx.now(), class::GRID, Msg::Grid(GridMsg::Weather(w)));
            ctx.schedule_at(ctx.now().saturating_add(self.step), class::GRID, Msg::Timer(TAG_STEP));
        }
    }

    fn kind(&self) -> &'static str {
        "weather"
    }
}
