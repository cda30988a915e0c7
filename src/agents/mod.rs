//! The agents of a gridtwin run (one file per agent) and the message type they exchange.

mod msg;

pub use msg::Msg;
