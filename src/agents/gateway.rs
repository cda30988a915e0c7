//! The upstream path: coordinator → UART → gateway → (3G/4G) → cloud, as three agents.
//!
//! The coordinator receives LMU report frames (from the mesh, or directly where a scenario has no mesh) and
//! writes them to its UART: each frame occupies the line for `10 bits x bytes / baud` (8N1), queued in a
//! bounded transmit buffer (frames beyond it are dropped and counted). The gateway decodes frames, keeps the
//! latest reading per LMU id, and publishes a batch when every expected LMU has reported in the current
//! interval or `wait_all_timeout` after the interval's first report, whichever is first. The cloud stores
//! batches as a time series and measures end-to-end latency and completeness.

use super::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime};
use crate::scenario::Dur;
use gridtwin_firmware::report::{ReportPacket, ReportRepr};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Scenario section: the coordinator's UART, the gateway's batching and its cellular uplink.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// UART line rate between coordinator and gateway (8N1: 10 line bits per byte).
    pub uart_baud: u32,
    /// Frames the coordinator's UART transmit buffer holds.
    #[serde(default = "default_uart_buffer_frames")]
    pub uart_buffer_frames: usize,
    /// How often LMUs report (the gateway's batching interval).
    pub report_every: Dur,
    /// How long the gateway waits for the last LMUs of an interval after the first report arrives.
    pub wait_all_timeout: Dur,
    /// One-way latency of the cellular uplink from gateway to cloud.
    #[serde(default = "default_uplink_latency")]
    pub uplink_latency: Dur,
}

fn default_uart_buffer_frames() -> usize {
    256
}
fn default_uplink_latency() -> Dur {
    Dur(SimDuration::from_millis(120))
}

impl GatewayConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(300..=4_000_000).contains(&self.uart_baud) {
            return Err(("uart_baud", format!("{} is outside 300..=4000000 baud", self.uart_baud)));
        }
        if !(1..=1 << 20).contains(&self.uart_buffer_frames) {
            return Err(("uart_buffer_frames", "must be between 1 and 1048576".into()));
        }
        if self.report_every.0 < SimDuration::from_secs(1) {
            return Err(("report_every", "must be at least 1s".into()));
        }
        if self.wait_all_timeout.0 >= self.report_every.0 {
            return Err(("wait_all_timeout", "must be shorter than report_every".into()));
        }
        if self.uplink_latency.0 > SimDuration::from_secs(60) {
            return Err(("uplink_latency", "must be at most 60s".into()));
        }
        Ok(())
    }
}

/// Messages on the upstream path.
#[derive(Debug)]
pub enum GwMsg {
    /// A report frame for the coordinator to forward (from the mesh or an LMU).
    Uplink(Vec<u8>),
    /// A frame that finished crossing the UART (coordinator → gateway).
    Uart(Vec<u8>),
    /// A batch arriving at the cloud.
    Publish(Batch),
}

/// One published batch.
#[derive(Clone, Debug)]
pub struct Batch {
    pub interval: u64,
    pub published_at: SimTime,
    pub readings: Vec<(ReportRepr, SimTime)>,
}

const TIMER_UART_DONE: u64 = 1;

/// The mesh's root side: forwards frames onto the UART.
pub struct Coordinator {
    gateway: AgentId,
    uart_baud: u64,
    buffer_frames: usize,
    queue: VecDeque<Vec<u8>>,
    busy: bool,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub uart_busy_ns: u64,
}

impl Coordinator {
    pub fn new(cfg: &GatewayConfig, gateway: AgentId) -> Self {
        Coordinator {
            gateway,
            uart_baud: cfg.uart_baud as u64,
            buffer_frames: cfg.uart_buffer_frames,
            queue: VecDeque::new(),
            busy: false,
            frames_sent: 0,
            frames_dropped: 0,
            uart_busy_ns: 0,
        }
    }
    fn start_next(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(front) = self.queue.front() {
            // 8N1: 10 line bits per byte; rounded up to the next nanosecond.
            let t = SimDuration((front.len() as u64 * 10 * 1_000_000_000).div_ceil(self.uart_baud));
            self.uart_busy_ns += t.0;
            self.busy = true;
            ctx.schedule(t, Msg::Timer(TIMER_UART_DONE));
        } else {
            self.busy = false;
        }
    }
}

impl Agent<Msg> for Coordinator {
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Gw(GwMsg::Uplink(frame)) => self.enqueue(frame, ctx),
            // A report that crossed the radio mesh to this coordinator's node.
            Msg::Mesh(crate::mesh::MeshMsg::Deliver(d)) => self.enqueue(d.payload, ctx),
            Msg::Timer(TIMER_UART_DONE) => {
                if let Some(frame) = self.queue.pop_front() {
                    self.frames_sent += 1;
                    ctx.send(self.gateway, SimDuration::ZERO, Msg::Gw(GwMsg::Uart(frame)));
                }
                self.start_next(ctx);
            }
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "coordinator"
    }
}

impl Coordinator {
    /// Queues a frame for the UART (dropped and counted when the buffer is full).
    fn enqueue(&mut self, frame: Vec<u8>, ctx: &mut Ctx<'_, Msg>) {
        if self.queue.len() >= self.buffer_frames {
            self.frames_dropped += 1;
            return;
        }
        self.queue.push_back(frame);
        if !self.busy {
            self.start_next(ctx);
        }
    }
}

/// Aggregates readings by LMU id and publishes batches.
pub struct Gateway {
    cloud: AgentId,
    expected: usize,
    report_every_ns: u64,
    wait_all: SimDuration,
    uplink: SimDuration,
    current: BTreeMap<u32, (ReportRepr, SimTime)>,
    interval: Option<u64>,
    deadline: Option<crate::engine::EventId>,
    pub frames_bad: u64,
    pub batches: u64,
    pub batches_complete: u64,
}

const TIMER_WAIT_ALL: u64 = 2;

impl Gateway {
    /// Sets how many LMUs make a complete batch (the world knows only after placing them).
    pub fn set_expected(&mut self, expected_lmus: usize) {
        self.expected = expected_lmus;
    }

    pub fn new(cfg: &GatewayConfig, cloud: AgentId, expected_lmus: usize) -> Self {
        Gateway {
            cloud,
            expected: expected_lmus,
            report_every_ns: cfg.report_every.0.0,
            wait_all: cfg.wait_all_timeout.0,
            uplink: cfg.uplink_latency.0,
            current: BTreeMap::new(),
            interval: None,
            deadline: None,
            frames_bad: 0,
            batches: 0,
            batches_complete: 0,
        }
    }
    fn publish(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(interval) = self.interval.take() else { return };
        if let Some(id) = self.deadline.take() {
            ctx.cancel(id);
        }
        let readings: Vec<_> = std::mem::take(&mut self.current).into_values().collect();
        self.batches += 1;
        if readings.len() >= self.expected {
            self.batches_complete += 1;
        }
        ctx.digest(readings.len() as u64);
        let batch = Batch { interval, published_at: ctx.now(), readings };
        ctx.send(self.cloud, self.uplink, Msg::Gw(GwMsg::Publish(batch)));
    }
}

impl Agent<Msg> for Gateway {
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Gw(GwMsg::Uart(frame)) => {
                let Ok(p) = ReportPacket::new_checked(&frame[..]) else {
                    self.frames_bad += 1;
                    return;
                };
                let r = ReportRepr::parse(&p);
                let interval = r.taken_at_ms.saturating_mul(1_000_000) / self.report_every_ns;
                if self.interval.is_some_and(|i| i != interval) {
                    self.publish(ctx); // a report of a new interval closes the old one
                }
                if self.interval.is_none() {
                    self.interval = Some(interval);
                    self.deadline = Some(ctx.schedule(self.wait_all, Msg::Timer(TIMER_WAIT_ALL)));
                }
                self.current.insert(r.lmu_id, (r, ctx.now()));
                if self.current.len() >= self.expected {
                    self.publish(ctx);
                }
            }
            Msg::Timer(TIMER_WAIT_ALL) => {
                self.deadline = None;
                self.publish(ctx);
            }
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "gateway"
    }
}

/// The cloud's time-series store.
#[derive(Default)]
pub struct Cloud {
    /// Per batch: (arrival time, interval, readings in it, mean |V| of phase a over readings in volts).
    pub batches: Vec<(SimTime, u64, usize, f64)>,
    /// End-to-end latency of every reading (measurement to storage), in milliseconds.
    pub latency_ms: Vec<f64>,
    pub readings: u64,
    /// Every stored reading with its storage time, in arrival order, up to `max_stored` (then counted in
    /// `stored_dropped`): `cloud_readings.csv`.
    pub stored: Vec<(SimTime, ReportRepr)>,
    pub max_stored: usize,
    pub stored_dropped: u64,
}

impl Cloud {
    /// A cloud that keeps up to `max_stored` readings for the report.
    pub fn with_log(max_stored: usize) -> Cloud {
        Cloud { max_stored, ..Cloud::default() }
    }
}

impl Agent<Msg> for Cloud {
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        if let Msg::Gw(GwMsg::Publish(b)) = e.msg {
            let mut v_sum = 0.0;
            for (r, _) in &b.readings {
                let lat_ns = ctx.now().0.saturating_sub(r.taken_at_ms.saturating_mul(1_000_000));
                self.latency_ms.push(lat_ns as f64 / 1e6);
                v_sum += r.v_cv[0] as f64 / 100.0;
                if self.stored.len() < self.max_stored {
                    self.stored.push((ctx.now(), *r));
                } else {
                    self.stored_dropped += 1;
                }
            }
            self.readings += b.readings.len() as u64;
            let n = b.readings.len();
            self.batches.push((ctx.now(), b.interval, n, if n > 0 { v_sum / n as f64 } else { f64::NAN }));
        }
    }
    fn kind(&self) -> &'static str {
        "cloud"
    }
}

/// Sends frames in at given times (for tests and mesh-less scenarios).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Simulation, Stop, class};

    #[test]
    fn batches_when_all_report_or_on_timeout_and_uart_takes_time() {
        let cfg = GatewayConfig {
            uart_baud: 9600,
            uart_buffer_frames: 8,
            report_every: Dur(SimDuration::from_secs(900)),
            wait_all_timeout: Dur(SimDuration::from_secs(30)),
            uplink_latency: Dur(SimDuration::from_millis(100)),
        };
        cfg.validate().unwrap();
        let mut sim: Simulation<Msg> = Simulation::new(1);
        let (c, g, k) = (AgentId(0), AgentId(1), AgentId(2));
        sim.add_agent(Box::new(Coordinator::new(&cfg, g))).unwrap();
        sim.add_agent(Box::new(Gateway::new(&cfg, k, 3))).unwrap();
        sim.add_agent(Box::new(Cloud::default())).unwrap();
        let frame = |id: u32, t_s: u64| {
            ReportRepr { lmu_id: id, taken_at_ms: t_s * 1000, v_cv: [23_000; 3], ..Default::default() }
                .to_bytes()
                .to_vec()
        };
        // Interval 0: all three report -> published at once. Interval 1: only two -> published on timeout.
        for (id, t) in [(0, 0), (1, 0), (2, 0), (0, 900), (1, 900)] {
            sim.schedule(c, c, SimTime::from_secs(t), class::DEFAULT, Msg::Gw(GwMsg::Uplink(frame(id, t)))).unwrap();
        }
        sim.run(Stop::never()).unwrap();
        let cloud: &Cloud = sim.agent(k).unwrap();
        assert_eq!(cloud.batches.iter().map(|b| (b.1, b.2)).collect::<Vec<_>>(), vec![(0, 3), (1, 2)]);
        // 3 frames x 48 bytes x 10 bits at 9600 baud = 150 ms (each frame rounded up to the ns), plus 100 ms uplink.
        assert_eq!(cloud.batches[0].0, SimTime(3 * 50_000_000 + 100_000_000));
        // The wait starts when the interval's first frame reaches the gateway (900 s + 50 ms on the UART).
        assert_eq!(cloud.batches[1].0, SimTime::from_secs(930) + SimDuration::from_millis(150));
        assert_eq!(sim.agent::<Gateway>(g).unwrap().batches_complete, 1);
    }
}
