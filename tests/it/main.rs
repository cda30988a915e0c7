//! The one integration-test binary of gridtwin: one module per concern.
#![allow(clippy::result_large_err)]
mod chain;
mod cli;
mod cloud;
mod determinism;
mod foundation;
mod gateway;
mod grid;
mod lmu;
mod market;
mod mesh;
mod plan;
mod plots;
mod security;
mod sweeps;
