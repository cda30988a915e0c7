//! `Msg`: the one message type on a gridtwin run's event queue.
//!
//! Each subsystem owns its variant's type in its own module, so adding a message to the mesh or the grid never
//! touches the engine. `Custom` lets a user-defined agent kind (see `examples/custom_agent.rs`) carry its own
//! data without editing this enum.

use std::any::Any;

/// A message between agents (or an agent's own timer).
#[derive(Debug)]
pub enum Msg {
    /// An agent's own timer; the tag says which.
    Timer(u64),
    /// Grid physics: switching, faults, profile steps, solved states.
    Grid(crate::grid::GridMsg),
    /// Radio mesh: frames on the air, MAC and routing timers, application payloads in and out.
    Mesh(crate::mesh::MeshMsg),
    /// LMU devices: sensor samples, contactor operations, FLISR messages.
    Lmu(crate::twin::LmuMsg),
    /// The upstream path: coordinator, UART, gateway, cloud.
    Gw(crate::agents::GwMsg),
    /// The energy market: signed transactions, meter readings, settlements, DR offers.
    Market(crate::market::sim::MarketMsg),
    /// The private chain: transactions for the validators' mempool.
    Chain(crate::chain::ChainMsg),
    /// Data of an agent kind defined outside gridtwin.
    Custom(Box<dyn Any + Send>),
}
