//! The agents of a gridtwin run (one file per agent or agent family) and the message type they exchange.
//!
//! The upstream path: [`coordinator`] (mesh root, UART toward the gateway), [`gateway`] (gateway firmware,
//! UART receiver, cellular modem), [`cloud`] (MQTT broker and time-series store); [`config`] is their scenario
//! section and [`upstream`] wires them into a world and reports on them (with the reading accounting).

pub mod cloud;
pub mod config;
pub mod coordinator;
pub mod gateway;
mod msg;
pub mod upstream;

pub use config::GatewayConfig;
pub use gateway::GwMsg;
pub use msg::Msg;
