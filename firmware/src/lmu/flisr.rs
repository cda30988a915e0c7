//! Peer-to-peer fault location, isolation and service restoration (FLISR) between neighbouring LMUs.
//!
//! Each LMU knows (from commissioning) its upstream neighbour, its downstream neighbours and, if any, the
//! normally-open tie LMU that can back-feed the part of the feeder downstream of it. Sections are named by
//! the LMU at their upstream end. The scheme:
//! - **Fault passage and blocking**: an LMU that sees forward (downstream) fault current raises its flag and
//!   keeps sending `Block` to its upstream neighbour. A flagged LMU that is not blocked when its logic delay
//!   expires trips: the fault lies between it (the last flagged LMU) and its downstream neighbours (the first
//!   unflagged ones). Blocked LMUs are graded backup: they trip after the backup delay if the fault persists,
//!   or at once when a downstream neighbour reports that its contactor failed (`BreakerFailure`).
//! - **Graded scheme** ([`FlisrSettings::grading_ms`]): without blocks, a flagged LMU trips at a time graded by
//!   the LMUs below it, or at once when every downstream neighbour answers its `Query` "not seen". The LMUs
//!   above the last flagged one must learn that they are not last without loading the channel that the
//!   decisive question needs: a flagged LMU tells its upstream neighbour `Beyond`, or, where the peers share
//!   one radio channel ([`FlisrSettings::overhearing`]), asks its downstream neighbours with one broadcast
//!   `Query` that every LMU above it overhears (a leaf broadcasts `Beyond`). The LMU nearest the fault has the
//!   earliest slot, so its one frame silences the whole path above it.
//! - **Clearing**: an LMU that interrupted fault current or isolated a break (primary, backup or standalone,
//!   confirmed open) stops blocking and sends `Cleared` upstream; each LMU on the fault current's path re-baselines its
//!   superimposed-quantity memory and passes it on, so the flows after the clearing (lost load and DER,
//!   supply re-routed through ties) are not taken for a persisting fault and trip no graded backup.
//! - **Open conductor**: LMUs that lose a phase voltage send `LossOfVoltage` upstream; LMUs whose phase
//!   current collapses with healthy voltage send `DropSeen` upstream. The healthy-voltage LMU that has a
//!   current drop or a loss-of-voltage report from downstream, and no `DropSeen` from downstream, locates the
//!   break in its own section.
//!   In the graded scheme a drop alone decides lowest first ([`DROP_HEIGHT_NS`]), and an LMU waiting on it stands
//!   down when a further share of its current goes (an LMU below opened on its own drop; that one may be unable
//!   to send its veto, its radio dead).
//! - **Broken neutral**: LMUs that see their star point displaced send `NeutralDisplaced` upstream instead;
//!   the healthy LMU that gets it locates a broken neutral in its own section and isolates it like an open
//!   conductor (the customers beyond would otherwise stay on up to ~1.7 p.u.).
//!   The weaker `UnbalanceSeen` (a negative-sequence step with healthy voltages, DER holding the part beyond
//!   a break) counts only where this LMU sees no such step itself (a step shared with its own bus came from
//!   elsewhere) and no fault current passed lately.
//! - **Breaking capacity**: the contactor is never commanded open while the current reading exceeds its
//!   breaking capacity or is at the sensor's full scale (the true current may be higher); the coil stays
//!   closed until the current falls, i.e. until the upstream feeder-head fuse or breaker has cleared
//!   (IEC 60947-4-1 type-2 coordination). A section that goes dead within 500 ms after unblocked forward
//!   fault current passed its LMU was cleared upstream: that LMU locates the fault in its own section and
//!   isolates it (opening a dead line), so restoration proceeds as for any other fault.
//! - **Isolation**: the locating LMU opens and sends `Open` to its downstream neighbours, which open and
//!   confirm with their auxiliary contacts (`Opened`); an LMU whose contactor fails passes `Open` further down,
//!   and an `Open` a downstream neighbour never answers (its radio dead) goes, after the last retry, to that
//!   neighbour's downstream neighbours (`downstream_next`): the isolated zone grows by one section. Where
//!   every radio path to them runs through the silent neighbour, an LMU with a tie that lost its supply after a
//!   fault's dip and was told nothing probes its upstream neighbour and its tie, and opens on its own evidence
//!   when only the tie answers (`Flisr::isolate_orphaned_part`). An upstream neighbour that answers such a probe
//!   sends along any `Open` it asked of the prober and never saw confirmed (every copy lost on the way).
//! - **Restoration**: upstream of the tripping LMU supply never stops; each downstream boundary, once its
//!   opening is confirmed, asks its tie to close (`Restore`). A tie closes only on a request from a configured
//!   requester whose opening is confirmed, never while it sees fault current, and opens again and locks out if
//!   it closes onto a fault.
//!
//! Units: milliseconds in settings, metres and ohms for the distance estimate, time in ns.

use crate::lmu::SettingsError;
use crate::lmu::protection::{FaultKind, ProtectionStatus};
use crate::time::{Duration, Instant};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Identity of an LMU among its peers.
pub type PeerId = u16;

/// Most neighbours one LMU may have.
pub const MAX_NEIGHBOURS: usize = 16;
/// The peer address of a broadcast: every LMU in radio range hears it (see [`FlisrSettings::overhearing`]).
pub const BROADCAST_PEER: PeerId = 0xFFFF;
/// Most LMUs below one LMU that it tells apart in overheard messages ([`FlisrSettings::descendants`]) and
/// most peers reached only over relays ([`FlisrSettings::relayed`]).
pub const MAX_DESCENDANTS: usize = 256;
/// Most LMUs that may ask one tie to close (every LMU on the path from the source to the tie).
pub const MAX_TIE_REQUESTERS: usize = 256;
/// Bound of the outgoing queue; the oldest message is dropped beyond it.
pub const OUTBOX_LEN: usize = 64;
/// Reports kept.
pub const REPORTS_LEN: usize = 16;
/// Share of the measuring range at which a current reading counts as full scale.
pub const FULL_SCALE_SHARE: f64 = 0.95;
/// A section that goes dead this soon after fault current passed this LMU (unblocked) was cleared by the
/// upstream fuse or breaker: the fault is in this LMU's own section (ns).
pub const DEAD_AFTER_PASSAGE_NS: u64 = 500_000_000;
/// Graded scheme: a section gone dead after fault current passed waits this long at most for its downstream
/// neighbours' answers before locating the fault in its own section (ns; below [`DEAD_AFTER_PASSAGE_NS`]).
pub const DEAD_WAIT_NS: u64 = 300_000_000;
/// Graded scheme: how long after fault current passed an LMU still answers a `Query` with "seen" (ns).
pub const SEEN_ANSWER_NS: u64 = 2_000_000_000;
/// Graded scheme: stagger of `DropSeen` reports per level of depth (ns). An LMU waits one step more than its
/// own before it locates a break on a current drop alone, so this bounds that wait.
pub const OC_STAGGER_NS: u64 = 20_000_000;
/// Graded scheme: stagger of lost-voltage reports (`LossOfVoltage`, `UnbalanceSeen`, `NeutralDisplaced`) per
/// level of depth (ns). Every LMU beyond a break reports, but only the nearest one's report decides, and it
/// goes first: one frame exchange (about 10 ms at 50 kb/s with its acknowledgement) per level keeps the
/// burst apart without holding a deep break's report back for long.
pub const LOV_STAGGER_NS: u64 = 5_000_000;
/// Graded scheme: extra wait before a current drop alone (no lost voltage reported from downstream) locates a
/// break in this LMU's own section, ns.
pub const DROP_ONLY_WAIT_NS: u64 = 300_000_000;
/// Graded scheme: extra wait per LMU below this one (its height) before a current drop alone locates a break
/// in this LMU's own section, ns. The LMUs below decide first: a neighbour that cannot report (its radio
/// dead) still locates a break in its own section on its own drop and opens, and the LMUs above, which see
/// the same drop, see the opening take the rest of their current and stand down
/// ([`DOWNSTREAM_OPEN_SHARE`]). One step covers a decision, the breaker's release and arc, and a measurement.
pub const DROP_HEIGHT_NS: u64 = 120_000_000;
/// Graded scheme: share of the current left after a current drop that must go as well, while this LMU waits
/// on the drop alone, for it to take that as an LMU below opening (and stand down); at least
/// [`DOWNSTREAM_OPEN_MIN_A`].
pub const DOWNSTREAM_OPEN_SHARE: f64 = 0.2;
/// See [`DOWNSTREAM_OPEN_SHARE`], A.
pub const DOWNSTREAM_OPEN_MIN_A: f64 = 10.0;
/// Graded scheme: delay of a flagged LMU's first `Query` per LMU below it (its height), ns. The LMUs on a
/// fault current's path all pick up in the same cycle; the last of them, whose question decides, is the one
/// with the smallest height, so it asks first and the others follow one frame exchange apart instead of all
/// contending for the channel at once.
pub const QUERY_STAGGER_NS: u64 = 10_000_000;
/// Graded scheme: how long after fault current stopped passing an LMU waits for a `Cleared` from below
/// before standing in for a silent downstream neighbour (see `Flisr::stand_in_for_silent_neighbours`).
pub const STAND_IN_WAIT_NS: u64 = 1_000_000_000;

/// Graded scheme: how long an LMU beyond a break keeps reporting a lost phase to no effect (not asked to
/// open, its supply not back) before it tells the LMU above its upstream neighbour as well, ns, plus
/// [`OC_STAGGER_NS`] per level of depth (every LMU beyond the break escalates, and only the nearest one's
/// report is heard by a healthy LMU). Longer than any isolation of a break that goes as planned (the slowest,
/// a drop alone deep on a feeder, about 1.5 s) and than an isolation extended past a silent far end (its
/// `Open` retried for about 1.5 s, then sent one LMU further), so the escalations do not meet those frames.
pub const LOV_ESCALATE_NS: u64 = 3_000_000_000;

/// Graded scheme: a lost-phase report that changed nothing for this long (no `Open` asked of this LMU, the
/// phase still lost) is sent once more to the upstream neighbour, ns (the first copy may have drowned in the
/// burst of reports from every LMU beyond the break).
pub const LOV_REPEAT_NS: u64 = 800_000_000;

/// Graded scheme: how long an LMU with a tie must have been without supply (dead, or a phase lost) after a
/// fault's dip, told nothing (no `Open`), before it asks its upstream neighbour whether it is there, ns.
/// Longer than an isolation that goes as planned, including an `Open` retried to a silent neighbour and then
/// sent one LMU further (about 1.5 s), and than a tie's restoration of this part (up to about 4.5 s when a
/// radio on the way is dead), so that an LMU whose supply is coming back does not ask.
pub const ORPHAN_WAIT_NS: u64 = 6_000_000_000;
/// Graded scheme: probes of the upstream neighbour per loss of supply (each retried by the MAC), and the time
/// between them, ns. An LMU that gets no `Here` from the upstream neighbour to any of them but one from its tie,
/// [`ORPHAN_PROBE_GAP_NS`] after the last, opens as the far end of its upstream neighbour's section and asks
/// its tie to restore (see `Flisr::isolate_orphaned_part`).
pub const ORPHAN_PROBES: u8 = 3;
/// See [`ORPHAN_PROBES`].
pub const ORPHAN_PROBE_GAP_NS: u64 = 500_000_000;
/// A voltage disturbance this long at most before the loss of supply makes it a fault's dip (ns): a section
/// cleared by a protective device goes dead at the end of the fault it saw, within the slowest graded time.
pub const ORPHAN_DIP_NS: u64 = 2_000_000_000;

/// Graded scheme over a shared channel: the answer to a `Query` waits this long per place among the querier's
/// downstream neighbours ([`FlisrSettings::sibling_index`]), ns: one frame exchange with its acknowledgement.
pub const ANSWER_STAGGER_NS: u64 = 12_000_000;

/// Graded scheme over a shared channel: the lost-voltage and current-drop reports of siblings wait this long
/// per place among their upstream neighbour's downstream neighbours ([`FlisrSettings::sibling_index`]), ns.
pub const REPORT_SIBLING_STAGGER_NS: u64 = 12_000_000;

/// Over a shared channel, the waits of an unanswered request (`Open`, `Restore`, ...) before each retry and
/// after the last are `retry_ms` plus or minus whole steps of this much (ns), in an order drawn from the
/// LMU's identity. Two LMUs that sent their first requests a few milliseconds apart (siblings, opened by one
/// `Open`) would otherwise retry in lockstep, and a pair of frames that collided once (a request and the
/// other's answer) would collide at every retry. The steps of one request sum to zero, so the last retry
/// and the moment an unanswered request is given up (and an isolation extended past a silent far end) come
/// exactly when they would without the spread: the timings other timers are set against stay as they were.
pub const RETRY_SPREAD_NS: u64 = 20_000_000;

/// The wait before the retry of an unanswered request with `left` retries left, and (`left` = 0) after its
/// last retry (see [`RETRY_SPREAD_NS`]). The `retries + 1` waits of one request take the steps
/// `p(left) - retries / 2` with `p(l) = (a l + b) mod (retries + 1)`, a permutation (`a` coprime with
/// `retries + 1`), so they sum to zero; `a` and `b` come from the LMU's identity. A step is at most a
/// `(retries + 1)`th of `retry_ms`, so every wait stays above half of it.
fn retry_gap_ns(s: &FlisrSettings, left: u8) -> u64 {
    let base = ms(s.retry_ms);
    let m = u64::from(s.retries) + 1;
    if !s.overhearing || m < 2 {
        return base;
    }
    let me = u64::from(s.me);
    // In half steps, so that an even count of waits is centred too: 2 p - (m - 1) sums to zero over p.
    let half = (RETRY_SPREAD_NS / 2).min(base / (2 * m));
    let mut a = 1 + me.wrapping_mul(3) % (m - 1);
    // Bounded: 1 is coprime with everything, and `a` reaches it within m - 1 steps.
    for _ in 0..m {
        if gcd(a, m) == 1 {
            break;
        }
        a = a % (m - 1) + 1;
    }
    let b = me.wrapping_mul(7) % m;
    let p = (a * (u64::from(left) % m) + b) % m;
    let half_steps = 2 * p as i64 - (m as i64 - 1);
    base.saturating_add_signed(half_steps * half as i64)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Retries a request may take beyond [`FlisrSettings::retries`] while this LMU finds its channel jammed
/// ([`Flisr::set_channel_jammed`]). Silence on a jammed channel says nothing of the far end (its answers are
/// what the jammer drowns here), so a request is not given up on it, and an isolation is not extended past a
/// far end that may well have opened; once the channel clears, the remaining retries count again. The waits
/// between such retries double up to [`JAMMED_BACKOFF_MAX`] times the usual one: about two minutes of them at
/// the default `retry_ms` of 300 ms.
pub const JAMMED_RETRIES_MAX: u16 = 50;
/// See [`JAMMED_RETRIES_MAX`].
pub const JAMMED_BACKOFF_MAX: u64 = 8;

/// The wait after the `n`th retry sent on a jammed channel (`n` from 1), given the usual wait `gap_ns`.
fn jammed_gap_ns(gap_ns: u64, n: u16) -> u64 {
    gap_ns.saturating_mul((1u64 << n.min(8)).min(JAMMED_BACKOFF_MAX))
}

/// Graded scheme: queries sent per episode at most (the MAC retries each one as well).
pub const QUERIES_MAX: u8 = 3;

/// The probes of an LMU left without supply after a fault (see `Flisr::isolate_orphaned_part`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct OrphanProbes {
    /// Probes sent (at most [`ORPHAN_PROBES`]) and when the last went (ns).
    sent: u8,
    last_ns: u64,
    /// The upstream neighbour answered `Here`.
    upstream_here: bool,
    /// The tie answered `Here`: this LMU's own radio works.
    tie_here: bool,
    /// Nobody answered any probe: this LMU asks no more until its supply is back.
    gave_up: bool,
}

/// A FLISR message between neighbouring LMUs (4 bytes on the air, see [`PeerMsg::encode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMsg {
    /// "I see forward fault current": sent to the upstream neighbour. `graded`: this episode is decided by
    /// time grading on the sender's path (its channel, or one below it, is jammed; see
    /// [`FlisrSettings::jam_grading_ms`]), so the receiver grades its own decision too.
    Block { graded: bool },
    /// "I lost a phase voltage": sent to the upstream neighbour.
    LossOfVoltage,
    /// "My star point is displaced (a broken neutral upstream)": sent to the upstream neighbour.
    NeutralDisplaced,
    /// "My voltages stepped into unbalance without fault current here": sent to the upstream neighbour.
    UnbalanceSeen,
    /// "A phase current of mine collapsed": sent to the upstream neighbour.
    DropSeen,
    /// "My contactor failed to open": back me up now.
    BreakerFailure,
    /// "Section `section` is faulted: open your contactor".
    Open { section: PeerId },
    /// Reply to `Open`: the requested opening (possibly by devices further down) is confirmed.
    Opened { section: PeerId, ok: bool },
    /// "I isolated section `section` upstream of you: close the tie".
    Restore { section: PeerId },
    /// Reply of a tie to `Restore`.
    Restored { section: PeerId, ok: bool },
    /// "My contactor interrupted the fault current that passed you": sent to the upstream neighbour, which
    /// re-baselines its superimposed-quantity memory (the post-fault flows differ from the pre-fault ones)
    /// and passes it on up the path the fault current took.
    Cleared,
    /// "I see forward fault current: do you?": sent by a flagged LMU to its downstream neighbours (the
    /// graded scheme, [`FlisrSettings::grading_ms`]).
    Query {
        /// Milliseconds since the asking LMU picked up (saturating). The answering LMU counts its watch for
        /// fault current from then, so a question that comes late is answered at once.
        age_ms: u16,
    },
    /// Answer to `Query`: whether forward fault current passed the answering LMU in this episode.
    Passage { seen: bool },
    /// "Forward fault current passes me", unasked, once per episode: sent by a flagged LMU to its upstream
    /// neighbour, which then knows it is not the last flagged LMU without asking (the graded scheme), and
    /// takes it like `Passage { seen: true }`.
    Beyond,
    /// "Are you there?": asked of the upstream neighbour by an LMU left without supply after a fault and
    /// told nothing (see [`ORPHAN_WAIT_NS`]).
    Probe,
    /// Answer to `Probe`: the upstream neighbour's radio and controller work.
    Here,
}

/// A frame that is not a FLISR message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

impl PeerMsg {
    pub const ENCODED_LEN: usize = 4;

    /// The report of an LMU that lost its supply, by what its protection saw: a displaced star point (a
    /// broken neutral), a negative-sequence step with healthy voltages (a break held up by DER), or the
    /// loss of voltage itself.
    pub fn lost_supply(p: &ProtectionStatus) -> PeerMsg {
        if p.neutral_displaced {
            PeerMsg::NeutralDisplaced
        } else if p.unbalance_step {
            PeerMsg::UnbalanceSeen
        } else {
            PeerMsg::LossOfVoltage
        }
    }
    /// A report that every LMU beyond an event sends about it (a lost phase, a displaced star point, an
    /// unbalance step, a current drop), of which only the nearest one's decides: the radio sends it behind
    /// protection commands and answers ([`crate::hal::radio::TxClass::Report`]).
    pub fn is_report(&self) -> bool {
        matches!(self, PeerMsg::LossOfVoltage | PeerMsg::NeutralDisplaced | PeerMsg::UnbalanceSeen | PeerMsg::DropSeen)
    }

    /// A message whose newest copy makes an older one to the same peer moot (a repeated `Query` carries the
    /// newer age; a `Passage` answer the newer state): a radio that still holds the older one unsent may send
    /// this one in its place.
    pub fn latest_value(&self) -> bool {
        matches!(self, PeerMsg::Query { .. } | PeerMsg::Passage { .. })
    }

    /// Encodes as tag, section (little endian), flag.
    pub fn encode(&self) -> [u8; 4] {
        let (tag, section, flag) = match *self {
            PeerMsg::Block { graded } => (1u8, 0u16, graded as u8),
            PeerMsg::LossOfVoltage => (2, 0, 0),
            PeerMsg::DropSeen => (3, 0, 0),
            PeerMsg::BreakerFailure => (4, 0, 0),
            PeerMsg::Open { section } => (5, section, 0),
            PeerMsg::Opened { section, ok } => (6, section, ok as u8),
            PeerMsg::Restore { section } => (7, section, 0),
            PeerMsg::Restored { section, ok } => (8, section, ok as u8),
            PeerMsg::UnbalanceSeen => (9, 0, 0),
            PeerMsg::Cleared => (10, 0, 0),
            PeerMsg::NeutralDisplaced => (11, 0, 0),
            PeerMsg::Query { age_ms } => (12, age_ms, 0),
            PeerMsg::Passage { seen } => (13, 0, seen as u8),
            PeerMsg::Beyond => (14, 0, 0),
            PeerMsg::Probe => (15, 0, 0),
            PeerMsg::Here => (16, 0, 0),
        };
        let s = section.to_le_bytes();
        [tag, s[0], s[1], flag]
    }
    /// Names of the messages by tag (index = tag; 0 is unused).
    pub const NAMES: [&'static str; 17] = [
        "",
        "block",
        "loss_of_voltage",
        "drop_seen",
        "breaker_failure",
        "open",
        "opened",
        "restore",
        "restored",
        "unbalance_seen",
        "cleared",
        "neutral_displaced",
        "query",
        "passage",
        "beyond",
        "probe",
        "here",
    ];

    pub fn decode(b: &[u8]) -> Result<PeerMsg, DecodeError> {
        if b.len() != 4 || b[3] > 1 {
            return Err(DecodeError);
        }
        let section = u16::from_le_bytes([b[1], b[2]]);
        let ok = b[3] == 1;
        Ok(match b[0] {
            1 => PeerMsg::Block { graded: ok },
            2 => PeerMsg::LossOfVoltage,
            3 => PeerMsg::DropSeen,
            4 => PeerMsg::BreakerFailure,
            5 => PeerMsg::Open { section },
            6 => PeerMsg::Opened { section, ok },
            7 => PeerMsg::Restore { section },
            8 => PeerMsg::Restored { section, ok },
            9 => PeerMsg::UnbalanceSeen,
            10 => PeerMsg::Cleared,
            11 => PeerMsg::NeutralDisplaced,
            12 => PeerMsg::Query { age_ms: section },
            13 => PeerMsg::Passage { seen: ok },
            14 => PeerMsg::Beyond,
            15 => PeerMsg::Probe,
            16 => PeerMsg::Here,
            _ => return Err(DecodeError),
        })
    }
}

/// Commissioning and timing of one LMU's FLISR.
#[derive(Clone, Debug, PartialEq)]
pub struct FlisrSettings {
    pub me: PeerId,
    pub upstream: Option<PeerId>,
    pub downstream: Vec<PeerId>,
    /// Normally-open tie LMU that can back-feed the part downstream of this LMU.
    pub tie: Option<PeerId>,
    /// This LMU is itself a normally-open tie; it accepts `Restore` only from these peers.
    pub tie_requesters: Vec<PeerId>,
    pub is_tie: bool,
    /// The upstream neighbour's upstream neighbour: its `Open` (an isolation extended past the upstream
    /// neighbour, which did not answer) is obeyed like a neighbour's, but only while this LMU has no supply.
    pub upstream_next: Option<PeerId>,
    /// The downstream neighbours of each downstream neighbour, as (neighbour, its downstream neighbour): an
    /// `Open` a downstream neighbour never answers (its radio dead, its controller down) goes to these instead,
    /// so the isolation holds one section further down and the healthy part beyond can still be restored.
    pub downstream_next: Vec<(PeerId, PeerId)>,
    /// Wait for blocks after a forward pickup before tripping (ms).
    pub logic_delay_ms: u32,
    /// Backup trip of a blocked LMU while the fault persists (ms after pickup).
    pub backup_delay_ms: u32,
    /// Repeat period of `Block` while flagged (ms).
    pub block_repeat_ms: u32,
    /// A received block holds for this long (ms).
    pub block_hold_ms: u32,
    /// Blocking scheme on a jammed channel: time grading step (ms) of the episodes this LMU decides by time
    /// because its channel is jammed ([`Flisr::set_channel_jammed`]) or a downstream neighbour's `Block`
    /// says its own is. A missing `Block` then proves nothing, so the LMU does not trip at `logic_delay_ms`:
    /// it trips at `logic_delay_ms + jam_grading_ms * height` unless the fault clears first (the LMU nearest
    /// the fault, the smallest height on its path, first), and as backup `backup_delay_ms` later if a
    /// downstream neighbour blocked it; its own `Block`s say so, and the LMUs above grade alike. 0 turns the
    /// fallback off (a jammed LMU that misses its neighbour's `Block` trips as if it were the last).
    pub jam_grading_ms: u32,
    /// The auxiliary contact must confirm an operation within this time (ms).
    pub contactor_confirm_ms: u32,
    /// Wait for `DropSeen` from downstream before locating an open conductor (ms).
    pub open_conductor_logic_ms: u32,
    /// Retry period of unanswered `Open` / `Restore` (ms); at most `retries` retries.
    pub retry_ms: u32,
    pub retries: u8,
    /// A tie that sees a superimposed current above this within 2 s of closing has closed onto a fault (A).
    pub sotf_current_a: f64,
    /// Breaking capacity of the contactor (A RMS): it is not opened above it (the upstream fuse or breaker
    /// must clear first).
    pub breaking_capacity_a: f64,
    /// RMS current at which the current channel reaches full scale (A); a reading at or above
    /// [`FULL_SCALE_SHARE`] of it says only that the true current is at least that high, so the contactor is
    /// not opened either.
    pub measuring_range_a: f64,
    /// Largest current this LMU's switch can be asked to interrupt (A RMS): the IEC 60909 maximum
    /// short-circuit current at its terminals, from commissioning (0: unknown). When it is within the breaking
    /// capacity, a full-scale reading (whose true value is unknown) may still be interrupted.
    pub prospective_max_a: f64,
    /// Largest current the converters (inverters) below this LMU can feed into a fault, A RMS: the sum of
    /// their `k` x rated current, from commissioning (0 when there are none). See
    /// [`crate::lmu::protection::Protection::set_downstream_converters_a`].
    pub der_downstream_a: f64,
    /// Loop reactance of the section's line per km (ohm/km) for the distance estimate; 0 disables it.
    pub x_loop_ohm_per_km: f64,
    /// Length of the own section (m) to bound the distance estimate.
    pub section_length_m: f64,
    /// A neighbour's `Open` is obeyed only with local evidence of a fault: this LMU saw fault current, lost
    /// voltage or went dead within this window before it (or is so now); 0 obeys every neighbour's `Open`.
    /// A neighbour that holds valid keys but lies (a compromised LMU) then cannot trip a healthy section;
    /// the requester's retries carry a genuine request past the moment the evidence appears (ms).
    pub open_evidence_ms: u32,
    /// Time grading step of the graded scheme (ms); 0 selects the blocking scheme. A flagged LMU then trips
    /// at `logic_delay_ms + grading_ms * height` after pickup unless the fault clears first, so the last
    /// flagged LMU (the smallest height on the fault current's path) trips first without any message; it
    /// trips at once (after `logic_delay_ms`) when every downstream neighbour answers its `Query` with
    /// `Passage { seen: false }`. A flagged LMU says `Beyond` to its upstream neighbour once, unasked, so the
    /// LMUs above the last one ask nothing and leave it the channel. Lost or late messages make a trip
    /// slower, never wrong.
    pub grading_ms: u32,
    /// LMUs below this one on the longest downstream path (commissioning; 0 at the feeder's ends).
    pub height: u8,
    /// LMUs above this one up to the source (commissioning; 0 next to the source). In the graded scheme an
    /// LMU sends its lost-voltage reports [`LOV_STAGGER_NS`] and its `DropSeen` [`OC_STAGGER_NS`] per level
    /// of depth after it detects, so the reports that decide get the channel in turn instead of in one burst,
    /// and on a current drop alone waits for its downstream neighbours' `DropSeen` slot before it locates a
    /// break in its own section.
    pub depth: u8,
    /// Graded scheme: the peers share one radio channel, so a message broadcast to [`BROADCAST_PEER`] reaches
    /// every LMU in range at the cost of one frame. A flagged LMU then asks its downstream neighbours with one
    /// broadcast `Query` (a leaf, with nobody to ask, broadcasts `Beyond`) at its query slot, and every LMU
    /// above it that overhears either knows it is not the last flagged one: one frame from the LMU nearest
    /// the fault silences all of them, instead of a `Beyond` from every LMU on the fault current's path at
    /// once. `Beyond` then goes only to an upstream neighbour reached over relays ([`Self::relayed`]).
    pub overhearing: bool,
    /// Peers this LMU reaches only over relays (commissioning of the mesh; sorted): they cannot overhear its
    /// broadcasts, and are asked and told by unicast.
    pub relayed: Vec<PeerId>,
    /// The LMUs below this one (commissioning; ties excluded), each with the downstream neighbour on the way
    /// to it, sorted by the former: a `Query` or `Beyond` overheard from one of them means fault current
    /// passes it, so this LMU is not the last flagged one, as if that neighbour had said `Beyond`.
    pub descendants: Vec<(PeerId, PeerId)>,
    /// This LMU's place among its upstream neighbour's downstream neighbours (commissioning; 0 for the first).
    /// Over a shared channel they all hear a broadcast `Query` at the same instant, so each answers
    /// [`ANSWER_STAGGER_NS`] per place later than the one before it instead of colliding with it.
    pub sibling_index: u8,
}

impl FlisrSettings {
    pub fn new(me: PeerId) -> Self {
        FlisrSettings {
            me,
            upstream: None,
            downstream: Vec::new(),
            tie: None,
            tie_requesters: Vec::new(),
            is_tie: false,
            upstream_next: None,
            downstream_next: Vec::new(),
            logic_delay_ms: 30,
            backup_delay_ms: 250,
            block_repeat_ms: 5,
            block_hold_ms: 40,
            contactor_confirm_ms: 80,
            open_conductor_logic_ms: 150,
            retry_ms: 300,
            retries: 4,
            sotf_current_a: 300.0,
            breaking_capacity_a: 10_000.0,
            measuring_range_a: 1.0e6,
            prospective_max_a: 0.0,
            der_downstream_a: 0.0,
            x_loop_ohm_per_km: 0.0,
            section_length_m: 0.0,
            open_evidence_ms: 0,
            grading_ms: 0,
            jam_grading_ms: 100,
            height: 0,
            depth: 0,
            overhearing: false,
            relayed: Vec::new(),
            descendants: Vec::new(),
            sibling_index: 0,
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.downstream.len() > MAX_NEIGHBOURS {
            return Err(SettingsError::new("downstream", "more than 16 neighbours"));
        }
        if self.downstream_next.len() > MAX_NEIGHBOURS * MAX_NEIGHBOURS {
            return Err(SettingsError::new("downstream_next", "more than 256 second neighbours"));
        }
        if self.downstream_next.iter().any(|(d, _)| !self.downstream.contains(d)) {
            return Err(SettingsError::new("downstream_next", "names a peer that is not a downstream neighbour"));
        }
        if self.upstream_next == Some(self.me) {
            return Err(SettingsError::new("upstream_next", "an LMU cannot be its own second neighbour"));
        }
        if self.downstream_next.iter().any(|&(_, n)| n == self.me) {
            return Err(SettingsError::new("downstream_next", "an LMU cannot be its own second neighbour"));
        }
        if self.descendants.len() > MAX_DESCENDANTS || self.relayed.len() > MAX_DESCENDANTS {
            return Err(SettingsError::new("descendants", "more than 256 descendants or relayed peers"));
        }
        if !self.descendants.windows(2).all(|w| w[0].0 < w[1].0) || !self.relayed.windows(2).all(|w| w[0] < w[1]) {
            return Err(SettingsError::new("descendants", "descendants and relayed peers must be sorted and unique"));
        }
        if self.descendants.iter().any(|&(d, via)| d == self.me || !self.downstream.contains(&via)) {
            return Err(SettingsError::new("descendants", "names itself or a way that is not a downstream neighbour"));
        }
        if self.tie_requesters.len() > MAX_TIE_REQUESTERS {
            return Err(SettingsError::new("tie_requesters", "more than 256 requesters"));
        }
        if self.upstream == Some(self.me) || self.downstream.contains(&self.me) || self.tie == Some(self.me) {
            return Err(SettingsError::new("upstream", "an LMU cannot be its own neighbour"));
        }
        if let Some(u) = self.upstream
            && self.downstream.contains(&u)
        {
            return Err(SettingsError::new("downstream", "contains the upstream neighbour"));
        }
        if !(5..=1000).contains(&self.logic_delay_ms) {
            return Err(SettingsError::new("logic_delay_ms", "must be within 5..=1000 ms"));
        }
        if self.backup_delay_ms <= self.logic_delay_ms || self.backup_delay_ms > 5000 {
            return Err(SettingsError::new("backup_delay_ms", "must exceed logic_delay_ms and be <= 5000 ms"));
        }
        if !(1..=100).contains(&self.block_repeat_ms) {
            return Err(SettingsError::new("block_repeat_ms", "must be within 1..=100 ms"));
        }
        if self.block_hold_ms < self.block_repeat_ms || self.block_hold_ms > 1000 {
            return Err(SettingsError::new("block_hold_ms", "must be within block_repeat_ms..=1000 ms"));
        }
        if !(5..=2000).contains(&self.contactor_confirm_ms) {
            return Err(SettingsError::new("contactor_confirm_ms", "must be within 5..=2000 ms"));
        }
        if !(10..=5000).contains(&self.open_conductor_logic_ms) {
            return Err(SettingsError::new("open_conductor_logic_ms", "must be within 10..=5000 ms"));
        }
        if !(10..=60_000).contains(&self.retry_ms) {
            return Err(SettingsError::new("retry_ms", "must be within 10..=60000 ms"));
        }
        if self.retries > 20 {
            return Err(SettingsError::new("retries", "must be <= 20"));
        }
        if !(self.sotf_current_a.is_finite() && self.sotf_current_a >= 1.0) {
            return Err(SettingsError::new("sotf_current_a", "must be finite and >= 1 A"));
        }
        if !(self.breaking_capacity_a.is_finite() && self.breaking_capacity_a > 0.0) {
            return Err(SettingsError::new("breaking_capacity_a", "must be finite and > 0"));
        }
        if !(self.measuring_range_a.is_finite() && self.measuring_range_a > 0.0) {
            return Err(SettingsError::new("measuring_range_a", "must be finite and > 0"));
        }
        if !(self.prospective_max_a.is_finite() && self.prospective_max_a >= 0.0) {
            return Err(SettingsError::new("prospective_max_a", "must be finite and >= 0"));
        }
        if !(self.der_downstream_a.is_finite() && self.der_downstream_a >= 0.0) {
            return Err(SettingsError::new("der_downstream_a", "must be finite and >= 0"));
        }
        if !(self.x_loop_ohm_per_km.is_finite() && self.x_loop_ohm_per_km >= 0.0) {
            return Err(SettingsError::new("x_loop_ohm_per_km", "must be finite and >= 0"));
        }
        if !(self.section_length_m.is_finite() && self.section_length_m >= 0.0) {
            return Err(SettingsError::new("section_length_m", "must be finite and >= 0"));
        }
        if self.grading_ms != 0 && !(20..=1000).contains(&self.grading_ms) {
            return Err(SettingsError::new("grading_ms", "must be 0 (blocking scheme) or within 20..=1000 ms"));
        }
        if self.jam_grading_ms != 0 && !(20..=1000).contains(&self.jam_grading_ms) {
            return Err(SettingsError::new("jam_grading_ms", "must be 0 (no fallback) or within 20..=1000 ms"));
        }
        if self.open_evidence_ms > 60_000 {
            return Err(SettingsError::new("open_evidence_ms", "must be <= 60000 ms"));
        }
        Ok(())
    }
}

/// How this LMU took part in clearing a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Located the fault in its own section and tripped.
    Primary,
    /// Tripped as graded backup (blocked, fault persisted or a downstream contactor failed).
    Backup,
    /// Tripped by a standalone time-graded element.
    Standalone,
    /// Opened on request as the downstream boundary of a faulted section.
    Boundary,
    /// Closed as normally-open tie to restore a section downstream of a fault.
    Tie,
}

/// One LMU's record of a fault it took part in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlisrReport {
    pub role: Role,
    /// Faulted section (named by its upstream LMU) as this LMU knows it.
    pub section: Option<PeerId>,
    pub kind: FaultKind,
    /// When the fault was detected here (pickup or open-conductor condition).
    pub detected: Option<Instant>,
    /// When this LMU commanded its contactor.
    pub commanded: Option<Instant>,
    /// When its auxiliary contact confirmed the operation.
    pub confirmed: Option<Instant>,
    /// Primary: when both sides of the section were confirmed open.
    pub isolated: Option<Instant>,
    /// Primary and boundaries: when a tie confirmed restoring the downstream part.
    pub restored: Option<Instant>,
    /// Estimated distance from this LMU to the fault (m), where the section's reactance is known.
    pub distance_m: Option<f64>,
    /// The contactor failed to operate.
    pub failed: bool,
}

impl FlisrReport {
    fn new(role: Role, section: Option<PeerId>, kind: FaultKind, detected: Option<Instant>) -> Self {
        FlisrReport {
            role,
            section,
            kind,
            detected,
            commanded: None,
            confirmed: None,
            isolated: None,
            restored: None,
            distance_m: None,
            failed: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Contactor in its normal position, watching.
    Normal,
    /// Contactor commanded (open for line LMUs, closed for a tie) and waiting for the auxiliary contact.
    Operating { since: u64 },
    /// Operation done and confirmed; stays until reset.
    Done,
    /// The contactor failed to operate; stays until reset.
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    peer: PeerId,
    msg: PeerMsg,
    next_ns: u64,
    left: u8,
    done: bool,
    /// Retries sent while the channel was jammed (not counted in `left`; at most [`JAMMED_RETRIES_MAX`]).
    jammed_retries: u16,
}

impl Pending {
    /// On a jammed channel, the retry due at `t` is not counted in `left` (see [`JAMMED_RETRIES_MAX`]): the
    /// next comes after `gap_ns`, backed off. Whether this retry was such a one (false once the allowance is
    /// spent).
    fn retry_while_jammed(&mut self, t: u64, gap_ns: u64) -> bool {
        if self.jammed_retries >= JAMMED_RETRIES_MAX {
            return false;
        }
        self.jammed_retries += 1;
        self.next_ns = t + jammed_gap_ns(gap_ns, self.jammed_retries);
        true
    }
}

/// Output of one [`Flisr::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlisrOutput {
    /// Desired coil state (true = closed).
    pub coil_closed: bool,
    pub next_deadline: Option<Instant>,
}

/// The FLISR state machine of one LMU.
pub struct Flisr {
    s: FlisrSettings,
    coil_closed: bool,
    mode: Mode,
    blocked_until: u64,
    drop_blocked_until: u64,
    lov_at: Option<u64>,
    /// The newest downstream loss-of-voltage report was a displaced neutral (`NeutralDisplaced`).
    lov_neutral: bool,
    /// The newest downstream report was a lost voltage or displaced neutral, not the weaker `UnbalanceSeen`.
    lov_strong: bool,
    last_block_sent: Option<u64>,
    oc_since: Option<u64>,
    lov_sent: u8,
    drop_sent: u8,
    last_lov_sent: u64,
    last_drop_sent: u64,
    breaker_failure_at: Option<u64>,
    /// Section this LMU is isolating (as primary or boundary), and who to answer `Opened` to.
    isolating: Option<(PeerId, Option<PeerId>)>,
    pending: Vec<Pending>,
    /// The LMU's radio finds its channel jammed (see [`Flisr::set_channel_jammed`]).
    jammed: bool,
    /// Pickup instant of the episode this LMU decides by time grading (see [`FlisrSettings::jam_grading_ms`]).
    graded_since: Option<u64>,
    /// When this LMU began to grade that episode.
    graded_from_ns: u64,
    /// Last `Block` from a downstream neighbour, and the last one that said `graded`.
    block_rx_ns: Option<u64>,
    graded_block_ns: Option<u64>,
    /// Episodes decided by time grading because of jamming (blocking scheme).
    pub jam_graded_episodes: u64,
    /// Retries sent on a jammed channel beyond the settings' count (see [`JAMMED_RETRIES_MAX`]).
    pub jammed_retries: u64,
    tie_close_at: Option<u64>,
    tie_requester: Option<(PeerId, PeerId)>,
    /// A tie's restore request received while a disturbance was recent (requester, section): served when
    /// the tie has seen no pickup for a second.
    tie_deferred: Option<(PeerId, PeerId)>,
    last_pickup_ns: Option<u64>,
    /// Last poll at which this LMU's own voltage was not healthy (or its line dead).
    last_unhealthy_ns: Option<u64>,
    outbox: VecDeque<(PeerId, PeerMsg)>,
    reports: VecDeque<FlisrReport>,
    current: Option<usize>,
    healthy_now: bool,
    /// This LMU itself sees a negative-sequence voltage step (see `UnbalanceSeen`).
    step_here: bool,
    oc_blocked: bool,
    /// Graded scheme: the largest phase current when this LMU's current drop began (A).
    oc_i_ref_a: Option<f64>,
    /// The largest phase current of the latest poll (A).
    i_max_a: f64,
    /// When the present forward flag rose (a pickup that turns forward later, e.g. when switching reroutes
    /// the current, gets its own logic delay).
    fwd_since: Option<u64>,
    /// A downstream neighbour reported the fault current interrupted: the protection re-baselines.
    rebaseline: bool,
    /// When a `Cleared` was last passed on (copies within 100 ms are one report).
    cleared_at: Option<u64>,
    /// The newest current reading is at or beyond full scale (the sensor says only "at least this much").
    full_scale: bool,
    /// The line is dead: no voltage and no current (set by the owner before [`Flisr::poll`]).
    dead: bool,
    /// Forward fault current passed here while closed and in the normal mode: (first seen, last seen, kind,
    /// distance estimate, not blocked by a downstream neighbour at the last sight).
    passage: Option<Passage>,
    /// Graded scheme: the line went dead while a passage was recent (see [`Flisr::set_line_state`]).
    went_dead: bool,
    /// Graded scheme: when the staggered loss-of-voltage and current-drop reports are due.
    lov_due: Option<u64>,
    drop_due: Option<u64>,
    /// Last time this LMU saw a fault pickup, unhealthy voltage or a dead line (evidence for `Open`).
    last_disturbance_ns: Option<u64>,
    /// Graded scheme: downstream neighbours' answers in this episode (peer, fault current seen, received at
    /// ns).
    answers: Vec<(PeerId, bool, u64)>,
    /// Graded scheme: queries sent in this episode, and when the last went out.
    queries_sent: u8,
    /// Graded scheme: this episode's unsolicited "seen" went to the upstream neighbour.
    seen_pushed: bool,
    /// Graded scheme over a shared channel: this episode's broadcast `Beyond` (a leaf) went out.
    broadcast_beyond: bool,
    /// Messages overheard from LMUs further below that told this LMU it is not the last flagged one.
    pub overheard: u32,
    last_query_ns: u64,
    /// Graded scheme: queries from the upstream neighbour awaiting a "not seen" answer (peer, answer due).
    to_answer: Vec<(PeerId, u64)>,
    /// Last time forward fault current passed here while closed.
    last_forward_ns: Option<u64>,
    /// Graded scheme: start of the current (or last) episode of forward fault current.
    episode_ns: Option<u64>,
    /// The episode (its start) whose silent downstream neighbours this LMU already stood in for.
    stood_in_for: Option<u64>,
    /// Neighbours' `Open` requests refused for want of local evidence ([`FlisrSettings::open_evidence_ms`]).
    pub opens_refused: u64,
    /// Neighbours' `Open` requests obeyed (this LMU opened as a boundary).
    pub opens_obeyed: u64,
    /// `Open`s this LMU sent in place of a silent downstream neighbour.
    pub opens_stood_in: u64,
    /// Openings of this LMU as the far end of a section whose upstream end is silent (see
    /// `Flisr::isolate_orphaned_part`).
    pub orphan_opens: u64,
    /// When this LMU lost its supply (dead, or a phase lost) after having it, and whether a fault's dip came
    /// first (the last poll with a disturbed voltage while the line was live).
    unsupplied_since: Option<u64>,
    live_dip_ns: Option<u64>,
    /// Probes of the upstream neighbour and the tie in the present loss of supply.
    orphan: OrphanProbes,
    /// The section this LMU isolated as the far end of a silent upstream neighbour's section.
    orphan_section: Option<PeerId>,
    /// Graded scheme: when an LMU below took the rest of a dropped current here (it opened on a break), in
    /// the current or last open-conductor episode; see `Flisr::stand_in_for_silent_opener`.
    oc_opened_below_ns: Option<u64>,
    /// The opening (its time) this LMU already stood in for.
    oc_stood_in_for: Option<u64>,
    /// Last `DropSeen` and last `Cleared` from any downstream neighbour (a talking opener sends both).
    drop_seen_ns: Option<u64>,
    cleared_heard_ns: Option<u64>,
    /// First lost-phase report of the current loss, and whether it went to the second neighbour up too.
    first_lov_sent_ns: Option<u64>,
    lov_escalated: bool,
    lov_repeated: bool,
}

#[derive(Clone, Copy, Debug)]
struct Passage {
    since: u64,
    last: u64,
    kind: FaultKind,
    distance_m: Option<f64>,
    unblocked: bool,
    /// The current was beyond what this contactor may interrupt: an upstream device must clear it.
    beyond_capacity: bool,
}

impl Flisr {
    pub fn new(s: FlisrSettings) -> Result<Self, SettingsError> {
        s.validate()?;
        let closed = !s.is_tie;
        Ok(Flisr {
            s,
            coil_closed: closed,
            mode: Mode::Normal,
            blocked_until: 0,
            drop_blocked_until: 0,
            lov_at: None,
            lov_neutral: false,
            lov_strong: false,
            last_block_sent: None,
            oc_since: None,
            lov_sent: 0,
            drop_sent: 0,
            last_lov_sent: 0,
            last_drop_sent: 0,
            breaker_failure_at: None,
            isolating: None,
            pending: Vec::new(),
            jammed: false,
            graded_since: None,
            graded_from_ns: 0,
            block_rx_ns: None,
            graded_block_ns: None,
            jam_graded_episodes: 0,
            jammed_retries: 0,
            tie_close_at: None,
            tie_requester: None,
            tie_deferred: None,
            last_pickup_ns: None,
            last_unhealthy_ns: None,
            outbox: VecDeque::new(),
            reports: VecDeque::new(),
            current: None,
            healthy_now: false,
            step_here: false,
            last_disturbance_ns: None,
            opens_refused: 0,
            opens_obeyed: 0,
            answers: Vec::new(),
            queries_sent: 0,
            seen_pushed: false,
            broadcast_beyond: false,
            overheard: 0,
            last_query_ns: 0,
            to_answer: Vec::new(),
            last_forward_ns: None,
            episode_ns: None,
            stood_in_for: None,
            opens_stood_in: 0,
            orphan_opens: 0,
            unsupplied_since: None,
            live_dip_ns: None,
            orphan: OrphanProbes::default(),
            orphan_section: None,
            oc_opened_below_ns: None,
            oc_stood_in_for: None,
            drop_seen_ns: None,
            cleared_heard_ns: None,
            first_lov_sent_ns: None,
            lov_escalated: false,
            lov_repeated: false,
            oc_blocked: false,
            oc_i_ref_a: None,
            i_max_a: 0.0,
            fwd_since: None,
            rebaseline: false,
            cleared_at: None,
            full_scale: false,
            dead: false,
            passage: None,
            went_dead: false,
            lov_due: None,
            drop_due: None,
        })
    }

    /// Sets [`FlisrSettings::open_evidence_ms`] (provisioning; values above 60 s are capped).
    pub fn set_open_evidence_ms(&mut self, ms: u32) {
        self.s.open_evidence_ms = ms.min(60_000);
    }

    /// The peer frames go over one shared radio channel (see [`FlisrSettings::overhearing`]); `relayed` are
    /// the peers reached only over relays (at most [`MAX_DESCENDANTS`] kept).
    pub fn set_shared_channel(&mut self, mut relayed: Vec<PeerId>) {
        relayed.sort_unstable();
        relayed.dedup();
        relayed.truncate(MAX_DESCENDANTS);
        self.s.overhearing = true;
        self.s.relayed = relayed;
    }

    pub fn settings(&self) -> &FlisrSettings {
        &self.s
    }
    pub fn coil_closed(&self) -> bool {
        self.coil_closed
    }
    /// Reports, oldest first (bounded).
    pub fn reports(&self) -> impl Iterator<Item = &FlisrReport> {
        self.reports.iter()
    }
    /// Takes the next outgoing message (destination, message).
    pub fn pop_outgoing(&mut self) -> Option<(PeerId, PeerMsg)> {
        self.outbox.pop_front()
    }
    /// Whether the protection should re-baseline its pre-fault memory now (set by a `Cleared` from
    /// downstream; taken once).
    pub fn take_rebaseline(&mut self) -> bool {
        core::mem::take(&mut self.rebaseline)
    }
    /// The device operated (or failed) and waits for a reset.
    pub fn locked_out(&self) -> bool {
        matches!(self.mode, Mode::Done | Mode::Failed)
    }

    /// Returns to the normal position and forgets the episode (a command from the operator after repair).
    pub fn reset(&mut self) {
        self.coil_closed = !self.s.is_tie;
        self.mode = Mode::Normal;
        self.isolating = None;
        self.pending.clear();
        self.tie_close_at = None;
        self.tie_requester = None;
        self.tie_deferred = None;
        self.current = None;
        self.oc_since = None;
        self.lov_at = None;
        self.breaker_failure_at = None;
        self.oc_blocked = false;
        self.oc_i_ref_a = None;
        self.cleared_at = None;
        self.passage = None;
        self.oc_opened_below_ns = None;
        self.drop_seen_ns = None;
        self.cleared_heard_ns = None;
        self.graded_since = None;
        self.block_rx_ns = None;
        self.graded_block_ns = None;
    }

    /// The state of the line before a [`Flisr::poll`]: the current reading is at or beyond the sensor's full
    /// scale (`full_scale`; saturated, so the true current may exceed the breaking capacity), and the line is
    /// dead (`dead`: no voltage on any phase and no current, e.g. after the upstream fuse or breaker cleared).
    pub fn set_line_state(&mut self, full_scale: bool, dead: bool) {
        self.full_scale = full_scale;
        self.dead = dead;
    }

    /// Whether the LMU's radio finds its channel jammed before a [`Flisr::poll`]: the energy it measures on
    /// the idle channel is at or above its clear-channel threshold (802.15.4 CCA mode 1) with no frame of
    /// its own neighbours to explain it, or frames it began to receive lately failed at a strong signal (what
    /// a reactive jammer leaves). While it is, unanswered requests keep their retries (at most
    /// [`JAMMED_RETRIES_MAX`] more) instead of running out, and an unconfirmed isolation is not extended past
    /// its far end.
    pub fn set_channel_jammed(&mut self, jammed: bool) {
        self.jammed = jammed;
    }

    /// Whether the switch may interrupt the present current: the reading is within the breaking capacity and
    /// below full scale, or at full scale where commissioning found that no current at this point exceeds
    /// the breaking capacity. Otherwise the opening waits (coil kept closed) until the current falls, i.e.
    /// until the upstream fuse or breaker has cleared (IEC 60947-4-1 coordination for a contactor).
    pub fn may_interrupt(&self, i_max_a: f64) -> bool {
        if !i_max_a.is_finite() || i_max_a > self.s.breaking_capacity_a {
            return false;
        }
        let at_full_scale = self.full_scale || i_max_a >= FULL_SCALE_SHARE * self.s.measuring_range_a;
        !at_full_scale || (self.s.prospective_max_a > 0.0 && self.s.prospective_max_a <= self.s.breaking_capacity_a)
    }

    fn send(&mut self, to: PeerId, msg: PeerMsg) {
        if self.outbox.len() >= OUTBOX_LEN {
            self.outbox.pop_front();
        }
        self.outbox.push_back((to, msg));
    }

    fn send_reliable(&mut self, now: u64, to: PeerId, msg: PeerMsg) {
        self.send(to, msg);
        if self.pending.len() < 2 * MAX_NEIGHBOURS {
            self.pending.push(Pending {
                peer: to,
                msg,
                next_ns: now + retry_gap_ns(&self.s, self.s.retries),
                left: self.s.retries,
                done: false,
                jammed_retries: 0,
            });
        }
    }

    fn ack(&mut self, from: PeerId, section: PeerId, restore: bool) {
        for p in &mut self.pending {
            let matches = match p.msg {
                PeerMsg::Open { section: s } => !restore && s == section,
                PeerMsg::Restore { section: s } => restore && s == section,
                _ => false,
            };
            if p.peer == from && matches {
                p.done = true;
            }
        }
    }

    fn report(&mut self, r: FlisrReport) {
        if self.reports.len() >= REPORTS_LEN {
            self.reports.pop_front();
        }
        self.reports.push_back(r);
        self.current = Some(self.reports.len() - 1);
    }

    fn current_mut(&mut self) -> Option<&mut FlisrReport> {
        self.current.and_then(|k| self.reports.get_mut(k))
    }

    fn is_neighbour(&self, p: PeerId) -> bool {
        self.s.upstream == Some(p) || self.s.downstream.contains(&p)
    }

    /// Handles a message from peer `from` received at `now`. Messages from strangers are ignored.
    pub fn on_peer(&mut self, now: Instant, from: PeerId, msg: PeerMsg) {
        let t = now.as_nanos();
        let downstream = self.s.downstream.contains(&from);
        // The downstream neighbour between this LMU and `from` when `from` is two below it.
        let via = self.s.downstream_next.iter().find(|&&(_, n)| n == from).map(|&(d, _)| d);
        match msg {
            PeerMsg::Block { graded } if downstream => {
                self.blocked_until = t + ms(self.s.block_hold_ms);
                self.block_rx_ns = Some(t);
                if graded {
                    self.graded_block_ns = Some(t);
                }
            }
            // A lost phase escalated by an LMU two below (`Flisr::escalate_lost_phase`): its report to the
            // neighbour between us came to nothing for seconds, so that neighbour's radio is likely dead. This
            // LMU, healthy, stands in for it and asks the reporter to open as the far end of that neighbour's
            // section; the reporter obeys on its own evidence (its lost phase), then asks its tie to restore.
            PeerMsg::LossOfVoltage | PeerMsg::NeutralDisplaced | PeerMsg::UnbalanceSeen
                if via.is_some()
                    && !downstream
                    && self.s.grading_ms > 0
                    && !self.s.is_tie
                    && self.mode == Mode::Normal
                    && self.coil_closed
                    && self.healthy_now
                    && self.steadily_healthy(t) =>
            {
                if let Some(d) = via {
                    self.send(from, PeerMsg::Open { section: d });
                    self.opens_stood_in += 1;
                }
            }
            PeerMsg::Query { age_ms } if self.s.upstream == Some(from) && !self.s.is_tie => {
                if self.seen_for_answer(t) {
                    self.send(from, PeerMsg::Passage { seen: true });
                } else if !self.to_answer.iter().any(|&(p, _)| p == from) && self.to_answer.len() < MAX_NEIGHBOURS {
                    // "Not seen" only after watching for a logic delay from the querier's pickup: a pickup
                    // here may lag it. The querier picked up at least `age_ms` before this arrival (the
                    // frame's time on the way only adds to that), so a late question is answered at once.
                    let watched = ms(u32::from(age_ms).min(self.s.logic_delay_ms));
                    let place =
                        if self.s.overhearing { ANSWER_STAGGER_NS * u64::from(self.s.sibling_index) } else { 0 };
                    self.to_answer.push((from, t + (ms(self.s.logic_delay_ms) - watched).max(place)));
                }
            }
            PeerMsg::Passage { .. } | PeerMsg::Beyond if downstream => {
                let seen = matches!(msg, PeerMsg::Passage { seen: true } | PeerMsg::Beyond);
                self.record_answer(t, from, seen);
            }
            // Overheard from an LMU further below (a broadcast): fault current passes it, so it passes the
            // downstream neighbour on the way to it too.
            PeerMsg::Query { .. } | PeerMsg::Beyond if self.s.overhearing && self.s.grading_ms > 0 => {
                if let Ok(k) = self.s.descendants.binary_search_by_key(&from, |d| d.0) {
                    let via = self.s.descendants[k].1;
                    self.overheard += 1;
                    self.record_answer(t, via, true);
                }
            }
            PeerMsg::DropSeen if downstream => {
                // The break lies beyond that neighbour: this LMU stays out of the episode until it ends.
                self.drop_blocked_until = t + ms(self.s.open_conductor_logic_ms * 2);
                self.oc_blocked = true;
                self.drop_seen_ns = Some(t);
            }
            // Only an LMU that itself has healthy voltage bounds the break from upstream.
            // (A normally-open tie at the far end of this section reports like a downstream neighbour.)
            // In the graded scheme a shunt fault may last past the loss-of-phase delay (up to its graded
            // time): lost voltages reported within a second of fault current seen passing here towards them
            // are its dip. (A pickup that does not look downstream is no such evidence: an open conductor's
            // own current step picks up the delta elements without any fault current.)
            PeerMsg::LossOfVoltage | PeerMsg::NeutralDisplaced
                if (downstream || self.s.tie == Some(from))
                    && self.healthy_now
                    && self.steadily_healthy(t)
                    && (self.s.grading_ms == 0
                        || self.last_forward_ns.is_none_or(|p| t.saturating_sub(p) >= 1_000_000_000)) =>
            {
                self.lov_at = Some(t);
                self.lov_neutral = msg == PeerMsg::NeutralDisplaced;
                self.lov_strong = true;
            }
            // The weaker evidence counts only where no fault current passed lately.
            PeerMsg::UnbalanceSeen
                if (downstream || self.s.tie == Some(from))
                    && self.healthy_now
                    && self.steadily_healthy(t)
                    // A break in this section steps the unbalance beyond it, not at this LMU's own bus; a
                    // step seen here too came from elsewhere (switching upstream or on another branch).
                    && !self.step_here
                    && self.last_pickup_ns.is_none_or(|p| t.saturating_sub(p) >= 1_000_000_000) =>
            {
                self.lov_at = Some(t);
                self.lov_neutral = false;
                self.lov_strong = false;
            }
            PeerMsg::BreakerFailure if downstream => self.breaker_failure_at = Some(t),
            PeerMsg::Cleared if downstream && self.mode == Mode::Normal && !self.s.is_tie => {
                self.cleared_heard_ns = Some(t);
                // Pass it on up the fault current's path once per episode (the sender repeats it).
                let on_path = self.last_pickup_ns.is_some_and(|p| t.saturating_sub(p) < 1_000_000_000);
                // Over an acknowledged mesh the copies come further apart: one episode is a second there.
                let window = if self.s.grading_ms > 0 { ms(1000) } else { ms(100) };
                let repeat = self.cleared_at.is_some_and(|c| t.saturating_sub(c) < window);
                if on_path && !repeat {
                    self.cleared_at = Some(t);
                    self.rebaseline = true;
                    self.blocked_until = 0;
                    self.fwd_since = None;
                    self.send_cleared();
                }
            }
            PeerMsg::Open { section }
                if (self.is_neighbour(from) || self.s.upstream_next == Some(from)) && !self.s.is_tie =>
            {
                let evidence = self.s.open_evidence_ms == 0
                    || !self.healthy_now
                    || self.dead
                    || self.last_disturbance_ns.is_some_and(|d| t.saturating_sub(d) <= ms(self.s.open_evidence_ms));
                // An extension (from the upstream neighbour's upstream neighbour) is obeyed only while this
                // LMU has no supply: with supply, the silent neighbour did open (its confirmation was lost)
                // and a tie restored this side, so the isolation already holds and opening here would take
                // a healthy section out.
                let extension = !self.is_neighbour(from);
                if !evidence || (extension && !self.dead) {
                    self.opens_refused += 1;
                    return;
                }
                if self.isolating.is_none() && self.mode == Mode::Normal {
                    self.opens_obeyed += 1;
                    self.isolating = Some((section, Some(from)));
                    self.report(FlisrReport::new(Role::Boundary, Some(section), FaultKind::Unknown, None));
                    self.command(t, false);
                } else if self.isolating.map(|(s, _)| s) == Some(section) {
                    // A repeated request: answer again if already confirmed.
                    if self.mode == Mode::Done {
                        self.send(from, PeerMsg::Opened { section, ok: true });
                    }
                } else if self.mode == Mode::Done && !self.coil_closed {
                    // Already open for another reason: the boundary holds.
                    self.send(from, PeerMsg::Opened { section, ok: true });
                }
            }
            PeerMsg::Opened { section, ok } => {
                self.ack(from, section, false);
                if !ok {
                    return;
                }
                self.check_isolated(t);
            }
            PeerMsg::Restore { section } if self.s.is_tie && self.s.tie_requesters.contains(&from) => {
                let fault_seen_recently = self.last_pickup_ns.is_some_and(|p| t.saturating_sub(p) < 1_000_000_000);
                if self.mode == Mode::Normal && !self.coil_closed && !fault_seen_recently {
                    self.close_tie(t, from, section);
                } else if self.mode == Mode::Normal && !self.coil_closed && self.tie_deferred.is_none() {
                    // A disturbance seen here lately (often the isolation itself, switching the flows
                    // beyond this tie): close once it has been quiet for a second, not at once.
                    self.tie_deferred = Some((from, section));
                } else if self.tie_deferred == Some((from, section)) {
                    // A retry of the deferred request: it stands.
                } else if self.mode == Mode::Done && self.tie_requester == Some((from, section)) {
                    self.send(from, PeerMsg::Restored { section, ok: true });
                } else if self.tie_requester != Some((from, section)) {
                    self.send(from, PeerMsg::Restored { section, ok: false });
                }
            }
            PeerMsg::Restored { section, ok } => {
                self.ack(from, section, true);
                if ok
                    && let Some(r) = self.current_mut()
                    && r.restored.is_none()
                {
                    r.restored = Some(now);
                }
            }
            PeerMsg::Probe if downstream || (self.s.is_tie && self.s.tie_requesters.contains(&from)) => {
                self.send(from, PeerMsg::Here);
                // The prober, left without supply and told nothing, is reachable now: an `Open` asked of it
                // that it never confirmed (every copy lost on the way) goes once more, so it opens as the far
                // end it is instead of waiting on a neighbour that answers.
                let unconfirmed: Vec<PeerMsg> = self
                    .pending
                    .iter()
                    .filter(|q| q.peer == from && !q.done && matches!(q.msg, PeerMsg::Open { .. }))
                    .map(|q| q.msg)
                    .collect();
                for m in unconfirmed {
                    self.send(from, m);
                }
            }
            PeerMsg::Here if self.s.upstream == Some(from) => self.orphan.upstream_here = true,
            PeerMsg::Here if self.s.tie == Some(from) => self.orphan.tie_here = true,
            _ => {}
        }
    }

    /// The newest current reading is below [`crate::lmu::DEAD_CURRENT_A`].
    fn no_current(&self) -> bool {
        self.i_max_a.is_finite() && self.i_max_a < crate::lmu::DEAD_CURRENT_A
    }

    /// Forward fault current passed here within the last [`DEAD_AFTER_PASSAGE_NS`].
    fn seen_forward(&self, t: u64) -> bool {
        self.last_forward_ns.is_some_and(|f| t.saturating_sub(f) < DEAD_AFTER_PASSAGE_NS)
    }

    /// The answer to a `Query`: forward fault current passed here within the last [`SEEN_ANSWER_NS`]. Longer
    /// than [`Self::seen_forward`]: over a congested channel a query can arrive after the fault was cleared
    /// below, and a "not seen" then would tell the asking LMU the fault was in its own section.
    fn seen_for_answer(&self, t: u64) -> bool {
        self.last_forward_ns.is_some_and(|f| t.saturating_sub(f) < SEEN_ANSWER_NS)
    }

    /// Graded scheme: a downstream neighbour saw the fault current in this episode.
    /// Graded scheme: the downstream neighbour `from` saw the fault current (`seen`) or not, as it answered,
    /// said unasked, or as an LMU beyond it was overheard saying.
    fn record_answer(&mut self, t: u64, from: PeerId, seen: bool) {
        if seen {
            // Like a block: the fault lies beyond that neighbour.
            self.blocked_until = t + ms(self.s.block_hold_ms);
        }
        if let Some(k) = self.answers.iter().position(|a| a.0 == from) {
            self.answers[k].1 |= seen;
            self.answers[k].2 = t;
        } else if self.answers.len() < MAX_NEIGHBOURS {
            self.answers.push((from, seen, t));
        }
    }

    fn any_seen_downstream(&self) -> bool {
        self.answers.iter().any(|a| a.1)
    }

    /// Graded scheme: every downstream neighbour answered "not seen" in this episode.
    fn all_clear_downstream(&self) -> bool {
        self.s.downstream.iter().all(|d| self.answers.iter().any(|a| a.0 == *d && !a.1))
    }

    /// Graded scheme: whether this LMU's own voltage has been healthy for the last second. Over the mesh a
    /// report can arrive a few hundred milliseconds after it was sent; one sent while this LMU was dead too
    /// (beyond the same break, since restored through a tie) says nothing about this LMU's section.
    fn steadily_healthy(&self, t: u64) -> bool {
        self.s.grading_ms == 0 || self.last_unhealthy_ns.is_none_or(|u| t.saturating_sub(u) >= 1_000_000_000)
    }

    fn close_tie(&mut self, t: u64, from: PeerId, section: PeerId) {
        self.tie_deferred = None;
        self.tie_requester = Some((from, section));
        self.report(FlisrReport::new(Role::Tie, Some(section), FaultKind::Unknown, None));
        self.command(t, true);
        self.tie_close_at = Some(t);
    }

    fn command(&mut self, t: u64, close: bool) {
        self.coil_closed = close;
        self.mode = Mode::Operating { since: t };
        if let Some(r) = self.current_mut() {
            r.commanded = Some(Instant(t));
        }
    }

    fn check_isolated(&mut self, t: u64) {
        let all_acked = self.pending.iter().filter(|p| matches!(p.msg, PeerMsg::Open { .. })).all(|p| p.done);
        if self.mode != Mode::Done && self.mode != Mode::Failed {
            return;
        }
        if !all_acked {
            return;
        }
        let Some((section, reply_to)) = self.isolating else { return };
        if let Some(r) = self.current_mut()
            && r.isolated.is_none()
        {
            r.isolated = Some(Instant(t));
        }
        if let Some(to) = reply_to
            && !self.pending.iter().any(|p| p.peer == to && matches!(p.msg, PeerMsg::Opened { .. }))
        {
            self.send(to, PeerMsg::Opened { section, ok: true });
            // Remember that the answer went out (never retried: the requester retries `Open`).
            self.pending.push(Pending {
                peer: to,
                msg: PeerMsg::Opened { section, ok: true },
                next_ns: 0,
                left: 0,
                done: true,
                jammed_retries: 0,
            });
        }
    }

    /// Runs the state machine at `now` with the protection state and the auxiliary contact (None if it
    /// could not be read) and the largest phase current (A).
    pub fn poll(&mut self, now: Instant, p: &ProtectionStatus, aux_closed: Option<bool>, i_max_a: f64) -> FlisrOutput {
        let t = now.as_nanos();
        let mut next: Option<u64> = None;
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        let forward = p.pickup && p.forward;
        self.i_max_a = i_max_a;
        self.healthy_now = p.voltage_healthy;
        self.step_here = p.unbalance_step || p.unbalance_seen_here;
        // No supply: dead, or a phase lost with the voltage out of the healthy band (not a mere unbalance
        // step, which a healthy bus sees when a single-phase load elsewhere is switched away). A low voltage
        // alone is supply (a part back-fed over a long weak feeder may stay below the healthy band).
        let unsupplied = self.dead || (p.loss_of_phase && !p.voltage_healthy && !p.unbalance_step);
        if !unsupplied {
            self.unsupplied_since = None;
            self.orphan = OrphanProbes::default();
        } else if self.unsupplied_since.is_none() {
            self.unsupplied_since = Some(t);
        }
        if !self.dead && (p.pickup || !p.voltage_healthy) && self.unsupplied_since.is_none() {
            self.live_dip_ns = Some(t);
        }
        if !p.voltage_healthy {
            self.lov_at = None;
        }
        if p.pickup {
            self.last_pickup_ns = Some(t);
        }
        if !p.voltage_healthy || self.dead {
            self.last_unhealthy_ns = Some(t);
        }
        if p.pickup || !p.voltage_healthy || self.dead {
            self.last_disturbance_ns = Some(t);
        }
        if forward {
            let ps = p.pickup_since.map_or(t, |s| s.as_nanos());
            if self.fwd_since.is_none() && !self.seen_forward(t) {
                // A new episode: forget the last one's answers, but not a `Beyond` that came just before this
                // LMU's own pickup (its neighbour sampled the same fault a little earlier).
                self.answers.retain(|a| a.1 && t.saturating_sub(a.2) <= ms(self.s.block_hold_ms));
                self.queries_sent = 0;
                self.seen_pushed = false;
                self.broadcast_beyond = false;
                self.episode_ns = Some(t);
            }
            self.fwd_since = Some(self.fwd_since.unwrap_or(t).max(ps));
            if self.coil_closed {
                self.last_forward_ns = Some(t);
            }
        } else {
            self.fwd_since = None;
        }
        if self.s.grading_ms > 0 {
            self.graded_messages(t, forward, &mut next);
        }
        let since = if forward { self.fwd_since } else { p.pickup_since.map(|s| s.as_nanos()) };
        if forward && self.coil_closed && self.mode == Mode::Normal && !self.s.is_tie {
            let unblocked = self.blocked_until <= t;
            let distance_m = self.distance(p);
            let kind = p.kind.unwrap_or(FaultKind::Unknown);
            let recent = self.passage.filter(|q| t.saturating_sub(q.last) < DEAD_AFTER_PASSAGE_NS);
            let first = recent.map_or(t, |q| q.since);
            let beyond_capacity = !self.may_interrupt(i_max_a) || recent.is_some_and(|q| q.beyond_capacity);
            self.passage = Some(Passage {
                since: since.unwrap_or(first).min(first),
                last: t,
                kind,
                distance_m,
                unblocked,
                beyond_capacity,
            });
        } else if let Some(q) = &mut self.passage
            && self.blocked_until > q.last
        {
            // A block that arrives after the passage (radio latency) still places the fault downstream.
            q.unblocked = false;
        }

        // Fault-passage flag: keep blocking the upstream neighbour while flagged (bounded in time).
        // An LMU whose contactor is commanded open no longer passes the fault current: it stops blocking.
        // Graded by jamming, the LMUs above need one `Block` to grade alike (it holds for the episode) and
        // their grading, not further blocks, keeps them from tripping first: a few copies over one hold time
        // suffice, and a jammed channel is spared the rest.
        if forward
            && self.coil_closed
            && self.s.grading_ms == 0
            && let (Some(up), Some(since)) = (self.s.upstream, since)
            && t <= if self.jam_graded(t, since) {
                self.graded_from_ns + ms(self.s.block_hold_ms)
            } else {
                since + ms(self.s.backup_delay_ms) + ms(100)
            }
        {
            let due = self.last_block_sent.is_none_or(|l| t >= l + ms(self.s.block_repeat_ms) || l < since);
            if due {
                let graded = self.graded_since == Some(since);
                self.send(up, PeerMsg::Block { graded });
                self.last_block_sent = Some(t);
            }
            want(self.last_block_sent.unwrap_or(t) + ms(self.s.block_repeat_ms), &mut next);
        }

        // Tie: switched onto a fault -> open again and lock out.
        if self.s.is_tie {
            if let Some(c) = self.tie_close_at
                && p.pickup
                && p.fault_current_a > self.s.sotf_current_a
                && t.saturating_sub(c) < 2_000_000_000
                && self.coil_closed
            {
                self.coil_closed = false;
                self.mode = Mode::Failed;
                if let Some((to, section)) = self.tie_requester {
                    self.send(to, PeerMsg::Restored { section, ok: false });
                }
            }
            if self.mode == Mode::Normal
                && !self.coil_closed
                && let Some((from, section)) = self.tie_deferred
            {
                let quiet_at = self.last_pickup_ns.map_or(t, |p| p + 1_000_000_000);
                if t >= quiet_at {
                    self.close_tie(t, from, section);
                } else {
                    want(quiet_at, &mut next);
                }
            }
            // An open tie watches the far end of its section: it reports a lost phase there.
            if self.mode == Mode::Normal && !self.coil_closed {
                self.signal_open_conductor(t, p, &mut next);
            }
        } else if self.mode == Mode::Normal {
            self.decide_trip(t, p, since, forward, &mut next);
        }

        // Contactor supervision.
        if let Mode::Operating { since } = self.mode {
            let confirmed = aux_closed == Some(self.coil_closed);
            let blocked_by_capacity = !self.coil_closed && !self.may_interrupt(i_max_a);
            if blocked_by_capacity {
                // Keep the coil energised until the current falls below the breaking capacity and the
                // sensor's full scale (the upstream fuse or breaker clears it).
                let out = FlisrOutput { coil_closed: true, next_deadline: Some(Instant(t + ms(1))) };
                self.mode = Mode::Operating { since: t };
                return out;
            }
            if confirmed {
                self.mode = Mode::Done;
                if let Some(r) = self.current_mut() {
                    r.confirmed = Some(now);
                }
                self.on_confirmed(t);
            } else if t >= since + ms(self.s.contactor_confirm_ms) {
                self.mode = Mode::Failed;
                if let Some(r) = self.current_mut() {
                    r.failed = true;
                }
                self.on_failed(t);
            } else {
                want(since + ms(self.s.contactor_confirm_ms), &mut next);
            }
        }

        // Retries of unanswered requests (bounded).
        let mut resend: Vec<(PeerId, PeerMsg)> = Vec::new();
        let gap = |left: u8| retry_gap_ns(&self.s, left);
        let jammed = self.jammed;
        for q in &mut self.pending {
            if !q.done && q.left > 0 && t >= q.next_ns {
                // On a jammed channel not counted: the silence is the jammer's.
                if jammed && q.retry_while_jammed(t, gap(q.left)) {
                    self.jammed_retries += 1;
                } else {
                    q.left -= 1;
                    q.next_ns = t + gap(q.left);
                }
                resend.push((q.peer, q.msg));
            }
            if !q.done && q.left > 0 {
                want(q.next_ns, &mut next);
            }
        }
        for (to, m) in resend {
            self.send(to, m);
        }
        self.extend_unanswered_isolation(t, &mut next);
        self.stand_in_for_silent_neighbours(t, forward, &mut next);
        self.stand_in_for_silent_opener(t, &mut next);
        self.isolate_orphaned_part(t, &mut next);
        // A deadline that is not in the future would spin the caller: drop it (every condition above is
        // re-evaluated at the next poll anyway).
        FlisrOutput { coil_closed: self.coil_closed, next_deadline: next.filter(|&n| n > t).map(Instant) }
    }

    fn decide_trip(&mut self, t: u64, p: &ProtectionStatus, since: Option<u64>, forward: bool, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        // Standalone time-graded element.
        if let Some(_cause) = p.trip {
            self.report(FlisrReport::new(Role::Standalone, None, p.kind.unwrap_or(FaultKind::Unknown), p.pickup_since));
            self.command(t, false);
            return;
        }
        if forward
            && let Some(since) = since
            && self.s.grading_ms > 0
        {
            if p.explained_by_interruption && p.interrupted_below.is_some_and(|s| s.as_nanos() >= since) {
                // A device below interrupted the fault, and what still holds the pickup is what it took away
                // (an export beyond it): nothing is left for this LMU to clear, whether or not that device's
                // `Cleared` has arrived yet. A fault left over after the step keeps the current above the
                // state after it, and the decision goes on as before.
                return;
            }
            let bf = self.breaker_failure_at.is_some_and(|b| b + 1_000_000_000 >= t);
            let decide_at = since + ms(self.s.logic_delay_ms);
            let graded_at = decide_at + ms(self.s.grading_ms) * self.s.height as u64;
            let seen_beyond = self.any_seen_downstream() || self.blocked_until > t;
            let kind = p.kind.unwrap_or(FaultKind::Unknown);
            if t >= decide_at && !seen_beyond && (self.all_clear_downstream() || t >= graded_at) {
                // The fault is in this section: confirmed by every downstream neighbour, or the graded time
                // ran out with no neighbour having seen it.
                let mut r = FlisrReport::new(Role::Primary, Some(self.s.me), kind, Some(Instant(since)));
                r.distance_m = self.distance(p);
                self.report(r);
                self.isolate_own_section(t);
                return;
            }
            // Known to be backup: the margin over its graded time leaves the LMU that saw the fault beyond it
            // time to clear it and say so (`Cleared`) over the radio.
            let backup_at = graded_at + ms(self.s.backup_delay_ms);
            if seen_beyond && (bf || t >= backup_at) {
                // The fault lies beyond a downstream neighbour and persists past this LMU's graded time.
                self.report(FlisrReport::new(Role::Backup, None, kind, Some(Instant(since))));
                self.command(t, false);
                return;
            }
            want(
                if t < decide_at {
                    decide_at
                } else if seen_beyond {
                    backup_at
                } else {
                    graded_at
                },
                next,
            );
            return;
        }
        if forward
            && let Some(since) = since
            && self.jam_graded(t, since)
        {
            let bf = self.breaker_failure_at.is_some_and(|b| b + 1_000_000_000 >= t);
            let graded_at = since + ms(self.s.logic_delay_ms) + ms(self.s.jam_grading_ms) * self.s.height as u64;
            // Blocked in this episode: a fault beyond a downstream neighbour, which grades faster.
            let blocked = self.block_rx_ns.is_some_and(|b| b + ms(self.s.block_hold_ms) >= since);
            let kind = p.kind.unwrap_or(FaultKind::Unknown);
            let backup_at = graded_at + ms(self.s.backup_delay_ms);
            if !blocked && t >= graded_at {
                // Graded time ran out and the fault persists: it is in this section.
                let mut r = FlisrReport::new(Role::Primary, Some(self.s.me), kind, Some(Instant(since)));
                r.distance_m = self.distance(p);
                self.report(r);
                self.isolate_own_section(t);
                return;
            }
            if bf || t >= backup_at {
                self.report(FlisrReport::new(Role::Backup, None, kind, Some(Instant(since))));
                self.command(t, false);
                return;
            }
            want(if blocked { backup_at } else { graded_at }, next);
            return;
        }
        if forward && let Some(since) = since {
            let bf = self.breaker_failure_at.is_some_and(|b| b + 1_000_000_000 >= t);
            let decide_at = since + ms(self.s.logic_delay_ms);
            let backup_at = since + ms(self.s.backup_delay_ms);
            if t >= decide_at && self.blocked_until < decide_at && self.blocked_until <= t {
                // Last flagged LMU: the fault is in its own section.
                let mut r = FlisrReport::new(
                    Role::Primary,
                    Some(self.s.me),
                    p.kind.unwrap_or(FaultKind::Unknown),
                    Some(Instant(since)),
                );
                r.distance_m = self.distance(p);
                self.report(r);
                self.isolate_own_section(t);
                return;
            }
            if bf || t >= backup_at {
                self.report(FlisrReport::new(
                    Role::Backup,
                    None,
                    p.kind.unwrap_or(FaultKind::Unknown),
                    Some(Instant(since)),
                ));
                self.command(t, false);
                return;
            }
            if t < decide_at {
                want(decide_at, next);
            } else {
                want(backup_at, next);
            }
            return;
        }
        // The section went dead right after unblocked fault current passed here: the upstream fuse or
        // breaker cleared a fault in this LMU's own section (too much current for this contactor, or faster
        // than the logic delay). Locate it here and isolate (opening a dead line).
        // Graded scheme: the answers may come after the measurement that saw the line dead (a VT on the
        // source side of the cleared device sees the voltage return at once): remember that it went dead.
        if self.s.grading_ms > 0 {
            if self.passage.is_some_and(|q| t.saturating_sub(q.last) < DEAD_AFTER_PASSAGE_NS) {
                // No current through the closed contactor counts too: the VT may sit on the live side.
                // After a current this contactor could not break, no current through it counts too: the
                // upstream device cleared it (the VT may sit on the live side). So it does after any fault
                // current once every downstream neighbour has said it saw none: the feeder-head breaker, on its
                // inverse-time curve, can beat an interrogation slowed down by a congested channel.
                let cleared_upstream = self.no_current()
                    && (self.passage.is_some_and(|q| q.beyond_capacity) || self.all_clear_downstream());
                self.went_dead |= self.dead || cleared_upstream;
            } else {
                self.went_dead = false;
            }
        }
        let dead = self.dead || (self.s.grading_ms > 0 && self.went_dead);
        if dead
            && self.s.grading_ms > 0
            && let Some(q) = self.passage
            && t.saturating_sub(q.last) < DEAD_AFTER_PASSAGE_NS
            && (!q.unblocked || self.any_seen_downstream())
        {
            // A downstream neighbour saw the fault current: it is beyond, not here.
            self.passage = None;
        }
        if dead
            && self.s.grading_ms > 0
            && let Some(q) = self.passage
            && !self.all_clear_downstream()
            && t.saturating_sub(q.last) < DEAD_WAIT_NS
        {
            // Wait for the downstream neighbours' answers (bounded).
            want(q.last + DEAD_WAIT_NS, next);
            return;
        }
        if dead
            && let Some(q) = self.passage
            && q.unblocked
            && t.saturating_sub(q.last) < DEAD_AFTER_PASSAGE_NS
        {
            self.passage = None;
            self.went_dead = false;
            let mut r = FlisrReport::new(Role::Primary, Some(self.s.me), q.kind, Some(Instant(q.since)));
            r.distance_m = q.distance_m;
            self.report(r);
            self.isolate_own_section(t);
            return;
        }
        // Open conductor: healthy here, but a phase current collapsed or a downstream neighbour lost a phase.
        self.signal_open_conductor(t, p, next);
        let lov_recent = self.lov_at.is_some_and(|l| t.saturating_sub(l) < 2_000_000_000);
        if (p.current_drop || lov_recent) && p.voltage_healthy && !p.loss_of_phase && !forward {
            let oc = *self.oc_since.get_or_insert(t);
            // A downstream neighbour that lost a phase while this LMU stays healthy, with no current drop here
            // (DER held the load), bounds the break at once; a current drop waits for `DropSeen` from further
            // down.
            // Graded scheme: the downstream neighbours report one stagger step after this LMU would.
            // A leaf LMU (no downstream neighbour) has no one to wait for: nobody below can report a drop or
            // a lost phase, so the break lies in its own section.
            let leaf = self.s.downstream.is_empty();
            let slot = if self.s.grading_ms > 0 && !leaf { OC_STAGGER_NS * (self.s.depth as u64 + 1) } else { 0 };
            // Graded scheme: a lost voltage reported from downstream while this LMU is healthy is positive
            // evidence that the break lies between them, so it decides at once, current drop or not (a
            // `DropSeen` from that side still says the break is further down).
            let positive = lov_recent && (!p.current_drop || (self.s.grading_ms > 0 && self.lov_strong));
            // A current drop alone locates the break here only when no downstream neighbour says otherwise
            // (`DropSeen`); over the mesh that veto can take a few hundred milliseconds (retries on a long
            // hop), and a break with a neighbour beyond it is located by that neighbour's positive report
            // long before, so the graded scheme waits `DROP_ONLY_WAIT_NS` more.
            let extra = if self.s.grading_ms > 0 && !leaf {
                DROP_ONLY_WAIT_NS + DROP_HEIGHT_NS * self.s.height as u64
            } else {
                0
            };
            let decide_at = if positive { oc } else { oc + ms(self.s.open_conductor_logic_ms) + slot + extra };
            // Graded scheme: on a drop alone, an LMU below that opens meanwhile takes a further share of the
            // current here; the break is then that LMU's (located there on its own drop), not this one's. (A
            // load step as large within the wait would make this LMU stand down as well.)
            let i_ref = *self.oc_i_ref_a.get_or_insert(self.i_max_a);
            let gone = i_ref - self.i_max_a;
            if self.s.grading_ms > 0
                && !positive
                && self.i_max_a.is_finite()
                && gone >= DOWNSTREAM_OPEN_MIN_A
                && gone >= DOWNSTREAM_OPEN_SHARE * i_ref
            {
                if !self.oc_blocked {
                    self.oc_opened_below_ns = Some(t);
                }
                self.oc_blocked = true;
            }
            if self.oc_blocked {
                // Passed on to a downstream neighbour; nothing to decide here.
            } else if t >= decide_at {
                if self.drop_blocked_until <= t {
                    let kind = if lov_recent && self.lov_neutral && !p.current_drop {
                        FaultKind::BrokenNeutral
                    } else {
                        FaultKind::OpenConductor
                    };
                    let mut r = FlisrReport::new(Role::Primary, Some(self.s.me), kind, Some(Instant(oc)));
                    r.distance_m = None;
                    self.report(r);
                    self.isolate_own_section(t);
                } else {
                    want(self.drop_blocked_until, next);
                }
            } else {
                want(decide_at, next);
            }
        } else {
            self.oc_since = None;
            self.oc_blocked = false;
            self.oc_i_ref_a = None;
        }
    }

    /// Graded scheme: queries the downstream neighbours while flagged (at the flag's rise, then every
    /// `block_repeat_ms` while answers are missing, [`QUERIES_MAX`] at most), and answers the upstream
    /// neighbour's queries ("seen" at once, "not seen" after a logic delay of watching).
    fn graded_messages(&mut self, t: u64, forward: bool, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        if forward && self.coil_closed && self.mode == Mode::Normal && !self.s.is_tie {
            // Say "seen" upstream unasked, once per episode: the upstream neighbour then knows it is not the
            // last flagged LMU without asking, so only the last one's question and its answer cross the
            // channel, instead of a query and an answer for every LMU on the fault current's path.
            // Over a shared channel the LMUs above overhear this LMU's broadcast at its query slot instead;
            // only an upstream neighbour reached over relays is told at once.
            let relayed_up = self.s.upstream.filter(|u| !self.s.overhearing || self.s.relayed.binary_search(u).is_ok());
            if !self.seen_pushed
                && let Some(up) = relayed_up
            {
                self.seen_pushed = true;
                self.send(up, PeerMsg::Beyond);
            }
            // Once one neighbour has seen the fault current, this LMU is not the last: no more queries.
            let missing = !self.any_seen_downstream()
                && self.s.downstream.iter().any(|d| !self.answers.iter().any(|a| a.0 == *d));
            let first_due = self.fwd_since.unwrap_or(t) + QUERY_STAGGER_NS * self.s.height as u64;
            if self.s.overhearing && self.s.downstream.is_empty() && !self.broadcast_beyond {
                // A leaf has nobody to ask: it tells the LMUs above in one broadcast.
                self.broadcast_beyond = true;
                if self.s.upstream.is_some_and(|u| self.s.relayed.binary_search(&u).is_err()) {
                    self.send(BROADCAST_PEER, PeerMsg::Beyond);
                }
            }
            if missing && self.queries_sent == 0 && t < first_due {
                want(first_due, next);
            } else if missing && self.queries_sent < QUERIES_MAX {
                if self.queries_sent == 0 || t >= self.last_query_ns + ms(self.s.block_repeat_ms) {
                    let age_ms = (t.saturating_sub(self.fwd_since.unwrap_or(t)) / 1_000_000).min(u16::MAX as u64);
                    // The first question: one broadcast for the neighbours in radio range (which the LMUs above
                    // overhear), unicast to those reached over relays. Repeats go by unicast (acknowledged) to
                    // whoever has not answered.
                    let broadcast = self.s.overhearing && self.queries_sent == 0;
                    if broadcast
                        && self.s.downstream.iter().any(|d| {
                            !self.answers.iter().any(|a| a.0 == *d) && self.s.relayed.binary_search(d).is_err()
                        })
                    {
                        self.send(BROADCAST_PEER, PeerMsg::Query { age_ms: age_ms as u16 });
                    }
                    for d in self.s.downstream.clone() {
                        if broadcast && self.s.relayed.binary_search(&d).is_err() {
                            continue;
                        }
                        if !self.answers.iter().any(|a| a.0 == d) {
                            self.send(d, PeerMsg::Query { age_ms: age_ms as u16 });
                        }
                    }
                    self.queries_sent += 1;
                    self.last_query_ns = t;
                }
                if self.queries_sent < QUERIES_MAX {
                    want(self.last_query_ns + ms(self.s.block_repeat_ms), next);
                }
            }
        }
        if self.to_answer.is_empty() {
            return;
        }
        let seen = self.seen_for_answer(t);
        let mut k = 0;
        while k < self.to_answer.len() {
            let (to, due) = self.to_answer[k];
            if seen || t >= due {
                self.to_answer.swap_remove(k);
                self.send(to, PeerMsg::Passage { seen });
            } else {
                want(due, next);
                k += 1;
            }
        }
    }

    /// Tells the upstream neighbour about a lost phase (`LossOfVoltage`) or a collapsed phase current
    /// (`DropSeen`) here, three times 20 ms apart per episode.
    fn signal_open_conductor(&mut self, t: u64, p: &ProtectionStatus, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        // Over the acknowledged mesh (the graded scheme) the MAC retries each copy; lost-voltage reports go
        // once (the LMUs beyond a break all send one), a `DropSeen` twice: it is the only veto an upstream LMU
        // waits for before locating a break on its own current drop, and a copy whose MAC gave up is gone.
        let (copies, drop_copies): (u8, u8) = if self.s.grading_ms > 0 { (1, 2) } else { (3, 3) };
        let (lov_stagger, stagger) = if self.s.grading_ms > 0 {
            // Siblings (one depth) detect the same event at once: over a shared channel their reports would
            // start together and collide, so each waits its place among them as well.
            let place =
                if self.s.overhearing { REPORT_SIBLING_STAGGER_NS * u64::from(self.s.sibling_index) } else { 0 };
            (LOV_STAGGER_NS * self.s.depth as u64 + place, OC_STAGGER_NS * self.s.depth as u64 + place)
        } else {
            (0, 0)
        };
        if !p.loss_of_phase {
            self.lov_due = None;
        }
        if !p.current_drop {
            self.drop_due = None;
        }
        if self.s.upstream.is_some() {
            if p.loss_of_phase && self.lov_sent == 0 && t < *self.lov_due.get_or_insert(t + lov_stagger) {
                want(self.lov_due.unwrap_or(t), next);
            } else if p.loss_of_phase {
                if let Some(up) = self.s.upstream
                    && self.lov_sent < copies
                    && (self.lov_sent == 0 || t >= self.last_lov_sent + ms(20))
                {
                    self.send(up, PeerMsg::lost_supply(p));
                    self.lov_sent += 1;
                    self.last_lov_sent = t;
                    self.first_lov_sent_ns.get_or_insert(t);
                }
                if self.lov_sent < copies && self.s.upstream.is_some() {
                    want(self.last_lov_sent + ms(20), next);
                }
            } else {
                self.lov_sent = 0;
            }
            // A lost phase can turn into no supply at all (the upstream neighbour opened on the break and
            // asked nobody below to open): the escalation stays armed until the supply is healthy again.
            if p.voltage_healthy {
                self.first_lov_sent_ns = None;
                self.lov_escalated = false;
                self.lov_repeated = false;
            } else {
                self.repeat_lost_phase(t, p, next);
                self.escalate_lost_phase(t, p, next);
            }
            if p.current_drop && self.drop_sent == 0 && t < *self.drop_due.get_or_insert(t + stagger) {
                want(self.drop_due.unwrap_or(t), next);
            } else if p.current_drop {
                if let Some(up) = self.s.upstream
                    && self.drop_sent < drop_copies
                    && (self.drop_sent == 0 || t >= self.last_drop_sent + ms(20))
                {
                    self.send(up, PeerMsg::DropSeen);
                    self.drop_sent += 1;
                    self.last_drop_sent = t;
                }
                if self.drop_sent < drop_copies && self.s.upstream.is_some() {
                    want(self.last_drop_sent + ms(20), next);
                }
            } else {
                self.drop_sent = 0;
            }
        }
    }

    /// Graded scheme: a lost phase reported [`LOV_ESCALATE_NS`] ago, the supply still not healthy (the phase
    /// still lost, or every phase gone since), with this LMU neither
    /// asked to open nor given its supply back, is reported once more to the LMU above the upstream neighbour
    /// (`upstream_next`). The upstream neighbour, which should have isolated a break in its own section, may
    /// be deaf or mute (its radio dead); the LMU above it stands in for it and asks this one to open (see the
    /// `LossOfVoltage` arm of [`Flisr::on_peer`]).
    /// Graded scheme: the lost-phase report goes once more to the upstream neighbour [`LOV_REPEAT_NS`] after
    /// the first, if the phase is still lost and nobody asked this LMU to open. Every LMU beyond a break
    /// reports at once, and the one report that decides (the nearest's) can drown in that burst; by the
    /// repeat the burst is over, and where the break was isolated as planned the repeat never goes (this LMU
    /// opened, or the tie gave its supply back).
    fn repeat_lost_phase(&mut self, t: u64, p: &ProtectionStatus, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        let (Some(first), Some(up)) = (self.first_lov_sent_ns, self.s.upstream) else { return };
        if self.s.grading_ms == 0
            || self.lov_repeated
            || !p.loss_of_phase
            || self.s.is_tie
            || self.mode != Mode::Normal
            || !self.coil_closed
            || self.isolating.is_some()
        {
            return;
        }
        let due = first + LOV_REPEAT_NS;
        if t < due {
            want(due, next);
            return;
        }
        self.lov_repeated = true;
        self.send(up, PeerMsg::lost_supply(p));
    }

    fn escalate_lost_phase(&mut self, t: u64, p: &ProtectionStatus, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        let (Some(first), Some(up2)) = (self.first_lov_sent_ns, self.s.upstream_next) else { return };
        if self.s.grading_ms == 0
            || self.lov_escalated
            || self.s.is_tie
            || self.mode != Mode::Normal
            || !self.coil_closed
            || self.isolating.is_some()
        {
            return;
        }
        let due = first + LOV_ESCALATE_NS + OC_STAGGER_NS * self.s.depth as u64;
        if t < due {
            want(due, next);
            return;
        }
        self.lov_escalated = true;
        self.send(up2, PeerMsg::lost_supply(p));
    }

    fn isolate_own_section(&mut self, t: u64) {
        let me = self.s.me;
        self.isolating = Some((me, None));
        self.command(t, false);
        let down = self.s.downstream.clone();
        for d in down {
            self.send_reliable(t, d, PeerMsg::Open { section: me });
        }
    }

    /// Blocking scheme: whether the episode that picked up at `since` is decided by time grading (see
    /// [`FlisrSettings::jam_grading_ms`]): this LMU's channel is jammed, or a downstream neighbour's `Block`
    /// in the episode said its path is. Once so, it stays so until the episode ends.
    fn jam_graded(&mut self, t: u64, since: u64) -> bool {
        if self.s.grading_ms > 0 || self.s.jam_grading_ms == 0 {
            return false;
        }
        let told = self.graded_block_ns.is_some_and(|g| g + ms(self.s.block_hold_ms) >= since);
        if self.graded_since != Some(since) && (self.jammed || told) {
            self.graded_since = Some(since);
            self.graded_from_ns = t;
            self.jam_graded_episodes += 1;
        }
        self.graded_since == Some(since)
    }

    /// An `Open` of our own isolation that a downstream neighbour left unanswered through every retry (its
    /// radio dead, its controller down: an LMU whose contactor merely failed answers after extending the
    /// isolation itself) goes to that neighbour's downstream neighbours, once: the isolated zone grows by its
    /// section, and the boundaries beyond confirm and ask their ties to restore the rest.
    fn extend_unanswered_isolation(&mut self, t: u64, next: &mut Option<u64>) {
        let Some((section, _)) = self.isolating else { return };
        let mut given_up: Vec<PeerId> = Vec::new();
        let mut again: Vec<PeerId> = Vec::new();
        for q in &mut self.pending {
            if q.done
                || q.left > 0
                || q.next_ns == u64::MAX
                || !matches!(q.msg, PeerMsg::Open { section: s } if s == section)
            {
                continue;
            }
            if t >= q.next_ns && self.jammed && q.retry_while_jammed(t, retry_gap_ns(&self.s, 0)) {
                // The far end's `Opened` may be what the jammer drowns here: ask it again rather than open
                // a healthy section beyond it.
                self.jammed_retries += 1;
                again.push(q.peer);
                *next = Some(next.map_or(q.next_ns, |n: u64| n.min(q.next_ns)));
                continue;
            }
            if t >= q.next_ns {
                if self.s.downstream_next.iter().any(|&(d, _)| d == q.peer) {
                    // Replaced by the `Open`s beyond it (their answers confirm the isolation).
                    q.done = true;
                    given_up.push(q.peer);
                } else {
                    // Nothing beyond to ask: the isolation stays unconfirmed.
                    q.next_ns = u64::MAX;
                }
            } else {
                *next = Some(next.map_or(q.next_ns, |n: u64| n.min(q.next_ns)));
            }
        }
        for to in again {
            self.send(to, PeerMsg::Open { section });
        }
        if given_up.is_empty() {
            return;
        }
        let beyond: Vec<PeerId> =
            self.s.downstream_next.iter().filter(|(d, _)| given_up.contains(d)).map(|&(_, n)| n).collect();
        for n in beyond {
            self.send_reliable(t, n, PeerMsg::Open { section });
        }
        self.check_isolated(t);
    }

    /// Fault current passed this LMU, was interrupted below it, and no downstream neighbour said "seen" in the
    /// episode (no `Beyond`, no `Passage { seen: true }`, no `Cleared`) while this LMU kept its supply; one or
    /// more said nothing at all, not even to its query. A silent neighbour on the fault's path (its radio
    /// dead) is the likeliest interrupter, and its `Open`s to the far end of its section never left. Once per
    /// episode, [`STAND_IN_WAIT_NS`] after the current stopped, this LMU sends them in its place to the LMUs
    /// below the silent ones (`downstream_next`). Those obey only while they have no supply: where the fault
    /// lay further down (they have supply) the request is refused and nothing moves; where it was the silent
    /// LMU's own section, they open, confirm, and ask their ties to restore the rest. Sent once, not retried
    /// (the mesh's MAC retries it): this LMU isolates nothing itself, so it awaits no confirmation.
    fn stand_in_for_silent_neighbours(&mut self, t: u64, forward: bool, next: &mut Option<u64>) {
        if self.s.grading_ms == 0
            || self.s.is_tie
            || self.s.downstream_next.is_empty()
            || forward
            || self.mode != Mode::Normal
            || !self.coil_closed
            || !self.healthy_now
            || self.dead
        {
            return;
        }
        let (Some(last), Some(episode)) = (self.last_forward_ns, self.episode_ns) else { return };
        // A neighbour that said "seen" is alive on the fault's path: it isolates its own section. Silence
        // counts only from a neighbour that was asked (an LMU far up may see the fault cleared below before
        // its first query is due, and then knows nothing of its neighbours).
        if self.stood_in_for == Some(episode)
            || self.queries_sent == 0
            || self.answers.iter().any(|a| a.1)
            || self.cleared_at.is_some_and(|c| c >= episode)
        {
            return;
        }
        let silent = |d: PeerId| !self.answers.iter().any(|a| a.0 == d);
        if !self.s.downstream.iter().any(|&d| silent(d)) {
            return;
        }
        // An interrupter below that can talk says `Cleared`, passed up the fault current's path LMU by LMU;
        // a second is long enough for it to come up a congested channel.
        let due = last + STAND_IN_WAIT_NS;
        if t < due {
            *next = Some(next.map_or(due, |n: u64| n.min(due)));
            return;
        }
        self.stood_in_for = Some(episode);
        let beyond: Vec<(PeerId, PeerId)> =
            self.s.downstream_next.iter().copied().filter(|&(d, _)| !self.answers.iter().any(|a| a.0 == d)).collect();
        for (silent, n) in beyond {
            self.send(n, PeerMsg::Open { section: silent });
            self.opens_stood_in += 1;
        }
    }

    /// The open-conductor counterpart of [`Flisr::stand_in_for_silent_neighbours`]. This LMU saw a phase
    /// current collapse with healthy voltage here, and then an LMU below take the rest of that current (it
    /// opened on the break, located in its own section on its own drop), but no downstream neighbour said
    /// `DropSeen` in the episode nor `Cleared` after the opening. An opener whose radio works says both
    /// (`DropSeen` before it decides, `Cleared` once open), and it sends its own `Open`s to the far end of its
    /// section; one whose radio is dead does neither, and the LMUs beyond the break, which report their lost
    /// phase to it, are never asked to open. Once per opening, [`STAND_IN_WAIT_NS`] after it, this LMU sends
    /// `Open` for each downstream neighbour's section to the LMUs below them (`downstream_next`). Those obey
    /// only with local evidence (a lost phase, no supply): below the break they open, confirm and ask their
    /// ties to restore; elsewhere the request is refused and nothing moves.
    fn stand_in_for_silent_opener(&mut self, t: u64, next: &mut Option<u64>) {
        if self.s.grading_ms == 0
            || self.s.is_tie
            || self.s.downstream_next.is_empty()
            || self.mode != Mode::Normal
            || !self.coil_closed
            || !self.healthy_now
            || self.dead
        {
            return;
        }
        let Some(opened) = self.oc_opened_below_ns else { return };
        if self.oc_stood_in_for == Some(opened) {
            return;
        }
        // A `DropSeen` goes out when the drop is seen, well before the opener decides (at least
        // `DROP_ONLY_WAIT_NS` later); a `Cleared` after the opening.
        let talked =
            self.drop_seen_ns.is_some_and(|d| d.saturating_add(STAND_IN_WAIT_NS + DROP_ONLY_WAIT_NS) >= opened)
                || self.cleared_heard_ns.is_some_and(|c| c >= opened);
        if talked {
            self.oc_stood_in_for = Some(opened);
            return;
        }
        let due = opened + STAND_IN_WAIT_NS;
        if t < due {
            *next = Some(next.map_or(due, |n: u64| n.min(due)));
            return;
        }
        self.oc_stood_in_for = Some(opened);
        for (silent, n) in self.s.downstream_next.clone() {
            self.send(n, PeerMsg::Open { section: silent });
            self.opens_stood_in += 1;
        }
    }

    /// Graded scheme: this LMU has a tie and has been without supply since a fault's dip for
    /// [`ORPHAN_WAIT_NS`], and no neighbour asked it to open. Where the upstream neighbour tripped on the fault
    /// in its own section (or on one beyond it that it could not be told about) with its radio dead, its
    /// `Open`s never left, and where the only radio path from the LMU above it to this one runs through that
    /// radio, no stand-in reaches this LMU either: nothing would ever isolate the section or restore the part
    /// below it. So this LMU asks its upstream neighbour whether it is there ([`ORPHAN_PROBES`] `Probe`s);
    /// any `Here` ends the matter (the neighbour talks: isolation and restoration are its LMUs' to decide). If
    /// none comes, it opens as the far end of that neighbour's section, the evidence being its own (a dip, then
    /// no supply), and asks its tie to restore the part below. A section isolated this way may hold one
    /// section more than the fault's (the upstream neighbour's, where the fault lay above it), never a
    /// supplied one: with supply back this LMU asks nothing.
    fn isolate_orphaned_part(&mut self, t: u64, next: &mut Option<u64>) {
        let want = |x: u64, next: &mut Option<u64>| *next = Some(next.map_or(x, |n: u64| n.min(x)));
        let (Some(up), Some(tie), Some(since)) = (self.s.upstream, self.s.tie, self.unsupplied_since) else {
            return;
        };
        if self.s.grading_ms == 0
            || self.s.is_tie
            || self.mode != Mode::Normal
            || !self.coil_closed
            || self.isolating.is_some()
            || self.orphan.upstream_here
            || self.orphan.gave_up
            || !self.live_dip_ns.is_some_and(|d| d <= since && since - d <= ORPHAN_DIP_NS)
        {
            return;
        }
        let due = since + ORPHAN_WAIT_NS;
        if t < due {
            want(due, next);
            return;
        }
        let o = &mut self.orphan;
        if o.sent < ORPHAN_PROBES {
            if o.sent == 0 || t >= o.last_ns + ORPHAN_PROBE_GAP_NS {
                o.sent += 1;
                o.last_ns = t;
                let to_tie = !o.tie_here;
                self.send(up, PeerMsg::Probe);
                if to_tie {
                    self.send(tie, PeerMsg::Probe);
                }
            }
            want(self.orphan.last_ns + ORPHAN_PROBE_GAP_NS, next);
            return;
        }
        let decide = o.last_ns + ORPHAN_PROBE_GAP_NS;
        if t < decide {
            want(decide, next);
            return;
        }
        if !self.orphan.tie_here {
            // Nobody answered, not even the tie: this LMU's own radio is the likelier to be dead, and then it
            // could not ask the tie to restore anything either.
            self.orphan.gave_up = true;
            return;
        }
        self.orphan_opens += 1;
        self.orphan_section = Some(up);
        self.isolating = Some((up, None));
        self.report(FlisrReport::new(Role::Boundary, Some(up), FaultKind::Unknown, None));
        self.command(t, false);
    }

    fn on_confirmed(&mut self, t: u64) {
        if self.s.is_tie {
            if let Some((to, section)) = self.tie_requester {
                self.send(to, PeerMsg::Restored { section, ok: true });
                if let Some(r) = self.current_mut() {
                    r.restored = Some(Instant(t));
                }
            }
            return;
        }
        // Also after isolating an open conductor: the flows upstream change just the same.
        let interrupter = self
            .current
            .and_then(|k| self.reports.get(k))
            .is_some_and(|r| matches!(r.role, Role::Primary | Role::Backup | Role::Standalone));
        if !self.coil_closed && interrupter {
            self.send_cleared();
        }
        if let Some((section, reply_to)) = self.isolating {
            // A downstream boundary asks its tie to back-feed the healthy part beyond it.
            if (reply_to.is_some() || self.orphan_section == Some(section))
                && let Some(tie) = self.s.tie
            {
                self.send_reliable(t, tie, PeerMsg::Restore { section });
            }
            self.check_isolated(t);
        }
    }

    /// Tells the upstream neighbour the fault current through here is interrupted (three copies: the
    /// message is not acknowledged).
    fn send_cleared(&mut self) {
        // The graded scheme runs over an acknowledged link (the mesh's MAC retries), but a frame whose MAC
        // gives up (channel busy through every backoff, as during the burst of isolation and restoration
        // frames) is gone, and without it the LMUs above locate an open conductor on their own current drop:
        // two copies, the second queued behind the first's retries.
        let copies = if self.s.grading_ms > 0 { 2 } else { 3 };
        if let Some(up) = self.s.upstream {
            for _ in 0..copies {
                self.send(up, PeerMsg::Cleared);
            }
        }
    }

    fn on_failed(&mut self, t: u64) {
        if self.s.is_tie {
            if let Some((to, section)) = self.tie_requester {
                self.send(to, PeerMsg::Restored { section, ok: false });
            }
            return;
        }
        // Ask the upstream neighbour to back us up now.
        if let Some(up) = self.s.upstream {
            self.send(up, PeerMsg::BreakerFailure);
        }
        // As a downstream boundary, extend the isolation one step further down.
        if let Some((section, Some(_))) = self.isolating {
            let down = self.s.downstream.clone();
            for d in down {
                self.send_reliable(t, d, PeerMsg::Open { section });
            }
            self.check_isolated(t);
        }
    }

    fn distance(&self, p: &ProtectionStatus) -> Option<f64> {
        let z = p.loop_impedance?;
        if self.s.x_loop_ohm_per_km <= 0.0 || !z.im.is_finite() || z.im < 0.0 {
            return None;
        }
        let d = 1000.0 * z.im / self.s.x_loop_ohm_per_km;
        if self.s.section_length_m > 0.0 && d > 1.5 * self.s.section_length_m {
            return None;
        }
        Some(d)
    }
}

const fn ms(x: u32) -> u64 {
    x as u64 * 1_000_000
}

/// The next of two optional deadlines.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Deadline `d` after `now`.
pub fn after(now: Instant, d: Duration) -> Instant {
    now + d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_rejected() {
        let all = [
            PeerMsg::Block { graded: false },
            PeerMsg::Block { graded: true },
            PeerMsg::LossOfVoltage,
            PeerMsg::DropSeen,
            PeerMsg::BreakerFailure,
            PeerMsg::Open { section: 7 },
            PeerMsg::Opened { section: 65535, ok: true },
            PeerMsg::Restore { section: 3 },
            PeerMsg::Restored { section: 3, ok: false },
            PeerMsg::UnbalanceSeen,
            PeerMsg::Cleared,
            PeerMsg::NeutralDisplaced,
            PeerMsg::Query { age_ms: 0 },
            PeerMsg::Query { age_ms: 65535 },
            PeerMsg::Passage { seen: true },
            PeerMsg::Passage { seen: false },
            PeerMsg::Beyond,
            PeerMsg::Probe,
            PeerMsg::Here,
        ];
        for m in all {
            assert_eq!(PeerMsg::decode(&m.encode()), Ok(m));
            assert!(!PeerMsg::NAMES[m.encode()[0] as usize].is_empty());
            // Reports are the lost-voltage family and the current drop: what every LMU beyond one event sends.
            let name = PeerMsg::NAMES[m.encode()[0] as usize];
            let family = ["loss_of_voltage", "drop_seen", "unbalance_seen", "neutral_displaced"];
            assert_eq!(m.is_report(), family.contains(&name), "{name}");
        }
        assert!(PeerMsg::decode(&[17, 0, 0, 0]).is_err());
        assert!(PeerMsg::decode(&[1, 0, 0]).is_err());
        assert!(PeerMsg::decode(&[6, 0, 0, 2]).is_err());
    }

    #[test]
    fn a_displaced_neutral_downstream_is_located_here_as_a_broken_neutral_and_isolated() {
        // LMU 1, healthy, with LMU 2 downstream: LMU 2 reports its star point displaced.
        let healthy = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        let mut f = head_lmu();
        f.poll(at(0), &healthy, Some(true), 60.0);
        f.on_peer(at(170), 2, PeerMsg::NeutralDisplaced);
        let out = f.poll(at(171), &healthy, Some(true), 60.0);
        assert!(!out.coil_closed);
        let r = f.reports().next().copied().unwrap();
        assert_eq!((r.role, r.section, r.kind), (Role::Primary, Some(1), FaultKind::BrokenNeutral));
        assert!(core::iter::from_fn(|| f.pop_outgoing()).any(|m| m == (2, PeerMsg::Open { section: 1 })));
        // A lost phase downstream is an open conductor, as before.
        let mut g = head_lmu();
        g.poll(at(0), &healthy, Some(true), 60.0);
        g.on_peer(at(170), 2, PeerMsg::LossOfVoltage);
        g.poll(at(171), &healthy, Some(true), 60.0);
        assert_eq!(g.reports().next().map(|r| r.kind), Some(FaultKind::OpenConductor));
        // The downstream LMU itself sends `NeutralDisplaced` upstream once its condition lasted.
        let mut s = FlisrSettings::new(2);
        s.upstream = Some(1);
        let mut d = Flisr::new(s).unwrap();
        let displaced =
            ProtectionStatus { loss_of_phase: true, neutral_displaced: true, ..ProtectionStatus::default() };
        d.poll(at(170), &displaced, Some(true), 40.0);
        assert_eq!(d.pop_outgoing(), Some((1, PeerMsg::NeutralDisplaced)));
        assert!(d.coil_closed(), "not healthy here: the break is upstream, its section is not this LMU's");
    }

    #[test]
    fn self_neighbour_is_rejected_by_name() {
        let mut s = FlisrSettings::new(3);
        s.upstream = Some(3);
        assert_eq!(s.validate().unwrap_err().field, "upstream");
        let mut s = FlisrSettings::new(3);
        s.backup_delay_ms = 10;
        assert_eq!(s.validate().unwrap_err().field, "backup_delay_ms");
    }

    fn fwd(since_ms: u64) -> ProtectionStatus {
        ProtectionStatus {
            pickup: true,
            forward: true,
            pickup_since: Some(Instant(since_ms * 1_000_000)),
            kind: Some(FaultKind::ThreePhase),
            fault_current_a: 9000.0,
            ..ProtectionStatus::default()
        }
    }

    /// An LMU of the graded scheme with one downstream neighbour (2) and `height` LMUs below it.
    fn graded_lmu(height: u8) -> Flisr {
        let mut s = FlisrSettings::new(1);
        s.upstream = Some(9);
        s.downstream = alloc::vec![2];
        s.grading_ms = 100;
        s.block_repeat_ms = 100;
        s.block_hold_ms = 150;
        s.height = height;
        Flisr::new(s).unwrap()
    }

    /// Polls a flagged graded LMU every millisecond from `from` to `to` (ms, 400 A through it); the time of
    /// the coil opening, if any.
    fn graded_trip(f: &mut Flisr, from: u64, to: u64) -> Option<u64> {
        (from..=to).find(|&t| !f.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed)
    }

    /// A healthy LMU whose phase current collapsed (an open conductor below it).
    fn drop_here() -> ProtectionStatus {
        ProtectionStatus { voltage_healthy: true, current_drop: true, ..ProtectionStatus::default() }
    }

    /// Polls every millisecond from `from` to `to` (ms) with `p`; the time the coil opened, if it did.
    fn opened(f: &mut Flisr, p: &ProtectionStatus, from: u64, to: u64) -> Option<u64> {
        (from..=to).find(|&t| !f.poll(at(t), p, Some(true), 20.0).coil_closed)
    }

    #[test]
    fn flagged_lmu_says_beyond_upstream_once_and_a_neighbour_that_hears_it_asks_nothing() {
        // The flagged LMU tells its upstream neighbour (9) once per episode, unasked.
        let mut f = graded_lmu(3);
        let mut sent = Vec::new();
        for t in 0..=300 {
            f.poll(at(t), &fwd(0), Some(true), 400.0);
            while let Some(m) = f.pop_outgoing() {
                sent.push((t, m));
            }
        }
        let beyond: Vec<u64> = sent.iter().filter(|(_, m)| *m == (9, PeerMsg::Beyond)).map(|(t, _)| *t).collect();
        assert_eq!(beyond, alloc::vec![0], "{sent:?}");
        // Its upstream neighbour, told before its first query is due, never queries and is backup: it does not
        // trip at its graded time.
        let mut up = graded_lmu(4);
        up.on_peer(at(5), 2, PeerMsg::Beyond);
        let mut queries = 0;
        let mut tripped = None;
        for t in 5..=530 {
            if !up.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed && tripped.is_none() {
                tripped = Some(t);
            }
            while let Some((to, m)) = up.pop_outgoing() {
                queries += usize::from(to == 2 && matches!(m, PeerMsg::Query { .. }));
            }
        }
        assert_eq!(queries, 0);
        assert_eq!(tripped, None, "graded at 430 ms, backup only after 680 ms");
    }

    /// A graded LMU (1) on a shared channel: upstream 9, downstream 2 and 3 (3 reached over relays), and
    /// below them 4 (via 2) and 5 (via 3).
    fn shared_lmu(height: u8, relayed: &[PeerId]) -> Flisr {
        let mut s = FlisrSettings::new(1);
        s.upstream = Some(9);
        s.downstream = alloc::vec![2, 3];
        s.descendants = alloc::vec![(2, 2), (3, 3), (4, 2), (5, 3)];
        s.grading_ms = 100;
        s.block_repeat_ms = 100;
        s.block_hold_ms = 150;
        s.height = height;
        let mut f = Flisr::new(s).unwrap();
        f.set_shared_channel(relayed.to_vec());
        f
    }

    fn drain(f: &mut Flisr, t: u64, sent: &mut Vec<(u64, PeerId, PeerMsg)>) {
        while let Some((to, m)) = f.pop_outgoing() {
            sent.push((t, to, m));
        }
    }

    #[test]
    fn on_a_shared_channel_the_last_flagged_lmu_asks_by_one_broadcast_that_silences_the_lmus_above() {
        // Flagged, height 3: no `Beyond` to a neighbour in radio range; at its slot (30 ms) one broadcast
        // question for 2 and a unicast one for 3, which is reached over relays; repeats by unicast.
        let mut f = shared_lmu(3, &[3]);
        let mut sent = Vec::new();
        for t in 0..=140 {
            f.poll(at(t), &fwd(0), Some(true), 400.0);
            drain(&mut f, t, &mut sent);
        }
        assert_eq!(
            sent,
            alloc::vec![
                (30, BROADCAST_PEER, PeerMsg::Query { age_ms: 30 }),
                (30, 3, PeerMsg::Query { age_ms: 30 }),
                (130, 2, PeerMsg::Query { age_ms: 130 }),
                (130, 3, PeerMsg::Query { age_ms: 130 }),
            ]
        );
        // With the upstream neighbour reached over relays it is told at once, as without a shared channel.
        let mut f = shared_lmu(3, &[9]);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        assert_eq!(f.pop_outgoing(), Some((9, PeerMsg::Beyond)));
        // An LMU above that overhears the question of one of its descendants (4, below 2) before its own slot
        // asks nothing and is graded backup: no trip at its graded time (430 ms), only after the backup margin.
        let mut up = shared_lmu(4, &[]);
        up.poll(at(0), &fwd(0), Some(true), 400.0);
        up.on_peer(at(20), 4, PeerMsg::Query { age_ms: 20 });
        let mut sent = Vec::new();
        let mut tripped = None;
        for t in 1..=700 {
            if !up.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed && tripped.is_none() {
                tripped = Some(t);
            }
            drain(&mut up, t, &mut sent);
        }
        assert!(sent.iter().all(|(_, _, m)| !matches!(m, PeerMsg::Query { .. })), "{sent:?}");
        assert_eq!(tripped, Some(680));
        assert_eq!(up.overheard, 1);
        // A leaf broadcasts `Beyond` at its pickup (it has nobody to ask); a broadcast `Beyond` from a
        // descendant silences like the question.
        let mut s = FlisrSettings::new(4);
        s.upstream = Some(2);
        s.grading_ms = 100;
        let mut leaf = Flisr::new(s).unwrap();
        leaf.set_shared_channel(Vec::new());
        leaf.poll(at(0), &fwd(0), Some(true), 400.0);
        assert_eq!(leaf.pop_outgoing(), Some((BROADCAST_PEER, PeerMsg::Beyond)));
        assert_eq!(leaf.pop_outgoing(), None);
        let mut up = shared_lmu(4, &[]);
        up.poll(at(0), &fwd(0), Some(true), 400.0);
        up.on_peer(at(2), 4, PeerMsg::Beyond);
        assert_eq!(graded_trip(&mut up, 3, 600), None);
        // Overheard from a stranger (not below): ignored, the LMU asks at its slot and trips at once on
        // "not seen" from both.
        let mut f = shared_lmu(3, &[]);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        f.on_peer(at(5), 7, PeerMsg::Query { age_ms: 5 });
        assert_eq!(f.overheard, 0);
        f.poll(at(30), &fwd(0), Some(true), 400.0);
        assert_eq!(f.pop_outgoing(), Some((BROADCAST_PEER, PeerMsg::Query { age_ms: 30 })));
        f.on_peer(at(40), 2, PeerMsg::Passage { seen: false });
        f.on_peer(at(50), 3, PeerMsg::Passage { seen: false });
        assert_eq!(graded_trip(&mut f, 50, 400), Some(50));
    }

    #[test]
    fn on_a_shared_channel_siblings_answer_and_report_one_frame_exchange_apart() {
        let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        for (place, answer_at) in [(0u8, 5u64), (1, 17), (2, 29)] {
            let mut s = FlisrSettings::new(2);
            s.upstream = Some(1);
            s.grading_ms = 100;
            s.sibling_index = place;
            let mut f = Flisr::new(s).unwrap();
            f.set_shared_channel(Vec::new());
            f.poll(at(0), &quiet, Some(true), 50.0);
            f.on_peer(at(5), 1, PeerMsg::Query { age_ms: 40 });
            let mut sent = Vec::new();
            for t in 5..=60 {
                f.poll(at(t), &quiet, Some(true), 50.0);
                drain(&mut f, t, &mut sent);
            }
            assert_eq!(sent, alloc::vec![(answer_at, 1, PeerMsg::Passage { seen: false })], "place {place}");
        }
        // Their lost-voltage reports of one event too: 5 ms per level of depth (2 here), then 12 ms per place.
        let lost = ProtectionStatus { loss_of_phase: true, ..ProtectionStatus::default() };
        for (place, report_at) in [(0u8, 10u64), (1, 22), (2, 34)] {
            let mut s = FlisrSettings::new(2);
            s.upstream = Some(1);
            s.grading_ms = 100;
            s.depth = 2;
            s.sibling_index = place;
            let mut f = Flisr::new(s).unwrap();
            f.set_shared_channel(Vec::new());
            let mut sent = Vec::new();
            for t in 0..=60 {
                f.poll(at(t), &lost, Some(true), 0.0);
                drain(&mut f, t, &mut sent);
            }
            assert_eq!(sent, alloc::vec![(report_at, 1, PeerMsg::LossOfVoltage)], "place {place}");
        }
    }

    #[test]
    fn graded_scheme_sends_its_drop_veto_twice_and_its_lost_voltage_once() {
        // Depth 0: no stagger. The veto upstream goes out twice, 20 ms apart; each copy is retried by the
        // MAC, and the LMU above locates the break itself if none arrives.
        let mut f = graded_lmu(3);
        let mut sent = Vec::new();
        for t in 0..=200 {
            f.poll(at(t), &drop_here(), Some(true), 20.0);
            while let Some(m) = f.pop_outgoing() {
                sent.push((t, m));
            }
        }
        let drops: Vec<u64> = sent.iter().filter(|(_, m)| *m == (9, PeerMsg::DropSeen)).map(|(t, _)| *t).collect();
        assert_eq!(drops, alloc::vec![0, 20], "{sent:?}");
        let lost = ProtectionStatus { loss_of_phase: true, ..ProtectionStatus::default() };
        let mut f = graded_lmu(3);
        let mut lov = 0;
        for t in 0..=200 {
            f.poll(at(t), &lost, Some(true), 0.0);
            while let Some((to, m)) = f.pop_outgoing() {
                lov += usize::from(to == 9 && m == PeerMsg::LossOfVoltage);
            }
        }
        assert_eq!(lov, 1);
    }

    #[test]
    fn a_lost_phase_nobody_acts_on_goes_to_the_second_neighbour_up_which_has_the_far_end_open() {
        // LMU 1 (upstream 9, and 8 above that) lost a phase at depth 2: it reports to 9 at 10 ms, and once
        // more 800 ms later (the first report may have drowned in the others'); nobody asks it to open and its
        // supply stays lost (9's radio is dead), so 3 s + 2 x 20 ms after the first report it tells 8 too,
        // once; and neither if its supply comes back first.
        let lost = ProtectionStatus { loss_of_phase: true, ..ProtectionStatus::default() };
        let run = |healthy_from_ms: u64| {
            let mut s = graded_lmu(3).settings().clone();
            s.upstream_next = Some(8);
            s.depth = 2;
            let mut f = Flisr::new(s).unwrap();
            let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
            let mut sent = Vec::new();
            for t in (0..=6_000).step_by(5) {
                f.poll(at(t), if t < healthy_from_ms { &lost } else { &quiet }, Some(true), 0.0);
                sent.extend(core::iter::from_fn(|| f.pop_outgoing()).map(|m| (t, m)));
            }
            sent
        };
        let sent = run(u64::MAX);
        let lov = PeerMsg::LossOfVoltage;
        assert_eq!(sent, alloc::vec![(10, (9, lov)), (810, (9, lov)), (3_050, (8, lov))]);
        assert_eq!(run(1_000), alloc::vec![(10, (9, lov)), (810, (9, lov))]);
        assert_eq!(run(500), alloc::vec![(10, (9, lov))]);
        // LMU 8 above, healthy, with LMU 9 below it and LMU 1 below that, asks LMU 1 to open section 9.
        let mut s = graded_lmu(3).settings().clone();
        s.me = 8;
        s.upstream = Some(7);
        s.downstream = alloc::vec![9];
        s.downstream_next = alloc::vec![(9, 1)];
        let mut up = Flisr::new(s).unwrap();
        let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        for t in 0..2_000 {
            up.poll(at(t), &quiet, Some(true), 50.0);
        }
        up.on_peer(at(2_000), 1, PeerMsg::LossOfVoltage);
        assert_eq!(up.pop_outgoing(), Some((1, PeerMsg::Open { section: 9 })));
        assert_eq!(up.opens_stood_in, 1);
        // Without its own supply it does nothing (the break may be above it).
        let mut s = up.settings().clone();
        s.me = 8;
        let mut dark = Flisr::new(s).unwrap();
        dark.poll(at(0), &lost, Some(true), 0.0);
        dark.on_peer(at(10), 1, PeerMsg::LossOfVoltage);
        let out: Vec<_> = core::iter::from_fn(|| dark.pop_outgoing()).collect();
        assert!(!out.iter().any(|(_, m)| matches!(m, PeerMsg::Open { .. })), "{out:?}");
        assert_eq!(dark.opens_stood_in, 0);
        // LMU 1 obeys that request from its second neighbour up only once it has no supply at all.
        let mut s = graded_lmu(3).settings().clone();
        s.upstream_next = Some(8);
        let mut far = Flisr::new(s).unwrap();
        far.poll(at(0), &lost, Some(true), 0.0);
        far.on_peer(at(10), 8, PeerMsg::Open { section: 9 });
        assert!(far.poll(at(11), &lost, Some(true), 0.0).coil_closed, "a lost phase alone: refused");
        far.set_line_state(false, true);
        far.on_peer(at(20), 8, PeerMsg::Open { section: 9 });
        assert!(!far.poll(at(21), &ProtectionStatus::default(), Some(true), 0.0).coil_closed, "dead: obeyed");
    }

    #[test]
    fn on_a_shared_channel_siblings_retry_out_of_step() {
        let gaps = |me: PeerId, shared: bool| -> Vec<u64> {
            let mut s = FlisrSettings::new(me);
            s.overhearing = shared;
            (0..=s.retries).rev().map(|left| retry_gap_ns(&s, left) / 1_000_000).collect()
        };
        assert_eq!(gaps(13, false), alloc::vec![300; 5]);
        let (a, b) = (gaps(13, true), gaps(14, true));
        assert!(a.iter().chain(&b).all(|g| (260..=340).contains(g)), "{a:?} {b:?}");
        // Their retry times drift apart instead of keeping the offset of their first requests.
        let at = |g: &[u64]| {
            g.iter()
                .scan(0, |t, x| {
                    *t += x;
                    Some(*t)
                })
                .collect::<Vec<u64>>()
        };
        let offsets: Vec<i64> = at(&a).iter().zip(at(&b)).map(|(x, y)| *x as i64 - y as i64).collect();
        assert!(offsets.windows(2).any(|w| w[0] != w[1]), "{offsets:?}");
        // Whatever the identity and the retry count, the waits of one request add up to those without the
        // spread (the last retry and the give-up keep their times), each stays above half of `retry_ms`, and
        // they are spread at all where there is more than one.
        for retries in 0..=12u8 {
            for retry_ms in [10u32, 37, 300, 1000] {
                for me in 0..40 {
                    let mut s = FlisrSettings::new(me);
                    (s.overhearing, s.retries, s.retry_ms) = (true, retries, retry_ms);
                    let w: Vec<u64> = (0..=retries).map(|left| retry_gap_ns(&s, left)).collect();
                    assert_eq!(w.iter().sum::<u64>(), (u64::from(retries) + 1) * ms(retry_ms), "{me} {retries} {w:?}");
                    assert!(w.iter().all(|&g| 2 * g > ms(retry_ms)), "{me} {retries} {retry_ms} {w:?}");
                    if retries > 0 && retry_ms >= 300 {
                        assert!(w.iter().any(|&g| g != ms(retry_ms)), "{me} {retries} {w:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_probe_from_a_far_end_that_never_confirmed_its_opening_gets_the_open_once_more() {
        // LMU 1 locates the fault in its section (its downstream neighbour 2 answers "not seen"), opens and
        // asks 2 to open; no copy arrives, every retry is spent. Seconds later 2, dead and told nothing,
        // probes it: the answer is `Here` and the `Open` once more.
        let mut f = graded_lmu(3);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        f.poll(at(30), &fwd(0), Some(true), 400.0);
        f.on_peer(at(45), 2, PeerMsg::Passage { seen: false });
        assert_eq!(graded_trip(&mut f, 45, 100), Some(45));
        let dead = ProtectionStatus::default();
        let mut opens = 0;
        for t in (46..=5_000).step_by(5) {
            f.poll(at(t), &dead, Some(false), 0.0);
            while let Some((to, m)) = f.pop_outgoing() {
                opens += usize::from(to == 2 && m == PeerMsg::Open { section: 1 });
            }
        }
        assert_eq!(opens, 5, "the request and its four retries");
        f.on_peer(at(6_000), 2, PeerMsg::Probe);
        let out: Vec<_> = core::iter::from_fn(|| f.pop_outgoing()).collect();
        assert_eq!(out, alloc::vec![(2, PeerMsg::Here), (2, PeerMsg::Open { section: 1 })]);
        // Once 2 confirmed, a probe gets `Here` alone.
        f.on_peer(at(6_100), 2, PeerMsg::Opened { section: 1, ok: true });
        f.on_peer(at(6_200), 2, PeerMsg::Probe);
        let out: Vec<_> = core::iter::from_fn(|| f.pop_outgoing()).collect();
        assert_eq!(out, alloc::vec![(2, PeerMsg::Here)]);
    }

    #[test]
    fn an_lmu_left_dead_after_a_dip_opens_only_when_its_upstream_neighbour_is_silent_and_its_tie_answers() {
        // LMU 1 (upstream 9, tie 30) sees a fault's dip for 200 ms, then goes dead at 200 ms, and nobody asks
        // it to open. 6 s later it probes 9 and its tie, 500 ms apart, three times; 500 ms after the last,
        // with `Here` from the tie only, it opens as the far end of section 9 and asks the tie to restore.
        // Any `Here` from 9, no answer at all (its own radio may be dead), or supply back: nothing.
        let run = |here_from: &[PeerId], supply_back_ms: u64| {
            let mut s = graded_lmu(3).settings().clone();
            s.tie = Some(30);
            let mut f = Flisr::new(s).unwrap();
            let dip = ProtectionStatus { pickup: true, ..ProtectionStatus::default() };
            let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
            let mut sent = Vec::new();
            let mut opened_at = None;
            for t in (0..=9_000).step_by(5) {
                let dead = (200..supply_back_ms).contains(&t);
                f.set_line_state(false, dead);
                let p = if t < 200 {
                    &dip
                } else if dead {
                    &ProtectionStatus::default()
                } else {
                    &quiet
                };
                let out = f.poll(at(t), p, Some(opened_at.is_none()), 0.0);
                if !out.coil_closed && opened_at.is_none() {
                    opened_at = Some(t);
                }
                let out: Vec<_> = core::iter::from_fn(|| f.pop_outgoing()).collect();
                for m in out {
                    if m.1 == PeerMsg::Probe && here_from.contains(&m.0) {
                        f.on_peer(at(t), m.0, PeerMsg::Here);
                    }
                    sent.push((t, m));
                }
            }
            (opened_at, sent, f.orphan_opens)
        };
        let (opened_at, sent, n) = run(&[30], u64::MAX);
        let probes: Vec<_> = sent.iter().filter(|(_, m)| m.1 == PeerMsg::Probe).cloned().collect();
        assert_eq!(
            probes,
            alloc::vec![
                (6_200, (9, PeerMsg::Probe)),
                (6_200, (30, PeerMsg::Probe)),
                (6_700, (9, PeerMsg::Probe)),
                (7_200, (9, PeerMsg::Probe)),
            ]
        );
        assert_eq!((opened_at, n), (Some(7_700), 1));
        assert!(sent.iter().any(|m| m.1 == (30, PeerMsg::Restore { section: 9 })), "{sent:?}");
        assert_eq!(run(&[9, 30], u64::MAX).0, None, "the upstream neighbour answers");
        assert_eq!(run(&[], u64::MAX).0, None, "nobody answers: this radio is the likelier dead");
        let (opened_at, sent, _) = run(&[30], 3_000);
        assert_eq!(opened_at, None, "supply back");
        assert!(!sent.iter().any(|m| m.1.1 == PeerMsg::Probe));
        // Dead without a dip first (an outage, not a fault): nothing either.
        let mut s = graded_lmu(3).settings().clone();
        s.tie = Some(30);
        let mut f = Flisr::new(s).unwrap();
        for t in (0..=9_000).step_by(5) {
            f.set_line_state(false, true);
            assert!(f.poll(at(t), &ProtectionStatus::default(), Some(true), 0.0).coil_closed);
            assert!(!core::iter::from_fn(|| f.pop_outgoing()).any(|m| m.1 == PeerMsg::Probe));
        }
        // The upstream neighbour answers a probe from below; a tie answers its requesters'.
        let mut up = graded_lmu(3);
        up.on_peer(at(0), 2, PeerMsg::Probe);
        assert_eq!(up.pop_outgoing(), Some((2, PeerMsg::Here)));
        up.on_peer(at(0), 7, PeerMsg::Probe);
        assert_eq!(up.pop_outgoing(), None, "a stranger's probe");
    }

    #[test]
    fn an_lmu_that_saw_a_silent_neighbour_open_on_a_break_has_its_far_end_opened() {
        // LMU 1 sees its phase current collapse (20 A before), then at 200 ms an LMU below take the rest of it
        // (5 A left): a neighbour opened on the break. Without a `DropSeen` or `Cleared` from below, a second
        // later it asks LMU 3, below its neighbour 2, to open section 2; with either, it does nothing.
        let run = |hear: Option<(u64, PeerMsg)>| {
            let mut s = graded_lmu(3).settings().clone();
            s.downstream_next = alloc::vec![(2, 3)];
            let mut f = Flisr::new(s).unwrap();
            let mut sent = Vec::new();
            for t in 0..=2_000 {
                if let Some((at_ms, m)) = hear
                    && t == at_ms
                {
                    f.on_peer(at(t), 2, m);
                }
                assert!(f.poll(at(t), &drop_here(), Some(true), if t < 200 { 20.0 } else { 5.0 }).coil_closed);
                sent.extend(core::iter::from_fn(|| f.pop_outgoing()).map(|m| (t, m)));
            }
            (
                sent.into_iter().filter(|(_, m)| matches!(m.1, PeerMsg::Open { .. })).collect::<Vec<_>>(),
                f.opens_stood_in,
            )
        };
        assert_eq!(run(None), (alloc::vec![(1_200, (3, PeerMsg::Open { section: 2 }))], 1));
        assert_eq!(run(Some((50, PeerMsg::DropSeen))), (alloc::vec![], 0));
        assert_eq!(run(Some((400, PeerMsg::Cleared))), (alloc::vec![], 0));
    }

    #[test]
    fn graded_scheme_locates_a_break_at_once_on_a_lost_voltage_below_and_ignores_stale_reports() {
        // A lost voltage reported from downstream is positive evidence: located here at once.
        let mut f = graded_lmu(3);
        f.poll(at(0), &drop_here(), Some(true), 20.0);
        f.on_peer(at(40), 2, PeerMsg::LossOfVoltage);
        assert_eq!(opened(&mut f, &drop_here(), 40, 2000), Some(40));
        assert_eq!(
            f.reports().last().map(|r| (r.role, r.section, r.kind)),
            Some((Role::Primary, Some(1), FaultKind::OpenConductor))
        );
        // The weaker unbalance report with a current drop here waits for the downstream veto (150 ms logic,
        // the neighbours' 20 ms slot, 300 ms more, and 120 ms for each of the 3 LMUs below, which decide first).
        let mut f = graded_lmu(3);
        f.poll(at(0), &drop_here(), Some(true), 20.0);
        f.on_peer(at(40), 2, PeerMsg::UnbalanceSeen);
        assert_eq!(opened(&mut f, &drop_here(), 40, 2000), Some(830));
        // A leaf LMU (no downstream neighbour, nobody to veto or to decide first) locates a break on its own
        // drop after the logic delay alone.
        let mut s = graded_lmu(0).settings().clone();
        s.downstream = alloc::vec![];
        let mut f = Flisr::new(s).unwrap();
        assert_eq!(opened(&mut f, &drop_here(), 0, 2000), Some(150));
        // Waiting on the drop alone, it sees an LMU below open (a further fifth of its current goes): the break
        // is that LMU's, located there on its own drop; this one stands down.
        let mut f = graded_lmu(3);
        f.poll(at(0), &drop_here(), Some(true), 60.0);
        assert_eq!((1..=600).find(|&t| !f.poll(at(t), &drop_here(), Some(true), 60.0).coil_closed), None);
        assert_eq!((601..=2000).find(|&t| !f.poll(at(t), &drop_here(), Some(true), 45.0).coil_closed), None);
        // A smaller change (a few amperes of load) does not.
        let mut f = graded_lmu(3);
        f.poll(at(0), &drop_here(), Some(true), 60.0);
        assert_eq!((1..=2000).find(|&t| !f.poll(at(t), &drop_here(), Some(true), 55.0).coil_closed), Some(830));
        // A current drop alone, vetoed by `DropSeen` from below: no opening at all.
        let mut f = graded_lmu(3);
        f.poll(at(0), &drop_here(), Some(true), 20.0);
        f.on_peer(at(100), 2, PeerMsg::DropSeen);
        assert_eq!(opened(&mut f, &drop_here(), 100, 2000), None);
        // A report reaching an LMU that was itself dead half a second ago (restored since) is stale.
        let mut f = graded_lmu(3);
        let dead = ProtectionStatus { voltage_healthy: false, ..ProtectionStatus::default() };
        f.poll(at(0), &dead, Some(true), 0.0);
        f.poll(at(500), &ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() }, Some(true), 20.0);
        f.on_peer(at(510), 2, PeerMsg::LossOfVoltage);
        assert_eq!(
            opened(&mut f, &ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() }, 510, 2000),
            None
        );
    }

    #[test]
    fn graded_scheme_trips_at_once_on_all_clear_late_without_answers_and_as_backup_when_seen_beyond() {
        // The first query goes out 10 ms per LMU below (3 here) after pickup, so the last LMU on the path asks
        // first; every downstream neighbour answers "not seen": primary trip after the logic delay.
        let mut f = graded_lmu(3);
        assert!(matches!(f.poll(at(0), &fwd(0), Some(true), 400.0).next_deadline, Some(d) if d <= at(30)));
        assert_eq!(f.pop_outgoing(), Some((9, PeerMsg::Beyond)));
        assert_eq!(f.pop_outgoing(), None);
        f.poll(at(30), &fwd(0), Some(true), 400.0);
        assert_eq!(f.pop_outgoing(), Some((2, PeerMsg::Query { age_ms: 30 })));
        f.on_peer(at(45), 2, PeerMsg::Passage { seen: false });
        assert_eq!(graded_trip(&mut f, 45, 1000), Some(45));
        assert_eq!(f.reports().last().map(|r| (r.role, r.section)), Some((Role::Primary, Some(1))));
        // No answer: the graded time, 30 ms + 3 x 100 ms, still as primary.
        let mut f = graded_lmu(3);
        assert_eq!(graded_trip(&mut f, 0, 1000), Some(330));
        assert_eq!(f.reports().last().map(|r| r.role), Some(Role::Primary));
        // "Seen" beyond: backup only after the graded time plus the backup margin (250 ms).
        let mut f = graded_lmu(3);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        f.on_peer(at(20), 2, PeerMsg::Passage { seen: true });
        assert_eq!(graded_trip(&mut f, 1, 1000), Some(580));
        assert_eq!(f.reports().last().map(|r| r.role), Some(Role::Backup));
        // A device below interrupted the fault at 100 ms and what holds the pickup is the export it took
        // away: no trip, neither at the graded time nor as backup; a fault left after the step trips as before.
        let explained =
            ProtectionStatus { interrupted_below: Some(at(100)), explained_by_interruption: true, ..fwd(0) };
        let before = fwd(0);
        let status = |t: u64, after: &ProtectionStatus| if t < 100 { before } else { *after };
        let mut f = graded_lmu(3);
        assert_eq!((0..=2000).find(|&t| !f.poll(at(t), &status(t, &explained), Some(true), 20.0).coil_closed), None);
        let mut f = graded_lmu(3);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        f.on_peer(at(20), 2, PeerMsg::Passage { seen: true });
        assert_eq!((1..=2000).find(|&t| !f.poll(at(t), &status(t, &explained), Some(true), 20.0).coil_closed), None);
        let left = ProtectionStatus { explained_by_interruption: false, ..explained };
        let mut f = graded_lmu(3);
        assert_eq!((0..=2000).find(|&t| !f.poll(at(t), &status(t, &left), Some(true), 20.0).coil_closed), Some(330));
        // Answering the upstream neighbour: "seen" at once while flagged, "not seen" after watching 30 ms.
        let mut f = graded_lmu(0);
        f.poll(at(0), &fwd(0), Some(true), 400.0);
        while f.pop_outgoing().is_some() {}
        f.on_peer(at(5), 9, PeerMsg::Query { age_ms: 0 });
        assert_eq!(f.pop_outgoing(), Some((9, PeerMsg::Passage { seen: true })));
        let mut f = graded_lmu(0);
        let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        f.poll(at(0), &quiet, Some(true), 50.0);
        f.on_peer(at(5), 9, PeerMsg::Query { age_ms: 0 });
        f.poll(at(20), &quiet, Some(true), 50.0);
        assert_eq!(f.pop_outgoing(), None);
        f.poll(at(35), &quiet, Some(true), 50.0);
        assert_eq!(f.pop_outgoing(), Some((9, PeerMsg::Passage { seen: false })));
        // The watch counts from the querier's pickup: a question asked 40 ms after it is answered at once,
        // one asked 10 ms after it 20 ms after its arrival.
        for (age_ms, answer_at) in [(40u16, 5u64), (10, 25), (30, 5)] {
            let mut f = graded_lmu(0);
            f.poll(at(0), &quiet, Some(true), 50.0);
            f.on_peer(at(5), 9, PeerMsg::Query { age_ms });
            for t in 5..answer_at {
                f.poll(at(t), &quiet, Some(true), 50.0);
                assert_eq!(f.pop_outgoing(), None, "age {age_ms} ms, {t} ms");
            }
            f.poll(at(answer_at), &quiet, Some(true), 50.0);
            assert_eq!(f.pop_outgoing(), Some((9, PeerMsg::Passage { seen: false })), "age {age_ms} ms");
        }
    }

    #[test]
    fn a_silent_neighbour_that_cleared_a_fault_has_its_far_end_opened_by_the_lmu_above() {
        // LMU 1 sees fault current pass towards LMU 2 for 150 ms (LMU 2, radio dead, trips at its graded time
        // before LMU 1's), asks LMU 2 and hears nothing, keeps its supply: a second after the current stopped
        // it asks LMU 3, below LMU 2, to open section 2, once.
        let quiet = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        let run = |hear: Option<PeerMsg>| {
            let mut s = graded_lmu(3).settings().clone();
            s.downstream_next = alloc::vec![(2, 3)];
            let mut f = Flisr::new(s).unwrap();
            let mut sent = Vec::new();
            for t in 0..150 {
                assert!(f.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed);
                if t == 40
                    && let Some(m) = hear
                {
                    f.on_peer(at(t), 2, m);
                }
                sent.extend(core::iter::from_fn(|| f.pop_outgoing()).map(|m| (t, m)));
            }
            if let Some(PeerMsg::Cleared) = hear {
                f.on_peer(at(400), 2, PeerMsg::Cleared);
            }
            for t in (150..3_000).step_by(10) {
                assert!(f.poll(at(t), &quiet, Some(true), 20.0).coil_closed, "LMU 1 itself never opens");
                sent.extend(core::iter::from_fn(|| f.pop_outgoing()).map(|m| (t, m)));
            }
            assert!(sent.iter().any(|(_, m)| matches!(m, (2, PeerMsg::Query { .. }))), "{sent:?}");
            sent.into_iter().filter(|(_, m)| m.1 == PeerMsg::Open { section: 2 }).collect::<Vec<_>>()
        };
        let opens = run(None);
        assert_eq!(opens.len(), 1, "{opens:?}");
        assert_eq!(opens[0].1.0, 3);
        assert!((1_140..=1_160).contains(&opens[0].0), "{opens:?}");
        // LMU 2 alive: it said "seen" (and isolates its own section), or its `Cleared` came up: nothing sent.
        assert!(run(Some(PeerMsg::Passage { seen: true })).is_empty());
        assert!(run(Some(PeerMsg::Cleared)).is_empty());
    }

    #[test]
    fn an_open_a_downstream_neighbour_never_answers_goes_one_section_further_whose_answer_confirms() {
        let healthy = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        for beyond in [true, false] {
            // LMU 1 locates a broken neutral in its section; LMU 2 below it never answers (radio dead).
            let mut s = FlisrSettings::new(1);
            s.downstream = alloc::vec![2];
            if beyond {
                s.downstream_next = alloc::vec![(2, 3)];
            }
            let mut f = Flisr::new(s).unwrap();
            let mut sent = Vec::new();
            f.poll(at(0), &healthy, Some(true), 60.0);
            f.on_peer(at(170), 2, PeerMsg::NeutralDisplaced);
            f.poll(at(171), &healthy, Some(true), 60.0);
            for t in (200..=3_000).step_by(10) {
                f.poll(at(t), &healthy, Some(false), 0.0); // the auxiliary contact confirms the opening
                sent.extend(core::iter::from_fn(|| f.pop_outgoing()));
            }
            let opens_to = |p: PeerId| sent.iter().filter(|m| **m == (p, PeerMsg::Open { section: 1 })).count();
            assert_eq!(opens_to(2), 1 + FlisrSettings::new(1).retries as usize, "the request and its retries");
            assert_eq!(f.reports().next().and_then(|r| r.isolated), None, "nothing confirmed the far end yet");
            if beyond {
                assert!(opens_to(3) >= 1, "after the last retry the request goes to LMU 3");
                f.on_peer(at(3_010), 3, PeerMsg::Opened { section: 1, ok: true });
                assert_eq!(f.reports().next().and_then(|r| r.isolated), Some(at(3_010)));
            } else {
                assert_eq!(opens_to(3), 0, "no second neighbour: it stays unconfirmed");
            }
        }
        // LMU 3 obeys the `Open` of its upstream neighbour's upstream neighbour while it has no supply, not a
        // stranger's, and not while supplied (the silent neighbour opened and a tie restored this side).
        let mut s = FlisrSettings::new(3);
        s.upstream = Some(2);
        s.upstream_next = Some(1);
        let mut g = Flisr::new(s.clone()).unwrap();
        g.set_line_state(false, true);
        g.poll(at(0), &ProtectionStatus::default(), Some(true), 0.0);
        g.on_peer(at(10), 9, PeerMsg::Open { section: 1 });
        assert!(g.poll(at(11), &ProtectionStatus::default(), Some(true), 0.0).coil_closed);
        g.on_peer(at(20), 1, PeerMsg::Open { section: 1 });
        assert!(!g.poll(at(21), &ProtectionStatus::default(), Some(true), 0.0).coil_closed);
        let mut h = Flisr::new(s).unwrap();
        h.poll(at(0), &ProtectionStatus::default(), Some(true), 0.0); // a dip: evidence, but supplied
        h.poll(at(5), &healthy, Some(true), 40.0);
        h.on_peer(at(20), 1, PeerMsg::Open { section: 1 });
        assert!(h.poll(at(21), &healthy, Some(true), 40.0).coil_closed);
        assert_eq!(h.opens_refused, 1);
        // A second neighbour that is not below a downstream neighbour is refused at commissioning.
        let mut bad = FlisrSettings::new(1);
        bad.downstream = alloc::vec![2];
        bad.downstream_next = alloc::vec![(4, 3)];
        assert!(bad.validate().is_err());
    }

    /// An LMU of the blocking scheme with upstream neighbour 9, one downstream neighbour (2) and `height`
    /// LMUs below it.
    fn blocking_lmu(height: u8) -> Flisr {
        let mut s = FlisrSettings::new(1);
        s.upstream = Some(9);
        s.downstream = alloc::vec![2];
        s.height = height;
        Flisr::new(s).unwrap()
    }

    /// Polls a flagged LMU every millisecond from `from` to `to` (ms, 400 A through it), collecting what it
    /// sends; the time of the coil opening, if any.
    fn trip_with_outbox(f: &mut Flisr, from: u64, to: u64, out: &mut Vec<(PeerId, PeerMsg)>) -> Option<u64> {
        for t in from..=to {
            let open = !f.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed;
            while let Some(m) = f.pop_outgoing() {
                out.push(m);
            }
            if open {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn on_a_jammed_channel_the_blocking_scheme_grades_by_height_and_tells_the_lmus_above() {
        // Not jammed, unblocked: the last flagged LMU trips after the logic delay, and its blocks say so.
        let mut f = blocking_lmu(3);
        let mut out = Vec::new();
        assert_eq!(trip_with_outbox(&mut f, 0, 1000, &mut out), Some(30));
        assert!(out.contains(&(9, PeerMsg::Block { graded: false })), "{out:?}");
        assert!(!out.iter().any(|m| m.1 == PeerMsg::Block { graded: true }));
        // Jammed: a missing block proves nothing, so it trips at its graded time, 30 + 100 x 3 ms; its few
        // blocks (one hold time of them) tell the LMU above to grade too.
        let mut f = blocking_lmu(3);
        f.set_channel_jammed(true);
        let mut out = Vec::new();
        assert_eq!(trip_with_outbox(&mut f, 0, 1000, &mut out), Some(330));
        let graded = out.iter().filter(|m| m.1 == PeerMsg::Block { graded: true }).count();
        assert!((1..=9).contains(&graded) && out.iter().all(|m| m.1 != PeerMsg::Block { graded: false }), "{out:?}");
        assert_eq!(f.jam_graded_episodes, 1);
        // The LMU above (height 4, not jammed) told by one graded block: blocked, it waits for its graded
        // time plus the backup delay (30 + 400 + 250 ms) instead of the flat 250 ms.
        let mut up = blocking_lmu(4);
        up.poll(at(0), &fwd(0), Some(true), 400.0);
        up.on_peer(at(6), 2, PeerMsg::Block { graded: true });
        let mut out = Vec::new();
        assert_eq!(trip_with_outbox(&mut up, 6, 2000, &mut out), Some(680));
        assert!(out.iter().any(|m| m.1 == PeerMsg::Block { graded: true }), "it passes the grading up");
        // A fault cleared below in the meantime resets it, as in the graded scheme.
        let mut up = blocking_lmu(4);
        up.poll(at(0), &fwd(0), Some(true), 400.0);
        up.on_peer(at(6), 2, PeerMsg::Block { graded: true });
        for t in 6..=340 {
            assert!(up.poll(at(t), &fwd(0), Some(true), 400.0).coil_closed, "{t}");
        }
        for t in 341..=2000 {
            assert!(up.poll(at(t), &ProtectionStatus::default(), Some(true), 20.0).coil_closed, "{t}");
        }
        // Off (`jam_grading_ms: 0`): a jammed LMU trips after the logic delay as before.
        let mut s = blocking_lmu(3).settings().clone();
        s.jam_grading_ms = 0;
        let mut f = Flisr::new(s).unwrap();
        f.set_channel_jammed(true);
        assert_eq!(trip_with_outbox(&mut f, 0, 1000, &mut Vec::new()), Some(30));
    }

    #[test]
    fn on_a_jammed_channel_a_request_is_not_given_up_and_an_isolation_not_extended() {
        // LMU 1 trips for a fault in its own section and asks 2 to open; 2 never answers. Unjammed, the
        // retries run out and the `Open` goes past 2 to 3; jammed, it goes on asking 2 (backing off) and goes
        // past 2 only once its channel has been clear for the usual retries.
        let setup = || {
            let mut s = blocking_lmu(3).settings().clone();
            s.downstream_next = alloc::vec![(2, 3)];
            let mut f = Flisr::new(s).unwrap();
            assert_eq!(trip_with_outbox(&mut f, 0, 100, &mut Vec::new()), Some(30));
            f
        };
        let run = |f: &mut Flisr, from: u64, to: u64, jammed_until: u64| {
            let mut sent = Vec::new();
            for t in from..=to {
                f.set_channel_jammed(t < jammed_until);
                f.poll(at(t), &ProtectionStatus::default(), Some(false), 0.0);
                while let Some((to, m)) = f.pop_outgoing() {
                    sent.push((t, to, m));
                }
            }
            sent
        };
        let past = |sent: &[(u64, PeerId, PeerMsg)]| sent.iter().find(|m| m.1 == 3).map(|m| m.0);
        let mut clear = setup();
        let sent = run(&mut clear, 31, 20_000, 0);
        assert_eq!(past(&sent), Some(30 + 5 * 300), "{sent:?}");
        let mut jammed = setup();
        let sent = run(&mut jammed, 31, 40_000, 15_000);
        let to_2: Vec<u64> = sent.iter().filter(|m| m.1 == 2).map(|m| m.0).collect();
        let gaps: Vec<u64> = to_2.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().take(4).zip([600, 1200, 2400, 2400]).all(|(g, want)| *g == want), "{to_2:?}");
        assert!(to_2.iter().filter(|&&t| t < 15_000).count() >= 7, "{to_2:?}");
        let p = past(&sent).expect("extended once the channel cleared");
        assert!(p > 15_000 && p <= 15_000 + 2400 + 5 * 300, "{p} {to_2:?}");
        assert!(jammed.jammed_retries >= 7);
    }

    fn head_lmu() -> Flisr {
        let mut s = FlisrSettings::new(1);
        s.downstream = alloc::vec![2];
        s.breaking_capacity_a = 12_000.0;
        s.measuring_range_a = 8839.0;
        Flisr::new(s).unwrap()
    }

    fn at(x: u64) -> Instant {
        Instant(x * 1_000_000)
    }

    #[test]
    fn no_opening_above_breaking_capacity_or_at_full_scale_until_the_current_falls() {
        for (i_a, full_scale) in [(12_500.0, false), (8600.0, false), (6000.0, true)] {
            let mut f = head_lmu();
            f.set_line_state(full_scale, false);
            assert!(!f.may_interrupt(i_a));
            let mut t = 0;
            while t <= 200 {
                let out = f.poll(at(t), &fwd(0), Some(true), i_a);
                assert!(out.coil_closed, "{i_a} A at {t} ms: the coil must stay closed");
                t += 1;
            }
            // Located and commanded all the same: the downstream boundary is asked to open.
            let r = f.reports().last().copied().unwrap();
            assert_eq!((r.role, r.section), (Role::Primary, Some(1)));
            assert!(core::iter::from_fn(|| f.pop_outgoing()).any(|m| m == (2, PeerMsg::Open { section: 1 })));
            // The upstream device cleared: dead line, no current -> the contactor opens.
            f.set_line_state(false, true);
            let out = f.poll(at(t), &ProtectionStatus::default(), Some(true), 0.0);
            assert!(!out.coil_closed);
            let out = f.poll(at(t + 20), &ProtectionStatus::default(), Some(false), 0.0);
            assert!(!out.coil_closed && f.locked_out());
        }
        // Within range: opens at the logic delay as ever.
        let mut f = head_lmu();
        assert!(f.may_interrupt(8000.0));
        f.poll(at(0), &fwd(0), Some(true), 8000.0);
        let out = f.poll(at(30), &fwd(0), Some(true), 8000.0);
        assert!(!out.coil_closed);
    }

    #[test]
    fn full_scale_is_interrupted_where_commissioning_bounds_the_current_within_the_capacity() {
        let with = |prospective_max_a: f64| {
            let mut s = FlisrSettings::new(1);
            s.downstream = alloc::vec![2];
            s.breaking_capacity_a = 50_000.0;
            s.measuring_range_a = 8839.0;
            s.prospective_max_a = prospective_max_a;
            let mut f = Flisr::new(s).unwrap();
            f.set_line_state(true, false);
            f
        };
        // The largest possible current here is 29 kA, within 50 kA: full scale opens at the logic delay.
        let mut f = with(29_000.0);
        assert!(f.may_interrupt(8600.0));
        f.poll(at(0), &fwd(0), Some(true), 8600.0);
        assert!(!f.poll(at(30), &fwd(0), Some(true), 8600.0).coil_closed);
        // Unknown, or beyond the capacity: full scale waits for the upstream device.
        for p in [0.0, 60_000.0] {
            let f = with(p);
            assert!(!f.may_interrupt(8600.0), "{p}");
            assert!(!f.may_interrupt(5000.0), "{p}: a saturated reading is full scale whatever its value");
        }
        // Never above the capacity itself, whatever commissioning says.
        assert!(!with(29_000.0).may_interrupt(50_001.0));
        assert!(FlisrSettings { prospective_max_a: f64::NAN, ..FlisrSettings::new(1) }.validate().is_err());
    }

    #[test]
    fn a_section_cleared_upstream_right_after_fault_passage_is_located_here_unless_blocked() {
        // Fault current passes (unblocked) for 10 ms, then the feeder-head breaker clears it: dead line.
        let mut f = head_lmu();
        f.poll(at(0), &fwd(0), Some(true), 9000.0);
        f.poll(at(10), &fwd(0), Some(true), 9000.0);
        f.set_line_state(false, true);
        let out = f.poll(at(20), &ProtectionStatus::default(), Some(true), 0.0);
        assert!(!out.coil_closed);
        let r = f.reports().last().copied().unwrap();
        assert_eq!((r.role, r.section, r.detected), (Role::Primary, Some(1), Some(at(0))));
        // Blocked by the downstream neighbour (the fault is beyond it): not located here.
        let mut f = head_lmu();
        f.poll(at(0), &fwd(0), Some(true), 9000.0);
        f.on_peer(at(5), 2, PeerMsg::Block { graded: false });
        f.set_line_state(false, true);
        let out = f.poll(at(20), &ProtectionStatus::default(), Some(true), 0.0);
        assert!(out.coil_closed && f.reports().next().is_none());
        // Dead long after the passage (an unrelated outage): not located here either.
        let mut f = head_lmu();
        f.poll(at(0), &fwd(0), Some(true), 9000.0);
        f.poll(at(1), &ProtectionStatus::default(), Some(true), 100.0);
        f.set_line_state(false, true);
        let out = f.poll(at(900), &ProtectionStatus::default(), Some(true), 0.0);
        assert!(out.coil_closed && f.reports().next().is_none());
    }

    #[test]
    fn an_open_without_local_evidence_is_refused_and_a_retry_after_the_evidence_is_obeyed() {
        let healthy = ProtectionStatus { voltage_healthy: true, ..ProtectionStatus::default() };
        // LMU 2, downstream of LMU 1; `Open` needs a disturbance within 5 s.
        let mut s = FlisrSettings::new(2);
        s.upstream = Some(1);
        s.open_evidence_ms = 5_000;
        let mut f = Flisr::new(s.clone()).unwrap();
        f.poll(at(0), &healthy, Some(true), 50.0);
        f.on_peer(at(10), 1, PeerMsg::Open { section: 1 });
        let out = f.poll(at(11), &healthy, Some(true), 50.0);
        assert!(out.coil_closed, "a healthy LMU does not open on a neighbour's word");
        assert_eq!((f.opens_refused, f.opens_obeyed), (1, 0));
        // The voltage collapses (the upstream section faulted): the retried request is obeyed.
        f.poll(at(20), &ProtectionStatus::default(), Some(true), 0.0);
        f.on_peer(at(310), 1, PeerMsg::Open { section: 1 });
        let out = f.poll(at(311), &healthy, Some(true), 0.0);
        assert!(!out.coil_closed);
        assert_eq!((f.opens_refused, f.opens_obeyed), (1, 1));
        // Evidence older than the window does not count.
        let mut f = Flisr::new(s.clone()).unwrap();
        f.poll(at(0), &ProtectionStatus::default(), Some(true), 0.0);
        f.poll(at(1), &healthy, Some(true), 50.0);
        f.on_peer(at(6_000), 1, PeerMsg::Open { section: 1 });
        assert_eq!(f.opens_refused, 1);
        // Without the setting every neighbour's `Open` is obeyed, as before.
        s.open_evidence_ms = 0;
        let mut f = Flisr::new(s).unwrap();
        f.poll(at(0), &healthy, Some(true), 50.0);
        f.on_peer(at(10), 1, PeerMsg::Open { section: 1 });
        assert_eq!((f.opens_refused, f.opens_obeyed), (0, 1));
    }
}
