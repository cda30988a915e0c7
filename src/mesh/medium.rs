//! The mesh agent: the shared radio channel plus every node's radio twin (PHY and 802.15.4 MAC) and routing
//! firmware, in one agent so a district of 10,000 nodes costs a few events per frame instead of one per
//! receiver. Times are integer ns, powers dBm/mW.
//!
//! Per node: a bounded transmit queue, unslotted CSMA/CA (random backoff in unit periods, energy-detection
//! CCA), half-duplex transmissions, hardware acknowledgements after the turnaround time, retries, duplicate
//! rejection by MAC sequence number; and the firmware [`Router`] driven through the [`Radio`] HAL.
//! The channel keeps every transmission still on air (or recently ended); a receiver locks onto the first
//! frame above sensitivity unless a later one is `capture_threshold_db` stronger, and decodes it with the
//! SINR-dependent error model over each stretch of constant interference.
//!
//! Frame security (when the scenario's `security` section is enabled, see [`MeshSecurity`]): every node seals
//! each network frame it queues with the firmware's [`FrameSecurity`] (802.15.4 MAC security: auxiliary
//! header and MIC at the level the policy gives the frame's type, the frame counter the sender's) and every
//! receiving hop opens it before its router sees it; refused frames are counted by reason and go no further.
//! The security bytes are part of the PSDU, so they cost airtime and change collisions and delivery.
//!
//! Jammers ([`super::jam`], when the scenario places some): their power enters the SINR of every reception
//! they overlap and the energy every carrier sense measures; a reactive jammer bursts after each frame start
//! it senses. Receptions lost because of a jammer (that the same draw would have survived without it) and
//! carrier senses found busy only because of one are counted apart ([`JamStats`]).

use super::channel::{Channel, OnAir};
use super::config::{MeshConfig, Traffic, dur};
use super::helper::Helper;
use super::jam::{Bursts, JamField, JamMode};
use super::links::{LinkModel, Weighed};
use super::phy::{Interferer, dbm_to_mw};
use super::propagation::Fading;
use super::radio::{ACK_PSDU_BYTES, RadioModel};
use super::{MeshControl, MeshDelivery, MeshDest, MeshMsg, MeshSend, MeshTimer, TimerKind};
use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimRng, SimTime, class, stream};
use gridtwin_firmware::Instant;
use gridtwin_firmware::hal::radio::{BROADCAST, Radio, TxClass, TxStatus};
use gridtwin_firmware::hal::{ErrorKind, ErrorType};
use gridtwin_firmware::mesh::frame::{Frame, UpKind};
use gridtwin_firmware::mesh::{Delivery, DeliveryKind, Router, RouterConfig, SendError};
use gridtwin_firmware::sec::{FrameSecurity, Key, Policy, SecError, SecurityLevel};
use rand::RngExt;
use std::collections::VecDeque;
use std::sync::Arc;

/// Bytes the twin prepends to every application payload: generation time (ns) and a per-node serial, so
/// deliveries can be matched and timed (a real report carries its timestamp too).
pub const META_BYTES: usize = 12;
/// Top bit of a frame's serial (in its meta header): the frame was broadcast ([`MeshDest::Broadcast`]). Serials
/// count in the low 31 bits.
pub const BROADCAST_SERIAL: u32 = 1 << 31;

/// Counters of one node. Laid out in declaration order, those every reception writes first (see `Node`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct NodeStats {
    pub rx_ns: u64,
    pub joined_ns: Option<u64>,
    pub collisions: u32,
    pub generated: u32,
    pub delivered: u32,
    pub tx_frames: u32,
    pub retries: u32,
    pub app_frames: u32,
    pub app_attempts: u32,
    pub noack: u32,
    pub cca_failures: u32,
    pub queue_drops: u32,
    pub hops_sum: u32,
    pub last_hops: u8,
    pub tx_ns: u64,
    /// Airtime of the security bytes (auxiliary header, MIC) in this node's data transmissions, ns.
    pub sec_tx_ns: u64,
    /// PSDU bytes of this node's data transmissions (every attempt; acknowledgements not included).
    pub tx_psdu_bytes: u64,
    /// Frames the router queued that frame security could not seal (no key, counter exhausted).
    pub seal_failures: u32,
    /// Latest-value frames (see [`super::MeshSend::replaces`]) a later one of the same kind to the same
    /// destination replaced before they were sent.
    pub replaced: u32,
    pub alive_ns: u64,
}

/// A node's receiver counters, kept apart from [`Node`] (see [`MeshAgent::rx`]) and folded into its
/// [`NodeStats`] by [`MeshAgent::node_stats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RxCounters {
    /// Time spent receiving frames above sensitivity, ns.
    pub rx_ns: u64,
    /// Receptions lost to interference or a half-duplex overlap.
    pub collisions: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Out {
    dst: u16,
    token: u32,
    app: bool,
    /// The frame as it goes on air (sealed when the mesh is secured).
    frame: Vec<u8>,
    /// Bytes frame security added to it.
    sec_bytes: u16,
    /// Traffic class (queued ahead of lower classes; protection classes get a shorter backoff).
    class: TxClass,
    /// Latest-value key ([`MeshSend::replaces`] with the final destination): a later frame of the same key
    /// takes this one's place while it waits in the queue.
    replace: Option<u32>,
}

impl Out {
    /// Protection traffic (either protection class): shorter backoff, extra channel-access rounds, and
    /// counted in [`UrgentAir`].
    fn protection(&self) -> bool {
        self.class > TxClass::Normal
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Mac {
    queue: VecDeque<Out>,
    busy: bool,
    nb: u8,
    be: u8,
    attempts: u8,
    /// Channel-access rounds a protection frame has lost so far (each is retried like a missing ack).
    cca_rounds: u8,
    /// The head frame waits in backoff (not on the air, no ack awaited): a frame of a higher class may take
    /// its place.
    in_backoff: bool,
    /// A frame of a higher class took the head's place during its backoff: the next channel access starts
    /// that frame's attempts afresh.
    preempted: bool,
    seq: u8,
    ack_busy_until: u64,
}

/// One node: position, power state, radio twin and firmware.
///
/// Laid out in declaration order (`repr(C)`), the state a reception touches first: each broadcast reaches
/// ~200 receivers whose states lie far apart in a city-sized run, so the cache lines a reception touches
/// (here the first, with the MAC's, and the router's hot head) bound its cost more than its instructions do.
/// Aligned to a cache line, so the hot head starts one and spans as few as it can.
#[repr(C, align(64))]
pub(crate) struct Node {
    // ----- hot: every reception (whether the node is powered is `MeshAgent::live`) -----
    pub coordinator: bool,
    /// The PAN the node belongs to (its frames carry this PAN id; frames of other PANs are heard, occupy the
    /// receiver and interfere, but are not accepted).
    pub pan: u16,
    /// The node's 16-bit short address within its PAN (the address its routing firmware uses).
    pub addr: u16,
    recent_i: u8,
    delivered_i: u8,
    /// `stats.joined_ns` is set (it is set once, at the first join; kept here so a reception's check does not
    /// read the cold counters).
    joined_noted: bool,
    epoch: u32,
    watch_repair: Option<u32>,
    timer_at: u64,
    /// The node's frame security (`None`: frames go in clear). Kept across power cycles: keys and the frame
    /// counter live in non-volatile memory, so a rebooted node does not reuse counters. Boxed: it is large
    /// and absent from unsecured runs.
    pub sec: Option<Box<FrameSecurity>>,
    mac: Mac,
    pub router: Router,
    // ----- cold -----
    /// Counters; a reception's own ones are in [`RxCounters`], so these are written by the node's own
    /// transmissions, whose state is warm anyway.
    pub stats: NodeStats,
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub app: Option<AgentId>,
    pub join_at: Option<u64>,
    alive_since: u64,
    /// Nodes that may decode this node's transmissions (mean power at or above sensitivity, less the fading
    /// margin), with that mean power (dBm), by index.
    pub nbrs: Vec<(u32, f32)>,
    /// The farthest of `nbrs` from this node, m (bounds where a broadcast's interferers can matter).
    pub nbrs_reach_m: f64,
    /// Latencies of this node's delivered reports, µs.
    pub lat_us: Vec<u32>,
    recent_rx: [(u16, u8); 8],
    serial: u32,
    delivered_serials: [u32; 8],
    /// Relay routes to peers set at commissioning (kept in non-volatile memory: a rebooted node has them).
    pub(crate) peer_routes: Vec<(u16, Vec<u16>)>,
    /// Second routes to some of those peers (see [`crate::mesh::config::Routing::peer_alternate_routes`]).
    pub(crate) peer_alternates: Vec<(u16, Vec<u16>)>,
}

impl Node {
    pub(crate) fn new(
        id: u32,
        x_m: f64,
        y_m: f64,
        coordinator: bool,
        app: Option<AgentId>,
        join_at: Option<u64>,
    ) -> Node {
        Node {
            id,
            pan: 0,
            addr: 0,
            x_m,
            y_m,
            coordinator,
            app,
            join_at,
            alive_since: 0,
            epoch: 0,
            router: Router::new(0, coordinator, RouterConfig::default(), 0),
            mac: Mac::default(),
            timer_at: u64::MAX,
            nbrs: Vec::new(),
            nbrs_reach_m: 0.0,
            stats: NodeStats::default(),
            sec: None,
            lat_us: Vec::new(),
            recent_rx: [(u16::MAX, 0); 8],
            recent_i: 0,
            joined_noted: false,
            serial: 0,
            delivered_serials: [u32::MAX; 8],
            delivered_i: 0,
            watch_repair: None,
            peer_routes: Vec::new(),
            peer_alternates: Vec::new(),
        }
    }
}

/// Replay windows a secured node keeps beyond the nodes it can hear at commissioning (nodes heard only
/// through rare shadowing or fading highs, or re-keyed senders).
pub const SENDER_MARGIN: usize = 16;

/// Sent/delivered counts of reports generated in one time bin (and of those generated while a jammer was on).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Bin {
    pub sent: u32,
    pub delivered: u32,
    pub jam_sent: u32,
    pub jam_delivered: u32,
}

/// What jammers did to the mesh.
#[derive(Clone, Copy, Debug, Default)]
pub struct JamStats {
    /// Receptions lost that the same draw would have decoded without the jammers.
    pub rx_lost: u64,
    /// Carrier senses found busy only because of the jammers' energy.
    pub cca_busy: u64,
    /// Reactive bursts sent.
    pub bursts: u64,
}

/// The jammers as the mesh sees them: each one's power at every node (mW, 0 below the interference
/// threshold), whether it senses each node's frames, and the reactive bursts so far.
pub(crate) struct MeshJam {
    field: std::sync::Arc<JamField>,
    rx_mw: Vec<Vec<f64>>,
    senses: Vec<Vec<bool>>,
    bursts: Bursts,
    pub(crate) stats: JamStats,
}

/// A failure event and how the mesh repaired around it.
#[derive(Clone, Debug, Default)]
pub struct FailureRecord {
    pub at_ns: u64,
    pub failed: Vec<u32>,
    /// Live nodes whose preferred parent failed.
    pub affected: u32,
    pub repaired: u32,
    /// Latest time an affected node found a working parent, ns.
    pub last_repair_ns: u64,
}

/// Flow counters (upward reports, downward commands, neighbour messages).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flows {
    pub up_sent: u64,
    pub up_delivered: u64,
    pub down_sent: u64,
    pub down_delivered: u64,
    pub down_no_route: u64,
    pub nbr_sent: u64,
    pub nbr_delivered: u64,
    /// Of `nbr_sent`, the frames broadcast to every node in range ([`MeshDest::Broadcast`]), and their
    /// receptions (each node that decoded one; not in `nbr_delivered`).
    pub nbr_broadcasts: u64,
    pub nbr_broadcast_receptions: u64,
    pub dropped_dead: u64,
    /// The physical layer's work: frames a receiver weighed (its mean power at or above sensitivity), and the
    /// overlapping transmissions above the noise floor that entered those receptions' interference sums.
    pub receptions: u64,
    pub interferers: u64,
}

/// Protection (urgent) traffic on the air: what the LMUs' FLISR frames ask of the radio. The channel's busy time
/// is the union of every transmission's interval (data and acknowledgements, anywhere in the mesh: in a
/// feeder-sized mesh every node shares one channel), split into whole seconds of simulated time; the busiest
/// second that carried protection frames gives the channel's occupancy while a fault is handled, and the union
/// of the protection frames' own intervals (with their acknowledgements) their share of it.
#[derive(Clone, Debug, Default)]
pub struct UrgentAir {
    /// Protection data-frame transmissions (every attempt).
    pub frames: u64,
    /// Their PSDU bytes.
    pub psdu_bytes: u64,
    /// Airtime of protection frames and of their acknowledgements, summed, ns.
    pub air_ns: u64,
    /// End of the busy time counted so far, per lane ([`UrgentAir::ALL`], [`UrgentAir::URGENT`]), ns.
    busy_until_ns: [u64; 2],
    /// Seconds not yet closed: (second, busy ns per lane). Starts never decrease (see
    /// [`super::channel::Channel::push`]) and no transmission lasts a second, so this holds two at most.
    open: VecDeque<(u64, [u64; 2])>,
    /// The busiest closed second (by all traffic) that carried protection traffic, as in `open`.
    busiest: Option<(u64, [u64; 2])>,
}

impl UrgentAir {
    const SECOND_NS: u64 = 1_000_000_000;
    /// Lanes of the busy time: every transmission, and protection traffic.
    const ALL: usize = 0;
    const URGENT: usize = 1;

    /// Counts a transmission over `[start_ns, end_ns)`.
    fn count(&mut self, start_ns: u64, end_ns: u64, urgent: bool) {
        debug_assert!(end_ns - start_ns < Self::SECOND_NS, "a transmission longer than a second");
        let first = start_ns / Self::SECOND_NS;
        while self.open.front().is_some_and(|o| o.0 < first) {
            let o = self.open.pop_front().expect("checked");
            self.close(o);
        }
        if urgent {
            self.air_ns += end_ns - start_ns;
        }
        let lanes: &[usize] = if urgent { &[Self::ALL, Self::URGENT] } else { &[Self::ALL] };
        for &lane in lanes {
            // Only the part after what this lane already counted adds to the union.
            let mut a = start_ns.max(self.busy_until_ns[lane]);
            self.busy_until_ns[lane] = self.busy_until_ns[lane].max(end_ns);
            while a < end_ns {
                let sec = a / Self::SECOND_NS;
                let to = end_ns.min((sec + 1) * Self::SECOND_NS);
                let pos = self.open.iter().position(|o| o.0 == sec).unwrap_or_else(|| {
                    self.open.push_back((sec, [0, 0]));
                    self.open.len() - 1
                });
                assert!(self.open.len() <= 3, "seconds left open");
                self.open[pos].1[lane] += to - a;
                a = to;
            }
        }
    }

    fn close(&mut self, o: (u64, [u64; 2])) {
        let (all, urgent) = (o.1[Self::ALL], o.1[Self::URGENT]);
        if urgent > 0 && self.busiest.is_none_or(|b| all > b.1[Self::ALL]) {
            self.busiest = Some(o);
        }
    }

    /// The busiest second that carried protection traffic: (its start in s, share of it the channel was busy,
    /// share of it protection traffic kept the channel busy).
    pub fn busiest_second(&self) -> Option<(f64, f64, f64)> {
        let mut probe = self.clone();
        while let Some(o) = probe.open.pop_front() {
            probe.close(o);
        }
        probe.busiest.map(|(s, busy)| (s as f64, busy[Self::ALL] as f64 / 1e9, busy[Self::URGENT] as f64 / 1e9))
    }
}

#[cfg(test)]
mod class_tests {
    //! The node queue's traffic classes: order, eviction and preemption of a frame in backoff.
    use super::*;

    struct Q {
        q: VecDeque<Out>,
        busy: bool,
        in_backoff: bool,
        preempted: bool,
        drops: u32,
        seal_failures: u32,
        replaced: u32,
    }
    impl Q {
        fn new(busy: bool, in_backoff: bool) -> Q {
            Q { q: VecDeque::new(), busy, in_backoff, preempted: false, drops: 0, seal_failures: 0, replaced: 0 }
        }
        fn push(&mut self, token: u32, class: TxClass, cap: usize) -> Result<(), ErrorKind> {
            self.push_keyed(token, class, cap, None)
        }
        fn push_keyed(&mut self, token: u32, class: TxClass, cap: usize, key: Option<u32>) -> Result<(), ErrorKind> {
            let mut p = Port {
                q: &mut self.q,
                busy: self.busy,
                in_backoff: self.in_backoff,
                preempted: &mut self.preempted,
                cap,
                max: 100,
                drops: &mut self.drops,
                sec: None,
                seal_failures: &mut self.seal_failures,
                now: Instant(0),
                replace: key,
                replaced: &mut self.replaced,
            };
            p.transmit_class(1, token, &[4, 0, 0, 0], class)
        }
        fn tokens(&self) -> Vec<u32> {
            self.q.iter().map(|o| o.token).collect()
        }
    }

    #[test]
    fn classes_queue_ahead_of_lower_ones_in_arrival_order() {
        let mut q = Q::new(false, false);
        q.push(1, TxClass::Normal, 16).unwrap();
        q.push(2, TxClass::Report, 16).unwrap();
        q.push(3, TxClass::Protection, 16).unwrap();
        q.push(4, TxClass::Report, 16).unwrap();
        q.push(5, TxClass::Protection, 16).unwrap();
        q.push(6, TxClass::Normal, 16).unwrap();
        assert_eq!(q.tokens(), [3, 5, 2, 4, 1, 6]);
        assert!(!q.preempted);
    }

    #[test]
    fn a_frame_in_backoff_yields_to_a_higher_class_but_not_one_on_the_air() {
        // In backoff: the answer goes first, and the MAC is told to start its attempts afresh.
        let mut q = Q::new(true, true);
        q.push(1, TxClass::Report, 16).unwrap();
        q.push(2, TxClass::Protection, 16).unwrap();
        assert_eq!(q.tokens(), [2, 1]);
        assert!(q.preempted);
        // Same class: no preemption.
        let mut q = Q::new(true, true);
        q.push(1, TxClass::Protection, 16).unwrap();
        q.push(2, TxClass::Protection, 16).unwrap();
        assert_eq!(q.tokens(), [1, 2]);
        assert!(!q.preempted);
        // On the air or awaiting its ack: the head stays.
        let mut q = Q::new(true, false);
        q.push(1, TxClass::Normal, 16).unwrap();
        q.push(2, TxClass::Protection, 16).unwrap();
        assert_eq!(q.tokens(), [1, 2]);
        assert!(!q.preempted);
    }

    #[test]
    fn a_latest_value_frame_takes_the_place_of_its_unsent_predecessor_only() {
        const QUERY_TO_2: Option<u32> = Some(12 << 16 | 2);
        const QUERY_TO_3: Option<u32> = Some(12 << 16 | 3);
        // Idle MAC: the newer query replaces the older one in its place; other keys and unkeyed frames stay.
        let mut q = Q::new(false, false);
        q.push_keyed(1, TxClass::Protection, 16, QUERY_TO_2).unwrap();
        q.push_keyed(2, TxClass::Protection, 16, QUERY_TO_3).unwrap();
        q.push(3, TxClass::Protection, 16).unwrap();
        q.push_keyed(4, TxClass::Protection, 16, QUERY_TO_2).unwrap();
        assert_eq!(q.tokens(), [4, 2, 3]);
        assert_eq!(q.replaced, 1);
        // The MAC's current frame (on the air, awaiting its ack or in backoff) is never replaced: the newer
        // one queues behind it.
        for in_backoff in [false, true] {
            let mut q = Q::new(true, in_backoff);
            q.push_keyed(1, TxClass::Protection, 16, QUERY_TO_2).unwrap();
            q.push_keyed(2, TxClass::Protection, 16, QUERY_TO_2).unwrap();
            assert_eq!(q.tokens(), [1, 2]);
            q.push_keyed(3, TxClass::Protection, 16, QUERY_TO_2).unwrap();
            assert_eq!(q.tokens(), [1, 3]);
            assert_eq!(q.replaced, 1);
            assert!(!q.preempted);
        }
        // A full queue: the replacement makes its own room, nothing is dropped.
        let mut q = Q::new(false, false);
        q.push_keyed(1, TxClass::Protection, 2, QUERY_TO_2).unwrap();
        q.push(2, TxClass::Protection, 2).unwrap();
        q.push_keyed(3, TxClass::Protection, 2, QUERY_TO_2).unwrap();
        assert_eq!((q.tokens(), q.drops, q.replaced), (vec![3, 2], 0, 1));
    }

    #[test]
    fn a_full_queue_gives_up_its_newest_frame_of_a_lower_class_only() {
        let mut q = Q::new(true, false);
        q.push(1, TxClass::Normal, 3).unwrap();
        q.push(2, TxClass::Normal, 3).unwrap();
        q.push(3, TxClass::Report, 3).unwrap();
        // Full: a normal frame is refused, a protection frame takes the newest normal one's place (not the
        // head's: it is being sent).
        assert_eq!(q.push(4, TxClass::Normal, 3), Err(ErrorKind::WouldBlock));
        q.push(5, TxClass::Protection, 3).unwrap();
        assert_eq!(q.tokens(), [1, 5, 3]);
        // Nothing below a report is left but the head: a report is refused.
        assert_eq!(q.push(6, TxClass::Report, 3), Err(ErrorKind::WouldBlock));
        assert_eq!(q.drops, 2 + 1);
        // In backoff, a full queue whose only lower-class frame is the head gives that one up, and the MAC
        // is told its head changed.
        let mut q = Q::new(true, true);
        q.push(1, TxClass::Report, 2).unwrap();
        q.push(2, TxClass::Protection, 2).unwrap();
        q.preempted = false;
        // (the head is now the protection frame; the report behind it makes room, the head stays)
        q.push(3, TxClass::Protection, 2).unwrap();
        assert_eq!(q.tokens(), [2, 3]);
        assert!(!q.preempted);
        let mut q = Q::new(true, true);
        q.push(1, TxClass::Normal, 2).unwrap();
        q.push(2, TxClass::Report, 2).unwrap();
        q.preempted = false;
        q.push(3, TxClass::Protection, 2).unwrap();
        assert_eq!(q.tokens(), [3, 2]);
        assert!(q.preempted);
    }
}

#[cfg(test)]
mod urgent_air_tests {
    use super::UrgentAir;

    const MS: u64 = 1_000_000;

    /// The busy time is the union of the intervals, split at whole seconds; the protection share is the union
    /// of the protection intervals; the busiest second is chosen among those that carried protection traffic.
    #[test]
    fn busy_time_is_a_union_split_by_second() {
        let mut a = UrgentAir::default();
        // Second 0: a reading alone, 100 ms, the busiest second so far but without protection traffic.
        a.count(0, 100 * MS, false);
        // Second 1: two overlapping protection frames (900-940 and 920-960 ms: 60 ms of union), then a reading
        // crossing into second 2 (990-1010 ms).
        a.count(1_900 * MS, 1_940 * MS, true);
        a.count(1_920 * MS, 1_960 * MS, true);
        a.count(1_990 * MS, 2_010 * MS, false);
        assert_eq!(a.air_ns, 80 * MS, "protection airtime is summed, not unioned");
        let (at_s, busy, share) = a.busiest_second().expect("a second with protection traffic");
        assert_eq!(at_s, 1.0);
        assert!((busy - 0.070).abs() < 1e-12, "{busy}");
        assert!((share - 0.060).abs() < 1e-12, "{share}");
        // Second 2: 10 ms carried over, then a busier second with protection traffic.
        a.count(2_100 * MS, 2_300 * MS, true);
        let (at_s, busy, share) = a.busiest_second().expect("a second with protection traffic");
        assert_eq!(at_s, 2.0);
        assert!((busy - 0.210).abs() < 1e-12, "{busy}");
        assert!((share - 0.200).abs() < 1e-12, "{share}");
    }
}

/// The radio port a router transmits through: the node's MAC queue, behind the node's frame security (the
/// outgoing frame security procedure runs when a frame is queued, so retries resend the same sealed bytes).
struct Port<'a> {
    q: &'a mut VecDeque<Out>,
    /// The MAC is sending the queue's first frame.
    busy: bool,
    /// ... and holds it in backoff.
    in_backoff: bool,
    /// Set when a frame takes the place of the one in backoff.
    preempted: &'a mut bool,
    cap: usize,
    max: usize,
    drops: &'a mut u32,
    sec: Option<&'a mut FrameSecurity>,
    seal_failures: &'a mut u32,
    now: Instant,
    /// Latest-value key of the frame being queued (see [`Out::replace`]); `None` for every other frame.
    replace: Option<u32>,
    /// Frames a later one of the same key replaced.
    replaced: &'a mut u32,
}
impl ErrorType for Port<'_> {
    type Error = ErrorKind;
}
impl Port<'_> {
    fn queue(&mut self, dst: u16, token: u32, frame: &[u8], class: TxClass) -> Result<(), ErrorKind> {
        if frame.len() > self.max {
            return Err(ErrorKind::Invalid);
        }
        // The frame the MAC is working on stays first while it is on the air or awaits its ack; in backoff it
        // yields to a frame of a higher class (a question's answer must not wait out the retries of a report).
        // A latest-value frame replaces a queued one of the same key that is not the MAC's current frame (an
        // older question or answer not yet sent is stale: sending both only loads the channel when it is
        // busiest). It takes the old one's place in the queue. Only one to the same next hop: the copy of a
        // peer message over its second route (another first hop, same key) is no older value of it.
        let mut slot = None;
        if let Some(key) = self.replace {
            let first = usize::from(self.busy).min(self.q.len());
            if let Some(k) = (first..self.q.len()).find(|&k| self.q[k].replace == Some(key) && self.q[k].dst == dst) {
                self.q.remove(k);
                *self.replaced += 1;
                slot = Some(k);
            }
        }
        let preempt = self.busy && self.in_backoff && self.q.front().is_some_and(|o| o.class < class);
        let head = self.q.front().map(|o| o.token);
        let first = if preempt { 0 } else { usize::from(self.busy).min(self.q.len()) };
        if self.q.len() >= self.cap {
            // A frame takes the place of the newest one of a lower class; anything else is refused.
            let victim = (first..self.q.len()).rev().find(|&k| self.q[k].class < class);
            match victim {
                Some(k) => {
                    self.q.remove(k);
                    *self.drops += 1;
                }
                _ => {
                    *self.drops += 1;
                    return Err(ErrorKind::WouldBlock);
                }
            }
        }
        // Application data: UP/data, DOWN, NBR frames.
        let app = matches!(
            Frame::decode(frame),
            Ok(Frame::Up { kind: UpKind::Data, .. } | Frame::Down { .. } | Frame::Nbr { .. } | Frame::Peer { .. })
        );
        let (frame, sec_bytes) = match self.sec.as_deref_mut() {
            None => (frame.to_vec(), 0),
            Some(s) => match seal_mesh_frame(s, self.now, dst, frame) {
                Ok(f) => {
                    let extra = (f.len() - frame.len()) as u16;
                    (f, extra)
                }
                Err(_) => {
                    *self.seal_failures += 1;
                    return Err(ErrorKind::Invalid);
                }
            },
        };
        let out = Out { dst, token, app, frame, sec_bytes, class, replace: self.replace };
        let at = slot
            .filter(|_| !preempt)
            .unwrap_or_else(|| (first..self.q.len()).find(|&k| self.q[k].class < class).unwrap_or(self.q.len()));
        self.q.insert(at, out);
        // The head changed (taken over, or given up to make room): the MAC starts the new head's attempts.
        if preempt && self.q.front().map(|o| o.token) != head {
            *self.preempted = true;
        }
        Ok(())
    }
}

impl Radio for Port<'_> {
    fn transmit(&mut self, dst: u16, token: u32, frame: &[u8]) -> Result<(), ErrorKind> {
        self.queue(dst, token, frame, TxClass::Normal)
    }
    fn transmit_class(&mut self, dst: u16, token: u32, frame: &[u8], class: TxClass) -> Result<(), ErrorKind> {
        self.queue(dst, token, frame, class)
    }
    fn max_frame_len(&self) -> usize {
        self.max
    }
}

macro_rules! port {
    ($self:ident, $i:expr, $now:expr) => {{
        let n = &mut $self.nodes[$i];
        (
            &mut n.router,
            Port {
                busy: n.mac.busy,
                q: &mut n.mac.queue,
                in_backoff: n.mac.in_backoff,
                preempted: &mut n.mac.preempted,
                cap: $self.queue_cap,
                max: $self.router_max,
                drops: &mut n.stats.queue_drops,
                sec: n.sec.as_deref_mut(),
                seal_failures: &mut n.stats.seal_failures,
                now: Instant($now),
                replace: None,
                replaced: &mut n.stats.replaced,
            },
        )
    }};
}

/// Security frame type of a mesh frame: its kind byte (1 DIO, 2 UP data, 3 DOWN, 4 NBR, 5 DIS, 7 PEER), except a
/// DAO (an UP frame of kind 1), which gets [`SEC_TYPE_DAO`] so the policy can rate it as routing control.
/// The secured frame carries this type in place of the kind byte, so security adds only its auxiliary
/// header and MIC.
pub fn mesh_sec_type(frame: &[u8]) -> u8 {
    match frame {
        [2, sub, ..] if sub & !gridtwin_firmware::mesh::frame::RANK_ERROR_FLAG == 1 => SEC_TYPE_DAO,
        [k, ..] => *k,
        [] => 0,
    }
}

/// Security frame type of a DAO (see [`mesh_sec_type`]).
pub const SEC_TYPE_DAO: u8 = 6;

/// Seals a network frame for link destination `dst` (see [`mesh_sec_type`]).
pub fn seal_mesh_frame(s: &mut FrameSecurity, now: Instant, dst: u16, frame: &[u8]) -> Result<Vec<u8>, SecError> {
    let t = mesh_sec_type(frame);
    s.seal_at(now, dst, t, frame.get(1..).unwrap_or(&[]))
}

/// Opens a secured mesh frame from link source `src` addressed to `dst` (this node or broadcast) and gives
/// back the network frame; a DAO type whose body is not a DAO is malformed.
pub fn open_mesh_frame(
    s: &mut FrameSecurity,
    now: Instant,
    src: u16,
    dst: u16,
    bytes: &[u8],
) -> Result<Vec<u8>, SecError> {
    let (t, body) = s.open_to(now, src, dst, bytes)?;
    let kind = if t == SEC_TYPE_DAO { 2 } else { t };
    if t == SEC_TYPE_DAO && body.first().is_none_or(|&sub| sub & !gridtwin_firmware::mesh::frame::RANK_ERROR_FLAG != 1)
    {
        return Err(SecError::BadHeader);
    }
    let mut f = Vec::with_capacity(1 + body.len());
    f.push(kind);
    f.extend_from_slice(&body);
    Ok(f)
}

/// Frame security of a secured mesh, as provisioned at commissioning: one group key for every node under
/// `key_index`, the levels per security frame type ([`mesh_sec_type`]), and optional time-stamped counters.
#[derive(Clone, Debug)]
pub struct MeshSecurity {
    /// Base of the PAN id in the CCM* nonce; PAN `p` of a split mesh uses `pan_id + p`.
    pub pan_id: u16,
    pub policy: Policy,
    pub key_index: u8,
    pub key: Key,
    /// Time-stamped counters: frames older than this are refused.
    pub max_frame_age_ns: Option<u64>,
}

impl MeshSecurity {
    /// Largest number of bytes the policy adds to a frame.
    pub fn max_overhead(&self) -> usize {
        let levels = self.policy.levels.iter().chain(std::iter::once(&self.policy.default));
        levels.map(|l| if *l == SecurityLevel::None { 0 } else { l.overhead() - 1 }).max().unwrap_or(0)
    }
}

/// The mesh agent.
pub struct MeshAgent {
    pub(crate) radio: RadioModel,
    fading: Fading,
    seed: u64,
    pub(crate) nodes: Vec<Node>,
    /// Positions, propagation and the radio: what a frame's weighing at a receiver reads (see [`LinkModel`]).
    pub(crate) links: Arc<LinkModel>,
    /// The thread that weighs part of a broadcast's receivers, when the run has a core to spare for it.
    pub(crate) helper: Option<Helper>,
    /// Every transmission still relevant, indexed by position (see [`Channel`]).
    pub(crate) channel: Channel,
    rng_mac: SimRng,
    rng_phy: SimRng,
    rng_traffic: SimRng,
    rng_fail: SimRng,
    cca_mw: f64,
    queue_cap: usize,
    max_payload: usize,
    /// Longest network frame a router may queue: the MAC payload, less the security bytes when secured.
    router_max: usize,
    max_air_ns: u64,
    ack_air_ns: u64,
    ack_wait_ns: u64,
    unit_ns: u64,
    cca_ns: u64,
    turn_ns: u64,
    fixed_per: Option<f64>,
    router_cfg: RouterConfig,
    report_every: Option<u64>,
    report_bytes: u16,
    report_start: u64,
    command_every: Option<u64>,
    pub(crate) bin_ns: u64,
    pub(crate) bins: Vec<Bin>,
    pub(crate) lat_us: Vec<u32>,
    pub(crate) down_lat_us: Vec<u32>,
    /// Latencies of delivered neighbour (FLISR) frames, µs.
    pub(crate) nbr_lat_us: Vec<u32>,
    /// Protection traffic on the air.
    pub(crate) urgent_air: UrgentAir,
    /// Peer pairs commissioning gave a relay route (out of each other's reliable range).
    pub(crate) peer_relay_routes: u32,
    pub(crate) peer_alternate_routes: u32,
    pub(crate) failures: Vec<FailureRecord>,
    pub(crate) flows: Flows,
    random_failures: Option<(u64, u64)>,
    /// (id, index) sorted by id.
    pub(crate) by_id: Vec<(u32, u32)>,
    scratch: Vec<Interferer>,
    scratch_air: Vec<OnAir>,
    pub(crate) started_ns: u64,
    /// Whether each node is powered, by index (power on and off set it): kept apart from the node state so
    /// a broadcast's receivers are weighed against it without touching theirs.
    pub(crate) live: Vec<bool>,
    /// Each node's receiver counters by index ([`RxCounters`]): written for every reception above
    /// sensitivity, so they live apart from the node state that only a decoded frame touches.
    pub(crate) rx: Vec<RxCounters>,
    /// The receivers that decoded the broadcast being delivered, with their power (dBm): scratch.
    scratch_rx: Vec<(u32, f64)>,
    /// A broadcast's live receivers with their mean power (dBm), and their weighings: scratch of the helper.
    scratch_todo: Vec<(u32, f64)>,
    scratch_weighed: Vec<(u32, Weighed)>,
    /// Longest distance at which a node may decode another (neighbour lists), m.
    pub(crate) audible_reach_m: f64,
    /// Node index of every short address, per PAN.
    pub(crate) pan_members: Vec<Vec<u32>>,
    /// Jammers on the channel (none in most runs).
    pub(crate) jam: Option<Box<MeshJam>>,
    scratch_jam: Vec<Interferer>,
}

/// Neighbours from which a broadcast's receivers are weighed with the helper's help (fewer are quicker alone).
pub(crate) const HELPED: usize = 3 * super::helper::CHUNK;

/// Index of the node with short address `addr` in PAN `pan`.
#[inline]
fn member(pans: &[Vec<u32>], pan: u16, addr: u16) -> Option<usize> {
    pans.get(pan as usize).and_then(|m| m.get(addr as usize)).map(|&i| i as usize)
}

impl MeshAgent {
    pub(crate) fn new(
        cfg: &MeshConfig,
        radio: &RadioModel,
        nodes: Vec<Node>,
        router_cfg: RouterConfig,
        seed: u64,
        me: AgentId,
    ) -> Result<MeshAgent, String> {
        let traffic: &Traffic = &cfg.traffic;
        let report_every = traffic.report_every.as_deref().map(|s| dur("traffic.report_every", s)).transpose()?;
        let command_every = traffic.command_every.as_deref().map(|s| dur("traffic.command_every", s)).transpose()?;
        let random_failures = match &cfg.random_failures {
            Some(rf) => Some((dur("random_failures.mtbf", &rf.mtbf)?.0, dur("random_failures.mttr", &rf.mttr)?.0)),
            None => None,
        };
        let mut by_id: Vec<(u32, u32)> = nodes.iter().enumerate().map(|(i, n)| (n.id, i as u32)).collect();
        by_id.sort_unstable();
        let a = me.0 as u64;
        Ok(MeshAgent {
            cca_mw: dbm_to_mw(radio.cca_threshold_dbm),
            queue_cap: radio.mac.queue_frames as usize,
            max_payload: radio.max_payload_bytes(),
            router_max: radio.max_payload_bytes(),
            max_air_ns: radio.airtime_ns(radio.max_psdu_bytes),
            ack_air_ns: radio.airtime_ns(ACK_PSDU_BYTES),
            ack_wait_ns: radio.ack_wait_ns(),
            unit_ns: radio.unit_backoff_us as u64 * 1000,
            cca_ns: radio.cca_us as u64 * 1000,
            turn_ns: radio.turnaround_us as u64 * 1000,
            radio: radio.clone(),
            fading: cfg.fading,
            seed,
            nodes,
            links: Arc::new(LinkModel::new(radio, &cfg.propagation, seed)),
            helper: None,
            channel: Channel::new(&[], f64::INFINITY, radio.airtime_ns(radio.max_psdu_bytes)),
            rng_mac: stream(seed, a, "mesh-mac"),
            rng_phy: stream(seed, a, "mesh-phy"),
            rng_traffic: stream(seed, a, "mesh-traffic"),
            rng_fail: stream(seed, a, "mesh-failures"),
            fixed_per: cfg.fixed_per,
            router_cfg,
            report_every: report_every.map(|d| d.0),
            report_bytes: traffic.report_bytes,
            report_start: dur("traffic.start", &traffic.start)?.0,
            command_every: command_every.map(|d| d.0),
            bin_ns: dur("metrics_bin", &cfg.metrics_bin)?.0,
            bins: Vec::new(),
            lat_us: Vec::new(),
            down_lat_us: Vec::new(),
            nbr_lat_us: Vec::new(),
            urgent_air: UrgentAir::default(),
            peer_relay_routes: 0,
            peer_alternate_routes: 0,
            failures: Vec::new(),
            flows: Flows::default(),
            random_failures,
            by_id,
            scratch: Vec::new(),
            scratch_air: Vec::new(),
            started_ns: 0,
            live: Vec::new(),
            rx: Vec::new(),
            scratch_rx: Vec::new(),
            scratch_todo: Vec::new(),
            scratch_weighed: Vec::new(),
            audible_reach_m: f64::INFINITY,
            pan_members: Vec::new(),
            jam: None,
            scratch_jam: Vec::new(),
        })
    }

    /// Rebuilds the channel's spatial index over the nodes' positions, with cells half as wide as the
    /// interference reach (call after `xy` and `reach2` are set; the channel must be empty).
    pub(crate) fn index_channel(&mut self) {
        assert_eq!(self.channel.next_id(), 0, "the channel is indexed before anything is sent");
        self.channel = Channel::new(&self.links.xy, self.links.reach2.sqrt() / 2.0, self.max_air_ns);
    }

    /// Provisions frame security on every node (commissioning): a [`FrameSecurity`] per node with the group
    /// key, the policy, time-stamped counters if asked, and a replay table sized for every node that can be
    /// heard (its neighbour-list entries, plus a margin); routers then queue frames short enough to seal.
    /// Call after the neighbour lists are built and before the run starts.
    pub fn secure(&mut self, cfg: &MeshSecurity) -> Result<(), String> {
        let mut heard_from = vec![0usize; self.nodes.len()];
        for n in &self.nodes {
            for &(j, _) in &n.nbrs {
                heard_from[j as usize] += 1;
            }
        }
        for (n, heard) in self.nodes.iter_mut().zip(heard_from) {
            let mut s = FrameSecurity::new(cfg.pan_id.wrapping_add(n.pan), n.addr, cfg.policy, SecurityLevel::Mic32);
            s.install_key(cfg.key_index, cfg.key).map_err(|e| format!("node {}: key: {e:?}", n.id))?;
            if let Some(age) = cfg.max_frame_age_ns {
                s.set_freshness(gridtwin_firmware::Duration::from_nanos(age));
            }
            s.set_max_senders(heard + SENDER_MARGIN);
            n.sec = Some(Box::new(s));
        }
        let over = cfg.max_overhead();
        if self.max_payload < over + 16 {
            return Err(format!(
                "the security policy adds up to {over} bytes, leaving too little of the radio's frame"
            ));
        }
        self.router_max = (self.max_payload - over).min(1 + gridtwin_firmware::sec::MAX_PAYLOAD);
        Ok(())
    }

    /// Places the jammers of `field` on the channel: their power at every node (through this mesh's
    /// propagation; node `i`'s jammer links draw shadowing as node index `i`) and which nodes' frames the
    /// reactive ones sense. Call after the neighbour lists are built and before the run starts.
    pub fn add_jammers(&mut self, field: std::sync::Arc<JamField>) {
        let n = field.jammers.len();
        let mut rx_mw = Vec::with_capacity(n);
        let mut senses = Vec::with_capacity(n);
        for k in 0..n {
            let (mut p, mut s) = (Vec::with_capacity(self.links.xy.len()), Vec::with_capacity(self.links.xy.len()));
            for (i, &(x, y)) in self.links.xy.iter().enumerate() {
                let dbm = field.rx_dbm(k, x, y, i as u32);
                p.push(if dbm >= self.links.interference_dbm { dbm_to_mw(dbm) } else { 0.0 });
                s.push(field.senses(k, x, y, i as u32));
            }
            rx_mw.push(p);
            senses.push(s);
        }
        self.jam = Some(Box::new(MeshJam { field, rx_mw, senses, bursts: Bursts::new(n), stats: JamStats::default() }));
    }

    /// What the jammers did (`None` without jammers).
    pub fn jam_stats(&self) -> Option<JamStats> {
        self.jam.as_ref().map(|j| j.stats)
    }

    /// Whether a jammer is in its period at `t_ns`.
    #[inline]
    fn jam_period(&self, t_ns: u64) -> bool {
        self.jam.as_ref().is_some_and(|j| j.field.in_period(t_ns))
    }

    /// A frame from node `src` starts at `start_ns`: every reactive jammer that senses it bursts.
    fn jam_frame_start(&mut self, src: usize, start_ns: u64, now: u64) {
        let keep = now.saturating_sub(2 * self.max_air_ns + self.ack_wait_ns);
        let Some(j) = self.jam.as_deref_mut() else { return };
        for k in 0..j.field.jammers.len() {
            if j.senses[k][src]
                && let Some((a, b)) = j.field.burst_for(k, start_ns)
                && j.bursts.push(k, a, b, keep)
            {
                j.stats.bursts += 1;
            }
        }
    }

    /// Appends to `out` the jamming node `r` sees over [`start`, `end`).
    fn jam_interferers(&self, r: usize, start: u64, end: u64, out: &mut Vec<Interferer>) {
        let Some(j) = self.jam.as_deref() else { return };
        for (k, jm) in j.field.jammers.iter().enumerate() {
            let mw = j.rx_mw[k][r];
            if mw > 0.0 && jm.mode == JamMode::Continuous && jm.start_ns < end && jm.stop_ns > start {
                out.push(Interferer { start: jm.start_ns, end: jm.stop_ns, mw });
            }
        }
        for (a, b, k) in j.bursts.overlapping(start, end) {
            let mw = j.rx_mw[k][r];
            if mw > 0.0 {
                out.push(Interferer { start: a, end: b, mw });
            }
        }
    }

    /// Index of the node with short address `addr` in PAN `pan`.
    #[inline]
    pub(crate) fn idx_of(&self, pan: u16, addr: u16) -> Option<usize> {
        member(&self.pan_members, pan, addr)
    }

    /// Sets every node's PAN and short address (`pans[i]` for node `i`; addresses in index order per PAN).
    pub(crate) fn set_pans(&mut self, pans: &[u16]) {
        let count = pans.iter().map(|&p| p as usize + 1).max().unwrap_or(1);
        self.pan_members = vec![Vec::new(); count];
        for (i, (n, &p)) in self.nodes.iter_mut().zip(pans).enumerate() {
            let m = &mut self.pan_members[p as usize];
            n.pan = p;
            n.addr = m.len() as u16;
            m.push(i as u32);
        }
    }

    /// Counters of the node at index `i` (build order).
    pub fn node_stats(&self, i: usize) -> NodeStats {
        let mut s = self.nodes[i].stats;
        if let Some(c) = self.rx.get(i) {
            s.rx_ns += c.rx_ns;
            s.collisions += c.collisions;
        }
        s
    }

    /// Frame security of the node at index `i` (`None` when the mesh is not secured).
    pub fn node_security(&self, i: usize) -> Option<&FrameSecurity> {
        self.nodes[i].sec.as_deref()
    }

    /// Routing counters of the node at index `i`.
    pub fn router_stats(&self, i: usize) -> gridtwin_firmware::mesh::RouterStats {
        self.nodes[i].router.stats()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Index of the node with scenario id `id`.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.by_id.binary_search_by_key(&id, |p| p.0).ok().map(|k| self.by_id[k].1 as usize)
    }

    /// The ids of the peers the node `id` reaches only over relays (its commissioned relay routes), ascending.
    pub fn relayed_peers(&self, id: u32) -> Vec<u32> {
        let Some(i) = self.index_of(id) else { return Vec::new() };
        let pan = self.nodes[i].pan;
        let mut ids: Vec<u32> = self.nodes[i]
            .router
            .relayed_peers()
            .filter_map(|a| self.idx_of(pan, a))
            .map(|k| self.nodes[k].id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Mean received power at `to` of a transmission from `from`, dBm (shadowing included, no fading).
    pub fn mean_rx_dbm(&self, from: usize, to: usize) -> f64 {
        self.links.mean_rx_dbm(from, to)
    }

    /// Sets the extra loss of the link between `a` and `b` and refreshes the cached powers of both directions.
    fn degrade_link(&mut self, a: usize, b: usize, loss_db: f64) {
        Arc::make_mut(&mut self.links).set_extra_db(a, b, loss_db);
        for (from, to) in [(a, b), (b, a)] {
            let p = self.mean_rx_dbm(from, to) as f32;
            if let Some(e) = self.nodes[from].nbrs.iter_mut().find(|e| e.0 as usize == to) {
                e.1 = p;
            }
        }
    }

    /// Mean power at `to` of `from`'s transmissions from position `a`, dBm ([`LinkModel::link_dbm_at`]).
    #[inline]
    fn link_dbm_at(&self, a: (f64, f64), from: usize, to: usize) -> Option<f64> {
        self.links.link_dbm_at(a, from, to)
    }

    fn timer(&self, i: usize, kind: TimerKind, air: u64) -> Msg {
        Msg::Mesh(MeshMsg::Timer(MeshTimer { node: i as u32, epoch: self.nodes[i].epoch, kind, air }))
    }

    fn bin(&mut self, t: u64) -> &mut Bin {
        let b = (t / self.bin_ns) as usize;
        if self.bins.len() <= b {
            self.bins.resize(b + 1, Bin::default());
        }
        &mut self.bins[b]
    }

    // ----- power -----

    fn power_on(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>, first_report_base: u64) {
        let now = ctx.now().0;
        let seed = crate::engine::derive_seed(self.seed, &[0x524F_5554_4552, i as u64, self.nodes[i].epoch as u64]);
        if self.live[i] {
            return;
        }
        self.live[i] = true;
        let n = &mut self.nodes[i];
        n.alive_since = now;
        n.epoch = n.epoch.wrapping_add(1);
        n.router = Router::new(n.addr, n.coordinator, self.router_cfg.clone(), seed);
        for (dst, hops) in &n.peer_routes {
            // Checked by a router of the same address at commissioning.
            let set = n.router.set_peer_route(*dst, hops);
            debug_assert!(set.is_ok(), "{set:?}");
        }
        for (dst, hops) in &n.peer_alternates {
            let set = n.router.set_peer_alternate(*dst, hops);
            debug_assert!(set.is_ok(), "{set:?}");
        }
        n.mac = Mac::default();
        n.timer_at = u64::MAX;
        let (r, mut port) = port!(self, i, now);
        r.start(Instant(now), &mut port);
        self.after_router(i, ctx);
        let n = &self.nodes[i];
        if !n.coordinator
            && n.app.is_none()
            && let Some(every) = self.report_every
        {
            let phase = self.rng_traffic.random_range(0..every);
            let at = first_report_base.max(now) + phase;
            let m = self.timer(i, TimerKind::Report, 0);
            ctx.schedule_at(SimTime(at), class::DEFAULT, m);
        }
        if n.coordinator
            && let Some(every) = self.command_every
        {
            let at = now + every + self.rng_traffic.random_range(0..every);
            let m = self.timer(i, TimerKind::Command, 0);
            ctx.schedule_at(SimTime(at), class::DEFAULT, m);
        }
    }

    fn power_off(&mut self, i: usize, now: u64) {
        if !self.live[i] {
            return;
        }
        self.live[i] = false;
        let n = &mut self.nodes[i];
        n.stats.alive_ns += now - n.alive_since;
        n.epoch = n.epoch.wrapping_add(1);
        n.mac = Mac::default();
        n.timer_at = u64::MAX;
    }

    // ----- router glue -----

    fn after_router(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        while let Some(d) = self.nodes[i].router.pop_delivery() {
            self.on_delivery(i, d, ctx);
        }
        let n = &mut self.nodes[i];
        if !n.joined_noted
            && let Some(t) = n.router.joined_at()
        {
            n.stats.joined_ns = Some(t.0);
            n.joined_noted = true;
        }
        if let Some(f) = n.watch_repair
            && let Some(p) = n.router.parent()
            && member(&self.pan_members, n.pan, p).is_some_and(|k| self.live[k])
        {
            self.nodes[i].watch_repair = None;
            let rec = &mut self.failures[f as usize];
            rec.repaired += 1;
            rec.last_repair_ns = rec.last_repair_ns.max(now);
        }
        let n = &mut self.nodes[i];
        let d = n.router.deadline().0;
        if d < n.timer_at || n.timer_at < now {
            n.timer_at = d;
            if d != u64::MAX {
                let m = self.timer(i, TimerKind::Router, 0);
                ctx.schedule_at(SimTime(d), class::DEFAULT, m);
            }
        }
        self.mac_kick(i, ctx);
    }

    fn meta(now: u64, serial: u32, app: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(META_BYTES + app.len());
        v.extend_from_slice(&now.to_le_bytes());
        v.extend_from_slice(&serial.to_le_bytes());
        v.extend_from_slice(app);
        v
    }

    fn send_up(&mut self, i: usize, app: &[u8], ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        let n = &mut self.nodes[i];
        n.serial = n.serial.wrapping_add(1) & !BROADCAST_SERIAL;
        n.stats.generated += 1;
        let payload = Self::meta(now, n.serial, app);
        self.flows.up_sent += 1;
        let jammed = self.jam_period(now);
        let b = self.bin(now);
        b.sent += 1;
        if jammed {
            b.jam_sent += 1;
        }
        let (r, mut port) = port!(self, i, now);
        let _ = r.send_up(Instant(now), &payload, &mut port);
        self.after_router(i, ctx);
    }

    fn on_delivery(&mut self, i: usize, d: Delivery, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        if d.payload.len() < META_BYTES {
            return;
        }
        let gen_ns = u64::from_le_bytes(d.payload[0..8].try_into().expect("8 bytes"));
        let serial = u32::from_le_bytes(d.payload[8..12].try_into().expect("4 bytes"));
        let Some(origin) = self.idx_of(self.nodes[i].pan, d.origin) else { return };
        let lat = ((now.saturating_sub(gen_ns)) / 1000).min(u32::MAX as u64) as u32;
        match d.kind {
            DeliveryKind::Up => {
                let o = &mut self.nodes[origin];
                if o.delivered_serials.contains(&serial) {
                    return; // an end-to-end duplicate (a rerouted frame whose ack was lost)
                }
                o.delivered_serials[o.delivered_i as usize % 8] = serial;
                o.delivered_i = o.delivered_i.wrapping_add(1);
                o.stats.delivered += 1;
                o.stats.last_hops = d.hops;
                o.stats.hops_sum += d.hops as u32;
                o.lat_us.push(lat);
                self.lat_us.push(lat);
                self.flows.up_delivered += 1;
                let jammed = self.jam_period(gen_ns);
                let b = self.bin(gen_ns);
                b.delivered += 1;
                if jammed {
                    b.jam_delivered += 1;
                }
            }
            DeliveryKind::Down => {
                self.flows.down_delivered += 1;
                self.down_lat_us.push(lat);
            }
            DeliveryKind::Neighbor if serial & BROADCAST_SERIAL != 0 => self.flows.nbr_broadcast_receptions += 1,
            DeliveryKind::Neighbor => {
                self.flows.nbr_delivered += 1;
                self.nbr_lat_us.push(lat);
            }
        }
        ctx.digest(((origin as u64) << 32) ^ serial as u64 ^ ((i as u64) << 48));
        if let Some(app) = self.nodes[i].app {
            let msg = MeshDelivery {
                node: self.nodes[i].id,
                from: self.nodes[origin].id,
                kind: d.kind,
                payload: d.payload[META_BYTES..].to_vec(),
                sent_at: SimTime(gen_ns),
                hops: d.hops,
                broadcast: d.kind == DeliveryKind::Neighbor && serial & BROADCAST_SERIAL != 0,
            };
            ctx.send(app, crate::engine::SimDuration::ZERO, Msg::Mesh(MeshMsg::Deliver(Box::new(msg))));
        }
    }

    // ----- MAC -----

    fn mac_kick(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        let n = &mut self.nodes[i];
        if !self.live[i] || n.mac.busy || n.mac.queue.is_empty() {
            return;
        }
        n.mac.busy = true;
        n.mac.nb = 0;
        let be = self.start_be(i);
        let n = &mut self.nodes[i];
        n.mac.be = be;
        n.mac.attempts = 0;
        n.mac.cca_rounds = 0;
        n.mac.seq = n.mac.seq.wrapping_add(1);
        self.backoff(i, ctx);
    }

    /// Backoff exponent a CSMA round of node `i`'s head frame starts from: protection traffic (commands and
    /// reports alike) starts one below `min_be`, so within a burst it tends to take the channel before
    /// readings and routing frames queued at other nodes. Reports get no wider window: the report that
    /// decides (the nearest LMU's) is sent first by its stagger, and a wider window would let the later ones
    /// overtake it.
    fn start_be(&self, i: usize) -> u8 {
        let urgent = self.nodes[i].mac.queue.front().is_some_and(Out::protection);
        if urgent { self.radio.mac.min_be.saturating_sub(1) } else { self.radio.mac.min_be }
    }

    fn backoff(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        self.nodes[i].mac.in_backoff = true;
        let be = self.nodes[i].mac.be;
        let slots = self.rng_mac.random_range(0..(1u64 << be));
        let base = ctx.now().0.max(self.nodes[i].mac.ack_busy_until);
        let at = base + slots * self.unit_ns + self.cca_ns;
        let m = self.timer(i, TimerKind::Cca, 0);
        ctx.schedule_at(SimTime(at), class::DEFAULT, m);
    }

    fn channel_busy(&mut self, i: usize, now: u64) -> bool {
        // The decision is whether the power summed in id order reaches the threshold. Terms are positive, so a
        // sum in any order that is clearly above (or, complete, clearly below) decides it without sorting; the
        // margin of 1e-9 is far above the relative rounding of any sum the channel can hold (n * 2^-53), and
        // a sum inside the margin is redone in id order below. With jammers, the exact sum is needed anyway.
        if self.jam.is_none() {
            let (x, y) = self.links.xy[i];
            let (hi, lo) = (self.cca_mw * (1.0 + 1e-9), self.cca_mw * (1.0 - 1e-9));
            let mut mw = 0.0;
            let mut n = 0usize;
            let complete = self.channel.visit_near(x, y, self.links.reach2.sqrt(), now, |g| {
                if g.src as usize != i
                    && g.start <= now
                    && now < g.end
                    && let Some(p) = self.link_dbm_at((g.x_m, g.y_m), g.src as usize, i)
                {
                    mw += dbm_to_mw(p);
                    n += 1;
                }
                mw < hi
            });
            debug_assert!(n < 1 << 20, "a carrier sense over {n} frames");
            if !complete {
                return true;
            }
            if mw < lo {
                return false;
            }
        }
        let mut near = std::mem::take(&mut self.scratch_air);
        near.clear();
        let (x, y) = self.links.xy[i];
        self.channel.near(x, y, self.links.reach2.sqrt(), now, &mut near, |g| {
            g.src as usize != i && g.start <= now && now < g.end
        });
        let mut mw = 0.0;
        for g in &near {
            if let Some(p) = self.link_dbm_at((g.x_m, g.y_m), g.src as usize, i) {
                mw += dbm_to_mw(p);
            }
        }
        self.scratch_air = near;
        if mw < self.cca_mw && self.jam.is_some() {
            let mut jam = std::mem::take(&mut self.scratch_jam);
            jam.clear();
            self.jam_interferers(i, now, now + 1, &mut jam);
            let total = mw + jam.iter().map(|g| g.mw).sum::<f64>();
            self.scratch_jam = jam;
            if total >= self.cca_mw {
                if let Some(j) = self.jam.as_deref_mut() {
                    j.stats.cca_busy += 1;
                }
                return true;
            }
        }
        mw >= self.cca_mw
    }

    fn on_cca(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        if !self.nodes[i].mac.busy {
            return;
        }
        if std::mem::take(&mut self.nodes[i].mac.preempted) {
            // A frame of a higher class took the head's place in its backoff: its own attempts start here,
            // and the frame it displaced starts afresh when its turn comes again.
            let be = self.start_be(i);
            let mac = &mut self.nodes[i].mac;
            mac.nb = 0;
            mac.be = be;
            mac.attempts = 0;
            mac.cca_rounds = 0;
            mac.seq = mac.seq.wrapping_add(1);
        }
        if now < self.nodes[i].mac.ack_busy_until {
            self.backoff(i, ctx);
            return;
        }
        if self.channel_busy(i, now) {
            let mac = &mut self.nodes[i].mac;
            mac.nb += 1;
            mac.be = (mac.be + 1).min(self.radio.mac.max_be);
            if mac.nb > self.radio.mac.max_backoffs {
                self.nodes[i].stats.cca_failures += 1;
                // Protection traffic's channel access: an urgent frame that found the channel busy through
                // a whole CSMA round starts another, like a transmission without an ack, up to
                // `max_retries` rounds (a burst of protection frames from every LMU of a feeder at once
                // otherwise drops the decisive one where readings would merely be late).
                let be = self.start_be(i);
                let n = &mut self.nodes[i];
                let urgent = n.mac.queue.front().is_some_and(Out::protection);
                if urgent && n.mac.cca_rounds < self.radio.mac.max_retries {
                    n.mac.cca_rounds += 1;
                    n.mac.nb = 0;
                    n.mac.be = be;
                    self.backoff(i, ctx);
                } else {
                    let attempts = n.mac.attempts;
                    self.finish(i, TxStatus::ChannelBusy { attempts }, ctx);
                }
            } else {
                self.backoff(i, ctx);
            }
            return;
        }
        // Clear: turn the radio around and transmit.
        self.nodes[i].mac.in_backoff = false;
        let Some(out) = self.nodes[i].mac.queue.front() else { return };
        let psdu = self.radio.data_psdu_bytes(out.frame.len());
        let (dst, app, sec_bytes, urgent) = (out.dst, out.app, out.sec_bytes, out.protection());
        let start = now + self.turn_ns;
        let end = start + self.radio.airtime_ns(psdu);
        let sec_ns =
            if sec_bytes == 0 { 0 } else { self.radio.airtime_ns(psdu) - self.radio.airtime_ns(psdu - sec_bytes) };
        let id = self.channel.next_id();
        let (x_m, y_m) = self.links.xy[i];
        let n = &mut self.nodes[i];
        let f = OnAir { id, src: i as u32, x_m, y_m, dst, start, end, psdu, seq: n.mac.seq, ack: false };
        self.channel.push(f, now, self.ack_wait_ns);
        n.mac.attempts += 1;
        n.stats.tx_frames += 1;
        n.stats.tx_ns += end - start;
        n.stats.sec_tx_ns += sec_ns;
        n.stats.tx_psdu_bytes += psdu as u64;
        if app {
            n.stats.app_attempts += 1;
        }
        self.urgent_air.count(start, end, urgent);
        if urgent {
            self.urgent_air.frames += 1;
            self.urgent_air.psdu_bytes += psdu as u64;
        }
        if self.jam.is_some() {
            self.jam_frame_start(i, start, now);
        }
        let m = self.timer(i, TimerKind::TxEnd, id);
        ctx.schedule_at(SimTime(end), class::DEFAULT, m);
    }

    /// Whether node `r` decodes transmission `f` whose mean power at `r` is `mean_dbm`; returns the power.
    fn receive(&mut self, f: OnAir, r: usize, mean_dbm: f64, overlaps: &[OnAir]) -> Option<f64> {
        let p_dbm = self.faded(mean_dbm);
        let mut ints = std::mem::take(&mut self.scratch);
        let w = self.links.weigh(&f, r, p_dbm, overlaps, &mut ints);
        let got = self.settle(&f, r, w, &mut ints);
        self.scratch = ints;
        got
    }

    /// The power of one frame at one receiver, dBm: its mean power `mean_dbm`, with this reception's fading.
    #[inline]
    fn faded(&mut self, mean_dbm: f64) -> f64 {
        if self.fading == Fading::Rayleigh {
            let u: f64 = self.rng_phy.random::<f64>().max(1e-300);
            mean_dbm + 10.0 * (-u.ln()).log10()
        } else {
            mean_dbm
        }
    }

    /// Applies frame `f`'s weighing `w` at receiver `r`: the counters, the jammers' share and the reception's
    /// random draw; returns the power where the frame is decoded. `ints` holds the interferers the weighing met
    /// (read only with jammers on the channel, which are never weighed by the helper).
    fn settle(&mut self, f: &OnAir, r: usize, w: Weighed, ints: &mut Vec<Interferer>) -> Option<f64> {
        let (mut p, p_dbm, met, lost) = match w {
            Weighed::Below => return None,
            Weighed::Lost { interferers } => (0.0, 0.0, interferers as usize, true),
            Weighed::Chance { p, p_dbm, interferers } => (p, p_dbm, interferers as usize, false),
        };
        self.flows.receptions += 1;
        self.flows.interferers += met as u64;
        self.rx[r].rx_ns += f.end - f.start;
        // Jammers: the frame's success with and without them, judged by one draw.
        let mut p_clear = None;
        let mut jammed = 0;
        if !lost && self.jam.is_some() {
            debug_assert_eq!(ints.len(), met, "the weighing's interferers");
            let mut jam = std::mem::take(&mut self.scratch_jam);
            jam.clear();
            self.jam_interferers(r, f.start, f.end, &mut jam);
            if !jam.is_empty() {
                p_clear = Some(p);
                ints.extend_from_slice(&jam);
                jammed = jam.len();
                p = self.links.success(f, p_dbm, ints);
            }
            self.scratch_jam = jam;
        }
        let mut jam_lost = false;
        let ok = !lost
            && (p >= 1.0 || {
                let u = self.rng_phy.random::<f64>();
                jam_lost = u >= p && p_clear.is_some_and(|c| c >= 1.0 || u < c);
                u < p
            });
        if jam_lost {
            if let Some(j) = self.jam.as_deref_mut() {
                j.stats.rx_lost += 1;
            }
        } else if !ok && (lost || met + jammed > 0) {
            self.rx[r].collisions += 1;
        }
        ok.then_some(p_dbm)
    }

    /// Starts a helper thread that weighs part of every broadcast's receivers ([`Helper`]); every output stays
    /// the same. Without a spare core it only slows the run down, so the run decides ([`crate::world::World`]).
    pub fn start_helper(&mut self) {
        if self.helper.is_none() {
            self.helper = Helper::start();
        }
    }

    /// Transmissions overlapping `f` in time that may disturb any of its receivers (computed once per
    /// broadcast, shared by all its receivers), in id order. Fills `out` (the agent's scratch buffer, taken by
    /// the caller) with them.
    fn overlaps_of(&mut self, f: &OnAir, out: &mut Vec<OnAir>) {
        // A transmitter farther from `f`'s source than its farthest possible receiver plus the interference
        // reach cannot disturb any receiver of `f` (the triangle inequality; the hair of margin covers the
        // rounding of the three distances). The farthest receiver in its list, not the decoding reach, which
        // assumes the strongest shadowing anywhere: every receiver's interferers lie in the smaller disc.
        let receivers_m = self.nodes[f.src as usize].nbrs_reach_m.min(self.audible_reach_m);
        let r = (receivers_m + self.links.reach2.sqrt()) * (1.0 + 1e-9);
        self.overlaps_within(f, self.links.xy[f.src as usize], r, r.powi(2), out);
    }

    /// Transmissions overlapping `f` in time that may disturb its one receiver `r` (a unicast frame or an
    /// acknowledgement), in id order.
    ///
    /// Why centred on the receiver: [`MeshAgent::receive`] skips every transmitter beyond the interference reach
    /// of `r` (no power at the noise floor, [`MeshAgent::link_dbm_at`]), and a frame of `r`'s own lies at
    /// distance 0, so this subset of [`MeshAgent::overlaps_of`]' frames decides the reception exactly as the
    /// whole set does, in the same order, from a disc of the interference reach alone instead of that plus the
    /// farthest receiver's distance.
    fn overlaps_at(&mut self, f: &OnAir, r: usize, out: &mut Vec<OnAir>) {
        // The cells' radius a hair wider than the reach, so rounding in its square root cannot leave out a cell;
        // the frames are then kept by the same squared distance `link_dbm_at` compares.
        let (xy, r2) = (self.links.xy[r], self.links.reach2);
        self.overlaps_within(f, xy, r2.sqrt() * (1.0 + 1e-12), r2, out);
    }

    /// Fills `out` with the transmissions other than `f` overlapping it in time from the cells within
    /// `radius_m` of `(x_m, y_m)` and at squared distance `r2` (m^2) or less, in id order.
    fn overlaps_within(&mut self, f: &OnAir, (x_m, y_m): (f64, f64), radius_m: f64, r2: f64, out: &mut Vec<OnAir>) {
        out.clear();
        self.channel.near(x_m, y_m, radius_m, f.start, out, |g| {
            g.id != f.id && g.start < f.end && g.end > f.start && {
                (g.x_m - x_m).powi(2) + (g.y_m - y_m).powi(2) <= r2
            }
        });
    }

    /// Hands a frame node `r` received from node `from`, addressed to link address `dst`, to `r`'s router,
    /// after `r`'s frame security opened it (a refused frame is counted there and dropped).
    fn deliver_frame(&mut self, r: usize, from: usize, dst: u16, rssi: f64, bytes: &[u8], ctx: &mut Ctx<'_, Msg>) {
        let now = Instant(ctx.now().0);
        let from_addr = self.nodes[from].addr;
        let opened;
        let bytes = match self.nodes[r].sec.as_deref_mut() {
            None => bytes,
            Some(s) => match open_mesh_frame(s, now, from_addr, dst, bytes) {
                Ok(f) => {
                    opened = f;
                    &opened[..]
                }
                Err(_) => return,
            },
        };
        let (rt, mut port) = port!(self, r, now.0);
        rt.on_frame(now, from_addr, rssi.round().clamp(-200.0, 50.0) as i16, bytes, &mut port);
        self.after_router(r, ctx);
    }

    fn on_tx_end(&mut self, i: usize, air: u64, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        let Some(f) = self.channel.get(air).copied() else { return };
        // The frame's bytes leave the queue for the deliveries and go back for a possible retry.
        let Some(bytes) = self.nodes[i].mac.queue.front_mut().map(|o| std::mem::take(&mut o.frame)) else { return };
        let mut ov = std::mem::take(&mut self.scratch_air);
        if f.dst == BROADCAST {
            self.overlaps_of(&f, &mut ov);
            // Two passes. The first weighs the frame at every neighbour (fading, capture, interference) from
            // the sender's neighbour list, the dense liveness and the receiver counters alone; most
            // neighbours of a city-sized mesh end below sensitivity or lose the frame there, and their node
            // state is never touched. The second hands the frame to the receivers that decoded it, in the
            // same order. Nothing a delivery does (queueing, timers, later backoffs) changes what the first
            // pass weighs, and the PHY draws come in the same order as one pass would take them.
            let mut got = std::mem::take(&mut self.scratch_rx);
            got.clear();
            let mut touched = false;
            match self.helper.as_mut() {
                // With a helper, the receivers (with their fading, drawn in order) are weighed on both
                // threads, then settled here in order: the same draws and counters as one by one.
                Some(h) if self.jam.is_none() && self.fading == Fading::None && self.nodes[i].nbrs.len() >= HELPED => {
                    let mut todo = std::mem::take(&mut self.scratch_todo);
                    todo.clear();
                    todo.extend(
                        self.nodes[i].nbrs.iter().filter(|&&(r, _)| self.live[r as usize]).map(|&(r, p)| (r, p as f64)),
                    );
                    let mut outcomes = std::mem::take(&mut self.scratch_weighed);
                    outcomes.clear();
                    // While the helper starts on the first chunks, this thread reads ahead the lines the
                    // receivers' deliveries will touch (the pass below does it for the decoders only, when
                    // weighing alone): the misses then overlap the helper's arithmetic.
                    let (nodes, src_addr) = (&self.nodes, self.nodes[i].addr);
                    let touch = |receivers: &[(u32, f64)]| {
                        for &(r, _) in receivers {
                            let n = &nodes[r as usize];
                            std::hint::black_box(n.timer_at ^ n.mac.ack_busy_until ^ n.router.touch_hot_from(src_addr));
                        }
                    };
                    h.weigh(&self.links, f, &mut ov, &mut todo, touch, |r, w| outcomes.push((r, w)));
                    touched = true;
                    let mut none = Vec::new();
                    for &(r, w) in &outcomes {
                        if let Some(rssi) = self.settle(&f, r as usize, w, &mut none) {
                            got.push((r, rssi));
                        }
                    }
                    self.scratch_todo = todo;
                    self.scratch_weighed = outcomes;
                }
                _ => {
                    for k in 0..self.nodes[i].nbrs.len() {
                        let (r, p) = self.nodes[i].nbrs[k];
                        if !self.live[r as usize] {
                            continue;
                        }
                        if let Some(rssi) = self.receive(f, r as usize, p as f64, &ov) {
                            got.push((r, rssi));
                        }
                    }
                }
            }
            // Software prefetch in safe code: a pass reads a word from each cache line every decoding
            // receiver's delivery will touch. These loads do not depend on each other, so the core keeps many
            // misses in flight; in a city-sized mesh the receivers' states are far apart in memory. The
            // values are discarded.
            let src_addr = self.nodes[i].addr;
            for &(r, _) in got.iter().filter(|_| !touched) {
                let n = &self.nodes[r as usize];
                std::hint::black_box(n.timer_at ^ n.mac.ack_busy_until ^ n.router.touch_hot_from(src_addr));
            }
            for &(r, rssi) in &got {
                self.deliver_frame(r as usize, i, BROADCAST, rssi, &bytes, ctx);
            }
            self.scratch_rx = got;
            self.scratch_air = ov;
            self.finish(i, TxStatus::Sent, ctx);
            return;
        }
        let d = self.idx_of(self.nodes[i].pan, f.dst).unwrap_or(usize::MAX);
        let mut got = None;
        if d < self.nodes.len() && d != i && self.live[d] {
            // Software prefetch in safe code, as for a broadcast's receivers above: the lines the ack and the
            // delivery will touch are read now, so their misses overlap the weighing of the frame.
            let n = &self.nodes[d];
            std::hint::black_box(
                n.timer_at
                    ^ n.mac.ack_busy_until
                    ^ n.mac.queue.back().map_or(0, |o| o.token as u64)
                    ^ n.stats.tx_ns
                    ^ n.recent_rx[0].0 as u64
                    ^ n.router.touch_relay(),
            );
            let mean = self.mean_rx_dbm(i, d);
            self.overlaps_at(&f, d, &mut ov);
            got = self.receive(f, d, mean, &ov);
            if got.is_some()
                && let Some(p) = self.fixed_per
                && self.rng_phy.random::<f64>() < p
            {
                got = None;
            }
        }
        self.scratch_air = ov;
        let Some(rssi) = got else {
            self.restore_frame(i, bytes);
            let m = self.timer(i, TimerKind::AckTimeout, 0);
            ctx.schedule_at(SimTime(now + self.ack_wait_ns), class::DEFAULT, m);
            return;
        };
        // The receiver acknowledges after its turnaround, unless its own transmission is in the way.
        let ack_start = now + self.turn_ns;
        let ack_end = ack_start + self.ack_air_ns;
        let (dx, dy) = self.links.xy[d];
        let blocked = self.channel.any_from(dx, dy, |g| g.src as usize == d && g.start < ack_end && g.end > ack_start);
        if blocked {
            let m = self.timer(i, TimerKind::AckTimeout, 0);
            ctx.schedule_at(SimTime(now + self.ack_wait_ns), class::DEFAULT, m);
        } else {
            let id = self.channel.next_id();
            let (x_m, y_m) = self.links.xy[d];
            self.channel.push(
                OnAir {
                    id,
                    src: d as u32,
                    x_m,
                    y_m,
                    dst: self.nodes[i].addr,
                    start: ack_start,
                    end: ack_end,
                    psdu: ACK_PSDU_BYTES,
                    seq: f.seq,
                    ack: true,
                },
                now,
                self.ack_wait_ns,
            );
            if self.jam.is_some() {
                self.jam_frame_start(d, ack_start, now);
            }
            let urgent = self.nodes[i].mac.queue.front().is_some_and(Out::protection);
            self.urgent_air.count(ack_start, ack_end, urgent);
            let dn = &mut self.nodes[d];
            dn.mac.ack_busy_until = ack_end;
            dn.stats.tx_ns += ack_end - ack_start;
            let m = self.timer(i, TimerKind::AckEnd, id);
            ctx.schedule_at(SimTime(ack_end), class::DEFAULT, m);
        }
        // MAC duplicate rejection (a retransmission after a lost ack).
        let key = (self.nodes[i].addr, f.seq);
        let dn = &mut self.nodes[d];
        if !dn.recent_rx.contains(&key) {
            dn.recent_rx[dn.recent_i as usize % 8] = key;
            dn.recent_i = dn.recent_i.wrapping_add(1);
            self.deliver_frame(d, i, f.dst, rssi, &bytes, ctx);
        }
        self.restore_frame(i, bytes);
    }

    /// Puts the bytes of the frame being sent back at the head of node `i`'s queue.
    fn restore_frame(&mut self, i: usize, bytes: Vec<u8>) {
        if let Some(o) = self.nodes[i].mac.queue.front_mut()
            && o.frame.is_empty()
        {
            o.frame = bytes;
        }
    }

    fn on_ack_end(&mut self, i: usize, air: u64, ctx: &mut Ctx<'_, Msg>) {
        let Some(a) = self.channel.get(air).copied() else { return };
        debug_assert!(a.ack);
        let mean = self.mean_rx_dbm(a.src as usize, i);
        let mut ov = std::mem::take(&mut self.scratch_air);
        self.overlaps_at(&a, i, &mut ov);
        let got = self.receive(a, i, mean, &ov);
        self.scratch_air = ov;
        if got.is_some() {
            let attempts = self.nodes[i].mac.attempts;
            self.finish(i, TxStatus::Acked { attempts }, ctx);
        } else {
            self.retry(i, ctx);
        }
    }

    fn retry(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        let mac = &mut self.nodes[i].mac;
        if !mac.busy {
            return;
        }
        if mac.attempts <= self.radio.mac.max_retries {
            mac.nb = 0;
            self.nodes[i].mac.be = self.start_be(i);
            self.backoff(i, ctx);
        } else {
            let attempts = mac.attempts;
            self.nodes[i].stats.noack += 1;
            self.finish(i, TxStatus::NoAck { attempts }, ctx);
        }
    }

    fn finish(&mut self, i: usize, status: TxStatus, ctx: &mut Ctx<'_, Msg>) {
        let n = &mut self.nodes[i];
        let Some(out) = n.mac.queue.pop_front() else { return };
        n.mac.busy = false;
        n.mac.in_backoff = false;
        n.mac.preempted = false;
        let attempts = status.attempts();
        n.stats.retries += attempts.saturating_sub(1) as u32;
        if out.app {
            n.stats.app_frames += 1;
        }
        let now = Instant(ctx.now().0);
        let (r, mut port) = port!(self, i, now.0);
        r.on_tx_done(now, out.token, status, &mut port);
        self.after_router(i, ctx);
    }

    // ----- controls -----

    fn fail_nodes(&mut self, victims: Vec<usize>, now: u64) {
        let rec_idx = self.failures.len() as u32;
        let mut dead = vec![false; self.nodes.len()];
        for &v in &victims {
            dead[v] = true;
        }
        let mut affected = 0;
        let pans = &self.pan_members;
        let live = &self.live;
        for (k, n) in self.nodes.iter_mut().enumerate() {
            if live[k]
                && !dead[k]
                && let Some(p) = n.router.parent()
                && member(pans, n.pan, p).is_some_and(|q| dead[q])
            {
                n.watch_repair = Some(rec_idx);
                affected += 1;
            }
        }
        for &v in &victims {
            self.power_off(v, now);
        }
        self.failures.push(FailureRecord {
            at_ns: now,
            failed: victims.iter().map(|&v| self.nodes[v].id).collect(),
            affected,
            repaired: 0,
            last_repair_ns: now,
        });
    }

    fn on_control(&mut self, c: MeshControl, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        match c {
            MeshControl::Fail(i) => {
                let i = i as usize;
                if self.live[i] {
                    self.fail_nodes(vec![i], now);
                }
            }
            MeshControl::Recover(i) | MeshControl::Join(i) => self.power_on(i as usize, ctx, 0),
            MeshControl::FailRelays(ppm) => {
                let mut is_relay = vec![false; self.nodes.len()];
                for n in self.nodes.iter().zip(&self.live).filter(|(_, l)| **l).map(|(n, _)| n) {
                    if let Some(p) = n.router.parent()
                        && let Some(q) = member(&self.pan_members, n.pan, p)
                    {
                        is_relay[q] = true;
                    }
                }
                let mut relays: Vec<usize> = (0..self.nodes.len())
                    .filter(|&k| is_relay[k] && self.live[k] && !self.nodes[k].coordinator)
                    .collect();
                let k = ((relays.len() as u64 * ppm as u64 + 500_000) / 1_000_000) as usize;
                for j in 0..k.min(relays.len()) {
                    let pick = self.rng_fail.random_range(j..relays.len());
                    relays.swap(j, pick);
                }
                relays.truncate(k);
                relays.sort_unstable();
                self.fail_nodes(relays, now);
            }
            MeshControl::GlobalRepair => {
                for i in 0..self.nodes.len() {
                    if self.live[i] && self.nodes[i].coordinator {
                        let (r, mut port) = port!(self, i, now);
                        r.global_repair(Instant(now), &mut port);
                        self.after_router(i, ctx);
                    }
                }
            }
            MeshControl::DegradeLink(a, b, loss_mdb) => {
                self.degrade_link(a as usize, b as usize, loss_mdb as f64 / 1000.0)
            }
            MeshControl::RandomFail(i) => {
                let i = i as usize;
                if let Some((_, mttr)) = self.random_failures {
                    if self.live[i] {
                        self.fail_nodes(vec![i], now);
                    }
                    let t = now + exp_draw(&mut self.rng_fail, mttr);
                    ctx.schedule_at(
                        SimTime(t),
                        class::DEFAULT,
                        Msg::Mesh(MeshMsg::Control(MeshControl::RandomRecover(i as u32))),
                    );
                }
            }
            MeshControl::RandomRecover(i) => {
                let i = i as usize;
                self.power_on(i, ctx, 0);
                if let Some((mtbf, _)) = self.random_failures {
                    let t = now + exp_draw(&mut self.rng_fail, mtbf);
                    ctx.schedule_at(
                        SimTime(t),
                        class::DEFAULT,
                        Msg::Mesh(MeshMsg::Control(MeshControl::RandomFail(i as u32))),
                    );
                }
            }
        }
    }

    fn on_send(&mut self, s: MeshSend, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        let Some(i) = self.index_of(s.node) else {
            tracing::warn!(node = s.node, "mesh send from unknown node id");
            return;
        };
        if !self.live[i] {
            self.flows.dropped_dead += 1;
            return;
        }
        match s.to {
            MeshDest::Coordinator => self.send_up(i, &s.payload, ctx),
            MeshDest::Broadcast => {
                let n = &mut self.nodes[i];
                n.serial = n.serial.wrapping_add(1) & !BROADCAST_SERIAL;
                // The serial's top bit marks a broadcast for its receivers (the frame has no link destination).
                let payload = Self::meta(now, n.serial | BROADCAST_SERIAL, &s.payload);
                let (r, mut port) = port!(self, i, now);
                let _ = r.send_neighbor(
                    Instant(now),
                    gridtwin_firmware::hal::radio::BROADCAST,
                    &payload,
                    s.class,
                    &mut port,
                );
                self.flows.nbr_sent += 1;
                self.flows.nbr_broadcasts += 1;
                self.after_router(i, ctx);
            }
            MeshDest::Neighbor(id) | MeshDest::Node(id) => {
                let Some(d) = self.index_of(id) else {
                    tracing::warn!(node = s.node, dst = id, "mesh send to unknown node id");
                    return;
                };
                let down = matches!(s.to, MeshDest::Node(_));
                if self.nodes[d].pan != self.nodes[i].pan {
                    // Another PAN: no link-layer path (its frames are not accepted here).
                    if down {
                        self.flows.down_sent += 1;
                        self.flows.down_no_route += 1;
                    } else {
                        self.flows.nbr_sent += 1;
                    }
                    return;
                }
                let d_addr = self.nodes[d].addr;
                let n = &mut self.nodes[i];
                n.serial = n.serial.wrapping_add(1) & !BROADCAST_SERIAL;
                let payload = Self::meta(now, n.serial, &s.payload);
                let (r, mut port) = port!(self, i, now);
                port.replace = s.replaces.map(|k| (k as u32) << 16 | d_addr as u32);
                let res = if down {
                    r.send_down(Instant(now), d_addr, &payload, &mut port)
                } else {
                    r.send_neighbor(Instant(now), d_addr, &payload, s.class, &mut port)
                };
                if down {
                    self.flows.down_sent += 1;
                    if res == Err(SendError::NoRoute) {
                        self.flows.down_no_route += 1;
                    }
                } else {
                    self.flows.nbr_sent += 1;
                }
                self.after_router(i, ctx);
            }
        }
    }

    fn on_command_timer(&mut self, i: usize, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        if let Some(every) = self.command_every {
            let m = self.timer(i, TimerKind::Command, 0);
            ctx.schedule_at(SimTime(now + every), class::DEFAULT, m);
        }
        let count = self.nodes[i].router.route_count();
        if count == 0 {
            return;
        }
        let k = self.rng_traffic.random_range(0..count);
        let Some((dst, _)) = self.nodes[i].router.route_at(k) else { return };
        let n = &mut self.nodes[i];
        n.serial = n.serial.wrapping_add(1) & !BROADCAST_SERIAL;
        let payload = Self::meta(now, n.serial, &[0u8; 8]);
        self.flows.down_sent += 1;
        let (r, mut port) = port!(self, i, now);
        if r.send_down(Instant(now), dst, &payload, &mut port) == Err(SendError::NoRoute) {
            self.flows.down_no_route += 1;
        }
        self.after_router(i, ctx);
    }

    /// The self-generated report period, ns.
    pub(crate) fn report_period_ns(&self) -> Option<u64> {
        self.report_every
    }

    /// Node-seconds alive up to `now` (for duty cycle and energy).
    pub(crate) fn alive_ns(&self, i: usize, now: u64) -> u64 {
        let n = &self.nodes[i];
        n.stats.alive_ns + if self.live[i] { now - n.alive_since } else { 0 }
    }
}

fn exp_draw(rng: &mut SimRng, mean_ns: u64) -> u64 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    ((-u.ln()) * mean_ns as f64).min(1e18) as u64
}

impl Agent<Msg> for MeshAgent {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now().0;
        self.started_ns = now;
        let base = self.report_start;
        for i in 0..self.nodes.len() {
            match self.nodes[i].join_at {
                Some(t) if t > now => {
                    ctx.schedule_at(
                        SimTime(t),
                        class::DEFAULT,
                        Msg::Mesh(MeshMsg::Control(MeshControl::Join(i as u32))),
                    );
                }
                _ => self.power_on(i, ctx, base),
            }
            if let Some((mtbf, _)) = self.random_failures
                && !self.nodes[i].coordinator
            {
                let t = now + exp_draw(&mut self.rng_fail, mtbf);
                ctx.schedule_at(
                    SimTime(t),
                    class::DEFAULT,
                    Msg::Mesh(MeshMsg::Control(MeshControl::RandomFail(i as u32))),
                );
            }
        }
    }

    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        let Msg::Mesh(m) = ev.msg else { return };
        match m {
            MeshMsg::Timer(t) => {
                let i = t.node as usize;
                if i >= self.nodes.len() || self.nodes[i].epoch != t.epoch || !self.live[i] {
                    return; // the node failed or rebooted since
                }
                match t.kind {
                    TimerKind::Router => {
                        if self.nodes[i].timer_at != ctx.now().0 {
                            return;
                        }
                        self.nodes[i].timer_at = u64::MAX;
                        let (r, mut port) = port!(self, i, ctx.now().0);
                        r.poll(Instant(ctx.now().0), &mut port);
                        self.after_router(i, ctx);
                    }
                    TimerKind::Report => {
                        if let Some(every) = self.report_every {
                            let m = self.timer(i, TimerKind::Report, 0);
                            ctx.schedule_at(SimTime(ctx.now().0 + every), class::DEFAULT, m);
                            let body = vec![0u8; self.report_bytes as usize];
                            self.send_up(i, &body, ctx);
                        }
                    }
                    TimerKind::Command => self.on_command_timer(i, ctx),
                    TimerKind::Cca => self.on_cca(i, ctx),
                    TimerKind::TxEnd => self.on_tx_end(i, t.air, ctx),
                    TimerKind::AckEnd => self.on_ack_end(i, t.air, ctx),
                    TimerKind::AckTimeout => self.retry(i, ctx),
                }
            }
            MeshMsg::Control(c) => self.on_control(c, ctx),
            MeshMsg::Send(s) => self.on_send(*s, ctx),
            MeshMsg::Deliver(_) => {}
        }
    }

    fn kind(&self) -> &'static str {
        "mesh"
    }
}
