//! The one integration-test binary of gridtwin: one module per concern.
#![allow(clippy::result_large_err)]
mod foundation;
mod grid;
mod lmu;
mod mesh;
mod plan;
mod plots;
mod sweeps;
