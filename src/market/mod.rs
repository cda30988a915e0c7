//! The energy marketplace: kWh certificates, electricity wallets, data-only contracts, provably optimal P2P
//! clearing, demand response and producers' sales channels, as a deterministic application that an orderer
//! (the chain, or the trusted sequencer here) executes, plus the agents that feed it on the event queue.
//!
//! - [`clearing`]: the call market of one feeder and slot (integer transportation problem, network simplex,
//!   integer dual certificate checked in linear time; greedy and continuous-double-auction baselines).
//! - [`orders`]: the JSON order-book format of `gridtwin market clear`.
//! - [`certs`]: certificate ranges (Wh) and wallets: mint, transfer, split, merge, claim.
//! - [`private`]: private readings: Pedersen commitments, sealed openings per recipient, claim range proofs.
//! - [`view`]: what one party (owner, grid operator, auditor) reads from a private ledger with its key.
//!
//! Units everywhere in state: energy in integer Wh, money in integer milli-cents, prices in milli-cents per
//! kWh, time in integer nanoseconds (slots are numbered from the run's start).

pub mod app;
pub mod certs;
pub mod clearing;
pub mod codec;
pub mod contracts;
pub mod orders;
pub mod private;
pub mod sim;
pub mod trace;
pub mod view;
pub mod world;
