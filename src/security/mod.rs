//! Security of the field: the scenario's `security` section (frame security of the LMUs' FLISR frames and of
//! every radio-mesh frame, their keys, rotations and removals) and the attackers it places (rogue radios that
//! forge and replay FLISR frames, jammers on the radio mesh), and the `security` object of the summary.
//!
//! On a scenario with a `mesh`, enabling security provisions every mesh node at commissioning
//! ([`crate::mesh::medium::MeshSecurity`]): readings, routing control (DIO, DIS, DAO), commands and neighbour
//! frames are sealed hop by hop at the levels of [`MeshLevels`]; the `security.mesh` object of the summary
//! counts what was sealed, opened and refused (by reason) and the bytes and airtime the security added.
//!
//! The defences live in the firmware ([`gridtwin_firmware::sec`]); this module provisions them at
//! commissioning (one group key per network, under a one-byte key index), schedules rotations and removals
//! as key operations on the LMUs, and scores the attack from ground truth the simulator has and the firmware
//! has not: which accepted frames did not come from the neighbour they name, which contactor operations
//! followed them, and which customers lost supply outside the real faults. Units: m, s, bytes.
//!
//! Energy-theft detection is [`theft`].

pub mod attacker;
pub mod broker;
pub mod insider;
pub mod theft;

use crate::agents::Msg;
use crate::engine::{AgentId, SimDuration, SimTime, Simulation, class, stream};
use crate::report::Report;
use crate::scenario::{Dur, InputError, Loaded};
use crate::twin::LmuMsg;
use crate::twin::agent::LmuAgent;
use crate::twin::build::SupplyRecorder;
use crate::world::lmu::LmuPart;
use attacker::{RogueRadio, Target};
use gridtwin_firmware::sec::{FrameSecurity, KEY_LEN, Key, Policy, SecurityLevel};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

/// The `security` section of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Seal every FLISR frame and accept only authenticated, fresh ones (false: frames go in clear, as
    /// without this section; the attackers still run, to show the damage).
    pub enabled: bool,
    /// PAN id used in the CCM* nonce (the sender's extended address).
    #[serde(default = "default_pan")]
    pub pan_id: u16,
    /// Minimum level of command frames (open, restore, block, breaker failure and their replies).
    #[serde(default = "default_command_level")]
    pub command_level: Level,
    /// Minimum level of status frames (loss of voltage, unbalance, current drop, cleared).
    #[serde(default = "default_status_level")]
    pub status_level: Level,
    /// Minimum levels of the radio mesh's frames (scenarios with a `mesh`).
    #[serde(default)]
    pub mesh: MeshLevels,
    /// The keys provisioned at commissioning.
    pub keys: KeyPlan,
    /// Time-stamped frame counters (the LMUs' clocks are synchronised): a frame older than this is refused,
    /// so one the receiver never got cannot be delivered late by a replaying radio. Absent: counters only.
    #[serde(default)]
    pub max_frame_age: Option<Dur>,
    /// Key rotations: at `at` every LMU installs the new key and seals with it; the old key is removed
    /// `retire_after` later.
    #[serde(default)]
    pub rotations: Vec<Rotation>,
    /// LMUs removed from the network at a time: they lose every key.
    #[serde(default)]
    pub removed: Vec<Removal>,
    /// Attackers in the field.
    #[serde(default)]
    pub attackers: Vec<AttackerSpec>,
    /// FLISR (with `enabled`): an LMU obeys a neighbour's `Open` only if it saw fault current, lost voltage
    /// or went dead itself within this many milliseconds before (0: it obeys every authenticated `Open`).
    /// Keys alone cannot stop a compromised neighbour; its own measurements can.
    #[serde(default = "default_open_evidence_ms")]
    pub open_evidence_ms: u32,
    /// Operator-signed actuator commands (scenarios with a `gateway`): the cloud signs every command and the
    /// LMUs switch only on the operator's signature. Absent: commands travel unsigned and are obeyed as they
    /// arrive.
    #[serde(default)]
    pub operator: Option<OperatorKeys>,
}

/// The operator's command-signing keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperatorKeys {
    /// The operator's ed25519 secret key (its 32-byte seed), 64 hex digits; the cloud holds it.
    pub secret_key: String,
    /// The operator's ed25519 public key, 64 hex digits, provisioned on every LMU at commissioning; it must
    /// be the secret key's.
    pub public_key: String,
    /// How long a signed command stays valid after it was signed.
    #[serde(default = "default_command_lifetime")]
    pub lifetime: Dur,
}

fn default_command_lifetime() -> Dur {
    Dur(SimDuration::from_secs(60))
}

/// Parses 64 hex digits into 32 bytes; the error says what is wrong.
pub fn parse_hex32(s: &str) -> Result<[u8; 32], String> {
    let t: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if t.len() != 64 {
        return Err(format!("must be 64 hex digits (got {})", t.len()));
    }
    let mut k = [0u8; 32];
    for (i, pair) in t.chunks(2).enumerate() {
        let hi = pair[0].to_digit(16).ok_or(format!("`{}` is not a hex digit", pair[0]))?;
        let lo = pair[1].to_digit(16).ok_or(format!("`{}` is not a hex digit", pair[1]))?;
        k[i] = (hi * 16 + lo) as u8;
    }
    Ok(k)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl OperatorKeys {
    /// The signing key and the public key the LMUs get; the error names the field.
    pub fn keys(&self) -> Result<(gridtwin_firmware::gateway::signed::SigningKey, [u8; 32]), String> {
        let seed = parse_hex32(&self.secret_key).map_err(|e| format!("security.operator.secret_key: {e}"))?;
        if seed.iter().all(|&b| b == seed[0]) {
            return Err("security.operator.secret_key: is a trivial key (all bytes equal)".into());
        }
        let public = parse_hex32(&self.public_key).map_err(|e| format!("security.operator.public_key: {e}"))?;
        let sk = gridtwin_firmware::gateway::signed::SigningKey::from_bytes(&seed);
        let derived = sk.verifying_key().to_bytes();
        if public != derived {
            return Err(format!(
                "security.operator.public_key: is not the public key of security.operator.secret_key (that is {})",
                hex(&derived)
            ));
        }
        if !(SimDuration::from_secs(1)..=SimDuration::from_secs(86_400)).contains(&self.lifetime.0) {
            return Err("security.operator.lifetime: must be within 1s ..= 24h".into());
        }
        Ok((sk, public))
    }
}

fn default_open_evidence_ms() -> u32 {
    5_000
}
fn default_pan() -> u16 {
    0x4754
}
fn default_command_level() -> Level {
    Level::EncMic64
}
fn default_status_level() -> Level {
    Level::Mic64
}

/// Minimum security levels of the radio mesh's frames, by frame type.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MeshLevels {
    /// Routing control: DIO, DIS and DAO frames.
    pub routing: Level,
    /// Readings travelling up to the coordinator (UP data frames).
    pub readings: Level,
    /// Commands source-routed down from the coordinator (DOWN frames).
    pub commands: Level,
    /// Neighbour frames: one hop (NBR) and relayed to a peer out of range (PEER).
    pub neighbour: Level,
}

impl Default for MeshLevels {
    fn default() -> Self {
        MeshLevels {
            routing: Level::Mic32,
            readings: Level::EncMic32,
            commands: Level::EncMic64,
            neighbour: Level::Mic64,
        }
    }
}

impl MeshLevels {
    /// The firmware policy over the mesh's security frame types (see [`crate::mesh::medium::mesh_sec_type`]);
    /// unknown types need the strongest level configured.
    pub fn policy(&self) -> Policy {
        let levels = [self.routing, self.readings, self.commands, self.neighbour].map(Level::firmware);
        let strongest =
            levels.iter().copied().max_by_key(|l| (l.mic_len(), l.encrypts())).unwrap_or(SecurityLevel::EncMic128);
        let strongest = if strongest.encrypts() {
            strongest
        } else {
            match strongest.mic_len() {
                4 => SecurityLevel::EncMic32,
                8 => SecurityLevel::EncMic64,
                _ => SecurityLevel::EncMic128,
            }
        };
        Policy::uniform(strongest)
            .with(1, self.routing.firmware())
            .with(5, self.routing.firmware())
            .with(crate::mesh::medium::SEC_TYPE_DAO, self.routing.firmware())
            .with(2, self.readings.firmware())
            .with(3, self.commands.firmware())
            .with(4, self.neighbour.firmware())
            .with(gridtwin_firmware::mesh::frame::PEER_KIND, self.neighbour.firmware())
    }
}

/// A security level of 802.15.4 (MIC length in bits; `Enc`: the payload is encrypted too).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Level {
    Mic32,
    Mic64,
    Mic128,
    EncMic32,
    EncMic64,
    EncMic128,
}

impl Level {
    pub fn firmware(self) -> SecurityLevel {
        match self {
            Level::Mic32 => SecurityLevel::Mic32,
            Level::Mic64 => SecurityLevel::Mic64,
            Level::Mic128 => SecurityLevel::Mic128,
            Level::EncMic32 => SecurityLevel::EncMic32,
            Level::EncMic64 => SecurityLevel::EncMic64,
            Level::EncMic128 => SecurityLevel::EncMic128,
        }
    }
}

/// How keys are provisioned.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub enum KeyPlan {
    /// One AES-128 key for the whole network under key index `index`; `key` is 32 hex digits.
    Group { index: u8, key: String },
}

/// A key rotation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub at: Dur,
    pub index: u8,
    /// 32 hex digits.
    pub key: String,
    /// The previous key is removed this long after the rotation.
    #[serde(default = "default_retire")]
    pub retire_after: Dur,
    /// LMUs (peer ids) not given the new key: the operator revokes them (a compromised LMU). Once the old
    /// key is retired the others refuse their frames.
    #[serde(default)]
    pub exclude: Vec<u16>,
}

fn default_retire() -> Dur {
    Dur(SimDuration::from_secs(60))
}

/// An LMU removed from the network.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    /// The LMU's peer id.
    pub lmu: u16,
    pub at: Dur,
    /// The LMU joins again at this time and is provisioned with the key in use then.
    #[serde(default)]
    pub rejoin: Option<Dur>,
}

/// Where an attacker stands.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
pub enum Position {
    /// At the pole of LMU `0` (its peer id).
    NearLmu(u16),
    /// At (x, y) metres in the feeder's layout.
    Xy(f64, f64),
}

/// An attacker.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub enum AttackerSpec {
    /// A rogue radio forging and replaying FLISR frames to the LMUs within `range_m`.
    RogueRadio {
        at: Position,
        range_m: f64,
        start: Dur,
        stop: Dur,
        /// One forged frame this often (none if absent).
        #[serde(default)]
        forge_every: Option<Dur>,
        /// One captured frame replayed this often (none if absent).
        #[serde(default)]
        replay_every: Option<Dur>,
        /// Every other forged frame is sealed under a guessed key (else all go in clear).
        #[serde(default)]
        guess_key: bool,
    },
    /// A compromised MQTT broker on the command path between the cloud and the gateway (scenarios with a
    /// `gateway`): from `start` to `stop` it publishes an `open` command of its own to the next LMU of
    /// `targets` every `inject_every` (alternately plain and signed under a key of its own), turns every other
    /// operator command it carries into `open` when `alter` (keeping any signature), and publishes the oldest
    /// operator command it captured again every `replay_every`. It does not hold the operator's key.
    Broker {
        start: Dur,
        stop: Dur,
        #[serde(default)]
        inject_every: Option<Dur>,
        #[serde(default)]
        replay_every: Option<Dur>,
        #[serde(default)]
        alter: bool,
        /// LMU ids it aims its injections at (empty: every LMU).
        #[serde(default)]
        targets: Vec<u16>,
    },
    /// A compromised LMU (its peer id `lmu`): it keeps the network's keys and, from `start` to `stop`, sends
    /// `Open` for its own section to its FLISR neighbours every `open_every`, never reports fault passage
    /// (`suppress_block`), reports fake readings (`fake_readings`) and opens its own contactor (`open_own`).
    /// See [`insider`].
    CompromisedLmu {
        lmu: u16,
        start: Dur,
        stop: Dur,
        #[serde(default)]
        open_every: Option<Dur>,
        #[serde(default)]
        suppress_block: bool,
        #[serde(default)]
        fake_readings: bool,
        #[serde(default)]
        open_own: bool,
    },
    /// A jammer: a noise-like transmitter of `eirp_dbm` at `at`, on from `start` to `stop`. Its power reaches
    /// every receiver through the mesh's propagation model and enters the SINR of every frame it overlaps
    /// (mesh frames, and the LMUs' FLISR frames on their peer link).
    Jammer {
        at: Position,
        /// Radiated power (EIRP), dBm.
        eirp_dbm: f64,
        start: Dur,
        stop: Dur,
        mode: JamModeSpec,
    },
}

/// How a jammer transmits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub enum JamModeSpec {
    /// On air for its whole period.
    Continuous,
    /// Listens, and after each frame start it senses (the frame's preamble and SFD, then its turnaround)
    /// transmits for `burst`.
    Reactive { burst: Dur },
}

/// Parses 32 hex digits into a key; the error says what is wrong.
pub fn parse_key(s: &str) -> Result<Key, String> {
    let t: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if t.len() != 2 * KEY_LEN {
        return Err(format!("must be {} hex digits (got {})", 2 * KEY_LEN, t.len()));
    }
    let mut k = [0u8; KEY_LEN];
    for (i, pair) in t.chunks(2).enumerate() {
        let hi = pair[0].to_digit(16).ok_or(format!("`{}` is not a hex digit", pair[0]))?;
        let lo = pair[1].to_digit(16).ok_or(format!("`{}` is not a hex digit", pair[1]))?;
        k[i] = (hi * 16 + lo) as u8;
    }
    if k.iter().all(|&b| b == 0) || k.iter().all(|&b| b == 0xff) {
        return Err("is a trivial key (all bits equal)".into());
    }
    Ok(k)
}

impl SecurityConfig {
    /// Checks keys, levels, times and attackers; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let KeyPlan::Group { index, key } = &self.keys;
        let first = parse_key(key).map_err(|e| format!("security.keys.key: {e}"))?;
        let mut keys = vec![first];
        let mut used = BTreeSet::from([*index]);
        let mut prev = SimDuration::ZERO;
        for (k, r) in self.rotations.iter().enumerate() {
            let new = parse_key(&r.key).map_err(|e| format!("security.rotations[{k}].key: {e}"))?;
            if keys.contains(&new) {
                return Err(format!(
                    "security.rotations[{k}].key: reuses an earlier key (a rotation must install a fresh key)"
                ));
            }
            keys.push(new);
            if !used.insert(r.index) {
                return Err(format!(
                    "security.rotations[{k}].index: key index {} was already used (each key gets a fresh index)",
                    r.index
                ));
            }
            if r.at.0 <= prev && k > 0 {
                return Err(format!("security.rotations[{k}].at: rotations must be in time order"));
            }
            prev = r.at.0;
        }
        if let Some(o) = &self.operator {
            o.keys()?;
        }
        if self.open_evidence_ms > 60_000 {
            return Err("security.open_evidence_ms: must be <= 60000 (one minute)".into());
        }
        for (k, r) in self.removed.iter().enumerate() {
            if let Some(j) = r.rejoin
                && j.0 <= r.at.0
            {
                return Err(format!("security.removed[{k}].rejoin: must be after its removal (`at`)"));
            }
        }
        if let Some(a) = self.max_frame_age
            && a.0 < SimDuration::from_millis(10)
        {
            return Err("security.max_frame_age: must be at least 10ms (one counter tick)".into());
        }
        for (k, a) in self.attackers.iter().enumerate() {
            let (at, start, stop) = match a {
                AttackerSpec::RogueRadio { at, range_m, start, stop, forge_every, replay_every, .. } => {
                    if !(range_m.is_finite() && *range_m > 0.0 && *range_m <= 10_000.0) {
                        return Err(format!(
                            "security.attackers[{k}].range_m: must be within (0, 10000] (got {range_m})"
                        ));
                    }
                    for (name, e) in [("forge_every", forge_every), ("replay_every", replay_every)] {
                        if let Some(e) = e
                            && e.0 < SimDuration::from_millis(10)
                        {
                            return Err(format!("security.attackers[{k}].{name}: must be at least 10ms"));
                        }
                    }
                    (at, start, stop)
                }
                AttackerSpec::CompromisedLmu { start, stop, open_every, .. } => {
                    if let Some(e) = open_every
                        && e.0 < SimDuration::from_millis(100)
                    {
                        return Err(format!("security.attackers[{k}].open_every: must be at least 100ms"));
                    }
                    if stop.0 <= start.0 {
                        return Err(format!("security.attackers[{k}].stop: must be after start"));
                    }
                    continue;
                }
                AttackerSpec::Broker { start, stop, inject_every, replay_every, .. } => {
                    for (name, e) in [("inject_every", inject_every), ("replay_every", replay_every)] {
                        if let Some(e) = e
                            && e.0 < SimDuration::from_millis(100)
                        {
                            return Err(format!("security.attackers[{k}].{name}: must be at least 100ms"));
                        }
                    }
                    if stop.0 <= start.0 {
                        return Err(format!("security.attackers[{k}].stop: must be after start"));
                    }
                    continue;
                }
                AttackerSpec::Jammer { at, eirp_dbm, start, stop, mode } => {
                    if !(eirp_dbm.is_finite() && (-30.0..=60.0).contains(eirp_dbm)) {
                        return Err(format!(
                            "security.attackers[{k}].eirp_dbm: must be within -30 ..= 60 dBm (got {eirp_dbm})"
                        ));
                    }
                    if let JamModeSpec::Reactive { burst } = mode
                        && !(SimDuration::from_micros(10)..=SimDuration::from_secs(1)).contains(&burst.0)
                    {
                        return Err(format!("security.attackers[{k}].mode.burst: must be within 10us ..= 1s"));
                    }
                    (at, start, stop)
                }
            };
            if let Position::Xy(x, y) = at
                && !(x.is_finite() && y.is_finite())
            {
                return Err(format!("security.attackers[{k}].at: coordinates must be finite"));
            }
            if stop.0 <= start.0 {
                return Err(format!("security.attackers[{k}].stop: must be after start"));
            }
        }
        Ok(())
    }

    fn policy(&self) -> Policy {
        Policy::uniform(self.status_level.firmware()).with(2, self.command_level.firmware())
    }
}

/// A key operation on an LMU's frame security (provisioning, rotation, removal).
#[derive(Clone, Debug)]
pub enum KeyOp {
    Install {
        index: u8,
        key: Key,
    },
    Use(u8),
    Remove(u8),
    /// The LMU was removed from the network: it loses every key.
    Wipe,
}

impl KeyOp {
    pub fn apply(&self, s: &mut FrameSecurity) {
        let _ = match self {
            KeyOp::Install { index, key } => s.install_key(*index, *key),
            KeyOp::Use(i) => s.use_key(*i),
            KeyOp::Remove(i) => {
                s.remove_key(*i);
                Ok(())
            }
            KeyOp::Wipe => {
                s.wipe();
                Ok(())
            }
        };
    }
}

/// The security part of a world: what scoring needs.
pub struct SecurityPart {
    enabled: bool,
    lmus: Vec<AgentId>,
    attackers: Vec<AgentId>,
    recorder: Option<AgentId>,
    /// The mesh agent, when the scenario has a mesh.
    mesh: Option<AgentId>,
    /// Jammers placed, and the end of the last one's period (ns).
    jammers: usize,
    jam_until_ns: u64,
    /// Real faults: [onset, onset + window).
    fault_windows: Vec<(SimTime, SimTime)>,
    attack_start: Option<SimTime>,
    frame_overhead: usize,
    /// The cloud agent (its broker may be compromised; it issues the operator's commands).
    cloud: Option<AgentId>,
    /// Operator commands are signed and the LMUs verify them.
    signed: bool,
    /// Compromised LMUs: agent, peer id.
    insiders: Vec<(AgentId, u16)>,
    /// When the last key a revoked LMU holds is retired by the others (its frames are refused from then).
    revoked_from: Option<SimTime>,
}

/// What a `security` section without LMUs or a mesh is told.
pub const NEEDS_LMUS_OR_MESH: &str = "needs an `lmus` or a `mesh` section (it secures the LMUs' and the mesh's frames)";

/// How long after a real fault's onset contactor operations and interruptions belong to the fault.
pub const FAULT_WINDOW: SimDuration = SimDuration::from_secs(120);
/// How long after an LMU accepted an impostor frame the contactor operations on the feeder are the attack's.
pub const ATTACK_EFFECT_WINDOW: SimDuration = SimDuration::from_secs(10);

/// Provisions frame security on the LMUs of `lmus` and on every node of the mesh agent `mesh`, schedules
/// rotations and removals, and adds the attackers.
pub fn add(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    cfg: &SecurityConfig,
    lmus: Option<&LmuPart>,
    mesh: Option<AgentId>,
    cloud: Option<AgentId>,
    seed: u64,
) -> Result<SecurityPart, InputError> {
    cfg.validate().map_err(|e| loaded.error_in("security", e))?;
    if loaded.scenario.gateway.is_none()
        && let Some(k) = cfg.attackers.iter().position(|a| matches!(a, AttackerSpec::Broker { .. }))
    {
        return Err(loaded.error_at(
            &format!("security.attackers[{k}]"),
            "a broker attacker sits on the command path between the cloud and the gateway: it needs a `gateway` section",
            None,
        ));
    }
    if lmus.is_none() && mesh.is_none() {
        return Err(loaded.error_at("security", NEEDS_LMUS_OR_MESH, None));
    }
    if cfg.enabled
        && let Some(m) = mesh
        && let Some(agent) = sim.agent_mut::<crate::mesh::MeshAgent>(m)
    {
        let KeyPlan::Group { index, key } = &cfg.keys;
        let key = parse_key(key).map_err(|e| loaded.error_at("security.keys.key", e, None))?;
        let ms = crate::mesh::medium::MeshSecurity {
            pan_id: cfg.pan_id,
            policy: cfg.mesh.policy(),
            key_index: *index,
            key,
            max_frame_age_ns: cfg.max_frame_age.map(|a| a.0.as_nanos()),
        };
        agent.secure(&ms).map_err(|e| loaded.error_at("security.mesh", e, None))?;
    }
    let (jammers, jam_until_ns) = add_jammers(sim, loaded, cfg, lmus, mesh, seed)?;
    let Some(lp) = lmus else {
        if let Some(k) = cfg.attackers.iter().position(|a| matches!(a, AttackerSpec::RogueRadio { .. })) {
            return Err(loaded.error_at(
                &format!("security.attackers[{k}]"),
                "a rogue radio attacks the LMUs' FLISR frames: it needs an `lmus` section",
                None,
            ));
        }
        return Ok(SecurityPart {
            enabled: cfg.enabled,
            lmus: Vec::new(),
            attackers: Vec::new(),
            recorder: None,
            mesh,
            jammers,
            jam_until_ns,
            fault_windows: Vec::new(),
            attack_start: None,
            frame_overhead: 0,
            cloud,
            signed: false,
            insiders: Vec::new(),
            revoked_from: None,
        });
    };
    let build = lp.build();
    let c = &build.commissioning;
    let policy = cfg.policy();
    let level = cfg.command_level.firmware();
    let KeyPlan::Group { index, key } = &cfg.keys;
    let key = parse_key(key).map_err(|e| loaded.error_at("security.keys.key", e, None))?;
    let engine = |e: crate::engine::EngineError| loaded.error_at("security", e.to_string(), None);
    for (l, &agent) in c.lmus.iter().zip(&build.agents) {
        let Some(a) = sim.agent_mut::<LmuAgent>(agent) else { continue };
        if cfg.enabled {
            let mut s = FrameSecurity::new(cfg.pan_id, l.peer, policy, cfg.status_level.firmware());
            s.install_key(*index, key).map_err(|e| loaded.error_at("security.keys", format!("{e:?}"), None))?;
            if let Some(age) = cfg.max_frame_age {
                s.set_freshness(gridtwin_firmware::Duration::from_nanos(age.0.as_nanos()));
            }
            a.security = Some(s);
        }
    }
    if cfg.enabled {
        let mut current = *index;
        for (k, r) in cfg.rotations.iter().enumerate() {
            let new =
                parse_key(&r.key).map_err(|e| loaded.error_at(&format!("security.rotations[{k}].key"), e, None))?;
            let at = SimTime::ZERO + r.at.0;
            for (j, x) in r.exclude.iter().enumerate() {
                if !c.lmus.iter().any(|l| l.peer == *x) {
                    return Err(loaded.error_at(
                        &format!("security.rotations[{k}].exclude[{j}]"),
                        format!("no LMU {x} on this feeder (peers 1..={})", c.lmus.len()),
                        None,
                    ));
                }
            }
            for (l, &a) in c.lmus.iter().zip(&build.agents) {
                if r.exclude.contains(&l.peer) {
                    continue;
                }
                let ops = [
                    (at, KeyOp::Install { index: r.index, key: new }),
                    (at, KeyOp::Use(r.index)),
                    (at.saturating_add(r.retire_after.0), KeyOp::Remove(current)),
                ];
                for (t, op) in ops {
                    sim.schedule(a, a, t, class::GRID, Msg::Lmu(LmuMsg::Keys(op))).map_err(engine)?;
                }
            }
            current = r.index;
        }
    }
    // Operator-signed commands: the LMUs get the operator's public key, the cloud its signing key.
    let signed = cfg.enabled && cfg.operator.is_some();
    if let (true, Some(o)) = (cfg.enabled, &cfg.operator) {
        let (sk, public) = o.keys().map_err(|e| loaded.error_in("security", e))?;
        for (l, &agent) in c.lmus.iter().zip(&build.agents) {
            let v = gridtwin_firmware::gateway::signed::CommandVerifier::new(&public, l.peer as u32)
                .map_err(|_| loaded.error_at("security.operator.public_key", "is not a usable ed25519 key", None))?;
            if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
                a.verifier = Some(v);
            }
        }
        if let Some(k) = cloud.and_then(|id| sim.agent_mut::<crate::agents::cloud::CloudAgent>(id)) {
            k.signer = Some(crate::agents::cloud::OperatorSigner { key: sk, counter: 0, lifetime: o.lifetime.0 });
        }
    }
    for (k, r) in cfg.removed.iter().enumerate() {
        let Some(pos) = c.lmus.iter().position(|l| l.peer == r.lmu) else {
            return Err(loaded.error_at(
                &format!("security.removed[{k}].lmu"),
                format!("no LMU {} on this feeder (peers 1..={})", r.lmu, c.lmus.len()),
                None,
            ));
        };
        let a = build.agents[pos];
        sim.schedule(a, a, SimTime::ZERO + r.at.0, class::GRID, Msg::Lmu(LmuMsg::Keys(KeyOp::Wipe))).map_err(engine)?;
        if let (true, Some(rejoin)) = (cfg.enabled, r.rejoin) {
            // Provisioned on joining again with the key in use then (the newest rotation at or before it).
            let KeyPlan::Group { index, key } = &cfg.keys;
            let (mut idx, mut key) = (*index, key.clone());
            for (j, rot) in cfg.rotations.iter().enumerate() {
                if rot.at.0 > rejoin.0 {
                    break;
                }
                if rot.exclude.contains(&r.lmu) {
                    return Err(loaded.error_at(
                        &format!("security.removed[{k}].rejoin"),
                        format!("LMU {} was revoked by security.rotations[{j}]: a revoked LMU cannot rejoin", r.lmu),
                        None,
                    ));
                }
                (idx, key) = (rot.index, rot.key.clone());
            }
            let key = parse_key(&key).map_err(|e| loaded.error_at("security.keys.key", e, None))?;
            let t = SimTime::ZERO + rejoin.0;
            for op in [KeyOp::Install { index: idx, key }, KeyOp::Use(idx)] {
                sim.schedule(a, a, t, class::GRID, Msg::Lmu(LmuMsg::Keys(op))).map_err(engine)?;
            }
        }
    }
    // FLISR: with security on, a neighbour's `Open` is obeyed only with local evidence of a fault.
    if cfg.enabled && cfg.open_evidence_ms > 0 {
        for &agent in &build.agents {
            if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
                a.firmware_mut().flisr_mut().set_open_evidence_ms(cfg.open_evidence_ms);
            }
        }
    }
    // Compromised LMUs: the attacker runs them; the others' records know them (ground truth for scoring).
    let mut insiders = Vec::new();
    for (k, spec) in cfg.attackers.iter().enumerate() {
        let AttackerSpec::CompromisedLmu { lmu, start, stop, open_every, suppress_block, fake_readings, open_own } =
            spec
        else {
            continue;
        };
        let Some(pos) = c.lmus.iter().position(|l| l.peer == *lmu) else {
            return Err(loaded.error_at(
                &format!("security.attackers[{k}].lmu"),
                format!("no LMU {lmu} on this feeder (peers 1..={})", c.lmus.len()),
                None,
            ));
        };
        let x = insider::Insider::new(
            SimTime::ZERO + start.0,
            SimTime::ZERO + stop.0,
            open_every.map(|d| d.0),
            *suppress_block,
            *fake_readings,
            *open_own,
        );
        if let Some(a) = sim.agent_mut::<LmuAgent>(build.agents[pos]) {
            a.insider = Some(x);
        }
        insiders.push((build.agents[pos], *lmu, SimTime::ZERO + start.0));
    }
    for &agent in &build.agents {
        if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
            a.compromised_peers = insiders.iter().map(|i| i.1).collect();
        }
    }
    let revoked_from = cfg
        .rotations
        .iter()
        .filter(|r| insiders.iter().any(|i| r.exclude.contains(&i.1)))
        .map(|r| (SimTime::ZERO + r.at.0).saturating_add(r.retire_after.0))
        .next();
    let mut attackers = Vec::new();
    let mut attack_start: Option<SimTime> = insiders.iter().map(|i| i.2).min();
    for (k, spec) in cfg.attackers.iter().enumerate() {
        let AttackerSpec::Broker { start, stop, inject_every, replay_every, alter, targets } = spec else { continue };
        // Under the live bridge the broker is a real one: nothing to simulate.
        let Some(cloud_agent) = cloud else { continue };
        let mut ids = Vec::new();
        for (j, t) in targets.iter().enumerate() {
            if !c.lmus.iter().any(|l| l.peer == *t) {
                return Err(loaded.error_at(
                    &format!("security.attackers[{k}].targets[{j}]"),
                    format!("no LMU {t} on this feeder (peers 1..={})", c.lmus.len()),
                    None,
                ));
            }
            ids.push(*t as u32);
        }
        if ids.is_empty() {
            ids = c.lmus.iter().map(|l| l.peer as u32).collect();
        }
        let start = SimTime::ZERO + start.0;
        attack_start = Some(attack_start.map_or(start, |s| s.min(start)));
        let mut seed_bytes = [0u8; 32];
        rand::RngExt::fill(&mut stream(seed, 0x5ec1_0000 + k as u64, "broker-key"), &mut seed_bytes[..]);
        let b = broker::BrokerAttack::new(
            start,
            SimTime::ZERO + stop.0,
            inject_every.map(|d| d.0),
            replay_every.map(|d| d.0),
            *alter,
            ids,
            seed_bytes,
        );
        if let Some(a) = sim.agent_mut::<crate::agents::cloud::CloudAgent>(cloud_agent) {
            a.attack = Some(b);
        }
    }
    for (k, spec) in cfg.attackers.iter().enumerate() {
        let AttackerSpec::RogueRadio { at, range_m, start, stop, forge_every, replay_every, guess_key } = spec else {
            continue;
        };
        let xy = match *at {
            Position::Xy(x, y) => (x, y),
            Position::NearLmu(p) => lp.lmus.iter().find(|l| l.1 == p as u32).map(|l| l.2).ok_or_else(|| {
                loaded.error_at(&format!("security.attackers[{k}].at"), format!("no LMU {p} on this feeder"), None)
            })?,
        };
        let id = sim.next_agent_id();
        let mut targets = Vec::new();
        for (l, &(agent, _, (x, y))) in c.lmus.iter().zip(&lp.lmus) {
            if (x - xy.0).hypot(y - xy.1) > *range_m {
                continue;
            }
            targets.push(Target { peer: l.peer, agent, upstream: l.upstream, downstream: l.downstream.clone() });
            if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
                a.eavesdroppers.push(id);
            }
        }
        if targets.is_empty() {
            return Err(loaded.error_at(
                &format!("security.attackers[{k}].range_m"),
                format!("reaches no LMU from {xy:?}"),
                Some("move it closer or widen its range".into()),
            ));
        }
        let start = SimTime::ZERO + start.0;
        attack_start = Some(attack_start.map_or(start, |s| s.min(start)));
        let r = RogueRadio::new(
            targets,
            start,
            SimTime::ZERO + stop.0,
            forge_every.map(|d| d.0),
            replay_every.map(|d| d.0),
            *guess_key,
            cfg.pan_id,
            level,
            stream(seed, 0x5ec0_0000 + k as u64, "rogue-radio"),
        );
        attackers.push(sim.add_agent(Box::new(r)).map_err(engine)?);
    }
    let fault_windows = build
        .faults
        .iter()
        .map(|f| {
            let on = SimTime::ZERO + f.onset;
            (on, on.saturating_add(FAULT_WINDOW))
        })
        .collect();
    Ok(SecurityPart {
        enabled: cfg.enabled,
        lmus: build.agents.clone(),
        attackers,
        recorder: Some(build.recorder),
        mesh,
        jammers,
        jam_until_ns,
        fault_windows,
        attack_start,
        frame_overhead: if cfg.enabled { level.overhead() } else { 0 },
        cloud,
        signed,
        insiders: insiders.iter().map(|i| (i.0, i.1)).collect(),
        revoked_from,
    })
}

impl SecurityPart {
    fn in_fault(&self, t: SimTime) -> bool {
        self.fault_windows.iter().any(|&(a, b)| t >= a && t < b)
    }

    /// The `security.insider` object (scenarios with compromised LMUs) and its console line: what they sent
    /// and suppressed, which of their `Open` requests honest LMUs obeyed (their times join `accepted_at`) or
    /// refused for want of local evidence, their own contactor operations, and their frames refused by frame
    /// security (after the operator revoked them: `frames_refused_after_revocation`).
    fn insider_report(
        &self,
        sim: &Simulation<Msg>,
        lmus: &[&LmuAgent],
        accepted_at: &mut Vec<SimTime>,
    ) -> Option<(serde_json::Value, String)> {
        if self.insiders.is_empty() {
            return None;
        }
        let xs: Vec<&LmuAgent> = self.insiders.iter().filter_map(|&(a, _)| sim.agent::<LmuAgent>(a)).collect();
        let mut own_ops = 0u64;
        let (mut opens_sent, mut blocks, mut fakes) = (0u64, 0u64, 0u64);
        for a in &xs {
            if let Some(x) = &a.insider {
                opens_sent += x.opens_sent;
                blocks += x.blocks_suppressed;
                fakes += x.readings_faked;
                own_ops += a.switching.iter().filter(|(t, _)| *t >= x.start).count() as u64;
            }
        }
        let (mut obeyed, mut refused_evidence, mut refused, mut refused_after) = (0u64, 0u64, 0u64, 0u64);
        for l in lmus {
            if l.insider.is_some() {
                continue;
            }
            obeyed += l.insider_opens_obeyed.len() as u64;
            accepted_at.extend(l.insider_opens_obeyed.iter().copied());
            refused_evidence += l.firmware().flisr().opens_refused;
            refused += l.insider_frames_refused.len() as u64;
            if let Some(r) = self.revoked_from {
                refused_after += l.insider_frames_refused.iter().filter(|&&t| t >= r).count() as u64;
            }
        }
        let obj = json!({
            "lmus": self.insiders.iter().map(|i| i.1).collect::<Vec<_>>(),
            "opens_sent": opens_sent,
            "opens_obeyed": obeyed,
            "opens_refused_no_evidence": refused_evidence,
            "blocks_suppressed": blocks,
            "readings_faked": fakes,
            "own_contactor_ops": own_ops,
            "revoked_at_s": self.revoked_from.map(|t| t.as_secs_f64()),
            "frames_refused": refused,
            "frames_refused_after_revocation": refused_after,
        });
        let human = format!(
            "insider: {} compromised LMU(s): {opens_sent} Open sent, {obeyed} obeyed, {refused_evidence} refused without local evidence; {blocks} blocks suppressed, {fakes} readings faked, {own_ops} own contactor operations; {refused_after} frames refused after revocation",
            self.insiders.len()
        );
        Some((obj, human))
    }

    /// The `security.commands` object (scenarios with a simulated cloud) and its console line: what a
    /// compromised broker injected, altered and replayed, which operator commands the LMUs accepted that the
    /// operator never issued (or accepted twice: replays), and the LMUs' refusals by reason. The times of those
    /// acceptances join `accepted_at`, so the contactor operations that followed count as the attacker's.
    fn command_report(
        &self,
        sim: &Simulation<Msg>,
        lmus: &[&LmuAgent],
        accepted_at: &mut Vec<SimTime>,
    ) -> Option<(serde_json::Value, String)> {
        let cloud = self.cloud.and_then(|a| sim.agent::<crate::agents::cloud::CloudAgent>(a))?;
        use gridtwin_firmware::gateway::command::Command;
        let issued: BTreeSet<Command> = cloud.issued.iter().map(|i| i.command).collect();
        let (mut genuine, mut malicious) = (0u64, 0u64);
        let mut seen = BTreeSet::new();
        let mut v = gridtwin_firmware::gateway::signed::VerifyStats::default();
        for l in lmus {
            for &(t, c) in &l.commands {
                if issued.contains(&c) && seen.insert(c) {
                    genuine += 1;
                } else {
                    malicious += 1;
                    accepted_at.push(t);
                }
            }
            if let Some(x) = l.verifier.as_ref().map(|x| x.stats) {
                v.accepted += x.accepted;
                v.malformed += x.malformed;
                v.unsigned += x.unsigned;
                v.bad_signature += x.bad_signature;
                v.wrong_lmu += x.wrong_lmu;
                v.replayed += x.replayed;
                v.expired += x.expired;
            }
        }
        let (injected, altered, replayed) =
            cloud.attack.as_ref().map_or((0, 0, 0), |a| (a.injected, a.altered, a.replayed));
        let obj = json!({
            "signed": self.signed,
            "issued": cloud.issued.len(),
            "genuine_accepted": genuine,
            "injected": injected,
            "altered": altered,
            "replayed": replayed,
            "malicious_accepted": malicious,
            "refused": v.refused(),
            "refused_by": {
                "unsigned": v.unsigned,
                "bad_signature": v.bad_signature,
                "replayed": v.replayed,
                "expired": v.expired,
                "wrong_lmu": v.wrong_lmu,
                "malformed": v.malformed,
            },
        });
        let human = format!(
            "commands: {} ({} issued, {} accepted; broker injected {injected}, altered {altered}, replayed {replayed}; {malicious} of those accepted, {} refused)",
            if self.signed { "operator-signed" } else { "unsigned" },
            cloud.issued.len(),
            genuine,
            v.refused()
        );
        Some((obj, human))
    }
}

impl crate::world::Part for SecurityPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let radios: Vec<&RogueRadio> = self.attackers.iter().filter_map(|&a| sim.agent::<RogueRadio>(a)).collect();
        let forged: u64 = radios.iter().map(|a| a.frames_forged).sum();
        let replayed: u64 = radios.iter().map(|a| a.frames_replayed).sum();
        let captured: u64 = radios.iter().map(|a| a.frames_captured).sum();
        let replay_set: BTreeSet<&Vec<u8>> = radios.iter().flat_map(|a| a.replayed.iter()).collect();
        let lmus: Vec<&LmuAgent> = self.lmus.iter().filter_map(|&a| sim.agent::<LmuAgent>(a)).collect();
        let (mut forged_acc, mut replayed_acc) = (0u64, 0u64);
        let mut accepted_at = Vec::new();
        let mut stats = gridtwin_firmware::sec::SecStats::default();
        let (mut plain, mut sent, mut refused, mut frames) = (0u64, 0u64, 0u64, 0u64);
        for l in &lmus {
            for (t, b) in &l.impostor_accepted {
                if replay_set.contains(b) {
                    replayed_acc += 1;
                } else {
                    forged_acc += 1;
                }
                accepted_at.push(*t);
            }
            forged_acc += l.impostor_overflow;
            plain += l.peer_bytes_plain;
            sent += l.peer_bytes_sent;
            refused += l.frames_refused;
            frames += l.frames_sent;
            if let Some(s) = &l.security {
                let x = s.stats();
                stats.sealed += x.sealed;
                stats.opened += x.opened;
                stats.bad_mic += x.bad_mic;
                stats.replayed += x.replayed;
                stats.unknown_key += x.unknown_key;
                stats.level_too_low += x.level_too_low;
                stats.malformed += x.malformed;
                stats.table_full += x.table_full;
                stats.stale += x.stale;
                stats.overhead_bytes += x.overhead_bytes;
            }
        }
        let commands = self.command_report(sim, &lmus, &mut accepted_at);
        let insider_obj = self.insider_report(sim, &lmus, &mut accepted_at);
        accepted_at.sort();
        // Contactor operations anywhere on the feeder within the effect window after an accepted impostor
        // frame, outside the real faults' windows.
        let mut ops = 0u64;
        for l in &lmus {
            // A compromised LMU's own switching is reported under `insider`.
            if l.insider.is_some() {
                continue;
            }
            for &(t, _) in &l.switching {
                if self.in_fault(t) {
                    continue;
                }
                let after = accepted_at.partition_point(|&a| a <= t);
                if after > 0 && t.0 - accepted_at[after - 1].0 <= ATTACK_EFFECT_WINDOW.as_nanos() {
                    ops += 1;
                }
            }
        }
        // Customers losing supply after the attack started, outside the real faults' windows.
        let mut out = BTreeSet::new();
        if let (Some(start), Some(rec)) =
            (self.attack_start, self.recorder.and_then(|a| sim.agent::<SupplyRecorder>(a)))
        {
            let mut prev: Option<&Vec<bool>> = None;
            for (t, bits) in &rec.history {
                if *t >= start && !self.in_fault(*t) {
                    for (k, &b) in bits.iter().enumerate() {
                        if !b && prev.is_none_or(|p| p.get(k).copied().unwrap_or(true)) {
                            out.insert(k);
                        }
                    }
                }
                prev = Some(bits);
            }
        }
        let overhead_pct = if plain > 0 { 100.0 * (sent as f64 - plain as f64) / plain as f64 } else { 0.0 };
        r.summary.insert(
            "security".into(),
            json!({
                "enabled": self.enabled,
                "frames_forged": forged,
                "frames_replayed": replayed,
                "frames_captured": captured,
                "forged_accepted": forged_acc,
                "replayed_accepted": replayed_acc,
                "contactor_ops_by_attacker": ops,
                "customers_interrupted_by_attack": out.len(),
                "flisr_frames_sent": frames,
                "flisr_bytes_plain": plain,
                "flisr_bytes_sent": sent,
                "overhead_bytes_per_frame": self.frame_overhead,
                "overhead_pct": overhead_pct,
                "frames_refused": refused,
                "refused": {
                    "bad_mic": stats.bad_mic,
                    "replayed": stats.replayed,
                    "unknown_key": stats.unknown_key,
                    "level_too_low": stats.level_too_low,
                    "malformed": stats.malformed,
                    "table_full": stats.table_full,
                    "stale": stats.stale,
                },
                "frames_sealed": stats.sealed,
                "frames_opened": stats.opened,
            }),
        );
        let mesh = self.mesh.and_then(|a| sim.agent::<crate::mesh::MeshAgent>(a));
        let jam = (self.jammers > 0).then(|| jamming_report(self.jammers, self.jam_until_ns, mesh, &lmus, sim.now()));
        if let Some(obj) = r.summary.get_mut("security").and_then(|v| v.as_object_mut()) {
            if self.enabled && !lmus.is_empty() {
                // The key each LMU seals with at the end (null: it holds none), by peer id: after a rotation
                // a revoked LMU is left on the old index and a rejoined one has the new.
                let m: serde_json::Map<String, serde_json::Value> = lmus
                    .iter()
                    .map(|l| (l.peer.to_string(), json!(l.security.as_ref().and_then(|s| s.tx_key()))))
                    .collect();
                obj.insert("tx_key_index".into(), serde_json::Value::Object(m));
            }
            if let Some((x, human)) = insider_obj {
                obj.insert("insider".into(), x);
                r.human.push(human);
            }
            if let Some((c, human)) = commands {
                obj.insert("injected_commands_accepted".into(), c["malicious_accepted"].clone());
                obj.insert("commands".into(), c);
                r.human.push(human);
            }
            if let Some(m) = mesh {
                obj.insert("mesh".into(), mesh_security_report(m));
            }
            if let Some((j, lost)) = &jam {
                obj.insert("frames_lost_to_jamming".into(), json!(lost));
                obj.insert("jamming".into(), j.clone());
            }
        }
        if let Some((j, lost)) = &jam {
            let pdr = |v: &serde_json::Value| v.as_f64().map_or("n/a".to_string(), |p| format!("{p:.3}"));
            let part = |name: &str| {
                let o = &j[name];
                if o.is_null() {
                    String::new()
                } else {
                    format!(", {name} PDR {} jammed vs {} outside", pdr(&o["pdr_in_period"]), pdr(&o["pdr_outside"]))
                }
            };
            r.human.push(format!(
                "jamming: {} jammer(s), {lost} frames lost{}{}",
                self.jammers,
                part("mesh"),
                part("flisr")
            ));
        }
        r.human.push(format!(
            "security: {} ({} forged, {} replayed; accepted {} forged, {} replayed; {} contactor operations and {} customers interrupted by the attack; {} frames refused)",
            if self.enabled { "on" } else { "off" },
            forged,
            replayed,
            forged_acc,
            replayed_acc,
            ops,
            out.len(),
            refused
        ));
    }
}

/// The `security.mesh` object: frames sealed, opened and refused by reason over every mesh node, and what
/// the security bytes cost (bytes per sealed frame, airtime of the security bytes against all airtime).
fn mesh_security_report(m: &crate::mesh::MeshAgent) -> serde_json::Value {
    let mut st = gridtwin_firmware::sec::SecStats::default();
    let (mut sec_ns, mut tx_ns, mut psdu, mut frames, mut seal_fail) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..m.node_count() {
        let n = m.node_stats(i);
        sec_ns += n.sec_tx_ns;
        tx_ns += n.tx_ns;
        psdu += n.tx_psdu_bytes;
        frames += n.tx_frames as u64;
        seal_fail += n.seal_failures as u64;
        if let Some(x) = m.node_security(i).map(|s| *s.stats()) {
            st.sealed += x.sealed;
            st.opened += x.opened;
            st.bad_mic += x.bad_mic;
            st.replayed += x.replayed;
            st.unknown_key += x.unknown_key;
            st.level_too_low += x.level_too_low;
            st.malformed += x.malformed;
            st.table_full += x.table_full;
            st.stale += x.stale;
            st.overhead_bytes += x.overhead_bytes;
        }
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    json!({
        "frames_sealed": st.sealed,
        "frames_opened": st.opened,
        "frames_refused": st.dropped(),
        "refused": {
            "bad_mic": st.bad_mic,
            "replayed": st.replayed,
            "unknown_key": st.unknown_key,
            "level_too_low": st.level_too_low,
            "malformed": st.malformed,
            "table_full": st.table_full,
            "stale": st.stale,
        },
        "seal_failures": seal_fail,
        "overhead_bytes": st.overhead_bytes,
        "overhead_bytes_per_frame": ratio(st.overhead_bytes, st.sealed),
        "tx_psdu_bytes_per_frame": ratio(psdu, frames),
        "airtime_s": tx_ns as f64 * 1e-9,
        "security_airtime_s": sec_ns as f64 * 1e-9,
        "security_airtime_pct": ratio(100 * sec_ns, tx_ns.saturating_sub(sec_ns)),
    })
}

/// Places the jammers of `cfg` on the mesh agent `mesh` and on the LMUs' peer links, with the radio and
/// propagation of the scenario's `mesh` section (or the default mesh's, when FLISR frames are the only radio
/// traffic); returns how many there are.
fn add_jammers(
    sim: &mut Simulation<Msg>,
    loaded: &Loaded,
    cfg: &SecurityConfig,
    lmus: Option<&LmuPart>,
    mesh: Option<AgentId>,
    seed: u64,
) -> Result<(usize, u64), InputError> {
    use crate::mesh::jam::{JamField, JamMode, Jammer};
    let mut list = Vec::new();
    for (k, spec) in cfg.attackers.iter().enumerate() {
        let AttackerSpec::Jammer { at, eirp_dbm, start, stop, mode } = spec else { continue };
        let (x_m, y_m) = match *at {
            Position::Xy(x, y) => (x, y),
            Position::NearLmu(p) => {
                let lmu = lmus.and_then(|lp| lp.lmus.iter().find(|l| l.1 == p as u32).map(|l| l.2));
                let node = || {
                    let m = mesh.and_then(|a| sim.agent::<crate::mesh::MeshAgent>(a))?;
                    m.index_of(p as u32).map(|i| m.links.xy[i])
                };
                lmu.or_else(node).ok_or_else(|| {
                    loaded.error_at(&format!("security.attackers[{k}].at"), format!("no LMU or mesh node {p}"), None)
                })?
            }
        };
        let mode = match mode {
            JamModeSpec::Continuous => JamMode::Continuous,
            JamModeSpec::Reactive { burst } => JamMode::Reactive { burst_ns: burst.0.as_nanos() },
        };
        list.push(Jammer {
            x_m,
            y_m,
            eirp_dbm: *eirp_dbm,
            start_ns: start.0.as_nanos(),
            stop_ns: stop.0.as_nanos(),
            mode,
        });
    }
    if list.is_empty() {
        return Ok((0, 0));
    }
    let until_ns = list.iter().map(|j| j.stop_ns).max().unwrap_or(0);
    let mesh_cfg = loaded.scenario.mesh.clone().unwrap_or_default();
    let (radio, _) = loaded.model::<crate::mesh::RadioModel>(&format!("radio-{}", mesh_cfg.radio))?;
    let n = list.len();
    let field = std::sync::Arc::new(JamField::new(list, radio, mesh_cfg.propagation, seed));
    if let Some(m) = mesh.and_then(|a| sim.agent_mut::<crate::mesh::MeshAgent>(a)) {
        m.add_jammers(field.clone());
    }
    if let Some(lp) = lmus {
        let poles: std::collections::BTreeMap<u16, (f64, f64)> =
            lp.build().commissioning.lmus.iter().zip(&lp.lmus).map(|(l, e)| (l.peer, e.2)).collect();
        for &(agent, _, _) in &lp.lmus {
            let Some(a) = sim.agent_mut::<LmuAgent>(agent) else { continue };
            let mine: std::collections::BTreeMap<u16, (f64, f64)> =
                std::iter::once(a.peer).chain(a.peer_ids()).filter_map(|p| poles.get(&p).map(|&xy| (p, xy))).collect();
            a.jam = Some(crate::twin::link::JamLink::new(field.clone(), mine, stream(seed, agent.0 as u64, "jamming")));
        }
    }
    Ok((n, until_ns))
}

/// The `security.jamming` object (and the frames lost to jamming): per path (mesh, FLISR peer links), the
/// frames the jammers cost and delivery for traffic generated during the jamming periods against outside
/// them, and after the last period ended (mesh: readings, over complete metrics bins, the last two minutes
/// left out as still in flight; `after` counts the bins that end after the last period).
fn jamming_report(
    jammers: usize,
    until_ns: u64,
    mesh: Option<&crate::mesh::MeshAgent>,
    lmus: &[&LmuAgent],
    now: SimTime,
) -> (serde_json::Value, u64) {
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let mut lost = 0;
    let mesh_obj = mesh.and_then(|m| {
        let st = m.jam_stats()?;
        let complete = (now.0.saturating_sub(120_000_000_000) / m.bin_ns) as usize;
        let bins = &m.bins[..complete.min(m.bins.len())];
        let (mut si, mut di, mut so, mut dout, mut sa, mut da) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for (k, b) in bins.iter().enumerate() {
            si += b.jam_sent as u64;
            di += b.jam_delivered as u64;
            so += (b.sent - b.jam_sent) as u64;
            dout += (b.delivered - b.jam_delivered) as u64;
            if (k as u64 + 1) * m.bin_ns > until_ns {
                sa += (b.sent - b.jam_sent) as u64;
                da += (b.delivered - b.jam_delivered) as u64;
            }
        }
        lost += st.rx_lost;
        Some(json!({
            "frames_lost": st.rx_lost,
            "cca_busy": st.cca_busy,
            "bursts": st.bursts,
            "reports_in_period": si,
            "pdr_in_period": ratio(di, si),
            "reports_outside": so,
            "pdr_outside": ratio(dout, so),
            "reports_after": sa,
            "pdr_after": ratio(da, sa),
        }))
    });
    let links: Vec<&crate::twin::link::JamLink> = lmus.iter().filter_map(|l| l.jam.as_ref()).collect();
    let flisr = (!links.is_empty()).then(|| {
        let sum = |f: fn(&crate::twin::link::JamLink) -> u64| links.iter().map(|j| f(j)).sum::<u64>();
        let l = sum(|j| j.lost);
        lost += l;
        json!({
            "frames_lost": l,
            "frames_in_period": sum(|j| j.sent_in),
            "pdr_in_period": ratio(sum(|j| j.delivered_in), sum(|j| j.sent_in)),
            "frames_outside": sum(|j| j.sent_out),
            "pdr_outside": ratio(sum(|j| j.delivered_out), sum(|j| j.sent_out)),
        })
    });
    (json!({ "jammers": jammers, "mesh": mesh_obj, "flisr": flisr }), lost)
}
