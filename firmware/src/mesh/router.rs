//! The RPL-style routing state machine of one mesh node (RFC 6550 non-storing mode, RFC 6719 MRHOF, RFC 6206
//! Trickle), sans-IO.
//!
//! Ranks and link costs are in ETX x 128 (so a perfect link costs 128 and the root advertises 128). A node's
//! rank is its preferred parent's rank plus the estimated ETX of the link to it; it switches parent only when
//! another candidate is better by `parent_switch_threshold` (hysteresis). Link ETX is estimated from the MAC's
//! acknowledgement results (EWMA), seeded from the received signal strength of the first DIO.
//!
//! Repair: after `max_fail_streak` unacknowledged frames to its parent a node drops that parent and picks the
//! best remaining candidate (local repair), rerouting the frame that failed; a node with no candidate left
//! detaches and poisons its rank so its children move away; a root can bump the DODAG version (global repair),
//! which makes every node choose its parents afresh. A neighbour is a candidate only on the newest version heard
//! of its own DODAG, whichever DODAG the node is in, so a node never goes back to an abandoned version. Loops
//! are avoided by never choosing a parent ranked at or above our lowest advertised rank plus one ETX (no
//! descendant can be ranked that low, RFC 6550 8.2.2.4) nor a neighbour that recently forwarded upward traffic
//! through us, and by giving up the current parent once it would put us more than `max_rank_increase` above that
//! lowest rank (DAGMaxRankIncrease). Loops that form anyway (a
//! node whose DIOs Trickle suppressed in a dense neighbourhood keeps an old, low rank in its neighbours' tables)
//! are found on the data path (RFC 6550 11.2.2.2): a frame from a sender not ranked above us makes us advertise
//! our rank outside Trickle (at most once per `inconsistency_holdoff_s`, so the ETX churn of a forming, congested
//! mesh cannot feed a DIO storm), is flagged and forwarded once, and is dropped on a second inconsistency; a
//! frame we forwarded that comes back is dropped and also makes us advertise. The ranks around the loop then
//! count up until the parent bound breaks it; the hop limit is the last guard. A frame whose link failed after
//! the MAC's retries takes the next-best parent (bounded by `max_reroutes`).
//!
//! Downward traffic is source-routed from the root, which learns every node's parent from DAOs. Neighbour
//! messages go one hop, or, to a peer out of radio range, along a relay route set at commissioning
//! ([`Router::set_peer_route`]); relays forward them ahead of other traffic, as the origin sends them. Where
//! commissioning also set a second route around the first one's relays ([`Router::set_peer_alternate`]), the origin
//! sends every such message over both at once and the destination delivers the first copy and drops the
//! other (by origin and sequence number), so one failed relay costs no message and no wait (the duplicate
//! discard of IEC 62439-3 PRP, over two relay paths of one mesh).
//! Time is whatever [`Instant`] the caller passes; every input returns the next deadline at which
//! [`Router::poll`] must be called.

use super::frame::{Frame, MAX_SOURCE_ROUTE, UpKind, route_bytes, route_from_bytes, set_up_sender_rank};

/// Most relay routes to peers one node holds (a LMU has a handful of FLISR peers).
pub const MAX_PEER_ROUTES: usize = 64;
/// PEER frames (origin, sequence) remembered at their destination to drop the copy that came the other way.
pub const RECENT_PEER: usize = 16;
use crate::hal::Error as _;
use crate::hal::radio::{BROADCAST, LinkAddr, Radio, TxClass, TxStatus};
use crate::time::{Duration, Instant};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Rank of a node with no route (poison).
pub const INFINITE_RANK: u16 = 0xFFFF;
/// ETX x 128 of a perfect link, and the root's rank.
pub const ETX_ONE: u16 = 128;

/// Tunables of the routing state machine (RFC names in parentheses).
///
/// Laid out in declaration order (`repr(C)`): first the three that a DIO reception reads (sensitivity, link
/// limit, table size: the router keeps its configuration at the end of its hot part, so only the first fields
/// share its last hot cache line), then by size.
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct RouterConfig {
    /// Receiver sensitivity used to seed link ETX from signal strength, dBm.
    pub sensitivity_dbm: i16,
    /// Links estimated worse than this ETX x 128 are not used as parents.
    pub max_link_etx: u16,
    /// Neighbour table size.
    pub neighbors_max: u8,
    /// Trickle redundancy constant k.
    pub trickle_k: u8,
    /// Initial hop limit of upward frames.
    pub hop_limit: u8,
    /// Unacknowledged frames in a row after which a parent is dropped.
    pub max_fail_streak: u8,
    /// Hysteresis before switching parent, ETX x 128 (PARENT_SWITCH_THRESHOLD).
    pub parent_switch_threshold: u16,
    /// ETX sample of a frame the MAC gave up on, in units of its transmission attempts, ETX x 128 per attempt
    /// (128 = the attempts it took, as if the next one would have worked).
    pub noack_etx_per_attempt: u16,
    /// How far our rank may rise above the lowest rank we advertised while we keep the current parent, ETX x 128
    /// (DAGMaxRankIncrease, RFC 6550 8.2.2.4); beyond it the parent is given up.
    pub max_rank_increase: u16,
    /// Trickle doublings (Imax = Imin * 2^doublings).
    pub trickle_doublings: u8,
    /// Application frames held while the node has no parent.
    pub pending_max: u8,
    /// Smallest Trickle interval (Imin), ms.
    pub trickle_imin_ms: u32,
    /// Delay before a DAO after a parent change, ms (jittered up to twice that).
    pub dao_delay_ms: u32,
    /// DAO refresh period, s.
    pub dao_refresh_s: u32,
    /// How long a neighbour that forwarded upward traffic through us is excluded as parent, s.
    pub child_hold_s: u32,
    /// Root only: bump the DODAG version this often (global repair), s; 0 = never.
    pub global_repair_s: u32,
    /// A node without a parent solicits DIOs (DIS) this often, ms.
    pub dis_interval_ms: u32,
    /// Least time between two DIOs sent because the data path met an inconsistency, s.
    pub inconsistency_holdoff_s: u32,
    /// Times an upward frame may be rerouted to another parent after its link failed.
    pub max_reroutes: u8,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            trickle_imin_ms: 1000,
            trickle_doublings: 11,
            trickle_k: 5,
            parent_switch_threshold: 192,
            max_link_etx: 6 * ETX_ONE,
            neighbors_max: 24,
            dao_delay_ms: 4000,
            dao_refresh_s: 3600,
            max_fail_streak: 2,
            hop_limit: 32,
            pending_max: 8,
            sensitivity_dbm: -105,
            child_hold_s: 1800,
            global_repair_s: 0,
            max_reroutes: 2,
            dis_interval_ms: 10_000,
            noack_etx_per_attempt: 160,
            max_rank_increase: 4 * ETX_ONE,
            inconsistency_holdoff_s: 60,
        }
    }
}

impl RouterConfig {
    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.trickle_imin_ms == 0 {
            return Err("trickle_imin_ms must be > 0");
        }
        if self.trickle_doublings > 24 {
            return Err("trickle_doublings must be <= 24");
        }
        if self.trickle_k == 0 {
            return Err("trickle_k must be >= 1");
        }
        if self.max_link_etx < ETX_ONE {
            return Err("max_link_etx must be >= 128 (ETX 1)");
        }
        if self.neighbors_max < 2 {
            return Err("neighbors_max must be >= 2");
        }
        if self.dis_interval_ms == 0 {
            return Err("dis_interval_ms must be > 0");
        }
        if self.max_fail_streak == 0 {
            return Err("max_fail_streak must be >= 1");
        }
        if self.hop_limit < 2 {
            return Err("hop_limit must be >= 2");
        }
        Ok(())
    }
}

/// How a payload reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    /// Upward to this root from `origin`.
    Up,
    /// Downward (source-routed) from the root `origin`.
    Down,
    /// From the neighbour `origin`: one hop, or over the relays of a peer route (`hops` > 1).
    Neighbor,
}

/// What the router hands to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub kind: DeliveryKind,
    pub origin: u16,
    pub seq: u16,
    pub hops: u8,
    pub payload: Vec<u8>,
}

/// Why a send request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The root has no (complete) DAO route to the destination.
    NoRoute,
    /// This node is a root (upward sends) or not a root (downward sends).
    WrongRole,
    /// Payload too long for one frame.
    TooLong,
    /// The radio's queue is full.
    QueueFull,
}

/// Counters of one router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub dio_sent: u32,
    pub dao_sent: u32,
    pub data_originated: u32,
    pub forwarded: u32,
    pub parent_changes: u32,
    pub local_repairs: u32,
    pub detaches: u32,
    /// Upward frames dropped because they met a second rank inconsistency (a loop) or came from our own
    /// parent (a two-node loop).
    pub loops_detected: u32,
    /// Upward frames that met a first rank inconsistency (flagged and forwarded, RFC 6550 11.2.2.2).
    pub rank_errors: u32,
    /// Upward frames sent to another parent after the MAC gave up on the link.
    pub reroutes: u32,
    pub drop_no_route: u32,
    pub drop_link: u32,
    pub drop_queue: u32,
    pub drop_hop_limit: u32,
    pub bad_frames: u32,
    /// Neighbour messages sent over a relay route, and PEER frames this node relayed.
    pub peer_routed: u32,
    pub peer_relayed: u32,
    /// Neighbour messages also sent over their alternate route, and copies dropped here as duplicates.
    pub peer_duplicated: u32,
    pub peer_duplicates_dropped: u32,
}

#[derive(Clone, Debug)]
struct Nbr {
    addr: u16,
    root: u16,
    version: u8,
    rank: u16,
    link_etx: u16,
    fail_streak: u8,
    child_until: Instant,
}

#[derive(Clone, Debug)]
struct Inflight {
    token: u32,
    to: u16,
    /// Upward frames keep their bytes so they can be rerouted.
    up: Option<Vec<u8>>,
    reroutes: u8,
}

#[derive(Clone, Debug)]
struct Trickle {
    interval_ns: u64,
    t_at: Instant,
    end: Instant,
    c: u8,
    fired: bool,
}

/// Routing state of one node.
///
/// Laid out in declaration order (`repr(C)`), the fields every received frame reads or writes first: a dense
/// mesh delivers each broadcast to ~200 receivers, and in a city-sized run their states are far apart in
/// memory, so what a reception touches decides how many cache lines it misses. The hot part (about four
/// lines, ending with the configuration, whose first fields are the ones a DIO reads) serves the common DIO
/// reception and the deadline; the rest is read on rarer paths.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Router {
    // ----- hot: every reception -----
    /// Bit `a % 256` set for every neighbour address `a` in `nbrs` (a superset test): most DIOs come from
    /// nodes not in the table, and this answers for them without touching the table's memory.
    nbr_filter: [u64; 4],
    /// The addresses of `nbrs`, in its order (a search reads one cache line instead of the whole table).
    nbr_addrs: Vec<u16>,
    nbrs: Vec<Nbr>,
    /// Earliest time a held-off neighbour becomes usable again (parent choice depends on `now` through it).
    hold_expiry: Instant,
    /// One-off DIO outside Trickle (a child with a stale view of our rank, a loop).
    dio_at: Instant,
    dao_at: Instant,
    dis_at: Instant,
    repair_at: Instant,
    trickle: Trickle,
    /// The entry a newcomer would replace when the table is full (see `worst_neighbor`), while `worst_ok`.
    worst_nbr: Option<(u64, usize)>,
    pending: VecDeque<Vec<u8>>,
    deliveries: VecDeque<Delivery>,
    addr: u16,
    root: u16,
    rank: u16,
    /// Lowest rank advertised since joining this DODAG version (RFC 6550 8.2.2.4 "L"); bounds parent choice.
    lowest_adv: u16,
    parent: Option<u16>,
    version: u8,
    is_root: bool,
    /// Whether `worst_nbr` is current: cleared by every change of the table's addresses, ranks, link
    /// estimates or of the parent.
    worst_ok: bool,
    /// Something parent choice depends on changed since it last ran (a neighbour's rank or link, our bound).
    reselect: bool,
    trickle_on: bool,
    recent_fwd_i: u8,
    cfg: RouterConfig,
    // ----- cold -----
    /// When the node first joined a DODAG (set once; the host reads it until it has noted it).
    joined_at: Option<Instant>,
    /// (origin, seq, hop limit) of the last upward frames forwarded: a frame coming back is a loop.
    recent_fwd: [(u16, u16, u8); RECENT_FWD],
    /// When the data path last made us advertise (see `inconsistency_holdoff_s`).
    last_inconsistency: Option<Instant>,
    dao_last: Instant,
    seq: u16,
    next_token: u32,
    rng: u64,
    /// Root only: (node, parent) learnt from DAOs, sorted by node address. A sorted vector, not a tree: a
    /// root's table is a few hundred to a few thousand pairs that change rarely (a join, a parent change), and
    /// a command picks the `k`-th route, which a vector indexes where a tree walks `k` scattered nodes.
    routes: Vec<(u16, u16)>,
    /// Relay routes to peers out of radio range, by destination (sorted); each ends at its destination.
    peer_routes: Vec<(u16, Vec<u16>)>,
    /// Second routes to some of those peers, through none of the first route's relays (sorted).
    peer_alternates: Vec<(u16, Vec<u16>)>,
    /// (origin, sequence) of the last PEER frames delivered here, a ring.
    recent_peer: [(u16, u16); RECENT_PEER],
    recent_peer_len: u8,
    recent_peer_at: u8,
    /// The newest version heard of each DODAG, as (root, version): `dodags_len` entries, replaced in turn
    /// from `dodags_next` when full (never our own DODAG's). See `newest_version`.
    dodags: [(u16, u8); MAX_DODAGS],
    dodags_len: u8,
    dodags_next: u8,
    inflight: VecDeque<Inflight>,
    stats: RouterStats,
}

fn newer(a: u8, b: u8) -> bool {
    (a.wrapping_sub(b) as i8) > 0
}

const MAX_INFLIGHT: usize = 64;
/// DODAGs whose newest version a node remembers (a node hears the few coordinators around it).
const MAX_DODAGS: usize = 8;
const RECENT_FWD: usize = 16;
const MAX_DELIVERIES: usize = 256;

impl Router {
    /// A node with short address `addr` (a root if `is_root`), seeded for its jitter draws.
    pub fn new(addr: u16, is_root: bool, cfg: RouterConfig, seed: u64) -> Router {
        Router {
            addr,
            is_root,
            root: if is_root { addr } else { BROADCAST },
            version: 0,
            rank: if is_root { ETX_ONE } else { INFINITE_RANK },
            parent: None,
            lowest_adv: INFINITE_RANK,
            dio_at: Instant::MAX,
            recent_fwd: [(BROADCAST, 0, 0); RECENT_FWD],
            recent_fwd_i: 0,
            nbrs: Vec::with_capacity(cfg.neighbors_max as usize),
            nbr_addrs: Vec::with_capacity(cfg.neighbors_max as usize),
            nbr_filter: [0; 4],
            worst_nbr: None,
            worst_ok: false,
            reselect: true,
            last_inconsistency: None,
            hold_expiry: Instant::MAX,
            trickle: Trickle { interval_ns: 0, t_at: Instant::MAX, end: Instant::MAX, c: 0, fired: true },
            trickle_on: false,
            dao_at: Instant::MAX,
            dao_last: Instant::ZERO,
            dis_at: Instant::MAX,
            repair_at: Instant::MAX,
            seq: 0,
            next_token: 0,
            rng: seed ^ 0x5DEE_CE66_D1CE_B00C,
            routes: Vec::new(),
            peer_routes: Vec::new(),
            peer_alternates: Vec::new(),
            recent_peer: [(0, 0); RECENT_PEER],
            recent_peer_len: 0,
            recent_peer_at: 0,
            dodags: [(BROADCAST, 0); MAX_DODAGS],
            dodags_len: 0,
            dodags_next: 0,
            inflight: VecDeque::new(),
            pending: VecDeque::new(),
            deliveries: VecDeque::new(),
            joined_at: if is_root { Some(Instant::ZERO) } else { None },
            stats: RouterStats::default(),
            cfg,
        }
    }

    pub fn addr(&self) -> u16 {
        self.addr
    }
    pub fn is_root(&self) -> bool {
        self.is_root
    }
    pub fn rank(&self) -> u16 {
        self.rank
    }
    pub fn parent(&self) -> Option<u16> {
        self.parent
    }
    /// The root of the DODAG this node belongs to (`BROADCAST` when detached and never joined).
    pub fn dodag_root(&self) -> u16 {
        self.root
    }
    pub fn version(&self) -> u8 {
        self.version
    }
    pub fn stats(&self) -> RouterStats {
        self.stats
    }
    /// When the node first got a route (roots: at construction).
    pub fn joined_at(&self) -> Option<Instant> {
        self.joined_at
    }
    /// Estimated ETX x 128 of the link to the preferred parent.
    pub fn parent_link_etx(&self) -> Option<u16> {
        let p = self.parent?;
        self.nbr_index(p).map(|i| self.nbrs[i].link_etx)
    }
    /// Root only: number of nodes with a DAO route.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }
    /// Root only: the (node, parent) pairs learnt from DAOs, by node address.
    pub fn routes(&self) -> impl ExactSizeIterator<Item = (u16, u16)> + '_ {
        self.routes.iter().copied()
    }
    /// Root only: the `k`-th (node, parent) pair of [`Router::routes`], without walking the ones before it.
    pub fn route_at(&self, k: usize) -> Option<(u16, u16)> {
        self.routes.get(k).copied()
    }
    /// Root only: where `node`'s pair is in `routes` (`Err`: where it would go).
    fn route_index(&self, node: u16) -> Result<usize, usize> {
        self.routes.binary_search_by_key(&node, |&(n, _)| n)
    }
    /// Root only: the parent learnt from `node`'s DAO.
    fn route_parent(&self, node: u16) -> Option<u16> {
        self.route_index(node).ok().map(|k| self.routes[k].1)
    }
    /// Commissioning: neighbour messages to `dst` go over the relays `hops` (the last one is `dst`; a route of
    /// one hop removes any relay route). Refused: an empty or too long route, one through this node, one that
    /// visits a node twice or does not end at `dst`, or more than [`MAX_PEER_ROUTES`] routes.
    pub fn set_peer_route(&mut self, dst: u16, hops: &[u16]) -> Result<(), &'static str> {
        self.check_peer_route(dst, hops)?;
        let at = self.peer_routes.binary_search_by_key(&dst, |r| r.0);
        match (at, hops.len()) {
            (Ok(k), 1) => {
                self.peer_routes.remove(k);
                if let Ok(j) = self.peer_alternates.binary_search_by_key(&dst, |r| r.0) {
                    self.peer_alternates.remove(j);
                }
            }
            (Err(_), 1) => {}
            (Ok(k), _) => self.peer_routes[k].1 = hops.to_vec(),
            (Err(k), _) => {
                if self.peer_routes.len() >= MAX_PEER_ROUTES {
                    return Err("too many peer routes");
                }
                self.peer_routes.insert(k, (dst, hops.to_vec()));
            }
        }
        Ok(())
    }

    /// Commissioning: neighbour messages to `dst`, which has a relay route, also go over `hops` (the direct
    /// link if that is `[dst]`). Refused as [`Router::set_peer_route`] refuses a route, and a route that runs
    /// through every relay of the first one (it would fail with any of them), or a destination without a relay
    /// route. Commissioning gives one through none of them where the radio graph has it; a relay both routes
    /// share forwards both copies (only the destination drops duplicates).
    pub fn set_peer_alternate(&mut self, dst: u16, hops: &[u16]) -> Result<(), &'static str> {
        self.check_peer_route(dst, hops)?;
        let first = self.peer_route(dst).ok_or("an alternate peer route needs a relay route first")?;
        let relays = &first[..first.len() - 1];
        if relays.iter().all(|r| hops[..hops.len() - 1].contains(r)) {
            return Err("an alternate peer route must avoid a relay of the first route");
        }
        match self.peer_alternates.binary_search_by_key(&dst, |r| r.0) {
            Ok(k) => self.peer_alternates[k].1 = hops.to_vec(),
            Err(k) => self.peer_alternates.insert(k, (dst, hops.to_vec())),
        }
        Ok(())
    }

    fn check_peer_route(&self, dst: u16, hops: &[u16]) -> Result<(), &'static str> {
        if hops.is_empty() || hops.len() > MAX_SOURCE_ROUTE {
            return Err("a peer route has 1 to 24 hops");
        }
        if hops.last() != Some(&dst) {
            return Err("a peer route must end at its destination");
        }
        if hops.contains(&self.addr) {
            return Err("a peer route must not pass through its origin");
        }
        if hops.iter().enumerate().any(|(k, h)| hops[..k].contains(h)) {
            return Err("a peer route must not visit a node twice");
        }
        Ok(())
    }

    /// The alternate route to the peer `dst`, if it has one.
    pub fn peer_alternate(&self, dst: u16) -> Option<&[u16]> {
        let k = self.peer_alternates.binary_search_by_key(&dst, |r| r.0).ok()?;
        Some(&self.peer_alternates[k].1)
    }

    /// The peers reached over relay routes (their addresses, ascending).
    pub fn relayed_peers(&self) -> impl Iterator<Item = u16> + '_ {
        self.peer_routes.iter().map(|r| r.0)
    }

    /// The relay route to the peer `dst`, if it has one.
    pub fn peer_route(&self, dst: u16) -> Option<&[u16]> {
        let k = self.peer_routes.binary_search_by_key(&dst, |r| r.0).ok()?;
        Some(&self.peer_routes[k].1)
    }

    /// Next payload delivered to this node's application.
    pub fn pop_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    fn rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn jitter(&mut self, span_ns: u64) -> u64 {
        if span_ns == 0 { 0 } else { self.rand() % span_ns }
    }

    fn imin_ns(&self) -> u64 {
        self.cfg.trickle_imin_ms as u64 * 1_000_000
    }
    fn trickle_interval(&mut self, now: Instant, interval_ns: u64) {
        let half = interval_ns / 2;
        let t = half + self.jitter(interval_ns - half);
        self.trickle =
            Trickle { interval_ns, t_at: now + Duration(t), end: now + Duration(interval_ns), c: 0, fired: false };
    }
    fn trickle_reset(&mut self, now: Instant) {
        self.trickle_on = true;
        if self.trickle.interval_ns != self.imin_ns() || self.trickle.end == Instant::MAX {
            self.trickle_interval(now, self.imin_ns());
        }
    }

    /// Starts the node at `now` (a root begins advertising).
    pub fn start<R: Radio>(&mut self, now: Instant, _radio: &mut R) -> Instant {
        if self.is_root {
            self.joined_at = Some(now);
            self.trickle_reset(now);
            if self.cfg.global_repair_s > 0 {
                self.repair_at = now + Duration::from_secs(self.cfg.global_repair_s as u64);
            }
        } else {
            // Join quickly if the DIO flood passes us by: solicit after a random share of the DIS interval.
            let span = self.cfg.dis_interval_ms as u64 * 1_000_000;
            self.dis_at = now + Duration(span / 2 + self.jitter(span / 2 + 1));
        }
        self.deadline()
    }

    /// The earliest time [`Router::poll`] must run.
    pub fn deadline(&self) -> Instant {
        let mut d = self.dao_at.min(self.repair_at).min(self.dis_at).min(self.dio_at);
        if self.trickle_on {
            d = d.min(if self.trickle.fired { self.trickle.end } else { self.trickle.t_at });
        }
        d
    }

    /// Root only: starts a global repair now (new DODAG version).
    pub fn global_repair<R: Radio>(&mut self, now: Instant, _radio: &mut R) -> Instant {
        if self.is_root {
            self.version = self.version.wrapping_add(1);
            self.routes.clear();
            self.trickle.interval_ns = 0;
            self.trickle_reset(now);
        }
        self.deadline()
    }

    /// Runs expired timers: Trickle DIOs, DAOs, global repair.
    pub fn poll<R: Radio>(&mut self, now: Instant, radio: &mut R) -> Instant {
        if self.trickle_on {
            if !self.trickle.fired && now >= self.trickle.t_at {
                self.trickle.fired = true;
                let advertise = self.is_root || self.parent.is_some() || self.rank == INFINITE_RANK;
                if self.trickle.c < self.cfg.trickle_k && advertise && self.root != BROADCAST {
                    self.send_dio(radio);
                }
                // A detached node poisons once, then stays quiet until it joins again.
                if !self.is_root && self.parent.is_none() {
                    self.trickle_on = false;
                }
            }
            if self.trickle_on && now >= self.trickle.end {
                let imax = self.imin_ns() << self.cfg.trickle_doublings;
                let next = (self.trickle.interval_ns * 2).min(imax);
                let at = self.trickle.end;
                self.trickle_interval(at.max(now), next);
            }
        }
        if now >= self.dio_at {
            self.dio_at = Instant::MAX;
            if self.parent.is_some() {
                self.send_dio(radio);
            }
        }
        if now >= self.dao_at {
            self.dao_at = Instant::MAX;
            if let Some(p) = self.parent {
                if self.originate_up(p, UpKind::Dao { parent: p }, &[], radio) {
                    self.stats.dao_sent += 1;
                }
                self.dao_last = now;
                let refresh = self.cfg.dao_refresh_s as u64 * 1_000_000_000;
                self.dao_at = now + Duration(refresh - refresh / 4 + self.jitter(refresh / 2 + 1));
            }
        }
        if now >= self.dis_at {
            self.dis_at = Instant::MAX;
            if !self.is_root && self.parent.is_none() {
                let token = self.token();
                let _ = radio.transmit(BROADCAST, token, &Frame::Dis.encode());
                let span = self.cfg.dis_interval_ms as u64 * 1_000_000;
                self.dis_at = now + Duration(span / 2 + self.jitter(span / 2 + 1));
            }
        }
        if now >= self.repair_at {
            self.repair_at = now + Duration::from_secs(self.cfg.global_repair_s as u64);
            self.global_repair(now, radio);
        }
        self.deadline()
    }

    fn send_dio<R: Radio>(&mut self, radio: &mut R) {
        let f = Frame::Dio { root: self.root, version: self.version, rank: self.rank }.encode();
        let token = self.token();
        if radio.transmit(BROADCAST, token, &f).is_ok() {
            self.stats.dio_sent += 1;
            if self.rank != INFINITE_RANK && self.rank < self.lowest_adv {
                self.lowest_adv = self.rank;
                self.reselect = true;
            }
        }
    }

    /// The data path met an inconsistency (a sender ranked at or below us, or a frame coming back): advertise
    /// our rank outside Trickle, at most once per `inconsistency_holdoff_s`.
    fn inconsistent(&mut self, now: Instant) {
        let hold = Duration::from_secs(self.cfg.inconsistency_holdoff_s as u64);
        if self.last_inconsistency.is_none_or(|t| now >= t + hold) {
            self.last_inconsistency = Some(now);
            self.dio_soon(now);
        }
    }

    /// Schedules a one-off DIO within the next Imin (unless one is pending already).
    fn dio_soon(&mut self, now: Instant) {
        if self.dio_at == Instant::MAX {
            let span = self.imin_ns();
            self.dio_at = now + Duration(span / 2 + self.jitter(span / 2 + 1));
        }
    }

    fn token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }
    fn next_seq(&mut self) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send_up_frame<R: Radio>(&mut self, to: u16, frame: Vec<u8>, reroutes: u8, radio: &mut R) -> bool {
        let token = self.token();
        match radio.transmit(to, token, &frame) {
            Ok(()) => {
                if self.inflight.len() >= MAX_INFLIGHT {
                    self.inflight.pop_front();
                }
                self.inflight.push_back(Inflight { token, to, up: Some(frame), reroutes });
                true
            }
            Err(_) => {
                self.stats.drop_queue += 1;
                false
            }
        }
    }

    fn send_unicast<R: Radio>(&mut self, to: u16, frame: &[u8], radio: &mut R) -> Result<(), SendError> {
        self.send_unicast_with(to, frame, TxClass::Normal, radio)
    }

    fn send_unicast_with<R: Radio>(
        &mut self,
        to: u16,
        frame: &[u8],
        class: TxClass,
        radio: &mut R,
    ) -> Result<(), SendError> {
        let token = self.token();
        match radio.transmit_class(to, token, frame, class) {
            Ok(()) => {
                if self.inflight.len() >= MAX_INFLIGHT {
                    self.inflight.pop_front();
                }
                self.inflight.push_back(Inflight { token, to, up: None, reroutes: 0 });
                Ok(())
            }
            Err(e) if e.kind() == crate::hal::ErrorKind::Invalid => Err(SendError::TooLong),
            Err(_) => {
                self.stats.drop_queue += 1;
                Err(SendError::QueueFull)
            }
        }
    }

    /// Sends an application payload towards the root. Held (bounded) while the node has no parent.
    pub fn send_up<R: Radio>(&mut self, now: Instant, payload: &[u8], radio: &mut R) -> Result<Instant, SendError> {
        if self.is_root {
            return Err(SendError::WrongRole);
        }
        if payload.len() + 11 > radio.max_frame_len() {
            return Err(SendError::TooLong);
        }
        self.stats.data_originated += 1;
        match self.parent {
            Some(p) => {
                self.originate_up(p, UpKind::Data, payload, radio);
            }
            None => {
                if self.pending.len() >= self.cfg.pending_max as usize {
                    self.pending.pop_front();
                    self.stats.drop_no_route += 1;
                }
                self.pending.push_back(payload.to_vec());
            }
        }
        Ok(self.deadline_after(now))
    }

    fn deadline_after(&self, _now: Instant) -> Instant {
        self.deadline()
    }

    /// Root only: source-routes `payload` down to `dst` along the parents learnt from DAOs.
    pub fn send_down<R: Radio>(
        &mut self,
        now: Instant,
        dst: u16,
        payload: &[u8],
        radio: &mut R,
    ) -> Result<Instant, SendError> {
        if !self.is_root {
            return Err(SendError::WrongRole);
        }
        let mut path: Vec<u16> = Vec::with_capacity(8);
        let mut cur = dst;
        loop {
            if path.len() >= MAX_SOURCE_ROUTE || path.contains(&cur) {
                return Err(SendError::NoRoute);
            }
            path.push(cur);
            match self.route_parent(cur) {
                Some(p) if p == self.addr => break,
                Some(p) => cur = p,
                None => return Err(SendError::NoRoute),
            }
        }
        path.reverse();
        if payload.len() + 9 + 2 * path.len() > radio.max_frame_len() {
            return Err(SendError::TooLong);
        }
        let rb = route_bytes(&path);
        let hops = route_from_bytes(&rb).ok_or(SendError::NoRoute)?;
        let seq = self.next_seq();
        let f = Frame::Down { origin: self.addr, dst, seq, next: 0, hops, payload }.encode();
        self.send_unicast(path[0], &f, radio)?;
        Ok(self.deadline_after(now))
    }

    /// Sends `payload` to the neighbour `dst` in traffic class `class`: one hop, or over its relay route if
    /// commissioning set one (relays forward it as [`TxClass::Protection`]: the route carries no class).
    pub fn send_neighbor<R: Radio>(
        &mut self,
        now: Instant,
        dst: u16,
        payload: &[u8],
        class: TxClass,
        radio: &mut R,
    ) -> Result<Instant, SendError> {
        if let Ok(k) = self.peer_routes.binary_search_by_key(&dst, |r| r.0) {
            let rb = route_bytes(&self.peer_routes[k].1);
            if payload.len() + 9 + rb.len() > radio.max_frame_len() {
                return Err(SendError::TooLong);
            }
            let hops = route_from_bytes(&rb).ok_or(SendError::NoRoute)?;
            let first = self.peer_routes[k].1[0];
            let seq = self.next_seq();
            let f = Frame::Peer { origin: self.addr, dst, seq, next: 0, hops, payload }.encode();
            self.send_unicast_with(first, &f, class, radio)?;
            self.stats.peer_routed += 1;
            // The same frame (same sequence number) over the alternate route, if any: the destination keeps
            // whichever copy comes first.
            if let Ok(j) = self.peer_alternates.binary_search_by_key(&dst, |r| r.0) {
                let rb = route_bytes(&self.peer_alternates[j].1);
                if let Some(hops) = route_from_bytes(&rb)
                    && payload.len() + 9 + rb.len() <= radio.max_frame_len()
                {
                    let first = self.peer_alternates[j].1[0];
                    let f = Frame::Peer { origin: self.addr, dst, seq, next: 0, hops, payload }.encode();
                    if self.send_unicast_with(first, &f, class, radio).is_ok() {
                        self.stats.peer_duplicated += 1;
                    }
                }
            }
            return Ok(self.deadline_after(now));
        }
        if payload.len() + 5 > radio.max_frame_len() {
            return Err(SendError::TooLong);
        }
        let seq = self.next_seq();
        let f = Frame::Nbr { src: self.addr, seq, payload }.encode();
        // Neighbour frames carry protection messages, whose deadlines are tens of milliseconds: their class
        // puts them ahead of queued readings and routing frames.
        self.send_unicast_with(dst, &f, class, radio)?;
        Ok(self.deadline_after(now))
    }

    fn initial_etx(&self, rssi_dbm: i16) -> u16 {
        let margin = rssi_dbm as i32 - self.cfg.sensitivity_dbm as i32;
        // Seeds the estimate before any acknowledgement statistics exist: strong links start near ETX 1,
        // links close to sensitivity start pessimistic so they are used only when nothing better exists.
        match margin {
            m if m >= 20 => ETX_ONE,
            m if m >= 14 => ETX_ONE + ETX_ONE / 4,
            m if m >= 10 => 2 * ETX_ONE,
            m if m >= 6 => 4 * ETX_ONE,
            _ => 8 * ETX_ONE,
        }
    }

    fn deliver(&mut self, d: Delivery) {
        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(d);
    }

    /// Handles a frame received from link neighbour `src` with signal strength `rssi_dbm`.
    pub fn on_frame<R: Radio>(
        &mut self,
        now: Instant,
        src: LinkAddr,
        rssi_dbm: i16,
        bytes: &[u8],
        radio: &mut R,
    ) -> Instant {
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                self.stats.bad_frames += 1;
                return self.deadline();
            }
        };
        match frame {
            Frame::Dio { root, version, rank } => {
                self.on_dio(now, src, rssi_dbm, root, version, rank, radio);
            }
            Frame::Up { kind, origin, root, seq, hop_limit, sender_rank, rank_error, payload } => {
                if let Some(i) = self.nbr_index(src) {
                    let n = &mut self.nbrs[i];
                    n.child_until = now + Duration::from_secs(self.cfg.child_hold_s as u64);
                    self.reselect = true;
                }
                if self.is_root {
                    match kind {
                        UpKind::Data => {
                            let hops = self.cfg.hop_limit.saturating_sub(hop_limit).saturating_add(1);
                            self.deliver(Delivery {
                                kind: DeliveryKind::Up,
                                origin,
                                seq,
                                hops,
                                payload: payload.to_vec(),
                            });
                        }
                        UpKind::Dao { parent } => match self.route_index(origin) {
                            Ok(k) => self.routes[k].1 = parent,
                            Err(k) if self.routes.len() < u16::MAX as usize => self.routes.insert(k, (origin, parent)),
                            Err(_) => {}
                        },
                    }
                    return self.deadline();
                }
                // Data-path validation (RFC 6550 11.2.2.2, RFC 6553): upward traffic must come from a node ranked
                // above us. A sender ranked at or below our current rank took its rank from an advertisement of
                // ours that is out of date (our rank rose since), or routes through us in a loop; either way the
                // cure is to advertise our rank now, outside Trickle, so the sender and everything below it
                // re-rank (around a loop the ranks count up until the parent bound in `usable` breaks it). A
                // first inconsistency may still be that stale view: flag the frame and forward it. A second one
                // on the same frame means a loop: drop it.
                let mut rank_error = rank_error;
                let inconsistent = if Some(src) == self.parent {
                    // Our parent routes through us: a two-node loop. Leave that parent, re-advertise, and let
                    // the frame take the new parent (flagged) unless it had already met an inconsistency.
                    self.drop_neighbor(src);
                    self.choose_parent(now);
                    self.trickle.interval_ns = 0;
                    self.trickle_reset(now);
                    true
                } else if sender_rank <= self.rank {
                    self.inconsistent(now);
                    true
                } else {
                    false
                };
                if inconsistent {
                    if rank_error {
                        self.stats.loops_detected += 1;
                        return self.deadline();
                    }
                    self.stats.rank_errors += 1;
                    rank_error = true;
                }
                if let Some(k) = self.recent_fwd.iter().position(|e| e.0 == origin && e.1 == seq) {
                    if hop_limit >= self.recent_fwd[k].2 {
                        // A second copy (a frame rerouted after a lost acknowledgement): already forwarded.
                        return self.deadline();
                    }
                    // A frame we forwarded came back: a loop (our parent's path runs through us). Drop it
                    // instead of letting it circle until its hop limit, and advertise our rank so the ranks
                    // around the loop count up until it breaks.
                    self.stats.loops_detected += 1;
                    self.inconsistent(now);
                    return self.deadline();
                }
                if hop_limit <= 1 {
                    self.stats.drop_hop_limit += 1;
                    return self.deadline();
                }
                let slot = self.recent_fwd_i as usize % RECENT_FWD;
                self.recent_fwd[slot] = (origin, seq, hop_limit);
                self.recent_fwd_i = self.recent_fwd_i.wrapping_add(1);
                let Some(p) = self.parent else {
                    self.stats.drop_no_route += 1;
                    return self.deadline();
                };
                let f = Frame::Up {
                    kind,
                    origin,
                    root,
                    seq,
                    hop_limit: hop_limit - 1,
                    sender_rank: self.rank,
                    rank_error,
                    payload,
                }
                .encode();
                if self.send_up_frame(p, f, 0, radio) {
                    self.stats.forwarded += 1;
                }
            }
            Frame::Down { .. } | Frame::Peer { .. } => self.on_source_routed(frame, radio),
            Frame::Dis => {
                if self.is_root || self.parent.is_some() {
                    self.trickle.interval_ns = 0;
                    self.trickle_reset(now);
                }
            }
            Frame::Nbr { src: origin, seq, payload } => {
                self.deliver(Delivery { kind: DeliveryKind::Neighbor, origin, seq, hops: 1, payload: payload.to_vec() })
            }
        }
        self.deadline()
    }

    /// A source-routed frame: DOWN from the root, or PEER between FLISR peers (delivered as a neighbour
    /// message, relayed as urgent). Delivered here if this node is the destination, else passed to the next
    /// hop of the route; ignored if the route does not name this node next.
    fn on_source_routed<R: Radio>(&mut self, frame: Frame<'_>, radio: &mut R) {
        let (peer, origin, dst, seq, next, hops, payload) = match frame {
            Frame::Down { origin, dst, seq, next, hops, payload } => (false, origin, dst, seq, next, hops, payload),
            Frame::Peer { origin, dst, seq, next, hops, payload } => (true, origin, dst, seq, next, hops, payload),
            _ => return,
        };
        if hops.get(next as usize) != Some(self.addr) {
            return;
        }
        if dst == self.addr {
            if peer && !self.first_peer_copy(origin, seq) {
                self.stats.peer_duplicates_dropped += 1;
                return;
            }
            let kind = if peer { DeliveryKind::Neighbor } else { DeliveryKind::Down };
            self.deliver(Delivery { kind, origin, seq, hops: next + 1, payload: payload.to_vec() });
        } else if let Some(nh) = hops.get(next as usize + 1) {
            let next = next + 1;
            let f = if peer {
                Frame::Peer { origin, dst, seq, next, hops, payload }
            } else {
                Frame::Down { origin, dst, seq, next, hops, payload }
            }
            .encode();
            // Protection traffic keeps its priority at every relay.
            let class = if peer { TxClass::Protection } else { TxClass::Normal };
            if self.send_unicast_with(nh, &f, class, radio).is_ok() {
                self.stats.forwarded += 1;
                self.stats.peer_relayed += u32::from(peer);
            }
        }
    }

    /// Whether the PEER frame (origin, seq) is new here (and remembers it): its copy over the other route
    /// came first otherwise.
    fn first_peer_copy(&mut self, origin: u16, seq: u16) -> bool {
        let n = self.recent_peer_len as usize;
        if self.recent_peer[..n].contains(&(origin, seq)) {
            return false;
        }
        self.recent_peer[self.recent_peer_at as usize] = (origin, seq);
        self.recent_peer_at = ((self.recent_peer_at as usize + 1) % RECENT_PEER) as u8;
        self.recent_peer_len = (n + 1).min(RECENT_PEER) as u8;
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_dio<R: Radio>(
        &mut self,
        now: Instant,
        src: u16,
        rssi_dbm: i16,
        root: u16,
        version: u8,
        rank: u16,
        radio: &mut R,
    ) -> Instant {
        if self.is_root {
            if root == self.root && version == self.version && rank != INFINITE_RANK {
                self.trickle.c = self.trickle.c.saturating_add(1);
            }
            return self.deadline();
        }
        // A newer version of another DODAG: its neighbours still on the old one are no longer candidates.
        if self.note_version(root, version) && root != self.root {
            self.reselect = true;
        }
        // Global repair: a newer version of our own DODAG invalidates every parent choice made under the old one.
        if root == self.root && newer(version, self.version) {
            self.version = version;
            for n in self.nbrs.iter_mut().filter(|n| n.root == root) {
                n.rank = INFINITE_RANK;
            }
            self.worst_ok = false;
            self.parent = None;
            self.rank = INFINITE_RANK;
            self.lowest_adv = INFINITE_RANK;
            self.trickle.interval_ns = 0;
            self.reselect = true;
        }
        let etx0 = self.initial_etx(rssi_dbm);
        // Find the sender by address (a tight scan: every DIO is heard by every neighbour, so this runs once per
        // reception); only when it is unknown and the table is full, look for the worst non-parent entry (by
        // cost, then address) it might replace.
        let found = self.nbr_index(src);
        let worst = if found.is_none() && self.nbrs.len() >= self.cfg.neighbors_max as usize {
            self.worst_neighbor()
        } else {
            None
        };
        match found {
            Some(i) => {
                let n = &mut self.nbrs[i];
                if (n.root, n.version, n.rank) != (root, version, rank) {
                    n.root = root;
                    n.version = version;
                    n.rank = rank;
                    self.reselect = true;
                    self.worst_ok = false;
                }
                // Hearing a DIO proves the link works again: pull an estimate that failures pushed past the
                // usable limit halfway back to the signal-strength guess, so a lone parent is not lost forever.
                if n.link_etx > self.cfg.max_link_etx {
                    n.link_etx = ((n.link_etx as u32 + etx0 as u32) / 2) as u16;
                    n.fail_streak = 0;
                    self.reselect = true;
                    self.worst_ok = false;
                }
            }
            None => {
                let n =
                    Nbr { addr: src, root, version, rank, link_etx: etx0, fail_streak: 0, child_until: Instant::ZERO };
                if self.nbrs.len() < self.cfg.neighbors_max as usize {
                    self.nbrs.push(n);
                    self.reselect = true;
                    self.neighbors_changed();
                } else if let Some((key, i)) = worst
                    && (rank as u64 + etx0 as u64) < key >> 16
                {
                    // Replace the worst non-parent entry: the newcomer is better.
                    self.nbrs[i] = n;
                    self.reselect = true;
                    self.neighbors_changed();
                }
            }
        }
        if rank != INFINITE_RANK && root == self.root && version == self.version {
            self.trickle.c = self.trickle.c.saturating_add(1);
        }
        // Most DIOs in a dense neighbourhood repeat what we knew: parent choice runs only when one of its
        // inputs changed (the result is then provably the same, which debug builds check).
        if self.reselect || now >= self.hold_expiry {
            self.choose_parent(now);
        } else {
            debug_assert_eq!(
                self.selection(now).map(|c| (c.0, c.1.min(INFINITE_RANK as u32 - 1) as u16)),
                self.parent.map(|p| (p, self.rank)),
                "parent choice skipped although its inputs changed"
            );
        }
        self.flush_pending(radio);
        self.deadline()
    }

    fn drop_neighbor(&mut self, addr: u16) {
        self.nbrs.retain(|n| n.addr != addr);
        self.reselect = true;
        self.neighbors_changed();
    }

    /// Whether `addr` may be in the neighbour table (false: surely not).
    #[inline]
    fn maybe_neighbor(&self, addr: u16) -> bool {
        let b = addr as usize & 0xFF;
        self.nbr_filter[b >> 6] >> (b & 63) & 1 != 0
    }

    /// Reads one word from each cache line of the state a frame reception touches first (the hot head of
    /// the layout above, and the neighbour address list) and folds them into a value of no meaning. A host
    /// that delivers one broadcast to many routers calls it for all of them first: the loads are independent,
    /// so the memory system fetches those lines together instead of one miss after another.
    #[inline]
    pub fn touch_hot(&self) -> u64 {
        let mut h = self.nbr_filter[0] ^ self.dio_at.0 ^ self.trickle.end.0;
        h ^= (self.pending.len() as u64) << 8 ^ (self.deliveries.len() as u64) << 16;
        h ^= self.is_root as u64 ^ self.cfg.neighbors_max as u64;
        h ^ self.nbr_addrs.first().copied().unwrap_or(0) as u64
    }

    /// [`Router::touch_hot`] and the part of the neighbour table a DIO from `src` will read: its entry when it
    /// is in the table, or every line of the table when it is not, the table is full and the worst entry must
    /// be found again (see `worst_neighbor`). For the receivers of a broadcast from `src`.
    #[inline]
    pub fn touch_hot_from(&self, src: u16) -> u64 {
        let h = self.touch_hot();
        match self.nbr_index(src) {
            Some(k) => h ^ self.nbrs.get(k).map_or(0, |n| n.rank as u64),
            None if !self.worst_ok && self.nbrs.len() >= self.cfg.neighbors_max as usize => {
                // One entry per cache line (four entries of 16 bytes share one).
                h ^ self.nbrs.iter().step_by(4).fold(0, |a, n| a ^ n.rank as u64)
            }
            None => h,
        }
    }

    /// [`Router::touch_hot`] and, beyond it, a word of each line a unicast reception touches further on when the
    /// frame is to be relayed or answered: the loop check's recent frames, the token counter, the in-flight
    /// list's newest entry (a new one goes beside it), the neighbour table (the parent's link) and the
    /// counters. A host calls it for a frame's receiver before it weighs the frame, so these misses overlap that
    /// arithmetic instead of following one another during the delivery.
    #[inline]
    pub fn touch_relay(&self) -> u64 {
        let mut h = self.touch_hot() ^ self.recent_fwd[0].0 as u64 ^ self.next_token as u64;
        h ^= self.inflight.back().map_or(0, |f| f.token as u64) << 24 ^ self.stats.forwarded as u64;
        h ^ self.nbrs.first().map_or(0, |n| n.link_etx as u64)
    }

    /// The index of `addr` in the neighbour table: the filter answers most misses, the address list the rest.
    #[inline]
    fn nbr_index(&self, addr: u16) -> Option<usize> {
        debug_assert!(self.nbr_addrs.iter().copied().eq(self.nbrs.iter().map(|n| n.addr)), "address list stale");
        let found = if self.maybe_neighbor(addr) { self.nbr_addrs.iter().position(|&a| a == addr) } else { None };
        debug_assert!(found.is_some() || self.nbrs.iter().all(|m| m.addr != addr), "filter missed {addr}");
        found
    }

    /// After the table's addresses changed: rebuilds the address filter and list and forgets the worst entry.
    fn neighbors_changed(&mut self) {
        self.nbr_addrs.clear();
        self.nbr_addrs.extend(self.nbrs.iter().map(|n| n.addr));
        self.nbr_filter = [0; 4];
        for n in &self.nbrs {
            let b = n.addr as usize & 0xFF;
            self.nbr_filter[b >> 6] |= 1 << (b & 63);
        }
        self.worst_ok = false;
    }

    /// The non-parent entry with the highest (rank + link ETX, then address): the one a newcomer replaces
    /// when the table is full, with that key. Kept between changes of the table or the parent, so that the
    /// DIOs of the many nodes heard but not kept cost no scan of the table.
    fn worst_neighbor(&mut self) -> Option<(u64, usize)> {
        let scan = |r: &Router| {
            let mut worst: Option<(u64, usize)> = None;
            for (i, m) in r.nbrs.iter().enumerate() {
                if Some(m.addr) != r.parent {
                    let key = ((m.rank as u64 + m.link_etx as u64) << 16) | m.addr as u64;
                    if worst.is_none_or(|w| key > w.0) {
                        worst = Some((key, i));
                    }
                }
            }
            worst
        };
        if !self.worst_ok {
            self.worst_nbr = scan(self);
            self.worst_ok = true;
        }
        debug_assert_eq!(self.worst_nbr, scan(self), "stale worst neighbour");
        self.worst_nbr
    }

    /// The newest version heard of DODAG `root`, if it is remembered.
    ///
    /// A neighbour is a candidate parent only on the newest version of its own DODAG (RFC 6550 8.2.2.2: a
    /// node does not go back to an older version), whichever DODAG this node is in. Judged against our own
    /// DODAG's version instead, joining another DODAG would make the first one's stale neighbours candidates
    /// again, and parent choice would change its own inputs: run twice, it could choose twice.
    fn newest_version(&self, root: u16) -> Option<u8> {
        self.dodags[..self.dodags_len as usize].iter().find(|d| d.0 == root).map(|d| d.1)
    }

    /// Notes that DODAG `root` has version `version`; whether candidates may have changed: the version is newer
    /// than the newest remembered, or the DODAG was not remembered.
    fn note_version(&mut self, root: u16, version: u8) -> bool {
        let len = self.dodags_len as usize;
        if let Some(d) = self.dodags[..len].iter_mut().find(|d| d.0 == root) {
            let raised = newer(version, d.1);
            if raised {
                d.1 = version;
            }
            return raised;
        }
        if len < MAX_DODAGS {
            self.dodags[len] = (root, version);
            self.dodags_len += 1;
        } else {
            // Full: replace in turn, never our own DODAG's entry (two in a row cannot both be it).
            let mut k = self.dodags_next as usize % MAX_DODAGS;
            if self.dodags[k].0 == self.root {
                k = (k + 1) % MAX_DODAGS;
            }
            self.dodags[k] = (root, version);
            self.dodags_next = ((k + 1) % MAX_DODAGS) as u8;
        }
        true
    }

    fn usable(&self, n: &Nbr, now: Instant) -> bool {
        // Loop avoidance (RFC 6550 8.2.2.4): every descendant of ours took its rank from one of our DIOs plus
        // at least one ETX per hop, so it is ranked at least `lowest_adv + ETX_ONE`; a candidate ranked below
        // that is never one of them, however our own rank has drifted since. A node that never advertised
        // (or poisoned its rank since) has no descendants. The current parent stays acceptable while it keeps
        // our rank within `max_rank_increase` of the lowest we advertised: a parent whose rank keeps climbing
        // is usually counting up around a loop through us, and keeping it would keep the loop.
        let below = self.lowest_adv == INFINITE_RANK
            || (n.rank as u32) < self.lowest_adv as u32 + ETX_ONE as u32
            || (Some(n.addr) == self.parent
                && (n.rank as u32 + n.link_etx as u32) <= self.lowest_adv as u32 + self.cfg.max_rank_increase as u32);
        below
            && n.rank != INFINITE_RANK
            && n.link_etx <= self.cfg.max_link_etx
            && n.child_until <= now
            && self.newest_version(n.root).is_none_or(|v| v == n.version)
            && (n.rank as u32 + n.link_etx as u32) < INFINITE_RANK as u32
    }

    /// The best usable neighbour other than `exclude` ranked below us (an alternate parent for one frame).
    fn backup_parent(&self, exclude: u16, now: Instant) -> Option<u16> {
        self.nbrs
            .iter()
            .filter(|n| n.addr != exclude && n.rank < self.rank && self.usable(n, now))
            .min_by_key(|n| (n.rank as u32 + n.link_etx as u32, n.addr))
            .map(|n| n.addr)
    }

    /// The parent MRHOF with hysteresis would choose now: (address, our rank through it, root, version).
    fn selection(&self, now: Instant) -> Option<(u16, u32, u16, u8)> {
        let best = self
            .nbrs
            .iter()
            .filter(|n| self.usable(n, now))
            .min_by_key(|n| (n.rank as u32 + n.link_etx as u32, n.addr))
            .map(|n| (n.addr, n.rank as u32 + n.link_etx as u32, n.root, n.version));
        let current = self
            .parent
            .and_then(|p| self.nbr_index(p).map(|i| &self.nbrs[i]))
            .filter(|n| self.usable(n, now))
            .map(|n| (n.addr, n.rank as u32 + n.link_etx as u32, n.root, n.version));
        match (current, best) {
            (Some(c), Some(b)) if c.1 <= b.1 + self.cfg.parent_switch_threshold as u32 => Some(c),
            (_, b) => b,
        }
    }

    /// MRHOF parent selection with hysteresis; handles joining and detaching.
    fn choose_parent(&mut self, now: Instant) {
        let chosen = self.selection(now);
        self.reselect = false;
        self.hold_expiry = self.nbrs.iter().map(|n| n.child_until).filter(|&t| t > now).min().unwrap_or(Instant::MAX);
        match chosen {
            Some((addr, cost, root, version)) => {
                let was_detached = self.parent.is_none();
                let switched = !was_detached && self.parent != Some(addr);
                if self.parent != Some(addr) {
                    if !was_detached {
                        self.stats.parent_changes += 1;
                    }
                    self.parent = Some(addr);
                    self.worst_ok = false;
                    let d = self.cfg.dao_delay_ms as u64 * 1_000_000;
                    // One DAO per parent-change burst, and no more often than every four DAO delays.
                    let earliest = self.dao_last.saturating_add(Duration(4 * d));
                    self.dao_at = self.dao_at.min((now + Duration(d + self.jitter(d + 1))).max(earliest));
                }
                self.root = root;
                self.version = version;
                self.note_version(root, version);
                self.rank = cost.min(INFINITE_RANK as u32 - 1) as u16;
                if was_detached {
                    self.dis_at = Instant::MAX;
                    if self.joined_at.is_none() {
                        self.joined_at = Some(now);
                    }
                    self.trickle.interval_ns = 0;
                    self.trickle_reset(now);
                } else if switched {
                    // A new parent is a DODAG change worth advertising soon (Trickle, so redundant DIOs are
                    // suppressed in a dense neighbourhood).
                    self.trickle.interval_ns = 0;
                    self.trickle_reset(now);
                }
            }
            None => {
                if self.parent.is_some() {
                    self.parent = None;
                    self.worst_ok = false;
                    self.rank = INFINITE_RANK;
                    self.lowest_adv = INFINITE_RANK;
                    // Without the bound every neighbour is a candidate again.
                    self.reselect = true;
                    self.stats.detaches += 1;
                    self.dao_at = Instant::MAX;
                    self.dis_at = now + Duration(self.jitter(1_000_000_000));
                    self.trickle.interval_ns = 0;
                    self.trickle_reset(now);
                }
            }
        }
    }

    /// Flushes application frames held while detached (called after joining).
    fn flush_pending<R: Radio>(&mut self, radio: &mut R) {
        // The parent first: without one, the held payloads stay held (a pattern over both would take one off
        // the hold and drop it on every call made before the node joins).
        while let Some(p) = self.parent
            && let Some(payload) = self.pending.pop_front()
        {
            self.originate_up(p, UpKind::Data, &payload, radio);
        }
    }

    /// Frames this node's own upward message (data or DAO) with a fresh sequence number and queues it to parent
    /// `p`; whether it was queued.
    fn originate_up<R: Radio>(&mut self, p: u16, kind: UpKind, payload: &[u8], radio: &mut R) -> bool {
        let seq = self.next_seq();
        let f = Frame::Up {
            kind,
            origin: self.addr,
            root: self.root,
            seq,
            hop_limit: self.cfg.hop_limit,
            sender_rank: self.rank,
            rank_error: false,
            payload,
        }
        .encode();
        self.send_up_frame(p, f, 0, radio)
    }

    /// Handles the MAC's outcome for the frame queued with `token`.
    pub fn on_tx_done<R: Radio>(&mut self, now: Instant, token: u32, status: TxStatus, radio: &mut R) -> Instant {
        let Some(pos) = self.inflight.iter().position(|f| f.token == token) else {
            self.flush_pending(radio);
            return self.deadline();
        };
        let Some(inf) = self.inflight.remove(pos) else { return self.deadline() };
        let mut dropped_parent = false;
        if let Some(n) = self.nbr_index(inf.to).map(|i| &mut self.nbrs[i]) {
            let sample = match status {
                TxStatus::Acked { attempts } => Some(attempts as u16 * ETX_ONE),
                TxStatus::NoAck { attempts } => {
                    Some((attempts.max(1) as u32 * self.cfg.noack_etx_per_attempt as u32).min(u16::MAX as u32) as u16)
                }
                _ => None,
            };
            if let Some(s) = sample {
                // EWMA with weight 0.8 on the history: one lost frame moves the estimate by about 2 ETX, enough
                // to notice a dying link without making every collision a reason to change parent.
                let etx = ((4 * n.link_etx as u32 + s as u32) / 5) as u16;
                if etx != n.link_etx {
                    n.link_etx = etx;
                    self.reselect = true;
                    self.worst_ok = false;
                }
            }
            match status {
                TxStatus::Acked { .. } => n.fail_streak = 0,
                TxStatus::NoAck { .. } => n.fail_streak = n.fail_streak.saturating_add(1),
                _ => {}
            }
            if n.fail_streak >= self.cfg.max_fail_streak && Some(inf.to) == self.parent {
                let has_other = self.nbrs.iter().any(|m| m.addr != inf.to && self.usable(m, now));
                if has_other {
                    self.stats.local_repairs += 1;
                    self.drop_neighbor(inf.to);
                    dropped_parent = true;
                }
            }
        }
        if dropped_parent || matches!(status, TxStatus::NoAck { .. }) {
            self.choose_parent(now);
        }
        let busy = matches!(status, TxStatus::ChannelBusy { .. });
        if let (TxStatus::NoAck { .. } | TxStatus::ChannelBusy { .. }, Some(mut frame)) = (status, inf.up) {
            let next = if inf.reroutes >= self.cfg.max_reroutes {
                None
            } else if busy {
                // A busy channel says nothing about the link: try the (possibly new) parent again.
                self.parent
            } else {
                // The MAC gave up on the link: the frame takes the new parent if there is one, else the
                // next-best parent (bounded by `max_reroutes`), never the link that just failed.
                match self.parent {
                    Some(p) if p != inf.to => Some(p),
                    _ => self.backup_parent(inf.to, now),
                }
            };
            match next {
                Some(p) => {
                    // The frame leaves with our rank as its sender rank.
                    set_up_sender_rank(&mut frame, self.rank);
                    if p != inf.to {
                        self.stats.reroutes += 1;
                    }
                    self.send_up_frame(p, frame, inf.reroutes + 1, radio);
                }
                None => self.stats.drop_link += 1,
            }
        }
        self.flush_pending(radio);
        self.deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::{ErrorKind, ErrorType};
    use alloc::vec;

    #[derive(Default)]
    struct Air {
        sent: Vec<(u16, u32, Vec<u8>)>,
        full: bool,
    }
    impl ErrorType for Air {
        type Error = ErrorKind;
    }
    impl Radio for Air {
        fn transmit(&mut self, dst: u16, token: u32, frame: &[u8]) -> Result<(), ErrorKind> {
            if self.full {
                return Err(ErrorKind::WouldBlock);
            }
            self.sent.push((dst, token, frame.to_vec()));
            Ok(())
        }
        fn max_frame_len(&self) -> usize {
            100
        }
    }

    fn dio(root: u16, version: u8, rank: u16) -> Vec<u8> {
        Frame::Dio { root, version, rank }.encode()
    }

    /// An upward data frame from origin 9 as a child would forward it.
    fn up_data(seq: u16, sender_rank: u16, rank_error: bool) -> Vec<u8> {
        Frame::Up { kind: UpKind::Data, origin: 9, root: 1, seq, hop_limit: 30, sender_rank, rank_error, payload: b"r" }
            .encode()
    }

    /// Node 5, joined under parent 2 (rank 2 ETX, so ours is 3 ETX), polled until it has sent `dios` DIOs
    /// (children may have taken its rank); returns the node and the time reached.
    fn advertised_node(air: &mut Air, dios: u32) -> (Router, Instant) {
        let mut n = Router::new(5, false, RouterConfig::default(), 9);
        n.on_frame(Instant(0), 2, -60, &dio(1, 0, 2 * ETX_ONE), air);
        assert_eq!(n.rank(), 3 * ETX_ONE);
        let mut t = n.deadline();
        while n.stats().dio_sent < dios {
            t = n.poll(t, air);
        }
        (n, t)
    }

    /// A node that moved to another DODAG because its own started a new version does not go back to the old
    /// version of its first DODAG when a neighbour still on it advertises again (RFC 6550 8.2.2.2).
    #[test]
    fn a_node_that_left_for_another_dodag_does_not_return_to_an_old_version() {
        let mut air = Air::default();
        let mut n = Router::new(50, false, RouterConfig::default(), 3);
        n.on_frame(Instant(0), 10, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        n.on_frame(Instant(1), 20, -60, &dio(2, 0, 4 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(10), 1, 0));
        // DODAG 1 starts version 1; the first to say so has no route in it yet, and 10 has not heard it.
        n.on_frame(Instant(2), 11, -60, &dio(1, 1, INFINITE_RANK), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(20), 2, 0));
        // 10 advertises its old version again: no longer a candidate, though it is far better than 20.
        n.on_frame(Instant(3), 10, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(20), 2, 0));
        // Once on the new version it is.
        n.on_frame(Instant(4), 10, -60, &dio(1, 1, 2 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(10), 1, 1));
    }

    /// The DODAGs whose newest version a node remembers are bounded: beyond `MAX_DODAGS` the oldest noted give
    /// way in turn, never the node's own, whose newest version stays the one it is in.
    #[test]
    fn the_remembered_dodags_are_bounded_and_keep_our_own() {
        let mut air = Air::default();
        let mut n = Router::new(50, false, RouterConfig::default(), 3);
        n.on_frame(Instant(0), 10, -60, &dio(1, 4, 2 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(10), 1, 4));
        for k in 0..3 * MAX_DODAGS as u16 {
            n.on_frame(Instant(1 + k as u64), 100 + k, -90, &dio(2 + k, 0, 9 * ETX_ONE), &mut air);
            assert!(n.dodags_len as usize <= MAX_DODAGS);
            assert_eq!(n.newest_version(1), Some(4), "after root {}", 2 + k);
            assert_eq!(n.newest_version(2 + k), Some(0));
        }
        assert_eq!(n.dodags_len as usize, MAX_DODAGS);
        assert_eq!((n.parent(), n.dodag_root(), n.version()), (Some(10), 1, 4));
        // A root given way is noted again when heard, and a newer version of ours still repairs.
        assert_eq!(n.newest_version(2), None);
        n.on_frame(Instant(100), 11, -60, &dio(1, 5, 2 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.dodag_root(), n.version(), n.newest_version(1)), (Some(11), 1, 5, Some(5)));
    }

    /// Parent choice never changes its own inputs: wherever a DIO leaves it skipped (`on_dio` asserts in debug
    /// builds that running it would change nothing), running it gives the current parent and rank. Random
    /// streams of DIOs from two DODAGs that both start new versions, heard early and late, with poison,
    /// upward frames from children and the node's own timers.
    #[test]
    fn parent_choice_is_settled_across_dodags_and_versions() {
        let cfg = RouterConfig { neighbors_max: 6, child_hold_s: 20, ..RouterConfig::default() };
        for seed in 1..=40u64 {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut rnd = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let mut n = Router::new(50, false, cfg.clone(), seed);
            let mut air = Air::default();
            let mut ranks = [0u16; 32];
            for r in ranks.iter_mut() {
                *r = ETX_ONE + rnd(12 * ETX_ONE as u64) as u16;
            }
            let mut t = 0u64;
            for _ in 0..4000 {
                t += rnd(400_000_000);
                let now = Instant(t);
                if !n.reselect && now < n.hold_expiry {
                    let settled = n.selection(now).map(|c| (c.0, c.1.min(INFINITE_RANK as u32 - 1) as u16));
                    assert_eq!(settled, n.parent.map(|p| (p, n.rank)), "seed {seed} at {t}");
                }
                if now >= n.deadline() {
                    n.poll(now, &mut air);
                    continue;
                }
                let src = 1 + rnd(30) as u16;
                let rssi = -100 + rnd(70) as i16;
                if rnd(10) == 0 {
                    let f = Frame::Up {
                        kind: UpKind::Data,
                        origin: 100 + src,
                        root: 1,
                        seq: rnd(1000) as u16,
                        hop_limit: 30,
                        sender_rank: 40 * ETX_ONE,
                        rank_error: false,
                        payload: b"r",
                    }
                    .encode();
                    n.on_frame(now, src, rssi, &f, &mut air);
                    continue;
                }
                if rnd(50) == 0 {
                    ranks[src as usize] = ETX_ONE + rnd(12 * ETX_ONE as u64) as u16;
                }
                // Nodes 1-10 are in DODAG 2, the rest in DODAG 1; each DODAG moves to a new version every 100 s
                // (DODAG 2 half a period later), and a DIO now and then still carries the version before.
                let root = if src <= 10 { 2 } else { 1 };
                let period = (t + if root == 2 { 50_000_000_000 } else { 0 }) / 100_000_000_000;
                let version = (period as u8).wrapping_sub((rnd(8) == 0) as u8);
                let rank = if rnd(30) == 0 { INFINITE_RANK } else { ranks[src as usize] };
                n.on_frame(now, src, rssi, &dio(root, version, rank), &mut air);
            }
            assert!(n.stats().parent_changes > 5, "seed {seed}: {:?}", n.stats());
        }
    }

    #[test]
    fn a_peer_out_of_range_is_reached_over_its_relay_route_and_bad_routes_are_refused() {
        let cfg = RouterConfig::default();
        let (mut a, mut b, mut c) = (
            Router::new(1, false, cfg.clone(), 1),
            Router::new(2, false, cfg.clone(), 2),
            Router::new(3, false, cfg, 3),
        );
        assert_eq!(a.set_peer_route(3, &[]), Err("a peer route has 1 to 24 hops"));
        assert_eq!(a.set_peer_route(3, &[2, 4]), Err("a peer route must end at its destination"));
        assert_eq!(a.set_peer_route(3, &[1, 3]), Err("a peer route must not pass through its origin"));
        assert_eq!(a.set_peer_route(3, &[2, 2, 3]), Err("a peer route must not visit a node twice"));
        assert_eq!(a.set_peer_route(3, &[2, 3]), Ok(()));
        assert_eq!(a.peer_route(3), Some(&[2u16, 3][..]));
        let mut air = Air::default();
        a.send_neighbor(Instant(0), 3, b"open", TxClass::Protection, &mut air).unwrap();
        let (to, _, f) = air.sent.pop().unwrap();
        assert_eq!(to, 2);
        // The relay forwards it to the destination, which takes it as a neighbour message of two hops.
        b.on_frame(Instant(1), 1, -70, &f, &mut air);
        let (to, _, f) = air.sent.pop().unwrap();
        assert_eq!((to, b.stats().peer_relayed), (3, 1));
        assert!(b.pop_delivery().is_none());
        c.on_frame(Instant(2), 2, -70, &f, &mut air);
        let d = c.pop_delivery().unwrap();
        assert_eq!((d.kind, d.origin, d.hops, d.payload.as_slice()), (DeliveryKind::Neighbor, 1, 2, &b"open"[..]));
        // A node the route does not name ignores the frame; a one-hop route removes the relay route.
        let before = air.sent.len();
        a.on_frame(Instant(3), 2, -70, &f, &mut air);
        assert!(a.pop_delivery().is_none() && air.sent.len() == before);
        a.set_peer_route(3, &[3]).unwrap();
        assert_eq!(a.peer_route(3), None);
        a.send_neighbor(Instant(4), 3, b"open", TxClass::Protection, &mut air).unwrap();
        assert!(matches!(Frame::decode(&air.sent.last().unwrap().2), Ok(Frame::Nbr { .. })));
    }

    #[test]
    fn a_peer_message_goes_over_both_routes_and_is_delivered_once() {
        let cfg = RouterConfig::default();
        let mut r: Vec<Router> = (1..=4).map(|a| Router::new(a, false, cfg.clone(), a as u64)).collect();
        assert_eq!(r[0].set_peer_alternate(4, &[3, 4]), Err("an alternate peer route needs a relay route first"));
        r[0].set_peer_route(4, &[2, 4]).unwrap();
        assert_eq!(
            r[0].set_peer_alternate(4, &[3, 2, 4]),
            Err("an alternate peer route must avoid a relay of the first route")
        );
        assert_eq!(r[0].set_peer_alternate(4, &[3, 1, 4]), Err("a peer route must not pass through its origin"));
        r[0].set_peer_alternate(4, &[3, 4]).unwrap();
        assert_eq!(r[0].peer_alternate(4), Some(&[3u16, 4][..]));
        let mut air = Air::default();
        r[0].send_neighbor(Instant(0), 4, b"open", TxClass::Protection, &mut air).unwrap();
        assert_eq!(air.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
        assert_eq!((r[0].stats().peer_routed, r[0].stats().peer_duplicated), (1, 1));
        let copies: Vec<_> = air.sent.drain(..).collect();
        // Both relays forward their copy; the destination delivers the first and drops the second.
        for (relay, (_, _, f)) in [(1usize, &copies[0]), (2, &copies[1])] {
            r[relay].on_frame(Instant(1), 1, -70, f, &mut air);
            let (to, _, g) = air.sent.pop().unwrap();
            assert_eq!(to, 4);
            r[3].on_frame(Instant(2), relay as u16 + 1, -70, &g, &mut air);
        }
        let d = r[3].pop_delivery().unwrap();
        assert_eq!((d.origin, d.payload.as_slice()), (1, &b"open"[..]));
        assert!(r[3].pop_delivery().is_none());
        assert_eq!(r[3].stats().peer_duplicates_dropped, 1);
        // With relay 2 dead, the copy over relay 3 alone gets through; a later message is new again.
        r[0].send_neighbor(Instant(3), 4, b"shut", TxClass::Protection, &mut air).unwrap();
        let (_, _, f) = air.sent.pop().unwrap();
        air.sent.clear();
        r[2].on_frame(Instant(4), 1, -70, &f, &mut air);
        let (_, _, g) = air.sent.pop().unwrap();
        r[3].on_frame(Instant(5), 3, -70, &g, &mut air);
        assert_eq!(r[3].pop_delivery().unwrap().payload.as_slice(), &b"shut"[..]);
        // Removing the relay route removes its alternate too.
        r[0].set_peer_route(4, &[4]).unwrap();
        assert_eq!((r[0].peer_route(4), r[0].peer_alternate(4)), (None, None));
    }

    /// A report sent while the node has no parent is held, and frames heard before it joins (here a poisoned
    /// DIO, which gives no parent) must not take it off the hold: it goes up once a parent is chosen.
    #[test]
    fn a_held_report_survives_frames_heard_before_the_node_joins() {
        let mut air = Air::default();
        let mut n = Router::new(5, false, RouterConfig::default(), 9);
        n.send_up(Instant(0), b"held", &mut air).unwrap();
        assert!(air.sent.is_empty());
        n.on_frame(Instant(1), 7, -60, &dio(1, 0, INFINITE_RANK), &mut air);
        n.on_frame(Instant(2), 8, -60, &dio(1, 0, INFINITE_RANK), &mut air);
        assert_eq!(n.parent(), None);
        n.on_frame(Instant(3), 2, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(2));
        let ups: Vec<_> = air
            .sent
            .iter()
            .filter_map(|(to, _, f)| match Frame::decode(f) {
                Ok(Frame::Up { kind: UpKind::Data, payload, .. }) => Some((*to, payload.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(ups, [(2, b"held".to_vec())]);
        assert_eq!(n.stats().drop_no_route, 0);
    }

    #[test]
    fn root_advertises_and_node_joins_best_parent_then_sends_dao() {
        let cfg = RouterConfig::default();
        let mut air = Air::default();
        let mut root = Router::new(1, true, cfg.clone(), 1);
        let mut t = root.start(Instant::ZERO, &mut air);
        while air.sent.is_empty() {
            t = root.poll(t, &mut air);
        }
        assert_eq!(Frame::decode(&air.sent[0].2), Ok(Frame::Dio { root: 1, version: 0, rank: ETX_ONE }));

        let mut n = Router::new(5, false, cfg, 2);
        let now = Instant(1_000_000_000);
        // A weak link to the root and a strong link to a rank-256 node: MRHOF prefers the lower path cost.
        n.on_frame(now, 1, -97, &dio(1, 0, ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(1));
        assert_eq!(n.rank(), ETX_ONE + 4 * ETX_ONE);
        n.on_frame(now, 2, -70, &dio(1, 0, 2 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(2));
        assert_eq!(n.rank(), 3 * ETX_ONE);
        assert!(n.joined_at().is_some());
        // The DAO goes up after the jittered delay.
        air.sent.clear();
        let mut t = n.deadline();
        for _ in 0..10 {
            t = n.poll(t, &mut air);
        }
        let dao =
            air.sent.iter().find(|s| matches!(Frame::decode(&s.2), Ok(Frame::Up { kind: UpKind::Dao { .. }, .. })));
        assert_eq!(dao.map(|s| s.0), Some(2));
    }

    #[test]
    fn local_repair_reroutes_to_backup_parent() {
        let cfg = RouterConfig { max_fail_streak: 2, ..RouterConfig::default() };
        let mut air = Air::default();
        let mut n = Router::new(5, false, cfg, 3);
        let now = Instant(0);
        n.on_frame(now, 2, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        n.on_frame(now, 3, -60, &dio(1, 0, 300), &mut air);
        assert_eq!(n.parent(), Some(2));
        for k in 0..2 {
            air.sent.clear();
            n.send_up(now, &[k], &mut air).unwrap();
            let (to, token, _) = air.sent[0].clone();
            assert_eq!(to, 2, "ETX alone does not outweigh the rank gap");
            n.on_tx_done(now, token, TxStatus::NoAck { attempts: 4 }, &mut air);
        }
        assert_eq!(n.parent(), Some(3), "parent 2 dropped after two failures");
        // The failed frame was rerouted to the backup parent.
        assert_eq!(air.sent.last().map(|s| s.0), Some(3));
        assert!(n.stats().local_repairs >= 1 || n.stats().parent_changes >= 1);
    }

    #[test]
    fn root_source_routes_down_via_daos() {
        let mut air = Air::default();
        let mut root = Router::new(1, true, RouterConfig::default(), 4);
        let now = Instant(0);
        for (origin, parent) in [(2u16, 1u16), (3, 2), (4, 3)] {
            let f = Frame::Up {
                kind: UpKind::Dao { parent },
                origin,
                root: 1,
                seq: 1,
                hop_limit: 30,
                sender_rank: 600,
                rank_error: false,
                payload: &[],
            }
            .encode();
            root.on_frame(now, 2, -60, &f, &mut air);
        }
        root.send_down(now, 4, b"open", &mut air).unwrap();
        let (to, _, bytes) = air.sent.last().unwrap().clone();
        assert_eq!(to, 2);
        let Ok(Frame::Down { hops, dst: 4, .. }) = Frame::decode(&bytes) else { panic!("not a DOWN frame") };
        assert_eq!((0..hops.len()).map(|i| hops.get(i).unwrap()).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(root.send_down(now, 9, b"x", &mut air), Err(SendError::NoRoute));
        // Hop 2 forwards, hop 4 delivers.
        let mut r3 = Router::new(3, false, RouterConfig::default(), 5);
        let mut mid = bytes.clone();
        mid[7] = 1; // next = 1 (addressed to node 3)
        r3.on_frame(now, 2, -60, &mid, &mut air);
        assert_eq!(air.sent.last().unwrap().0, 4);
        let mut r4 = Router::new(4, false, RouterConfig::default(), 6);
        r4.on_frame(now, 3, -60, &air.sent.last().unwrap().2.clone(), &mut air);
        let d = r4.pop_delivery().unwrap();
        assert_eq!((d.kind, d.origin, d.payload.as_slice()), (DeliveryKind::Down, 1, &b"open"[..]));
    }

    #[test]
    fn poison_detaches_children_and_global_repair_rejoins() {
        let mut air = Air::default();
        let mut n = Router::new(5, false, RouterConfig::default(), 7);
        let now = Instant(0);
        n.on_frame(now, 2, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(2));
        n.on_frame(now, 2, -60, &dio(1, 0, INFINITE_RANK), &mut air);
        assert_eq!(n.parent(), None);
        assert_eq!(n.rank(), INFINITE_RANK);
        // Data is held while detached and flushed after rejoining.
        n.send_up(now, b"r", &mut air).unwrap();
        air.sent.clear();
        n.on_frame(now, 3, -60, &dio(1, 1, 2 * ETX_ONE), &mut air);
        assert_eq!((n.parent(), n.version()), (Some(3), 1));
        n.on_tx_done(now, 0, TxStatus::Sent, &mut air);
        assert!(air.sent.iter().any(|s| s.0 == 3), "held data flushed to the new parent");
        // A DIO of the old version no longer counts as a parent candidate.
        n.on_frame(now, 4, -50, &dio(1, 0, ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(3));
    }

    #[test]
    fn loops_are_detected_and_bad_frames_counted() {
        let mut air = Air::default();
        let mut n = Router::new(5, false, RouterConfig::default(), 8);
        n.on_frame(Instant(0), 2, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        let up = |rank_error| up_data(1, ETX_ONE, rank_error);
        // Normal forwarding (sender ranked above us) is neither an error nor a loop.
        let fine = up_data(2, 20 * ETX_ONE, false);
        air.sent.clear();
        n.on_frame(Instant(0), 7, -60, &fine, &mut air);
        assert_eq!((n.stats().rank_errors, n.stats().loops_detected, n.stats().forwarded), (0, 0, 1));
        // A first inconsistency: flagged and forwarded.
        air.sent.clear();
        n.on_frame(Instant(0), 7, -60, &up(false), &mut air);
        assert_eq!((n.stats().rank_errors, n.stats().loops_detected), (1, 0));
        let fwd = air.sent.iter().find(|s| s.0 == 2).expect("forwarded to the parent");
        assert!(matches!(Frame::decode(&fwd.2), Ok(Frame::Up { rank_error: true, .. })));
        // A second one on the same frame: a loop, dropped.
        air.sent.clear();
        n.on_frame(Instant(0), 7, -60, &up(true), &mut air);
        assert_eq!(n.stats().loops_detected, 1);
        assert!(!air.sent.iter().any(|s| s.0 == 2), "looping frame dropped");
        n.on_frame(Instant(0), 7, -60, &[0xEE, 1], &mut air);
        assert_eq!(n.stats().bad_frames, 1);
        air.full = true;
        assert_eq!(n.send_neighbor(Instant(0), 7, b"x", TxClass::Protection, &mut air), Err(SendError::QueueFull));
    }

    #[test]
    fn parent_choice_never_takes_a_node_ranked_like_our_descendants() {
        let mut air = Air::default();
        // Advertise (Trickle DIO), so children may take our rank.
        let (mut n, _) = advertised_node(&mut air, 1);
        let now = Instant(0);
        // Our parent's rank rises within DAGMaxRankIncrease (4 ETX); a neighbour at rank 4 ETX (possibly our
        // child) must not become parent.
        n.on_frame(now, 3, -60, &dio(1, 0, 4 * ETX_ONE), &mut air);
        n.on_frame(now, 2, -60, &dio(1, 0, 6 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(2));
        assert_eq!(n.rank(), 7 * ETX_ONE);
        // A neighbour ranked below our lowest advertised rank plus one hop is fine.
        n.on_frame(now, 4, -60, &dio(1, 0, 3 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(4));
        // That parent climbs past the bound (as around a loop through us) and nothing else qualifies: we give it
        // up and poison rather than follow it up.
        n.on_frame(now, 4, -60, &dio(1, 0, 7 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), None);
        assert_eq!(n.rank(), INFINITE_RANK);
    }

    #[test]
    fn a_sender_ranked_below_us_makes_us_advertise_our_rank_at_once() {
        let mut air = Air::default();
        // Let Trickle back off far beyond Imin.
        let (mut n, quiet_from) = advertised_node(&mut air, 6);
        // A child still holding an old, lower view of our rank forwards through us.
        n.on_frame(quiet_from, 6, -60, &up_data(1, 3 * ETX_ONE, false), &mut air);
        assert_eq!(n.stats().rank_errors, 1);
        let sent = n.stats().dio_sent;
        let imin = Duration::from_millis(RouterConfig::default().trickle_imin_ms as u64);
        let mut t = quiet_from;
        while t <= quiet_from + imin {
            t = n.poll(t, &mut air).min(quiet_from + imin + Duration(1));
        }
        assert_eq!(n.stats().dio_sent, sent + 1, "a DIO within Imin of the inconsistency");
    }

    #[test]
    fn failed_link_reroutes_one_frame_to_the_next_best_parent() {
        let mut air = Air::default();
        let mut n = Router::new(5, false, RouterConfig::default(), 10);
        let now = Instant(0);
        n.on_frame(now, 2, -60, &dio(1, 0, ETX_ONE), &mut air);
        n.on_frame(now, 3, -60, &dio(1, 0, 2 * ETX_ONE), &mut air);
        assert_eq!(n.parent(), Some(2));
        air.sent.clear();
        n.send_up(now, b"r", &mut air).unwrap();
        let (_, token, _) = air.sent[0].clone();
        n.on_tx_done(now, token, TxStatus::NoAck { attempts: 4 }, &mut air);
        assert_eq!(n.parent(), Some(2), "one failure is within the hysteresis");
        assert_eq!(air.sent.last().map(|s| s.0), Some(3), "the frame tries the backup parent");
        assert_eq!((n.stats().reroutes, n.stats().drop_link), (1, 0));
    }
}
