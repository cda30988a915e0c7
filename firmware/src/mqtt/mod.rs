//! MQTT 3.1.1 and 5.0 for the gateway: the packet codec ([`codec`]) and the client session ([`client`]).
//!
//! Both are `no_std` + `alloc` and sans-IO; the simulator drives them over the cellular twin and the live
//! bridge (`gridtwin bridge`) drives the very same client over a TCP socket to a real broker.

pub mod client;
pub mod codec;

pub use client::{Client, ClientConfig, ClientEvent, ClientStats, SendError, State};
pub use codec::{
    ConnAck, Connect, MqttError, Packet, Publish, QoS, Subscribe, SubscribeOne, Version, check_filter, publish_len,
    topic_matches,
};
