//! The agents of a gridtwin run (one file per agent or agent family) and the message type they exchange.

pub mod gateway;
mod msg;

pub use gateway::{GatewayConfig, GwMsg};
pub use msg::Msg;
