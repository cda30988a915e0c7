//! The radio mesh of the LMUs: propagation (dB), PHY error models, the 802.15.4 MAC and the channel as a twin,
//! the RPL-style routing firmware driven through the radio HAL, and the mesh metrics.
//!
//! Layout: [`radio`] (hardware model), [`propagation`] (path loss, shadowing, fading), [`phy`] (BER/PER,
//! SINR over changing interference), [`medium`] (the mesh agent: channel, MAC, routers), [`jam`] (jammers on
//! the channel), [`config`] (the scenario section), [`build`](mod@build) (wiring into a simulation, validation, reports).
//!
//! The application seam: an agent sends `Msg::Mesh(MeshMsg::Send(..))` to the mesh agent
//! ([`MeshHandle::agent`]) naming its node; payloads arriving at a node whose [`NodeSpec::app`] is set come
//! back to that agent as `Msg::Mesh(MeshMsg::Deliver(..))`.

pub mod build;
pub(crate) mod channel;
pub mod config;
mod helper;
pub mod jam;
mod links;
pub mod medium;
pub mod phy;
pub mod propagation;
pub mod radio;

pub use build::{MeshHandle, MeshReport, NodeRow, build};
pub use config::{Layout, MeshConfig, MeshEvent, NodeSpec, RandomFailures, Routing, SiteSpec, Traffic};
pub use gridtwin_firmware::mesh::DeliveryKind;
pub use medium::{MeshAgent, NodeStats};
pub use propagation::{Fading, Propagation};
pub use radio::{MacParams, PhyKind, RadioModel};

use crate::engine::SimTime;
pub use gridtwin_firmware::hal::radio::TxClass;

/// Where an application payload goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshDest {
    /// Upward to the node's coordinator (its DODAG root).
    Coordinator,
    /// One hop to the neighbour with this id (FLISR messages).
    Neighbor(u32),
    /// One unacknowledged frame to every node in radio range (FLISR messages that every LMU above the sender
    /// may overhear).
    Broadcast,
    /// From a coordinator, source-routed down to the node with this id (commands).
    Node(u32),
}

/// An application's request to send through its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshSend {
    /// Id of the sending node.
    pub node: u32,
    pub to: MeshDest,
    pub payload: Vec<u8>,
    /// Traffic class of a neighbour frame in the node's queue and channel access (frames up to the
    /// coordinator and down from it are `Normal`, whatever this says).
    pub class: TxClass,
    /// Latest-value kind (neighbour frames): while a frame of the same kind to the same destination still
    /// waits in the node's queue (not yet on the air), this one takes its place instead of queueing behind it.
    /// For messages whose newest copy makes older ones moot (a repeated question, its answer).
    pub replaces: Option<u8>,
}

/// A payload delivered to a node's application agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshDelivery {
    /// Id of the receiving node.
    pub node: u32,
    /// Id of the originating node.
    pub from: u32,
    pub kind: DeliveryKind,
    pub payload: Vec<u8>,
    /// When the origin handed it to the mesh.
    pub sent_at: SimTime,
    pub hops: u8,
    /// A neighbour frame sent to every node in range ([`MeshDest::Broadcast`]), not to this one alone.
    pub broadcast: bool,
}

/// What a mesh-internal timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    Router,
    Report,
    Command,
    Cca,
    TxEnd,
    AckEnd,
    AckTimeout,
}

/// A mesh-internal timer of node index `node`; stale when the node's power generation `epoch` changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshTimer {
    pub node: u32,
    pub epoch: u32,
    pub kind: TimerKind,
    /// Transmission id for `TxEnd`/`AckEnd`.
    pub air: u64,
}

/// Power and routing changes (by node index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshControl {
    Fail(u32),
    Recover(u32),
    Join(u32),
    /// Fail this many parts per million of the current relays.
    FailRelays(u32),
    GlobalRepair,
    /// Extra loss on the link between two node indices, milli-dB (0 restores it).
    DegradeLink(u32, u32, u32),
    RandomFail(u32),
    RandomRecover(u32),
}

/// Messages of the mesh.
#[derive(Clone, Debug)]
pub enum MeshMsg {
    /// Application -> mesh agent.
    Send(Box<MeshSend>),
    /// Mesh agent -> application agent.
    Deliver(Box<MeshDelivery>),
    /// Mesh agent -> itself.
    Timer(MeshTimer),
    /// Scheduled changes (mesh agent -> itself, or from a scenario driver).
    Control(MeshControl),
}
